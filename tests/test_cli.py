"""The CLI contract: JSON keys, one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from helixsim.cost.step import BREAKDOWN_KEYS

GOLDEN = ["point", "--model", "llama-3.1-405b", "--hardware", "gb200-nvl72", "--strategy", "helix", "--kvp", "8",
          "--tpa", "8", "--tpf", "64", "--ep", "1", "--batch", "8", "--context", "1000000", "--kv-cache", "fp8",
          "--ideal", "--json"]


def helixsim(*args):
    return subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", *args],
                          capture_output=True, text=True, timeout=120)


def test_point_json_contract():
    out = helixsim(*GOLDEN)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("model", "hardware", "strategy", "layout", "n_gpus", "batch", "context", "ttl_ms", "tokens_per_s_user",
                "tokens_per_s_gpu", "memory_per_gpu_gb", "feasible", "infeasible_reason", "breakdown_ms"):
        assert key in data
    assert set(data["layout"]) == {"kvp", "tpa", "dp", "tpf", "ep", "pp", "hopb"}
    assert set(BREAKDOWN_KEYS) <= set(data["breakdown_ms"])
    assert sum(data["breakdown_ms"].values()) == pytest.approx(data["ttl_ms"], rel=1e-12)
    assert data["breakdown_ms"]["attention"] == pytest.approx(4.032, rel=1e-12)  # hand calculation, see test_cost_golden
    assert data["tokens_per_s_user"] == pytest.approx(1000.0 / data["ttl_ms"])
    assert data["tokens_per_s_gpu"] == pytest.approx(8 * data["tokens_per_s_user"] / 64)


def test_list():
    out = helixsim("list")
    assert out.returncode == 0 and "gb200-nvl72" in out.stdout and "deepseek-r1" in out.stdout


@pytest.mark.parametrize("args,needle", [
    (["--model", "deepseek-r2"], "did you mean 'deepseek-r1'"),
    (["--hardware", "gb200"], "unknown hardware"),
    (["--kvp", "3"], "--tpf"),
    (["--batch", "0"], "--batch"),
    (["--context", "-5"], "--context"),
    (["--tpa", "16", "--tpf", "128", "--kvp", "8"], "--tpa"),
    (["--model", "/nonexistent/model.yaml"], "file not found"),
    (["--batch", "nan"], "--batch"),
])
def test_bad_input_one_line_exit_2(args, needle):
    base = dict(zip(GOLDEN[1::2], GOLDEN[2::2]))
    base.pop("--json", None)
    argv = ["point"]
    override = dict(zip(args[::2], args[1::2]))
    for key, value in {**{k: v for k, v in base.items() if k.startswith("--")}, **override}.items():
        argv += [key, value]
    out = helixsim(*argv)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_infeasible_batch_reports_largest_that_fits():
    out = helixsim("point", "--model", "llama-3.1-405b", "--hardware", "gb200-nvl72", "--strategy", "tp", "--tpa", "8",
                   "--tpf", "8", "--batch", "64", "--context", "1000000", "--json")
    data = json.loads(out.stdout)
    assert out.returncode == 0 and data["feasible"] is False
    assert "largest batch that fits" in data["infeasible_reason"]
