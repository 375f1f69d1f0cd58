"""Streamed sweeps (issue 14): tables written chunk by chunk, frontiers reduced chunk by chunk, the same
bytes whatever prices the chunks (one process, local worker processes, a Dask cluster), one frontier per
(system, context)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helixsim.pareto import pareto_mask
from helixsim.precision import Precision
from helixsim.search import SearchSpace, frontiers, search
from helixsim.specs.registry import load_hardware, load_model
from helixsim.stream import grouped_pareto_mask, stream_model

SPACE = SearchSpace(max_gpus=8, pp=(1, 2), hopb=(True, False), max_batch=64, contexts=(32_768, 262_144))
PREC = Precision(weights="fp4", kv_cache="fp8")
PROV = {"helixsim": "test", "inputs": []}


@pytest.mark.parametrize("seed", range(5))
def test_grouped_pareto_equals_per_group_brute_force(seed):
    """Every group's mask equals pareto_mask on that group alone (ties and NaN included)."""
    rng = np.random.default_rng(seed)
    n = 400
    group = rng.integers(0, 7, n)
    x = rng.integers(0, 12, n).astype(float)   # few values: many exact ties
    y = rng.integers(0, 12, n).astype(float)
    x[rng.random(n) < 0.05] = np.nan
    mask = grouped_pareto_mask(group, x, y)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        np.testing.assert_array_equal(mask[rows], pareto_mask(x[rows], y[rows]))


def _stream(tmp_path, tag, **kw):
    model, hw = load_model("llama-3.1-70b"), load_hardware("h200-hgx")
    return stream_model(model, [("h200-hgx", hw)], SPACE, PREC, tmp_path / f"{tag}.parquet",
                        tmp_path / f"{tag}-frontier.parquet", "parquet", PROV, rows=600, **kw)


def test_chunked_stream_equals_the_whole_table(tmp_path):
    """Several chunks: the file holds every row of the in-memory search, and the frontiers reduced chunk
    by chunk are the frontiers of the whole table, context by context."""
    res = _stream(tmp_path, "one")
    f = pq.ParquetFile(tmp_path / "one.parquet")
    assert f.metadata.num_row_groups > 2  # really streamed in pieces
    assert json.loads(f.schema_arrow.metadata[b"helixsim"]) == PROV
    table = pd.read_parquet(tmp_path / "one.parquet")
    whole = search(load_model("llama-3.1-70b"), load_hardware("h200-hgx"), SPACE, PREC)
    assert len(table) == len(whole) == res.configurations
    keys = ["strategy", "kvp", "tpa", "dp", "tpf", "ep", "pp", "hopb", "batch", "context"]
    a = table.astype({"strategy": str}).sort_values(keys).reset_index(drop=True)
    b = whole.astype({"strategy": str}).sort_values(keys).reset_index(drop=True)
    np.testing.assert_array_equal(a["ttl_ms"].to_numpy(), b["ttl_ms"].to_numpy())
    front = pd.read_parquet(tmp_path / "one-frontier.parquet")
    for ctx in SPACE.contexts:
        expected = frontiers(whole[whole["context"] == ctx])
        for name, fr in expected.items():
            got = front[(front["context"] == ctx) & (front["frontier"] == name)]
            assert sorted(got["label"]) == sorted(fr["label"].astype(str)), (ctx, name)


def test_same_bytes_with_worker_processes_and_a_dask_cluster(tmp_path):
    from distributed import Client, LocalCluster

    _stream(tmp_path, "serial")
    _stream(tmp_path, "procs", workers=2)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        _stream(tmp_path, "dask", scheduler=client)
    for suffix in (".parquet", "-frontier.parquet"):
        serial = (tmp_path / f"serial{suffix}").read_bytes()
        assert (tmp_path / f"procs{suffix}").read_bytes() == serial
        assert (tmp_path / f"dask{suffix}").read_bytes() == serial


def test_two_systems_two_contexts_give_four_frontiers(tmp_path, capsys):
    from helixsim.cli import run

    sweep = tmp_path / "two.yaml"
    sweep.write_text("name: two\ndescription: d\nmodels: [llama-3.1-70b]\nhardware: [h200-hgx, b200-hgx]\n"
                     "contexts: [8192, 131072]\nmax_gpus: 8\nmax_batch: 32\nstrategies: [helix, tp]\n")
    try:
        run(["sweep", str(sweep), "--out", str(tmp_path / "out")])
    except SystemExit as exc:  # pragma: no cover - only on failure
        assert exc.code in (0, None), capsys.readouterr().err
    front = pd.read_parquet(tmp_path / "out" / "two-frontier.parquet")
    helix = front[front["frontier"] == "Helix"]
    assert set(zip(helix["hardware"], helix["context"])) == {(h, c) for h in ("h200-hgx", "b200-hgx")
                                                              for c in (8192, 131072)}
    assert (tmp_path / "out" / "two-frontier.png").stat().st_size > 0   # one faceted figure, 2 x 2 panels
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert [f for f, _ in prov["two.parquet"]["inputs"]] == ["two.yaml", "llama-3.1-70b.yaml", "h200-hgx.yaml",
                                                             "b200-hgx.yaml"]


def test_csv_on_request_is_a_plain_table(tmp_path):
    """No comment line: pandas reads it as is, the same rows and numbers as the Parquet file."""
    model, hw = load_model("llama-3.1-70b"), load_hardware("h200-hgx")
    for fmt in ("csv", "parquet"):
        stream_model(model, [("h200-hgx", hw)], SPACE, PREC, tmp_path / f"t.{fmt}", tmp_path / f"f.{fmt}", fmt, PROV)
    csv, par = pd.read_csv(tmp_path / "t.csv"), pd.read_parquet(tmp_path / "t.parquet")
    assert list(csv.columns) == list(par.columns) and len(csv) == len(par) > 0
    np.testing.assert_array_equal(csv["ttl_ms"].to_numpy(), par["ttl_ms"].to_numpy())
    assert (csv["label"] == par["label"].astype(str)).all()


