"""The TTFT interval (helixsim/ttft_interval.py): hand-computed bounds, the shipped rule is that of the measured
runs, and the request path matters at short prompts and not at 1M tokens."""

import math

import numpy as np
import pytest

from helixsim.layout import Layout
from helixsim.prefill import simulate_prefill
from helixsim.ttft_interval import (RequestPathRule, attention_doublings, rule_from_rows, shipped_request_path_rule,
                                    ttft_interval_ms)
from helixsim.uncertainty import IntervalRule
from helixsim.validation import validate_e2e

SERVING = "validation/silicon_serving_dev.csv"


def test_interval_by_hand():
    """T = 100 ms, kernel factors e^-0.1 and e^0.2, request path -5..+50 ms, 10 ms of attention 2 doublings beyond
    the data at w = 0.1 per doubling: hi = 100 e^0.2 + 10 (e^0.2 - 1) + 50 = 174.354,
    lo = 100 e^-0.1 - 10 (1 - e^-0.2) - 5 = 83.671 (computed by hand from the module's rule)."""
    kernel = IntervalRule((-0.1, 0.2), (0.0, 0.0), 0.1)
    path = RequestPathRule({"vllm": (-5.0, 50.0)}, {"vllm": 3}, (0.0, 0.0))
    lo, hi = ttft_interval_ms(np.array([100.0]), np.array([10.0]), np.array([2.0]), "vllm",
                              path_rule=path, kernel_rule=kernel)
    assert hi[0] == pytest.approx(100 * math.exp(0.2) + 10 * (math.exp(0.2) - 1) + 50, rel=1e-12)
    assert hi[0] == pytest.approx(174.354, abs=1e-3)
    assert lo[0] == pytest.approx(83.671, abs=1e-3)
    # a framework without runs takes the pooled quantiles; a positive q10 never lifts the floor above the point
    pooled = RequestPathRule({}, {}, (20.0, 80.0))
    lo2, hi2 = ttft_interval_ms(np.array([100.0]), np.array([0.0]), np.array([0.0]), "sglang",
                                path_rule=pooled, kernel_rule=kernel)
    assert lo2[0] == pytest.approx(100 * math.exp(-0.1)) and hi2[0] == pytest.approx(100 * math.exp(0.2) + 80)
    lo3, hi3 = ttft_interval_ms(np.array([100.0]), np.array([10.0]), np.array([2.0]), "vllm", ideal=True,
                                path_rule=path, kernel_rule=kernel)
    assert lo3[0] == hi3[0] == 100.0   # a textbook bound is not a prediction


def test_doublings():
    assert attention_doublings([4096, 512, 1024], 1024).tolist() == [2.0, 0.0, 0.0]
    assert attention_doublings(1 << 20, float("inf")) == 0.0


def test_shipped_rule_is_that_of_the_measured_runs_and_covers_them():
    """hardware/calibration/ttft_interval.json equals the quantiles of today's residuals on the shipped serving runs
    (regenerate: python -m helixsim.ttft_interval --e2e validation/silicon_serving_dev.csv); every measured TTFT
    of those runs is at or above the priced GPU work's lower bound, and the interval holds >= 80 % of them."""
    res = validate_e2e(SERVING)
    rule = rule_from_rows(res.rows)
    shipped = shipped_request_path_rule()
    assert set(shipped.quantiles_ms) == {"sglang", "trtllm", "vllm"}
    for b, q in rule.quantiles_ms.items():
        assert shipped.quantiles_ms[b] == pytest.approx(q, abs=2e-3), f"{b}: stale ttft_interval.json"
    assert shipped.runs == rule.runs
    t = res.summary["ttft"]
    assert 0.8 <= t["interval_coverage"] <= 1.0 and 0.8 <= t["interval_coverage_cv"] <= 1.0
    rows = res.rows[res.rows["predicted_ttft_ms"].notna()]
    assert (rows["predicted_ttft_ms_lo"] <= rows["predicted_ttft_ms"]).all()
    assert (rows["predicted_ttft_ms"] <= rows["predicted_ttft_ms_hi"]).all()


def test_request_path_matters_at_1k_not_at_1m():
    """DeepSeek-R1 on a GB200 rack, TP8 x CP8, SGLang: at 1K tokens the request path is most of the upper
    width; at 1M tokens it is under 2 % of the TTFT and the extrapolated attention widens the interval."""
    q90 = shipped_request_path_rule().for_backend("sglang")[1]
    lay = Layout("tp", tpa=8, tpf=8)
    short = simulate_prefill("deepseek-r1", "gb200-nvl72", lay, 1024, cp=8, backend="sglang")
    long = simulate_prefill("deepseek-r1", "gb200-nvl72", lay, 1 << 20, cp=8, backend="sglang")
    assert short.ttft_ms_lo <= short.ttft_ms <= short.ttft_ms_hi
    assert q90 > 0.5 * (short.ttft_ms_hi - short.ttft_ms)
    assert q90 < 0.02 * long.ttft_ms
    assert long.extrapolated and long.ttft_ms_hi / long.ttft_ms > short.ttft_ms_hi / short.ttft_ms - q90 / short.ttft_ms


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, named", [(["--e2e", "/nonexistent/runs.csv"], "/nonexistent/runs.csv"),
                                         (["--e2e", str(ROOT / SERVING), "--out", "/nonexistent/dir/rule.json"],
                                          "--out")])
def test_rule_command_bad_input_is_one_line(args, named, tmp_path):
    """A missing --e2e file or an unwritable --out: one error line naming it, exit 2, no traceback, nothing on
    stdout."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "helixsim.ttft_interval", *args], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in r.stderr
