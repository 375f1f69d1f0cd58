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
