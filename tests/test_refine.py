"""Refinement around the tokens/s/user floor (helixsim/refine.py): the planner's table holds the largest batch
meeting the floor, checked against an exhaustive pricing of every batch (SearchSpace.every_batch)."""

import numpy as np
import pandas as pd
import pytest

from helixsim.api import kernels_for
from helixsim.precision import Precision
from helixsim.refine import floor_crossings, refine_for_floor
from helixsim.search import SearchSpace, search
from helixsim.specs.registry import load_hardware, load_model


def _best(table, floor):
    ok = table[table["feasible"].to_numpy(bool) & (table["tokens_per_s_user"].to_numpy() >= floor)]
    row = ok.loc[ok["tokens_per_s_gpu"].idxmax()]
    return (str(row["strategy"]), *(int(row[f]) for f in ("kvp", "tpa", "dp", "tpf", "ep", "batch"))), \
        float(row["tokens_per_s_gpu"])


def test_crossings_by_hand():
    """One series at batches 1, 2, 4, 8 with 100, 80, 60, 40 tokens/s/user and a floor of 50 crosses between 4
    and 8; a series that always meets the floor, and one whose crossing gap is a single batch, do not."""
    base = dict(strategy="helix", kvp=2, tpa=1, dp=1, tpf=2, ep=1, pp=1, hopb=True, context=8192, feasible=True)
    rows = [{**base, "batch": b, "tokens_per_s_user": u} for b, u in ((1, 100), (2, 80), (4, 60), (8, 40))]
    rows += [{**base, "kvp": 4, "tpf": 4, "batch": b, "tokens_per_s_user": 90.0} for b in (1, 2, 4)]
    rows += [{**base, "kvp": 8, "tpf": 8, "batch": b, "tokens_per_s_user": u} for b, u in ((2, 60), (3, 40))]
    t = pd.DataFrame(rows)
    first, nxt = floor_crossings(t, 50.0)
    assert t["batch"].to_numpy()[first].tolist() == [4] and t["batch"].to_numpy()[nxt].tolist() == [8]


@pytest.mark.parametrize("context, gpus, floor", [(8192, 16, 50.0), (1_000_000, 72, 50.0)])
def test_refined_best_is_the_exhaustive_best(context, gpus, floor):
    """DeepSeek-R1 FP4 (FP8 KV) on a GB200 NVL72 rack: the best configuration at the floor after refining the
    grid table equals the best of every batch from 1 to each layout's largest that fits; the grid alone
    finds less (at 8K context it stops at batch 512 of a layout whose floor crossing is at 720)."""
    model, hw = load_model("deepseek-r1"), load_hardware("gb200-nvl72")
    prec = Precision(weights="fp4", kv_cache="fp8")
    grid = search(model, hw, SearchSpace(max_gpus=gpus, max_batch=4096, contexts=(context,)), prec)
    refined = refine_for_floor(model, hw, grid, prec, floor, kernels_for(hw))
    every = search(model, hw, SearchSpace(max_gpus=gpus, max_batch=4096, contexts=(context,), every_batch=True), prec)
    (found, found_tps), (truth, truth_tps) = _best(refined, floor), _best(every, floor)
    assert found == truth and found_tps == pytest.approx(truth_tps, rel=1e-12)
    assert _best(grid, floor)[1] < truth_tps
    assert len(refined) - len(grid) < 0.5 * (len(every) - len(grid))   # a search, not every batch
    assert np.isin(grid.index, refined.index).all() and len(refined) > len(grid)


def test_instance_edges_by_hand():
    """100 users: ceil(100 / k) for k = 5..10 is 20, 17, 15, 13, 12, 10, and every batch up to 10 is an edge (k >= 10);
    the edges are found among batches, not by counting instances, so 10^12 users cost no more than 100."""
    from helixsim.refine import instance_edges

    series, batch = instance_edges(100, np.array([20, 3]))
    assert batch[series == 0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 15, 17, 20]
    assert batch[series == 1].tolist() == [1, 2, 3]
    assert len(instance_edges(10**12, np.array([4096]))[1]) == 4096


def test_added_rows_are_labelled_like_the_searched_ones():
    """Every row the refinement adds (search probes and instance edges) carries its layout label and batch,
    as the search labels its own rows."""
    model, hw = load_model("deepseek-r1"), load_hardware("b200-hgx")
    prec = Precision(weights="fp4", kv_cache="fp8")
    grid = search(model, hw, SearchSpace(max_gpus=8, max_batch=64, contexts=(1_000_000,)), prec)
    refined = refine_for_floor(model, hw, grid, prec, 20.0, kernels_for(hw), users=64)
    added = refined.iloc[len(grid):]
    assert len(added) and added["label"].notna().all()
    assert (added["label"].astype(str).str.extract(r" b(\d+)$")[0].astype(int) == added["batch"]).all()
