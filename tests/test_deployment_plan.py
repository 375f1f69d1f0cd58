"""Whole-deployment planning (helixsim plan --isl/--osl): pools, TTFT limit, cost split, CLI contract."""

import json
import math

import pytest
from click.testing import CliRunner

from helixsim.cli import main
from helixsim.planning.deployment_report import plan_deployment
from helixsim.planning.queueing import erlang_c, instances_for_wait, mdc_mean_wait_s

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


def test_disaggregated_pools_with_queueing_margin(result):
    """Users in a closed loop send a prompt every TTFT + osl / (tokens/s/user) seconds. The prefill pool
    is the smallest whose mean M/D/c wait keeps the TTFT under the limit: more than Little's law's
    ceil(rate x prefill seconds) (at which the queue grows without bound), one fewer would miss the
    limit; the decode pool is ceil(users / batch)."""
    d = result["per_hardware"][0]["disaggregated"]
    ttft0 = d["prefill_s"] + d["kv_transfer_s"]
    rate = ARGS["users"] / (ttft0 + ARGS["osl"] / d["tokens_per_s_user"])
    c = d["prefill"]["instances"]
    assert c > rate * d["prefill_s"]
    assert d["ttft_s"] == pytest.approx(ttft0 + d["queue_wait_s"]) and d["ttft_s"] <= ARGS["max_ttft_s"]
    assert float(mdc_mean_wait_s(c, rate, d["prefill_s"])) == pytest.approx(d["queue_wait_s"])
    assert c == 1 or ttft0 + float(mdc_mean_wait_s(c - 1, rate, d["prefill_s"])) > ARGS["max_ttft_s"]
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


def test_queueing_by_hand():
    """Textbook values: M/M/2 at offered load 1 (utilisation 0.5) waits with probability 1/3 (Erlang C:
    B(2, 1) = 0.2, C = 0.2 / (1 - 0.5 x 0.8)); M/D/1 at utilisation 0.5 and a 1 s service waits
    rho S / (2 (1 - rho)) = 0.5 s (Pollaczek-Khinchine), which Allen-Cunneen reproduces at c = 1."""
    assert float(erlang_c(2, 1.0)) == pytest.approx(1.0 / 3.0)
    assert float(mdc_mean_wait_s(1, 0.5, 1.0)) == pytest.approx(0.5)
    assert float(mdc_mean_wait_s(2, 2.0, 1.0)) == math.inf           # a = c: unstable
    # M/D/2 at a = 1: 1/2 x 1/3 x 1 / (2 - 1) = 1/6 s; so a 0.2 s budget needs 2 instances, 0.1 s needs 3
    assert float(mdc_mean_wait_s(2, 1.0, 1.0)) == pytest.approx(1.0 / 6.0)
    assert instances_for_wait([1.0, 1.0], [1.0, 1.0], [0.2, 0.1]).tolist() == [2, 3]
    assert int(instances_for_wait(1.0, 1.0, 0.0, headroom=8)) == -1   # no slack: no pool is enough


