"""``helixsim bench``: CPU end to end on tiny shapes, tables the calibration fitter reads.

The PyTorch parts are skipped where torch is not installed (it is an optional
extra, ``helixsim[bench]``); the one-line errors are checked without it.
"""

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helixsim.cli import run

REPO = Path(__file__).resolve().parents[1]

# Column lists of the measured calibration tables, copied from the header rows of
# /work/shared/calibration/h100_sxm/<family>.csv.gz (aiconfigurator-core 0.12.0 data, see its README).
EXPECTED_COLUMNS = {
    "gemm": ["op_name", "kernel_source", "gemm_dtype", "m", "n", "k", "latency_ms"],
    "gqa_decode_attention": ["op_name", "kernel_source", "batch_size", "isl", "num_heads", "num_key_value_heads",
                             "head_dim", "window_size", "beam_width", "attn_dtype", "kv_cache_dtype", "step",
                             "latency_ms"],
    "mla_decode_attention": ["op_name", "kernel_source", "mla_dtype", "kv_cache_dtype", "num_heads", "batch_size",
                             "isl", "tp_size", "step", "latency_ms"],
    "moe": ["op_name", "kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts",
            "moe_tp_size", "moe_ep_size", "distribution", "latency_ms"],
    "nccl": ["op_name", "kernel_source", "nccl_dtype", "num_gpus", "message_size", "latency_ms"],
}
FAST = ["--device", "cpu", "--shapes", "small", "--warmup", "1", "--iters", "3"]


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    try:
        run(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> bool:
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


# ------------------------------------------------------------------ without torch


def test_missing_torch_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)       # ``import torch`` now raises ImportError
    code, _, err = cli(capsys, "bench", "gemm", "--out", str(tmp_path / "gemm.csv.gz"), "--device", "cpu")
    assert code == 2
    assert err == "error: bench: PyTorch is not installed; pip install 'helixsim[bench]'\n"
    assert not (tmp_path / "gemm.csv.gz").exists()


