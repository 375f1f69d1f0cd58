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
    frontier,
    interactivity_gain,
    pareto_mask,
    same_config_x_loss,
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
    # Targets x0: every point's x = {8, 10, 15, 20}; each side's best y among its points with x >= x0:
    # x0 = 8:  helix max(5, 2) = 5, base max(1, 0.5) = 1  -> 5
    # x0 = 10: helix 5,             base 0.5 (only (15, 0.5)) -> 10
    # x0 = 15: helix 2,             base 0.5              -> 4
    # x0 = 20: base reaches nothing -> skipped. Max = 10.
    assert throughput_gain(HELIX, BASE) == pytest.approx(10.0)
    # a base point beyond Helix's reach changes nothing Helix can be compared with: add (25, 0.1)
    # -> x0 = 8, 10, 15, 20 now see base best 1, 0.5, 0.5, 0.1 -> ratios 5, 10, 4, 20 -> 20
    far = pd.concat([BASE, pd.DataFrame({"tokens_per_s_user": [25.0],
                                         "tokens_per_s_gpu": [0.1], "batch": [1]})])
    assert throughput_gain(HELIX, far) == pytest.approx(20.0)


def test_batch_gain_reads_all_points_not_only_the_frontier():
    # x0 = 8: helix largest batch with x >= 8 = 64, base 16 -> 4; x0 = 10: 64 / 4 = 16;
    # x0 = 15: 8 / 4 = 2; x0 = 20: no base point -> skipped. Max = 16.
    assert batch_gain(HELIX, BASE) == pytest.approx(16.0)
    # A Helix point that is dominated in (x, y) but runs a larger batch at x = 16 (more GPUs):
    # it is not on Helix's frontier, yet at x0 = 15 the largest Helix batch becomes 32 -> 32 / 4 = 8;
    # at x0 = 10 it is 64 / 4 = 16 still. The GB300 case: Helix 64x1 at batch 32 beats the
    # baseline's best interactivity (batch 1) -> 32x.
    wide = pd.concat([HELIX, pd.DataFrame({"tokens_per_s_user": [16.0], "tokens_per_s_gpu": [1.0], "batch": [32]})])
    assert len(frontier(wide)) == 2  # (16, 1) is dominated by (20, 2)
    gb300_base = pd.DataFrame({"tokens_per_s_user": [10.0, 5.0], "tokens_per_s_gpu": [0.5, 4.0], "batch": [1, 64]})
    gb300_helix = pd.DataFrame({"tokens_per_s_user": [12.0, 11.0], "tokens_per_s_gpu": [9.0, 5.0],
                                "batch": [16, 32]})
    assert batch_gain(gb300_helix, gb300_base) == pytest.approx(32.0)
    # Only frontier points of Helix would give 16 / 1 = 16 (the batch-32 point is dominated by (12, 9)).
    assert batch_gain(frontier(gb300_helix), gb300_base) == pytest.approx(16.0)


def test_same_config_x_loss_matches_configurations_not_frontiers():
    keys = ["kvp", "batch"]
    on = pd.DataFrame({"kvp": [8, 8, 16], "batch": [1, 4, 4], "tokens_per_s_user": [100.0, 80.0, 90.0]})
    off = pd.DataFrame({"kvp": [8, 16, 8], "batch": [4, 4, 1], "tokens_per_s_user": [60.0, 90.0, 95.0]})
    # row by row: 1 - 95/100 = 0.05, 1 - 60/80 = 0.25, 1 - 90/90 = 0
    np.testing.assert_allclose(same_config_x_loss(on, off, keys).to_numpy(), [0.05, 0.25, 0.0])
    missing = same_config_x_loss(on, off.iloc[:1], keys)
    assert np.isnan(missing.iloc[0]) and missing.iloc[1] == pytest.approx(0.25)
