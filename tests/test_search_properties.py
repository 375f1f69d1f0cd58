"""Properties of the layout search and its Pareto frontiers (issue 6, part 3), with hypothesis.

* every enumerated layout passes the one-point rule check
  (:func:`helixsim.layout.check_layout`), fits the GPU budget, and no valid
  power-of-two layout within the budget is missing;
* each frontier of :func:`helixsim.search.frontiers` is exactly the
  brute-force non-dominated set of its rows (ties and exact duplicates
  included: medha and tp price some layouts identically);
* the best-baseline frontier is never above the union of its members' frontiers;
* a smaller GPU budget never gives a better frontier point.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixsim.errors import SpecError
from helixsim.layout import STRATEGIES, Layout, check_layout
from helixsim.pareto import best_y_at_least_x
from helixsim.precision import Precision
from helixsim.search import BASELINES, SearchSpace, enumerate_layouts, frontiers, search
from helixsim.specs.registry import load_hardware, load_model

X, Y = "tokens_per_s_user", "tokens_per_s_gpu"
MODELS = ["deepseek-r1", "llama-3.1-405b", "llama-3.1-70b", "qwen3-235b-a22b", "gpt-oss-120b", "kimi-k2"]
HARDWARE = ["gb200-nvl72", "h200-hgx", "b200-hgx"]
FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
POW2 = (1, 2, 4, 8, 16, 32, 64)


def _subset(values):
    return st.lists(st.sampled_from(values), min_size=1, max_size=len(values), unique=True).map(
        lambda v: tuple(sorted(v, key=values.index)))


@st.composite
def spaces(draw, max_budget=64):
    space = SearchSpace(
        strategies=draw(_subset(list(STRATEGIES))),
        max_gpus=draw(st.integers(1, max_budget)),
        pp=draw(_subset([1, 2, 4])),
        hopb=draw(st.sampled_from([(True,), (False,), (True, False)])),
        max_batch=draw(st.sampled_from([1, 7, 64, 256])),
        contexts=tuple(sorted(set(draw(st.lists(st.sampled_from([4096, 131_072, 1_000_000]), min_size=1, max_size=2))))),
    )
    return draw(st.sampled_from(MODELS)), draw(st.sampled_from(HARDWARE)), space


def _rows(lay):
    fields = ("strategy", "kvp", "tpa", "dp", "tpf", "ep", "pp", "hopb")
    return [dict(zip(fields, values)) for values in zip(*(getattr(lay, f).tolist() for f in fields))]


# ------------------------------------------------------------------ enumeration
@settings(max_examples=80, **FUZZ)
@given(case=spaces())
def test_every_enumerated_layout_passes_check_layout(case):
    name, hw_name, space = case
    model, hw = load_model(name), load_hardware(hw_name)
    lay = enumerate_layouts(model, hw, space)
    rows = _rows(lay)
    for r in rows:
        layout = Layout(STRATEGIES[r["strategy"]], r["kvp"], r["tpa"], r["dp"], r["tpf"], r["ep"], r["pp"], bool(r["hopb"]))
        assert check_layout(layout, model) == layout
        assert layout.n_gpus <= space.max_gpus and layout.strategy in space.strategies
        assert r["pp"] in space.pp and bool(r["hopb"]) in space.hopb
        assert all(r[k] & (r[k] - 1) == 0 for k in ("kvp", "tpa", "dp", "tpf", "ep"))  # powers of two
    keys = [tuple(r.values()) for r in rows]
    assert len(set(keys)) == len(keys)  # no layout twice


@settings(max_examples=20, **FUZZ)
@given(name=st.sampled_from(MODELS), budget=st.sampled_from([1, 3, 8, 16]), pp=_subset([1, 2]))
def test_no_valid_layout_is_missing(name, budget, pp):
    """Brute force over every power-of-two shape: whatever check_layout accepts within the budget is enumerated
    (modulo the search's canonical forms: ep = 1 for dense models, one HOP-B copy of each baseline,
    medha-ep only with ep > 1)."""
    model, hw = load_model(name), load_hardware("gb200-nvl72")
    space = SearchSpace(max_gpus=budget, pp=pp, hopb=(True, False))
    got = {tuple(r.values()) for r in _rows(enumerate_layouts(model, hw, space))}
    widths = [w for w in POW2 if w <= budget]
    want = set()
    for code, strategy in enumerate(STRATEGIES):
        for kvp, tpa, dp, tpf, ep, p in itertools.product(widths, widths, widths, widths, widths, pp):
            if kvp * tpa * dp * p > budget or (model.ffn.moe is None and ep > 1):
                continue
            if strategy == "medha-ep" and ep == 1:  # canonical form: that is medha
                continue
            try:
                check_layout(Layout(strategy, kvp, tpa, dp, tpf, ep, p), model)
            except SpecError:
                continue
            for hopb in ((True, False) if strategy == "helix" else (True,)):
                want.add((code, kvp, tpa, dp, tpf, ep, p, hopb))
    assert got == want


# ------------------------------------------------------------------ frontiers against brute force
def brute_force_front(df: pd.DataFrame) -> set:
    """Index labels of the feasible rows no other feasible row dominates (max x and y; duplicates all kept)."""
    ok = df[df["feasible"].eq(True)]
    x, y = ok[X].to_numpy(float), ok[Y].to_numpy(float)
    keep = np.ones(len(ok), dtype=bool)
    for start in range(0, len(ok), 512):  # blocks keep the n x n comparison small
        xi, yi = x[start:start + 512, None], y[start:start + 512, None]
        dominated = (x[None, :] >= xi) & (y[None, :] >= yi) & ((x[None, :] > xi) | (y[None, :] > yi))
        keep[start:start + 512] = ~dominated.any(axis=1)
    return set(ok.index[keep])


def groups_of(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows each frontier of ``frontiers()`` is drawn from, written out independently."""
    mixed = table["hopb"].nunique() > 1
    helix = table["strategy"] == "helix"
    on = helix & (table["hopb"].astype(bool) | (not mixed))
    out = {"Helix": table[on], "Best baseline": table[table["strategy"].isin(BASELINES)],
           "TP": table[table["strategy"] == "tp"], "EP": table[table["strategy"] == "ep"],
           "Medha": table[table["strategy"] == "medha"],
           "Medha+EP (extension)": table[table["strategy"] == "medha-ep"]}
    if mixed:
        out["Helix HOP-B off"] = table[helix & ~table["hopb"].astype(bool)]
    return out