@pytest.mark.parametrize("args,needle", [
    (["bench", "moe", "--dtype", "fp8"], "--dtype"),
    (["bench", "gemm", "--dtype", "int4"], "--dtype"),
    (["bench", "gemm", "--out", "table.parquet"], "--out"),
    (["bench", "allreduce"], "torchrun with >= 2 ranks"),
    (["bench", "alltoall"], "torchrun with >= 2 ranks"),
    (["bench", "conv2d"], "bench"),
    (["bench", "gemm", "--iters", "0"], "--iters"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    if "--out" not in args:
        args = args + ["--out", str(tmp_path / "t.csv.gz")]
    code, _, err = cli(capsys, *args, "--device", "cpu")
    assert code == 2 and one_line_error(err) and needle in err, err


# ------------------------------------------------------------------ with torch (CPU, tiny shapes)


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    pytest.importorskip("torch")
    data = tmp_path_factory.mktemp("bench")
    runs = [("gemm", str(data / "gemm.csv.gz")), ("attention", str(data / "gqa_decode_attention.csv.gz")),
            ("mla_attention", str(data) + os.sep), ("moe", str(data / "moe.csv"))]
    for kernel, out in runs:
        try:
            run(["bench", kernel, "--out", out, *FAST])
        except SystemExit as exc:
            assert exc.code in (0, None), f"bench {kernel} exited {exc.code}"
    return data


@pytest.mark.parametrize("table,file", [("gemm", "gemm.csv.gz"),
                                        ("gqa_decode_attention", "gqa_decode_attention.csv.gz"),
                                        ("mla_decode_attention", "mla_decode_attention.csv.gz"), ("moe", "moe.csv")])
def test_tables_have_the_calibration_columns(bench_dir, table, file):
    df = pd.read_csv(bench_dir / file)
    assert list(df.columns) == EXPECTED_COLUMNS[table]
    assert len(df) >= 8
    lat = df["latency_ms"].to_numpy(float)
    assert all(math.isfinite(v) and v > 0 for v in lat)
    real = Path("/work/shared/calibration/h100_sxm") / f"{table}.csv.gz"
    if real.exists():   # the shipped data, where this checkout has it
        assert list(pd.read_csv(real, nrows=1).columns) == EXPECTED_COLUMNS[table]
    stem = file.removesuffix(".gz").removesuffix(".csv")
    cond = json.loads((bench_dir / f"{stem}.conditions.json").read_text())
    for key in ("device_name", "torch_version", "cuda_version", "started_utc", "helixsim_version", "timing", "notes"):
        assert key in cond
    assert cond["protocol"] == {"warmup": 1, "iters": 3, "statistic": "median", "unit": "milliseconds per call"}
    assert cond["rows_in_table"] == len(df) and cond["device_type"] == "cpu"


def test_table_values_follow_the_calibration_conventions(bench_dir):
    gemm = pd.read_csv(bench_dir / "gemm.csv.gz")
    assert set(gemm["gemm_dtype"]) <= {"bfloat16", "fp8"} and "bfloat16" in set(gemm["gemm_dtype"])
    assert (gemm["op_name"] == "gemm").all()
    gqa = pd.read_csv(bench_dir / "gqa_decode_attention.csv.gz")
    assert (gqa["isl"] == 1).all() and (gqa["window_size"] == 0).all() and (gqa["beam_width"] == 1).all()
    assert ((gqa["step"] + 1) & gqa["step"] == 0).all()          # step = 2^i - 1: the step reads 2^i tokens
    assert (gqa["num_heads"] % gqa["num_key_value_heads"] == 0).all()
    mla = pd.read_csv(bench_dir / "mla_decode_attention.csv.gz")
    assert (mla["num_heads"] * mla["tp_size"] == 128).all()       # heads per GPU of DeepSeek's 128, as in the data
    moe = pd.read_csv(bench_dir / "moe.csv")
    assert set(moe["distribution"]) == {"balanced"}


def test_calibrate_fits_the_bench_output(bench_dir, tmp_path, capsys):
    code, out, err = cli(capsys, "calibrate", "--data", str(bench_dir), "--hardware", "h100-hgx",
                         "--out", str(tmp_path / "cal"))
    assert code in (0, 2), err
    if code == 2:   # too few rows for some fit: still a one-line error, never a traceback
        assert one_line_error(err), err
        pytest.skip(f"fitter declined the tiny tables: {err.strip()}")
    manifest = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert manifest["hardware"] == "h100-hgx"
    assert {"gemm", "gqa_decode_attention", "mla_decode_attention", "moe"} <= set(manifest["families"])
    # the fitted tables price kernels through the ordinary --calibration path
    code, out, err = cli(capsys, "point", "--model", "llama-3.1-70b", "--hardware", "h100-hgx", "--strategy", "helix",
                         "--tpa", "8", "--tpf", "8", "--batch", "8", "--context", "8192", "--calibration",
                         str(tmp_path / "cal"), "--json")
    assert code == 0, err
    assert json.loads(out)["ttl_ms"] > 0


def test_append_merges_and_keeps_history(bench_dir, tmp_path, capsys):
    target = tmp_path / "gemm.csv.gz"
    assert cli(capsys, "bench", "gemm", "--out", str(target), "--dtype", "bf16", *FAST)[0] == 0
    assert cli(capsys, "bench", "gemm", "--out", str(target), "--dtype", "bf16", "--append", *FAST)[0] == 0
    with gzip.open(target, "rt") as fh:
        df = pd.read_csv(fh)
    assert len(df) == len(df.drop_duplicates(["gemm_dtype", "m", "n", "k"])) > 0   # same shapes replaced
    cond = json.loads((tmp_path / "gemm.conditions.json").read_text())
    assert len(cond["previous_runs"]) == 1


def test_collectives_under_torchrun_gloo(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "nccl.csv.gz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    for kernel, extra in (("allreduce", []), ("alltoall", ["--append"])):
        res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                              "-m", "helixsim.cli", "bench", kernel, "--out", str(out), *FAST, *extra],
                             capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
    df = pd.read_csv(out)
    assert list(df.columns) == EXPECTED_COLUMNS["nccl"]
    assert set(df["op_name"]) == {"all_reduce", "alltoall"}
    assert (df["num_gpus"] == 2).all() and (df["nccl_dtype"] == "bfloat16").all()
    assert (df["latency_ms"] > 0).all()
    assert json.loads((tmp_path / "nccl.conditions.json").read_text())["backend"] == "gloo"
