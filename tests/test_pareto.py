"""Tests for helixsim.pareto: brute-force dominance checks and hand-worked metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helixsim.pareto import (
    batch_gain,
    best_y_at_least_x,
    fixed_y_x_loss,
    frontier,
    interactivity_gain,
    pareto_mask,
    throughput_gain,
)


# ---------------------------------------------------------------- helpers
def dominates(ax: float, ay: float, bx: float, by: float) -> bool:
    """a dominates b (maximising both); NaN comparisons are False."""
    return ax >= bx and ay >= by and (ax > bx or ay > by)


def brute_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = len(x)
    valid = ~(np.isnan(x) | np.isnan(y))
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        if valid[i]:
            out[i] = not any(valid[j] and dominates(x[j], y[j], x[i], y[i]) for j in range(n))
    return out


def check_frontier_properties(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
    valid = ~(np.isnan(x) | np.isnan(y))
    f = np.flatnonzero(mask)
    assert not mask[~valid].any(), "NaN row on frontier"
    for i in f:  # no frontier point is dominated by any point
        assert not any(dominates(x[j], y[j], x[i], y[i]) for j in range(len(x)))
    for i in np.flatnonzero(valid & ~mask):  # every other valid point is dominated by a frontier point
        assert any(dominates(x[j], y[j], x[i], y[i]) for j in f)


floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
float_or_nan = st.one_of(floats, st.just(math.nan))
small_ints = st.integers(min_value=0, max_value=4).map(float)  # many ties & duplicates


@st.composite
def clouds(draw) -> tuple[np.ndarray, np.ndarray]:
    elem = draw(st.sampled_from([float_or_nan, small_ints, st.one_of(small_ints, st.just(math.nan))]))
    n = draw(st.integers(min_value=0, max_value=40))
    x = np.array(draw(st.lists(elem, min_size=n, max_size=n)), dtype=float)
    y = np.array(draw(st.lists(elem, min_size=n, max_size=n)), dtype=float)
    return x, y


# ---------------------------------------------------------------- pareto_mask
@settings(max_examples=300, deadline=None)
@given(clouds())
def test_pareto_mask_matches_brute_force(cloud):
    x, y = cloud
    mask = pareto_mask(x, y)
    assert mask.dtype == bool and mask.shape == x.shape
    check_frontier_properties(x, y, mask)
    np.testing.assert_array_equal(mask, brute_mask(x, y))


def test_pareto_mask_edge_cases():
    assert pareto_mask([], []).shape == (0,)
    assert pareto_mask([3.0], [1.0]).tolist() == [True]
    assert pareto_mask([math.nan], [1.0]).tolist() == [False]
    assert pareto_mask([1.0], [-math.inf]).tolist() == [True]
    # exact duplicates of a frontier point are all kept; equal x, lower y is not
    x = [1, 1, 1, 2, 0]
    y = [5, 5, 4, 1, 5]
    assert pareto_mask(x, y).tolist() == [True, True, False, True, False]
    with pytest.raises(ValueError):
        pareto_mask([1, 2], [1])


# ---------------------------------------------------------------- frontier
def test_frontier_filters_feasible_groups_and_sorts():
    df = pd.DataFrame({
        "strategy": ["h", "h", "h", "b", "b", "h"],
        "tokens_per_s_user": [20.0, 10.0, 5.0, 8.0, 15.0, 30.0],
        "tokens_per_s_gpu": [2.0, 5.0, 1.0, 1.0, 0.5, 9.0],
        "feasible": [True, True, True, True, True, False],
    })
    f = frontier(df)  # the infeasible (30, 9) would otherwise dominate everything
    assert f["tokens_per_s_user"].tolist() == [10.0, 20.0]
    g = frontier(df, by="strategy")
    assert list(zip(g["strategy"], g["tokens_per_s_user"])) == [
        ("b", 8.0), ("b", 15.0), ("h", 10.0), ("h", 20.0)]
    no_feas = df.drop(columns="feasible")
    assert frontier(no_feas)["tokens_per_s_user"].tolist() == [30.0]


# ---------------------------------------------------------------- best_y_at_least_x
@settings(max_examples=150, deadline=None)
@given(clouds(), st.lists(float_or_nan, max_size=10))
def test_best_y_at_least_x_matches_brute_force(cloud, queries):
    x, y = cloud
    df = pd.DataFrame({"tokens_per_s_user": x, "tokens_per_s_gpu": y})
    got = best_y_at_least_x(df, queries)
    ok = ~(np.isnan(x) | np.isnan(y))
    for q, g in zip(queries, got):
        cand = y[ok & (x >= q)]
        expected = cand.max() if cand.size else math.nan
        assert (math.isnan(g) and math.isnan(expected)) or g == expected


def test_best_y_at_least_x_step_function():
    f = pd.DataFrame({"tokens_per_s_user": [10.0, 20.0], "tokens_per_s_gpu": [5.0, 2.0]})
    np.testing.assert_array_equal(best_y_at_least_x(f, [0, 10, 10.5, 20, 21]),
                                  [5.0, 5.0, 2.0, 2.0, np.nan])


# ---------------------------------------------------------------- metrics
HELIX = pd.DataFrame({"tokens_per_s_user": [10.0, 20.0],
                      "tokens_per_s_gpu": [5.0, 2.0],
                      "batch": [64, 8]})
BASE = pd.DataFrame({"tokens_per_s_user": [8.0, 15.0],
                     "tokens_per_s_gpu": [1.0, 0.5],
                     "batch": [16, 4]})


def test_interactivity_gain():
    # max helix x = 20, max base x = 15  ->  20 / 15
    assert interactivity_gain(HELIX, BASE) == pytest.approx(4 / 3)


def test_throughput_gain():
    # base (8, 1):    helix best y with x >= 8  = max(5, 2) = 5 -> 5 / 1   = 5
    # base (15, 0.5): helix best y with x >= 15 = 2            -> 2 / 0.5 = 4
    # max = 5
    assert throughput_gain(HELIX, BASE) == pytest.approx(5.0)
    # a base point beyond Helix's reach is skipped: add (25, 0.1) -> still 5
    far = pd.concat([BASE, pd.DataFrame({"tokens_per_s_user": [25.0],
                                         "tokens_per_s_gpu": [0.1], "batch": [1]})])
    assert throughput_gain(HELIX, far) == pytest.approx(5.0)


def test_batch_gain():
    # base (8, b=16):  helix largest batch with x >= 8  = max(64, 8) = 64 -> 64 / 16 = 4
    # base (15, b=4):  helix largest batch with x >= 15 = 8             ->  8 / 4  = 2
    # max = 4
    assert batch_gain(HELIX, BASE) == pytest.approx(4.0)


def test_fixed_y_x_loss():
    on = HELIX  # {(10, 5), (20, 2)}: as a line, x(y) = 20 - (10/3)(y - 2) for 2 <= y <= 5
    off = pd.DataFrame({"tokens_per_s_user": [9.0, 15.0], "tokens_per_s_gpu": [5.0, 1.5]})
    # off as a line: x(y) = 15 - (6/3.5)(y - 1.5); common y range [2, 5]
    # y0 = 5: x_on = 10, x_off = 9                 -> 1 - 9/10 = 0.10
    # y0 = 2: x_on = 20, x_off = 15 - 6/7 = 99/7   -> 1 - 99/140 = 41/140
    assert fixed_y_x_loss(on, off) == pytest.approx(41 / 140)
    # y ranges do not overlap -> 0
    weak = pd.DataFrame({"tokens_per_s_user": [50.0], "tokens_per_s_gpu": [1.0]})
    assert fixed_y_x_loss(on, weak) == 0.0
    # identical frontiers -> no loss
    assert fixed_y_x_loss(on, on) == pytest.approx(0.0)