def _search(name, hw_name, space, weights="fp4"):
    return search(load_model(name), load_hardware(hw_name), space, Precision(weights=weights, kv_cache="fp8"))


def assert_frontiers_exact(table: pd.DataFrame) -> dict:
    fr = frontiers(table)
    rows = groups_of(table)
    assert set(fr) == set(rows)
    for name, sub in rows.items():
        front = fr[name]
        assert set(front.index) == brute_force_front(sub), name
        assert len(front.index) == len(set(front.index))
        assert front["feasible"].all() and (np.diff(front[X].to_numpy()) >= 0).all()
    return fr


@settings(max_examples=80, **FUZZ)
@given(case=spaces(max_budget=32), weights=st.sampled_from(["fp4", "fp8"]))
def test_frontiers_equal_brute_force(case, weights):
    table = _search(*case, weights=weights)
    assert_frontiers_exact(table)


@settings(max_examples=50, **FUZZ)
@given(case=spaces(max_budget=16), seed=st.integers(0, 2**32 - 1), share=st.floats(0.05, 1.0))
def test_frontiers_keep_every_copy_of_a_tied_point(case, seed, share):
    """Exact duplicate rows (new index labels, same numbers) are all on the frontier or all off it."""
    table = _search(*case)
    rng = np.random.default_rng(seed)
    copies = table.sample(frac=share, random_state=rng, replace=True) if len(table) else table
    doubled = pd.concat([table, copies], ignore_index=True)
    fr = assert_frontiers_exact(doubled)
    for name, rows in groups_of(doubled).items():
        on = set(fr[name].index)
        feasible = rows[rows["feasible"].eq(True)]
        for key, labels in feasible.groupby([X, Y]).groups.items():
            tied = set(labels)
            assert tied <= on or not (tied & on), (name, key)


