"""Whole-deployment planning (helixsim plan --isl/--osl): pools, TTFT limit, cost split, CLI contract."""

import json
import math

import pytest
from click.testing import CliRunner

from helixsim.cli import main
from helixsim.planning.deployment_report import plan_deployment

ARGS = dict(model="llama-3.1-70b", hardware=("h200-hgx",), isl=8192, osl=1024, users=64,
            min_tokens_per_s_user=20.0, max_ttft_s=2.0)


@pytest.fixture(scope="module")
def result():
    return plan_deployment(**ARGS).to_json()


def test_recommendation_keys_and_limits(result):
    rec = result["recommendation"]
    for key in ("prefill_gpus", "decode_gpus", "ttft_s", "cost_per_m_tokens_prefill", "cost_per_m_tokens_decode"):
        assert key in rec
    assert rec["ttft_s"] <= ARGS["max_ttft_s"] and rec["tokens_per_s_user"] >= ARGS["min_tokens_per_s_user"]
    assert rec["prefill_gpus"] + rec["decode_gpus"] == rec["total_gpus"]
    opts = [o for o in (result["per_hardware"][0]["disaggregated"], result["per_hardware"][0]["aggregated"]) if o]
    assert rec["cost_per_m_output_tokens"] == min(o["cost_per_m_output_tokens"] for o in opts)


def test_disaggregated_pools_by_littles_law(result):
    """Users in a closed loop send a prompt every TTFT + osl / (tokens/s/user) seconds; the prefill pool
    needs ceil(rate x prefill seconds) instances, the decode pool ceil(users / batch)."""
    d = result["per_hardware"][0]["disaggregated"]
    rate = ARGS["users"] / (d["ttft_s"] + ARGS["osl"] / d["tokens_per_s_user"])
    assert d["prefill"]["instances"] == math.ceil(rate * d["prefill_s"] - 1e-9)
    assert d["ttft_s"] == pytest.approx(d["prefill_s"] + d["kv_transfer_s"])
    # the split prices add up: input tokens at the prefill price plus output tokens at the decode price
    per_request = d["cost_per_m_tokens_prefill"] * ARGS["isl"] + d["cost_per_m_tokens_decode"] * ARGS["osl"]
    assert per_request == pytest.approx(d["cost_per_m_output_tokens"] * ARGS["osl"], rel=1e-9)


def test_tighter_ttft_never_cheaper(result):
    tight = plan_deployment(**{**ARGS, "max_ttft_s": 0.5}).to_json()["recommendation"]
    assert tight is None or tight["cost_per_m_output_tokens"] >= result["recommendation"]["cost_per_m_output_tokens"]
    assert tight is None or tight["ttft_s"] <= 0.5


@pytest.mark.parametrize("extra, field", [(["--context", "9000"], "--context"), ([], "--osl")])
def test_cli_errors(extra, field):
    args = ["plan", "--model", "llama-3.1-70b", "--hardware", "h200-hgx", "--isl", "8192", "--users", "8",
            "--min-tokens-per-s-user", "20", "--max-ttft-s", "2"] + extra
    if field != "--osl":
        args += ["--osl", "1024"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and field in res.output and len(res.output.strip().splitlines()) == 1


def test_cli_json_and_reports(tmp_path):
    res = CliRunner().invoke(main, ["plan", "--model", "llama-3.1-70b", "--hardware", "h200-hgx", "--isl", "8192",
                                    "--osl", "1024", "--users", "64", "--min-tokens-per-s-user", "20",
                                    "--max-ttft-s", "2", "--json", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout if hasattr(res, "stdout") else res.output)
    assert data["recommendation"]["prefill_gpus"] >= 0
    md = (tmp_path / "o" / "report.md").read_text()
    page = (tmp_path / "o" / "report.html").read_text()
    assert "disaggregated" in md and "$/M input (prefill)" in md and "<table>" in page
