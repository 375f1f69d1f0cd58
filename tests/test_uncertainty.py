"""An interval on every prediction: its columns, its rule by hand, its coverage on measured serving runs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helixsim.api import evaluate, kernels_for, simulate_point
from helixsim.calibration.domain import KV_SCALED_DOUBLINGS, excursion_doublings
from helixsim.cost.step import BREAKDOWN_KEYS
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware, load_model
from helixsim.uncertainty import ln_ratio_quantiles, shipped_rule
from helixsim.validation import validate_e2e

DATA = Path(__file__).resolve().parent.parent / "validation" / "silicon_decode_dev.csv"


def test_point_json_carries_interval_fraction_and_kernel_model():
    out = subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", "point", "--model",
                          "deepseek-r1", "--hardware", "gb200-nvl72", "--strategy", "helix", "--kvp", "16", "--tpf", "2",
                          "--ep", "8", "--batch", "8", "--context", "1000000", "--weights", "fp4", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["ttl_ms_lo"] <= d["ttl_ms"] <= d["ttl_ms_hi"]
    assert d["ttl_ms_lo"] < d["ttl_ms"] < d["ttl_ms_hi"]          # a calibrated prediction has a real spread
    assert 0.0 < d["extrapolated_fraction"] <= 1.0                 # 62,500 tokens per GPU are inside, the
    assert set(d["kernel_model"]) == set(BREAKDOWN_KEYS)           # all-to-all over 16 GPUs is not (measured: 2-4)
    assert d["kernel_model"]["attention"] == "calibration:gb200-nvl72"
    assert d["kernel_model"]["overhead"] == "roofline"             # norms: no measured family


def test_in_domain_interval_is_the_residual_quantiles_by_hand():
    """Llama-3.1-70B TP 8 on H200 at 4K context: every kernel inside the measured domain (GEMMs, GQA attention at
    4,096 tokens, all-reduce over 8 GPUs: measured 2-8), so the interval is the calibrated e2e quantiles applied
    to the calibrated time plus the roofline quantiles applied to the roofline-priced norms (the 'overhead' op)."""
    r = simulate_point("llama-3.1-70b", "h200-hgx", Layout("tp", tpa=8, tpf=8), batch=32, context=4096)
    rule = shipped_rule()
    roof = r.breakdown_ms["overhead"]
    cal = r.ttl_ms - roof
    assert r.extrapolated_fraction == pytest.approx(roof / r.ttl_ms, rel=1e-9)
    assert r.ttl_ms_hi == pytest.approx(cal * np.exp(rule.calibrated_q[1]) + roof * np.exp(rule.roofline_q[1]), rel=1e-9)
    lo = cal * np.exp(rule.calibrated_q[0]) + roof * np.exp(rule.roofline_q[0])
    assert r.ttl_ms_lo == pytest.approx(min(lo, r.ttl_ms), rel=1e-9)


def test_extrapolated_time_widens_the_interval():
    """1M tokens per GPU is three doublings beyond the measured 131,072: the interval is wider than in-domain."""
    rule = shipped_rule()
    r = simulate_point("llama-3.1-70b", "h200-hgx", Layout("tp", tpa=8, tpf=8), batch=1, context=1_048_576)
    assert r.extrapolated_fraction > r.breakdown_ms["attention"] / r.ttl_ms * 0.999
    assert r.ttl_ms_hi > r.ttl_ms * np.exp(rule.calibrated_q[1]) + r.breakdown_ms["attention"] * np.expm1(
        3 * rule.per_doubling) * 0.999


def test_excursion_by_hand():
    k = kernels_for(load_hardware("gb200-nvl72"))
    roof, d = excursion_doublings(k, "mla_attention_ms", (8, 128, 512, 64, np.array([65536.0, 1048576.0]), "fp8", "bf16"), {})
    assert not roof.any()
    assert d.tolist() == pytest.approx([0.0, 3.0])                 # 2^20 / 2^17 = 2^3
    _, d4 = excursion_doublings(k, "mla_attention_ms", (8, 128, 512, 64, 65536.0, "fp4", "bf16"), {})
    assert float(d4) == pytest.approx(np.log2(1 / 0.5625)) == KV_SCALED_DOUBLINGS["fp4"]
    roof, d = excursion_doublings(k, "collective_ms", ("all_to_all", np.array([4.0, 16.0, 128.0]), 1e6), {})
    assert roof.tolist() == [False, False, True]                   # beyond the 72-GPU NVLink domain: the roofline's
    assert d[:2].tolist() == pytest.approx([0.0, 2.0])             # NCCL measured on 2-4 GB200 GPUs
    roof, _ = excursion_doublings(k, "memory_op_ms", (1e6,), {})
    assert bool(roof)


def test_uncalibrated_and_ideal_models():
    m, hw = load_model("llama-3.1-70b"), load_hardware("h200-hgx")
    lay = LayoutArrays.from_layout(Layout("tp", tpa=8, tpf=8))
    rule = shipped_rule()
    for calibration, name in (("none", "roofline"),):
        f = evaluate(m, hw, lay, 32, 4096, Precision(), kernels=kernels_for(hw, calibration=calibration))
        assert f["extrapolated_fraction"].iloc[0] == 1.0
        assert set(f.attrs["kernel_model"].values()) == {name}
        assert f["ttl_ms_hi"].iloc[0] == pytest.approx(f["ttl_ms"].iloc[0] * np.exp(rule.roofline_q[1]))
    f = evaluate(m, hw, lay, 32, 4096, Precision(), kernels=kernels_for(hw, ideal=True))
    assert set(f.attrs["kernel_model"].values()) == {"ideal"}
    assert (f["ttl_ms_lo"] == f["ttl_ms"]).all() and (f["ttl_ms_hi"] == f["ttl_ms"]).all()


def test_coverage_on_measured_runs_and_shipped_rule_is_current():
    """The 80 % interval holds 70-90 % of the 211 measured serving runs (also cross-validated), and the shipped
    rule's e2e quantiles are those of these runs' residuals (regenerated by `python -m helixsim.uncertainty`)."""
    result = validate_e2e(DATA)
    overall = result.summary["overall"]
    assert 0.7 <= overall["interval_coverage"] <= 0.9
    assert 0.7 <= overall["interval_coverage_cv"] <= 0.9
    rows = result.rows
    q10, q90 = ln_ratio_quantiles(rows["measured_tpot_ms"], rows["predicted_tpot_ms"])
    assert shipped_rule().calibrated_q == pytest.approx((q10, q90), abs=1e-4)
    assert (rows["predicted_tpot_ms_lo"] <= rows["predicted_tpot_ms"]).all()
    assert (rows["predicted_tpot_ms"] <= rows["predicted_tpot_ms_hi"]).all()


def test_stored_domain_is_that_of_the_shipped_tables():
    """hardware/calibration/<name>/domain.json (python -m helixsim.calibration.domain --write) is current, and
    states the measured edges the data README gives: MLA decode up to step 131,071 (+1 new token)."""
    from helixsim.calibration.domain import DOMAIN_FILE, domain_document
    from helixsim.calibration.fit import builtin_calibration_path, load_calibration

    path = builtin_calibration_path("gb200-nvl72")
    stored = json.loads((path / DOMAIN_FILE).read_text())
    assert stored == json.loads(json.dumps(domain_document(load_calibration(path))))
    assert stored["families"]["mla_decode_attention"]["fp8"]["kv_len"] == [2.0, 131072.0]