def test_every_batch_finds_the_exhaustive_best_at_512k():
    """DeepSeek-R1 at 512K tokens, at most 16 GPUs, a floor of 40 tokens/s/user: the configuration the
    search finds with every_batch is the best of an exhaustive pricing of every (layout, batch 1..256),
    built here without the search's chunks and grids; the default batch grid finds less."""
    from helixsim.api import evaluate
    from helixsim.search import _take, enumerate_layouts

    model, hw = load_model("deepseek-r1"), load_hardware("gb200-nvl72")
    prec = Precision(weights="fp4", kv_cache="fp4")
    space = SearchSpace(max_gpus=16, max_batch=256, contexts=(524_288,), every_batch=True)
    floor = 40.0

    def best(table):
        ok = table[table["feasible"].to_numpy(bool) & (table["tokens_per_s_user"] >= floor)]
        row = ok.loc[ok["tokens_per_s_gpu"].idxmax()]
        return (str(row["strategy"]), *(int(row[f]) for f in ("kvp", "tpa", "dp", "tpf", "ep", "pp", "batch"))), \
            float(row["tokens_per_s_gpu"])

    found, found_tps = best(search(model, hw, space, prec))
    lay = enumerate_layouts(model, hw, space)
    li = np.repeat(np.arange(len(lay.kvp)), 256)
    batches = np.tile(np.arange(1, 257), len(lay.kvp))
    exhaustive = evaluate(model, hw, _take(lay, li), batches, 524_288, prec)
    truth, truth_tps = best(exhaustive)
    assert found == truth and found_tps == truth_tps
    _, grid_tps = best(search(model, hw, SearchSpace(max_gpus=16, max_batch=256, contexts=(524_288,)), prec))
    assert grid_tps < truth_tps   # the 1, 2, 3, 4, 6, 8, 12, 16 grid stops at batch 12 where 15 still meets the floor


def test_widths_beyond_powers_of_two_fill_a_72_gpu_rack():
    """With the divisors of 72 as widths, Llama-3.1-405B (128 query heads, 8 KV heads) gets layouts on all
    72 GPUs of a GB200 NVL72 rack (e.g. Medha 9 x 8), each valid by the layout rules; powers of two stop at 64."""
    from helixsim.layout import Layout, check_layout
    from helixsim.search import enumerate_layouts

    model, hw = load_model("llama-3.1-405b"), load_hardware("gb200-nvl72")
    divisors = tuple(d for d in range(1, 73) if 72 % d == 0) + (16, 32, 64)
    lay = enumerate_layouts(model, hw, SearchSpace(max_gpus=72, widths=divisors))
    assert lay.n_gpus.max() == 72
    assert enumerate_layouts(model, hw, SearchSpace(max_gpus=72)).n_gpus.max() == 64
    full = np.flatnonzero(lay.n_gpus == 72)
    assert ("medha", 9, 8) in {(("helix", "tp", "ep", "medha")[lay.strategy[i]], lay.kvp[i], lay.tpa[i]) for i in full}
    for i in full:
        check_layout(Layout(("helix", "tp", "ep", "medha")[lay.strategy[i]],
                            *(int(getattr(lay, f)[i]) for f in ("kvp", "tpa", "dp", "tpf", "ep", "pp"))), model)


def test_kernel_shapes_priced_once_per_kernel_object():
    """A second call with shapes seen before prices nothing new and returns the same numbers as a fresh
    kernel object; a shape seen before and a new one mix correctly."""
    from helixsim.api import kernels_for

    hw = load_hardware("gb200-nvl72")
    rng = np.random.default_rng(7)
    m = rng.choice([1, 2, 3, 8, 64, 300, 1000], size=(200, 1))
    n = rng.choice([576, 1536, 7168], size=(1, 5))
    warm = kernels_for(hw)
    first = warm.gemm_ms(m, n, 7168, "fp4")
    memo = next(v for (name, *_), v in warm._memo.items() if name == "gemm_ms")
    priced = len(memo.keys)
    assert priced == len(np.unique(m)) * len(np.unique(n))    # each distinct (m, n) once
    m2 = np.concatenate([m, [[5], [4096]]])                     # two new batch sizes
    again = warm.gemm_ms(m2, n, 7168, "fp4")
    assert len(memo.keys) == priced + 2 * len(np.unique(n))
    np.testing.assert_array_equal(again[:200], first)
    np.testing.assert_array_equal(again, kernels_for(hw).gemm_ms(m2, n, 7168, "fp4"))


def test_frontier_reducer_merges_after_its_table_was_taken():
    """table() of the running frontier, then another chunk: the first table is left as it was (the
    second system's rows take none of its rows away), and the second equals reducing both at once."""
    from helixsim.stream import FrontierReducer

    whole = search(load_model("llama-3.1-70b"), load_hardware("h200-hgx"), SPACE, PREC)
    a = whole.assign(hardware="h200-hgx")
    b = whole.assign(hardware="h200-hgx copy")
    once = FrontierReducer()
    once.add(pd.concat([a, b], ignore_index=True))
    r = FrontierReducer()
    r.add(a)
    first = r.table()
    snapshot = first.copy()
    r.add(b)
    second = r.table()
    pd.testing.assert_frame_equal(first, snapshot)
    pd.testing.assert_frame_equal(second, once.table())