def test_the_search_table_has_exact_ties_on_its_frontiers():
    """The tie case is real: medha at kvp = 1 prices some layouts exactly as tp does."""
    table = _search("llama-3.1-405b", "gb200-nvl72", SearchSpace(max_gpus=16, max_batch=64, contexts=(131_072,)))
    fr = assert_frontiers_exact(table)
    best = fr["Best baseline"]
    assert best.duplicated([X, Y], keep=False).any(), "expected exact duplicates on the best-baseline frontier"
    assert set(best.loc[best.duplicated([X, Y], keep=False), "strategy"]) >= {"tp", "medha"}


# ------------------------------------------------------------------ best baseline vs its members
@settings(max_examples=80, **FUZZ)
@given(case=spaces(max_budget=64))
def test_best_baseline_is_never_above_its_members(case):
    table = _search(*case)
    fr = frontiers(table)
    best = fr["Best baseline"]
    members = pd.concat([fr[k] for k in ("TP", "EP", "Medha")])
    # every best-baseline point is a point of some member's frontier ...
    assert set(best.index) <= set(members.index)
    # ... so, read as a step function, the best baseline is the upper envelope of its members, never above it
    queries = np.unique(np.concatenate([table[X].to_numpy(float), [0.0, np.inf]]))
    envelope = np.fmax.reduce([best_y_at_least_x(fr[k], queries) for k in ("TP", "EP", "Medha")])
    got = best_y_at_least_x(best, queries)
    assert np.array_equal(np.isnan(got), np.isnan(envelope))
    assert np.array_equal(got[~np.isnan(got)], envelope[~np.isnan(envelope)])
    # and it is the non-dominated part of their union
    assert set(best.index) == brute_force_front(members)


# ------------------------------------------------------------------ budget monotonicity
def _weakly_dominated(small: pd.DataFrame, large: pd.DataFrame) -> bool:
    if small.empty:
        return True
    if large.empty:
        return False
    # the same row priced in a larger table may differ in the last ulp (vectorised transcendental functions)
    sx, sy = small[X].to_numpy(float)[:, None] * (1 - 1e-12), small[Y].to_numpy(float)[:, None] * (1 - 1e-12)
    lx, ly = large[X].to_numpy(float)[None, :], large[Y].to_numpy(float)[None, :]
    return bool(((lx >= sx) & (ly >= sy)).any(axis=1).all())


@settings(max_examples=60, **FUZZ)
@given(case=spaces(max_budget=32), extra=st.integers(1, 40))
def test_smaller_budget_never_gives_a_better_frontier_point(case, extra):
    name, hw_name, space = case
    large_space = dataclasses.replace(space, max_gpus=space.max_gpus + extra)
    small, large = frontiers(_search(name, hw_name, space)), frontiers(_search(name, hw_name, large_space))
    # "Helix HOP-B off" exists only where the table has both HOP-B settings, which a tiny budget may not
    assert set(small) <= set(large)
    for group in small:
        assert _weakly_dominated(small[group], large[group]), group


@pytest.mark.parametrize("name", ["deepseek-r1", "llama-3.1-405b"])
def test_budget_ladder_of_the_paper_sweeps(name):
    """1, 2, 4, ... 64 GPUs at 1M context: each step's frontiers weakly dominate the previous step's."""
    previous = None
    for budget in POW2:
        fr = frontiers(_search(name, "gb200-nvl72", SearchSpace(max_gpus=budget, pp=(1, 2), max_batch=512)))
        if previous is not None:
            for group in fr:
                assert _weakly_dominated(previous[group], fr[group]), (budget, group)
        previous = fr