def test_length_mix_plan(tmp_path):
    """A plan YAML with a length mix: one class of any share is the plain --isl/--osl plan; two classes
    give a disaggregated plan under the TTFT limit (aggregated serving is planned for one class only),
    the decode layout searched at the decode-time-weighted mean KV length (by hand: shares 3 and 1 of
    8,192/1,024 and 1,024/1,024: (3 x 1024 x 8704 + 1 x 1024 x 1536) / (4 x 1024) = 6,912 tokens)."""
    from helixsim.planning.deployment import decode_context

    assert decode_context([(8192, 1024, 3.0), (1024, 1024, 1.0)]) == 6912
    one = plan_deployment(**{**ARGS, "isl": None, "osl": None}, lengths=[(8192, 1024, 2.5)]).to_json()
    plain = plan_deployment(**ARGS).to_json()
    assert one["recommendation"] == plain["recommendation"]
    path = tmp_path / "mix.yaml"
    path.write_text("model: llama-3.1-70b\nhardware: [h200-hgx]\nusers: 64\nmin_tokens_per_s_user: 20\n"
                    "max_ttft_s: 2\nlengths:\n  - {isl: 8192, osl: 1024, share: 3}\n  - {isl: 1024, osl: 1024, share: 1}\n")
    res = CliRunner().invoke(main, ["plan", "--plan", str(path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [c["isl"] for c in data["request"]["lengths"]] == [8192, 1024]
    hw = data["per_hardware"][0]
    assert hw["aggregated"] is None and hw["disaggregated"]["ttft_s"] <= 2.0
    assert hw["disaggregated"]["queue_wait_s"] >= 0.0


@pytest.mark.parametrize("body, field", [
    ("lengths:\n  - {isl: 8192, osl: 1024, weight: 1}\n", "lengths[0].weight"),
    ("lengths:\n  - {isl: 8192, osl: 1}\n", "lengths[0].osl"),
    ("lengths: []\n", "lengths"),
    ("lengths:\n  - {isl: 8192, osl: 1024, share: -1}\n", "share"),
    ("lengths:\n  - {isl: 8192, osl: 1024}\nqueue: true\n", "queue"),
])
def test_length_mix_yaml_is_strict(tmp_path, body, field):
    path = tmp_path / "bad.yaml"
    path.write_text("model: llama-3.1-70b\nhardware: [h200-hgx]\nusers: 8\nmin_tokens_per_s_user: 20\n"
                    "max_ttft_s: 2\n" + body)
    res = CliRunner().invoke(main, ["plan", "--plan", str(path)])
    assert res.exit_code == 2 and field in res.output and str(path) in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


def test_length_mix_refuses_isl_flag(tmp_path):
    path = tmp_path / "mix.yaml"
    path.write_text("model: llama-3.1-70b\nhardware: [h200-hgx]\nusers: 8\nmin_tokens_per_s_user: 20\n"
                    "max_ttft_s: 2\nlengths:\n  - {isl: 8192, osl: 1024}\n")
    res = CliRunner().invoke(main, ["plan", "--plan", str(path), "--isl", "100"])
    assert res.exit_code == 2 and "--isl" in res.output


def test_mixed_service_times_wait_like_mmc():
    """Allen-Cunneen with exponential-like spread (service SCV 1) is the M/M/c wait: M/M/2 at a = 1 and a
    1 s service waits C x S / (c - a) = 1/3 s, twice the deterministic M/D/2 wait (1/6 s)."""
    assert float(mdc_mean_wait_s(2, 1.0, 1.0, 1.0)) == pytest.approx(1.0 / 3.0)
    assert int(instances_for_wait(1.0, 1.0, 0.2, service_scv=1.0)) == 3


def test_absurd_prompt_length_is_refused(tmp_path):
    """A prompt of 2^40 tokens would be priced in 134M chunks: a one-line error instead (flag and YAML)."""
    res = CliRunner().invoke(main, ["plan", "--model", "llama-3.1-70b", "--hardware", "h200-hgx", "--isl",
                                    str(1 << 40), "--osl", "1024", "--users", "8", "--min-tokens-per-s-user", "20",
                                    "--max-ttft-s", "2"])
    assert res.exit_code == 2 and "--isl" in res.output and len(res.output.strip().splitlines()) == 1
    path = tmp_path / "huge.yaml"
    path.write_text("model: llama-3.1-70b\nhardware: [h200-hgx]\nusers: 8\nmin_tokens_per_s_user: 20\n"
                    f"max_ttft_s: 2\nlengths:\n  - {{isl: {1 << 40}, osl: 1024}}\n")
    res = CliRunner().invoke(main, ["plan", "--plan", str(path)])
    assert res.exit_code == 2 and "lengths[0].isl" in res.output and str(path) in res.output


def test_every_option_carries_intervals(result):
    """Each option's tokens/s/user (the decode step's 80 % interval, helixsim/uncertainty.py) and TTFT (with the
    request path, helixsim/ttft_interval.py) carry intervals that contain the point and have width."""
    opts = [o for o in (result["per_hardware"][0]["disaggregated"], result["per_hardware"][0]["aggregated"]) if o]
    assert opts
    for o in opts:
        assert o["tokens_per_s_user_lo"] < o["tokens_per_s_user"] < o["tokens_per_s_user_hi"]
        assert o["ttft_s_lo"] <= o["ttft_s"] < o["ttft_s_hi"]
    rec = result["recommendation"]
    assert rec["tokens_per_s_user_lo"] < rec["tokens_per_s_user"] < rec["tokens_per_s_user_hi"]
