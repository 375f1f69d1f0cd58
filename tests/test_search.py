"""Layout search, sweeps and the reproduction command."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helixsim.api import simulate_point
from helixsim.errors import SpecError
from helixsim.layout import Layout, LayoutArrays, valid_mask
from helixsim.pareto import pareto_mask
from helixsim.precision import Precision
from helixsim.search import SearchSpace, batch_grid, enumerate_layouts, search
from helixsim.specs.registry import load_hardware, load_model
from helixsim.sweep import load_sweep

GB200 = load_hardware("gb200-nvl72")


def test_batch_grid_is_powers_of_two_and_steps_between():
    assert batch_grid(20).tolist() == [1, 2, 3, 4, 6, 8, 12, 16]


@pytest.mark.parametrize("name", ["deepseek-r1", "llama-3.1-405b"])
def test_enumerated_layouts_are_valid_and_within_budget(name):
    model = load_model(name)
    lay = enumerate_layouts(model, GB200, SearchSpace(max_gpus=64, pp=(1, 2)))
    assert valid_mask(lay, model).all()
    assert (lay.n_gpus <= 64).all()
    rows = set(zip(*(getattr(lay, f).tolist() for f in ("strategy", "kvp", "tpa", "dp", "tpf", "ep", "pp"))))
    assert len(rows) == len(lay.kvp)  # no duplicates


def test_paper_layouts_are_in_the_search_space():
    lay = enumerate_layouts(load_model("llama-3.1-405b"), GB200, SearchSpace(max_gpus=64))
    helix = set(zip(lay.kvp[lay.strategy == 0].tolist(), lay.tpa[lay.strategy == 0].tolist(), lay.tpf[lay.strategy == 0].tolist()))
    assert (8, 8, 64) in helix and (1, 8, 8) in helix
    dsr1 = enumerate_layouts(load_model("deepseek-r1"), GB200, SearchSpace(max_gpus=64))
    assert set(dsr1.tpa[dsr1.strategy == 0].tolist()) == {1}  # MLA: TPA <= K = 1


@pytest.fixture(scope="module")
def table():
    space = SearchSpace(max_gpus=16, pp=(1, 2), hopb=(True,), max_batch=64, contexts=(262_144, 1_000_000))
    return search(load_model("deepseek-r1"), GB200, space, Precision(weights="fp4", kv_cache="fp8"))


def test_search_rows_match_single_point_simulation(table):
    """The vectorised sweep and the one-point path give the same numbers."""
    rng = np.random.default_rng(0)
    for i in rng.choice(len(table), size=12, replace=False):
        row = table.iloc[i]
        lay = Layout(row["strategy"], *(int(row[f]) for f in ("kvp", "tpa", "dp", "tpf", "ep", "pp")), hopb=bool(row["hopb"]))
        r = simulate_point("deepseek-r1", "gb200-nvl72", lay, int(row["batch"]), int(row["context"]),
                           Precision(weights="fp4", kv_cache="fp8"))
        assert r.ttl_ms == pytest.approx(row["ttl_ms"], rel=1e-12)
        assert r.memory_per_gpu_gb == pytest.approx(row["memory_per_gpu_gb"], rel=1e-12)


def test_labels_name_the_layout_and_helix_without_kv_sharding_as_tp():
    """``KVPxTPxDP=TPFxEP bB``; a Helix layout with kvp = 1 runs TP attention and its label says ``tp*``."""
    space = SearchSpace(max_gpus=8, pp=(1, 2), hopb=(True,), max_batch=8, contexts=(131_072,))
    table = search(load_model("llama-3.1-70b"), GB200, space, Precision(kv_cache="fp8"))
    for _, row in table.sample(60, random_state=0).iterrows():
        layout = f"{row.kvp}x{row.tpa}x{row.dp}={row.tpf}x{row.ep}" + (f" pp{row.pp}" if row.pp > 1 else "")
        prefix = "tp* " if row.strategy == "helix" and row.kvp == 1 else ""
        assert str(row.label) == f"{prefix}{layout} b{row.batch}"
    helix1 = table[(table.strategy == "helix") & (table.kvp == 1)]
    assert len(helix1) and helix1["label"].astype(str).str.startswith("tp* ").all()
    assert not table[table.strategy != "helix"]["label"].astype(str).str.startswith("tp*").any()
    assert not table[table.kvp > 1]["label"].astype(str).str.startswith("tp*").any()


def test_search_keeps_batches_that_fit_and_the_capacity_edge(table):
    assert table["feasible"].all()
    assert (table["batch"] <= table["max_batch"]).all()
    edge = table.groupby(["strategy", "kvp", "tpa", "dp", "tpf", "ep", "pp", "context"]).agg(b=("batch", "max"), m=("max_batch", "max"))
    assert (edge["b"] == np.minimum(edge["m"], 64)).all()


def test_metrics_definitions(table):
    assert np.allclose(table["tokens_per_s_user"], 1000.0 / table["ttl_ms"])
    assert np.allclose(table["tokens_per_s_gpu"], table["batch"] * table["tokens_per_s_user"] / table["n_gpus"])


def test_frontier_points_are_not_dominated(table):
    mask = pareto_mask(table["tokens_per_s_user"].to_numpy(), table["tokens_per_s_gpu"].to_numpy())
    x, y = table["tokens_per_s_user"].to_numpy(), table["tokens_per_s_gpu"].to_numpy()
    for i in np.nonzero(mask)[0]:
        dominated = (x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i]))
        assert not dominated.any()


def test_builtin_sweeps_load():
    for name in ("paper-fig5-deepseek-r1-1m", "paper-fig6-llama-405b-1m", "paper-fig7-hopb", "paper-fig1-roofline",
                 "blog-fig1-roofline", "gb300-deepseek-r1-1m"):
        spec, _ = load_sweep(name)
        assert spec.name == name


def test_bad_sweep_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndescription: d\nmodels: [deepseek-r1]\nhardware: gb200-nvl72\ncontexts: [1000]\nstrategys: [tp]\n")
    with pytest.raises(SpecError, match=r"strategys: unknown key \(did you mean 'strategies'\?\)"):
        load_sweep(str(path))
    path.write_text("name: s\ndescription: d\nmodels: [deepseek-r2]\nhardware: gb200-nvl72\ncontexts: [1000]\n")
    with pytest.raises(SpecError, match=r"models\[0\].*did you mean 'deepseek-r1'"):
        load_sweep(str(path))


def cli(*args):
    return subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", *args],
                          capture_output=True, text=True, timeout=300)


def test_sweep_cli_writes_tables_with_provenance_and_plots(tmp_path):
    sweep = tmp_path / "small.yaml"
    sweep.write_text("name: small\ndescription: a small study\nmodels: [llama-3.1-70b]\nhardware: h200-hgx\n"
                     "contexts: [131072]\nmax_gpus: 8\nmax_batch: 32\n")
    out = cli("sweep", str(sweep), "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    for name in ("small.parquet", "small-frontier.parquet", "small-frontier.png", "small-frontier.svg",
                 "provenance.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())["small.parquet"]
    assert [f for f, _ in prov["inputs"]] == ["small.yaml", "llama-3.1-70b.yaml", "h200-hgx.yaml"]
    df = pd.read_parquet(tmp_path / "out" / "small.parquet")
    assert {"strategy", "ttl_ms", "tokens_per_s_user", "tokens_per_s_gpu", "attention_ms", "label"} <= set(df.columns)
    again = tmp_path / "again"
    assert cli("sweep", str(sweep), "--out", str(again)).returncode == 0
    assert (again / "small.parquet").read_bytes() == (tmp_path / "out" / "small.parquet").read_bytes()  # deterministic


def test_sweep_cli_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = cli("sweep", "paper-fig6-llama-405b-1m", "--out", str(blocker / "sub"))
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1


def test_reproduce_json():
    out = cli("reproduce", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    metrics = {"interactivity_gain", "throughput_gain", "batch_gain", "hopb_off_loss"}
    gains = {"interactivity_gain", "throughput_gain", "batch_gain"}
    for model in ("deepseek-r1", "llama-3.1-405b", "deepseek-r1-gb300-blog"):
        assert metrics <= set(data[model])
        assert set(data[model]["without_medha"]) == gains | {g + "_range" for g in gains}
        assert data[model]["interactivity_gain"] > 0 and data[model]["batch_gain"] >= 1
        for key in metrics:  # every gain has its range (the calibrated model gives every point an interval)
            if data[model][key] is not None:
                lo, hi = data[model][key + "_range"]
                assert lo <= data[model][key] <= hi
    for model in ("deepseek-r1", "llama-3.1-405b"):
        # HOP-B is used only where it helps, so switching it off never gains anything
        assert data[model]["hopb_off_loss"] >= 0 and data[model]["hopb_off_loss_any_layout"] >= data[model]["hopb_off_loss"]
        assert gains <= set(data[model]["with_medha_ep"])
    assert data["deepseek-r1-gb300-blog"]["hopb_off_loss"] is None  # the blog's setting has no HOP-B
