"""Tests for helixsim.calibration: shipped tables, interpolation rules, fallbacks.

Only the shipped tables (hardware/calibration/) and small synthetic data
are used; the measured data set itself is not read here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


from helixsim.calibration import CalibratedKernels, builtin_calibration_path, load_calibration, save_calibration
from helixsim.calibration.fit import SYSTEMS, fit_frames
from helixsim.calibration.roofline import RoofParams
from helixsim.calibration.validate import holdout_mask, kernel_error_report, predict_rows
from helixsim.cost.kernels import RooflineKernels
from helixsim.efficiency import IDEAL, load_efficiency_file
from helixsim.specs.hardware import load_hardware_file
from helixsim.specs.registry import data_dir

HW_DIR = data_dir("hardware")
NAMES = sorted(SYSTEMS.values())


def hardware(name: str = "gb200-nvl72"):
    return load_hardware_file(HW_DIR / f"{name}.yaml")


def roofline(name: str = "gb200-nvl72") -> RooflineKernels:
    return RooflineKernels(hardware(name), load_efficiency_file(HW_DIR / "efficiency" / "default.yaml"))


_CAL_CACHE: dict = {}


def shipped(name: str):
    if name not in _CAL_CACHE:
        path = builtin_calibration_path(name)
        assert path is not None, f"no shipped calibration for {name}"
        _CAL_CACHE[name] = load_calibration(path)
    return _CAL_CACHE[name]


# --------------------------------------------------------------------- synthetic data

HBM, BF16 = 8000.0, 2500.0   # gb200-nvl72 peaks (GB/s, TFLOP/s)


def gemm_roof_ms(m, n, k):
    m, n, k = (np.asarray(x, float) for x in (m, n, k))
    return np.maximum((k * n + m * k + m * n) * 2.0 / (HBM * 1e6), 2.0 * m * n * k / (BF16 * 1e9))


def known_eff(m, n, k):
    """log2-linear in every coordinate, so multilinear interpolation in log2 is exact (and time grows with m)."""
    return 2.0 ** (-1.5 - 0.05 * np.log2(m) + 0.05 * np.log2(n) - 0.02 * np.log2(k))


M_GRID, N_GRID, K_GRID = [1, 4, 16, 64, 256, 1024], [256, 1024, 4096], [512, 2048]


def synthetic_gemm() -> pd.DataFrame:
    m, n, k = (a.ravel() for a in np.meshgrid(M_GRID, N_GRID, K_GRID, indexing="ij"))
    return pd.DataFrame({"op_name": "gemm", "kernel_source": "torch_flow", "gemm_dtype": "bfloat16",
                         "m": m, "n": n, "k": k, "latency_ms": gemm_roof_ms(m, n, k) / known_eff(m, n, k)})


def synthetic_mla(a_ms: float = 0.01, b_ms: float = 2e-5) -> pd.DataFrame:
    """MLA decode latency exactly a + b x KV length (bandwidth-bound tail), two batch sizes."""
    rows = []
    for batch in (8, 16):
        for step in [2 ** j - 1 for j in range(1, 18)]:
            rows.append({"op_name": "mla_generation", "kernel_source": "default", "mla_dtype": "bfloat16",
                         "kv_cache_dtype": "bfloat16", "num_heads": 16, "batch_size": batch, "isl": 1,
                         "tp_size": 8, "step": step, "latency_ms": a_ms + b_ms * batch / 8 * (step + 1)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def synth():
    cal = fit_frames({"gemm": synthetic_gemm(), "mla_decode_attention": synthetic_mla()},
                     RoofParams.from_hardware(hardware()), "gb200-nvl72")
    return CalibratedKernels(roofline(), cal)


# --------------------------------------------------------------------- shipped tables

@pytest.mark.parametrize("name", NAMES)
def test_shipped_tables_load(name):
    cal = shipped(name)
    assert cal.hardware == name and cal.version == 1
    assert "aiconfigurator-core 0.12.0" in cal.source
    for fam in ("gemm", "mla_bmm", "mla_decode_attention", "gqa_decode_attention", "moe", "nccl",
                "allreduce_custom", "moe_alltoall"):
        assert fam in cal.tables, fam
        assert np.isfinite(cal.tables[fam].values).any(axis=1).all()
    # measured on GB200 only; GB300 borrows it (same NVLink 5 fabric, helixsim/calibration/borrow.py)
    assert ("moe_alltoall_nvlink" in cal.tables) == (name in ("gb200-nvl72", "gb300-nvl72"))
    assert set(cal.collectives) == {"nccl", "allreduce_custom"}


def test_gb300_borrows_only_what_it_lacks_and_says_so():
    cal = shipped("gb300-nvl72")
    lent = {fam: st["borrowed"] for fam, st in cal.stats.items() if "borrowed" in st}
    assert set(lent) == {"moe", "moe_alltoall_nvlink"}
    assert all(info["from"] == "gb200-nvl72" for info in lent.values())
    # only the min-latency NVFP4 kernel is new to GB300's MoE table; its own measured kernels stay its own
    assert {c.split("|")[1] for c in lent["moe"]["categories"]} == {"moe_torch_flow_min_latency"}
    assert all(not shipped(n).stats[f].get("borrowed") for n in NAMES if n != "gb300-nvl72" for f in shipped(n).stats)


def test_shipped_notice_and_size():
    root = HW_DIR / "calibration"
    notice = (root / "NOTICE").read_text()
    assert "aiconfigurator-core 0.12.0" in notice and "Apache License, Version 2.0" in notice
    # the readable tables; each folder's calibration.npz is a binary copy of them (fast loading,
    # helixsim/calibration/stored.py), budgeted on its own below
    readable = [p for p in root.rglob("*") if p.is_file() and p.name != "calibration.npz"]
    total = sum(p.stat().st_size for p in readable)
    own = sum(p.stat().st_size for p in readable if not {"sglang", "vllm"} & set(p.relative_to(root).parts))
    assert own < 5.5e6            # TensorRT-LLM's tables
    assert total < 14e6           # plus SGLang's and vLLM's (about 0.6-0.9 MB per framework and system)
    binary = sum(p.stat().st_size for p in root.rglob("calibration.npz"))
    assert binary < 14e6          # float64 knot values, about 0.5-1.1 MB per framework and system


@pytest.mark.parametrize("name", ["gb200-nvl72", "h100-hgx"])
def test_shipped_predictions_physical(name):
    """Calibrated times never beat the ideal roofline by more than rounding, and stay within a sane factor."""
    ck = CalibratedKernels(roofline(name), shipped(name))
    ideal = RooflineKernels(hardware(name), IDEAL)
    m = np.array([1, 16, 256, 4096])
    for dt in ("bf16", "fp8"):
        cal, ref = ck.gemm_ms(m, 7168, 2048, dt), ideal.gemm_ms(m, 7168, 2048, dt)
        assert np.all(cal >= 0.95 * ref) and np.all(cal <= 20 * ref + 0.05)
    s = np.array([1024, 16384, 131072])
    cal = ck.mla_attention_ms(32, 16, 512, 64, s, "bf16", "bf16")
    assert np.all(cal >= 0.95 * ideal.mla_attention_ms(32, 16, 512, 64, s, "bf16", "bf16"))
    cal = ck.gqa_attention_ms(32, 8, 1, 128, s, "bf16", "bf16")
    assert np.all(cal >= 0.95 * ideal.gqa_attention_ms(32, 8, 1, 128, s, "bf16", "bf16"))
    t = np.array([1, 64, 1024])
    cal = ck.moe_ms(t, 7168, 2048, 8, 256, 1, 8, "fp8")
    assert np.all(np.isfinite(cal)) and np.all(cal >= 0.95 * ideal.moe_ms(t, 7168, 2048, 8, 256, 1, 8, "fp8"))
    assert np.all(np.diff(cal) > 0)


def test_zero_work_is_free():
    ck = CalibratedKernels(roofline(), shipped("gb200-nvl72"))
    assert ck.gemm_ms(0, 7168, 2048, "bf16") == 0.0
    assert ck.mla_attention_ms(0, 16, 512, 64, 1000, "fp8", "fp8") == 0.0
    assert ck.moe_ms(0, 7168, 2048, 8, 256, 1, 8, "fp4") == 0.0
    assert ck.collective_ms("all_reduce", 1, 1e6) == 0.0
    assert ck.collective_ms("all_to_all", 8, 0.0) == 0.0
    assert ck.moe_dispatch_ms(16, 7168, 8, 1, "bf16") == 0.0


# --------------------------------------------------------------------- interpolation rules

def test_interpolation_exact_at_grid_points(synth):
    df = synthetic_gemm()
    got = synth.gemm_ms(df["m"].to_numpy(), df["n"].to_numpy(), df["k"].to_numpy(), "bf16")
    np.testing.assert_allclose(got, df["latency_ms"].to_numpy(), rtol=1e-6)


def test_interpolation_log_linear_between_grid_points(synth):
    # across the interpolated columns (n, k) the efficiency is log2-linear: exact for this data
    m, n, k = np.array([4.0, 64.0, 1024.0]), np.array([512.0, 2000.0, 300.0]), np.array([1024.0, 700.0, 1500.0])
    want = gemm_roof_ms(m, n, k) / known_eff(m, n, k)
    np.testing.assert_allclose(synth.gemm_ms(m, n, k, "bf16"), want, rtol=1e-6)
    # along the sweep axis (m) time is interpolated log-log between the knots: monotone, close to the law
    m = np.array([2.0, 24.0, 100.0, 500.0])
    got = synth.gemm_ms(m, 1024, 512, "bf16")
    np.testing.assert_allclose(got, gemm_roof_ms(m, 1024, 512) / known_eff(m, 1024, 512), rtol=0.02)
    lo = synth.gemm_ms(np.array([1.0, 16.0, 64.0, 256.0]), 1024, 512, "bf16")
    hi = synth.gemm_ms(np.array([4.0, 64.0, 256.0, 1024.0]), 1024, 512, "bf16")
    assert np.all(lo <= got) and np.all(got <= hi)


def test_efficiency_held_at_the_edge(synth):
    # beyond the largest n, k and m the efficiency of the edge holds: time scales with the roofline
    m, n, k = np.array([4096.0, 64.0]), np.array([65536.0, 16384.0]), np.array([8192.0, 2048.0])
    edge = known_eff(np.minimum(m, 1024), np.minimum(n, 4096), np.minimum(k, 2048))
    np.testing.assert_allclose(synth.gemm_ms(m, n, k, "bf16"), gemm_roof_ms(m, n, k) / edge, rtol=1e-6)


def test_floor_below_the_measured_shapes(synth):
    # below the smallest n the edge efficiency still holds, but never faster than the fastest measurement
    fastest = synthetic_gemm()["latency_ms"].min()
    want = max(gemm_roof_ms(64, 32, 512) / known_eff(64, 256, 512), fastest)
    assert synth.gemm_ms(64, 32, 512, "bf16") == pytest.approx(want, rel=1e-6)
    assert synth.gemm_ms(1, 8, 8, "bf16") == pytest.approx(fastest, rel=1e-9)


def test_latency_held_below_the_sweep_axis(synth):
    # below the shortest measured KV length the kernel stays at that length's latency (launch floor)
    t = synth.mla_attention_ms(8, 16, 512, 64, np.array([1.0, 2.0]), "bf16", "bf16")
    assert t[0] == pytest.approx(t[1], rel=1e-9)


def test_attention_linear_beyond_last_measured_length(synth):
    a_ms, b_ms = 0.01, 2e-5
    last = 131072
    s = np.array([last, 2 * last, 4 * last, 10 * last], float)
    got = synth.mla_attention_ms(8, 16, 512, 64, s, "bf16", "bf16")
    # straight line through the fitted last two measured lengths ...
    t_h, t_p = synth.mla_attention_ms(8, 16, 512, 64, np.array([last, last / 2]), "bf16", "bf16")
    slope = (t_h - t_p) / (last / 2)
    np.testing.assert_allclose(got, t_h + slope * (s - last), rtol=1e-9)
    # ... which is the measured law a + b S
    np.testing.assert_allclose(got, a_ms + b_ms * s, rtol=2e-2)
    assert np.all(np.diff(got) > 0)


def test_save_load_round_trip(synth, tmp_path):
    save_calibration(synth.calibration, tmp_path / "cal")
    back = CalibratedKernels(roofline(), load_calibration(tmp_path / "cal"))
    m, n, k = np.array([1, 100, 1000]), np.array([256, 3000, 4096]), np.array([512, 512, 2048])
    np.testing.assert_allclose(back.gemm_ms(m, n, k, "bf16"), synth.gemm_ms(m, n, k, "bf16"), rtol=5e-3)
    s = np.array([100.0, 5e4, 1e6])
    np.testing.assert_allclose(back.mla_attention_ms(16, 16, 512, 64, s, "bf16", "bf16"),
                               synth.mla_attention_ms(16, 16, 512, 64, s, "bf16", "bf16"), rtol=5e-3)


# --------------------------------------------------------------------- collectives

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter", "all_to_all"])
def test_collectives_monotone_in_bytes_and_gpus(name, op):
    ck = CalibratedKernels(roofline(name), shipped(name))
    domain = ck.hw.nvlink_domain_gpus
    n = np.array([g for g in (2, 3, 4, 6, 8, 16, 32, 64, 72) if g <= domain], float)
    nbytes = np.logspace(1, 10, 40)
    t = ck.collective_ms(op, n[:, None], nbytes[None, :])
    assert np.all(np.isfinite(t)) and np.all(t > 0)
    assert np.all(np.diff(t, axis=1) >= -1e-12), "not monotone in bytes"
    assert np.all(np.diff(t, axis=0) >= -1e-12), "not monotone in GPU count"


def test_collectives_beyond_measured_counts_use_the_fitted_model():
    cal = shipped("gb200-nvl72")
    ck = CalibratedKernels(roofline(), cal)
    model = cal.collectives["nccl"][("alltoall", "half")]
    assert model.n_max == 4 and model.alpha_ms > 0 and model.ms_per_byte > 0
    m = 1e6
    grow = ck.collective_ms("all_to_all", 64, m) - ck.collective_ms("all_to_all", 4, m)
    assert grow == pytest.approx(model.time_ms(64, m) - model.time_ms(4, m), rel=1e-6)


def test_moe_all_to_all_monotone_in_tokens():
    ck = CalibratedKernels(roofline(), shipped("gb200-nvl72"))
    tok = np.array([1, 4, 16, 64, 256, 1024, 4096, 32768, 131072], float)
    for ep in (2, 8, 32, 64):
        for fn in (ck.moe_dispatch_ms, ck.moe_combine_ms):
            t = fn(tok, 7168, 8, ep, "bf16")
            assert np.all(np.isfinite(t)) and np.all(np.diff(t) >= -1e-12)


# --------------------------------------------------------------------- fallbacks

def test_fallback_to_roofline_for_missing_dtypes():
    rk = roofline("h100-hgx")
    ck = CalibratedKernels(rk, shipped("h100-hgx"))
    m = np.array([1, 64, 1024])
    np.testing.assert_array_equal(ck.gemm_ms(m, 4096, 4096, "fp4"), rk.gemm_ms(m, 4096, 4096, "fp4"))  # no NVFP4 on Hopper
    # FP4 experts on Hopper: the measured MXFP4 weight-only (w4a16) MoE kernel, not the roofline
    moe = ck.moe_ms(m, 2880, 2880, 4, 128, 1, 1, "fp4")
    assert np.all(np.isfinite(moe)) and not np.array_equal(moe, rk.moe_ms(m, 2880, 2880, 4, 128, 1, 1, "fp4"))
    # an FP4 KV cache has no measured kernel: the FP8 kernel at FP4's bytes (0.5625 B per element with its
    # scales, against 1 B), so 0.5625 of the FP8 time where attention is bandwidth-bound (8 q heads, 1 KV head)
    s = np.array([65536, 100000])
    np.testing.assert_allclose(ck.gqa_attention_ms(8, 8, 1, 128, s, "fp4", "fp8"),
                               0.5625 * ck.gqa_attention_ms(8, 8, 1, 128, s, "fp8", "fp8"), rtol=1e-9)
    np.testing.assert_array_equal(ck.memory_op_ms(np.array([1e6, 1e9]), 2.0), rk.memory_op_ms(np.array([1e6, 1e9]), 2.0))
    np.testing.assert_array_equal(ck.collective_ms("p2p", 8, 1e6), rk.collective_ms("p2p", 8, 1e6))
    # beyond the NVLink domain (HGX: 8 GPUs) the roofline's scale-out model applies
    np.testing.assert_array_equal(ck.collective_ms("all_to_all", 16, 1e6), rk.collective_ms("all_to_all", 16, 1e6))


def test_fallback_for_missing_family(synth):
    rk = synth.fallback
    t = np.array([1, 64, 1024])
    np.testing.assert_array_equal(synth.moe_ms(t, 7168, 2048, 8, 256, 1, 8, "fp8"),
                                  rk.moe_ms(t, 7168, 2048, 8, 256, 1, 8, "fp8"))
    np.testing.assert_array_equal(synth.gemm_ms(t, 1024, 1024, "fp8"), rk.gemm_ms(t, 1024, 1024, "fp8"))
    np.testing.assert_array_equal(synth.collective_ms("all_reduce", 4, 1e6), rk.collective_ms("all_reduce", 4, 1e6))
    assert synth.elem_bytes("fp4") == rk.elem_bytes("fp4") and synth.hw is rk.hw and synth.eff is rk.eff


# --------------------------------------------------------------------- validation helpers

def test_holdout_mask_is_deterministic_fifth():
    df = synthetic_gemm()
    big = pd.concat([df.assign(k=df["k"] * f) for f in range(1, 30)], ignore_index=True)
    a, b = holdout_mask(big), holdout_mask(big.sample(frac=1.0, random_state=1).sort_index())
    np.testing.assert_array_equal(a, b)
    assert 0.12 < a.mean() < 0.28


def test_error_report_on_synthetic_directory(synth, tmp_path):
    synthetic_gemm().to_csv(tmp_path / "gemm.csv.gz", index=False)
    synthetic_mla().to_csv(tmp_path / "mla_decode_attention.csv.gz", index=False)
    rep = kernel_error_report(tmp_path, synth)
    assert set(rep) == {"gemm", "mla_decode_attention"}
    assert rep["gemm"]["n"] == len(synthetic_gemm()) and rep["gemm"]["median_ape"] < 1e-4
    assert rep["mla_decode_attention"]["median_ape"] < 2.0
    # any kernel model with the RooflineKernels methods can be scored the same way
    base = kernel_error_report(tmp_path, synth.fallback)
    assert base["gemm"]["n"] == len(synthetic_gemm()) and base["gemm"]["median_ape"] > 10
    assert np.all(np.isfinite(predict_rows("gemm", synthetic_gemm(), synth.fallback)))


def test_unique_argument_evaluation_equals_elementwise():
    """Pricing each distinct shape once and scattering back gives the same numbers as pricing every element."""
    ck = CalibratedKernels(roofline(), shipped("gb200-nvl72"))
    rng = np.random.default_rng(3)
    m = rng.choice([1, 2, 3, 8, 64, 300], size=500)
    n = rng.choice([576, 1536, 7168], size=500)
    many = ck.gemm_ms(m, n, 7168, "fp8")
    one_by_one = np.array([float(ck.gemm_ms(np.array([a]), np.array([b]), 7168, "fp8")[0]) for a, b in zip(m, n)])
    np.testing.assert_allclose(many, one_by_one, rtol=1e-12)
    nbytes = rng.choice([1e3, 1e5, 3e6], size=300)
    gpus = rng.choice([2, 8, 64], size=300)
    many = ck.collective_ms("all_to_all", gpus, nbytes)
    one_by_one = np.array([float(ck.collective_ms("all_to_all", np.array([g]), np.array([b]))[0]) for g, b in zip(gpus, nbytes)])
    np.testing.assert_allclose(many, one_by_one, rtol=1e-12)


def synthetic_moe(kernel: str, tps, eff: float) -> pd.DataFrame:
    """One MoE shape measured at the given TP widths, every row at a fixed efficiency of the roofline."""
    from helixsim.calibration.families import FAMILIES

    rows = pd.DataFrame([{"op_name": "moe", "kernel_source": kernel, "moe_dtype": "nvfp4", "num_tokens": t,
                          "hidden_size": 7168, "inter_size": 2048, "topk": 8, "num_experts": 256,
                          "moe_tp_size": tp, "moe_ep_size": 1, "distribution": "balanced", "latency_ms": 1.0}
                         for tp in tps for t in (1, 4, 16, 64, 256)])
    spec = FAMILIES["moe"]
    rows["latency_ms"] = spec.roof(RoofParams.from_hardware(hardware()), spec.prepare(rows)) / eff
    return rows


def test_moe_prefers_a_kernel_measured_at_the_asked_tp_width():
    """Kernel A is measured only at TP 1 (at a high efficiency), kernel B at TP 1-8 (lower). At TP 8, A's
    time would come from holding its TP-1 efficiency on an 8x smaller roofline, which on the measured
    tables is optimistic by 1.5-2x (docs/calibration.md); B's measured width wins although A looks faster.
    At TP 1 both are measured and the faster, A, is used."""
    moe = pd.concat([synthetic_moe("kernel_a", [1], eff=0.8), synthetic_moe("kernel_b", [1, 2, 4, 8], eff=0.4)])
    cal = fit_frames({"moe": moe}, RoofParams.from_hardware(hardware()), "gb200-nvl72")
    k = CalibratedKernels(roofline(), cal, moe_distribution="balanced")
    cat = {"kernel_a": ("nvfp4", "kernel_a", "balanced"), "kernel_b": ("nvfp4", "kernel_b", "balanced")}
    router = k.gemm_ms(np.array([16.0]), 256, 7168, "bf16")
    for tp, winner in ((8, "kernel_b"), (1, "kernel_a")):
        t = {name: k._query("moe", c, {"num_tokens": np.array([16.0]), "hidden_size": 7168, "inter_size": 2048,
                                        "topk": 8, "num_experts": 256, "moe_tp_size": tp, "moe_ep_size": 1},
                            {"moe_dtype": "nvfp4", "gated": True}) for name, c in cat.items()}
        assert t["kernel_a"][0] < t["kernel_b"][0]
        got = k.moe_ms(np.array([16.0]), 7168, 2048, 8, 256, tp, 1, "fp4")
        np.testing.assert_allclose(got, t[winner] + router, rtol=1e-9)
