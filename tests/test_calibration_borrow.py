"""Borrowing a sibling system's kernel measurements as efficiencies (helixsim/calibration/borrow.py)."""

import numpy as np
import pandas as pd

from helixsim.calibration.borrow import add_borrowed, borrow_frame, moved_latency
from helixsim.calibration.families import FAMILIES
from helixsim.calibration.roofline import RoofParams

# two made-up systems: same HBM and NVLink, the second with twice the FP4 peak
SIBLING = RoofParams(hbm_gbps=8000.0, bf16_tflops=2500.0, fp8_tflops=5000.0, fp4_tflops=10000.0, nvlink_gbps=900.0)
OWN = RoofParams(hbm_gbps=8000.0, bf16_tflops=2500.0, fp8_tflops=5000.0, fp4_tflops=20000.0, nvlink_gbps=900.0)


def a2a_rows(ms, dtype="nvfp4", kernel="NVLinkTwoSided"):
    return pd.DataFrame({"op_name": "alltoall_dispatch", "kernel_source": kernel, "moe_dtype": dtype,
                         "num_tokens": [1, 64, 4096][:len(ms)], "hidden_size": 7168, "topk": 8, "num_experts": 256,
                         "moe_ep_size": 8, "distribution": "balanced", "latency_ms": ms})


def moe_rows(tokens, ms, kernel="moe_torch_flow_min_latency"):
    return pd.DataFrame({"op_name": "moe", "kernel_source": kernel, "moe_dtype": "nvfp4", "num_tokens": tokens,
                         "hidden_size": 7168, "inter_size": 2048, "topk": 8, "num_experts": 256, "moe_tp_size": 1,
                         "moe_ep_size": 1, "distribution": "balanced", "latency_ms": ms})


def test_link_bound_kernel_keeps_its_latency_on_the_same_fabric():
    spec = FAMILIES["moe_alltoall_nvlink"]
    rows = a2a_rows([0.01, 0.02, 0.3])
    np.testing.assert_allclose(moved_latency(spec, rows, SIBLING, OWN), rows["latency_ms"])


def test_link_bound_kernel_halves_on_a_fabric_twice_as_fast():
    spec = FAMILIES["moe_alltoall_nvlink"]
    rows = a2a_rows([0.01, 0.02, 0.3])
    fast = RoofParams(**{**SIBLING.to_dict(), "nvlink_gbps": 1800.0})
    np.testing.assert_allclose(moved_latency(spec, rows, SIBLING, fast), rows["latency_ms"] / 2)


def test_moe_memory_bound_shape_stays_compute_bound_shape_moves_to_the_new_roof():
    """Hand roofline (DeepSeek expert shape, NVFP4 0.5625 B/weight, bf16 activations in and out).

    1 token, top-8 of 256: 8 experts x 3 x 7168 x 2048 x 0.5625 B = 198 MB -> 24.8 us at 8 TB/s,
    against 0.7 GFLOP -> 0.07 us: memory-bound on both systems, latency kept.
    1M tokens: 8M expert-token pairs; bytes = all 256 experts (6.34 GB) + 8M x (2 x 7168 + 3 x 2048)
    x 2 B of activations (327.7 GB) = 334.0 GB -> 41.75 ms at 8 TB/s; FLOPs 2 x 8M x 3 x 7168 x 2048
    = 704.6 TFLOP -> 70.46 ms at 10 PFLOP/s (compute-bound), 35.2 ms at 20 (now memory-bound at
    41.75 ms). Equal efficiency moves 100 ms to 100 x 41.75 / 70.46 = 59.3 ms.
    """
    spec = FAMILIES["moe"]
    rows = moe_rows([1, 1_000_000], [0.05, 100.0])
    moved = moved_latency(spec, rows, SIBLING, OWN)
    np.testing.assert_allclose(moved, [0.05, 100.0 * 41.75 / 70.46], rtol=0.003)


def test_only_missing_categories_are_borrowed_and_own_rows_kept():
    spec = FAMILIES["moe"]
    own = moe_rows([1, 64], [0.04, 0.08], kernel="moe_torch_flow_cutlass")
    sib = pd.concat([moe_rows([1, 64], [0.02, 0.05]), moe_rows([1, 64], [0.9, 0.9], kernel="moe_torch_flow_cutlass")])
    lent = borrow_frame(spec, own, sib, OWN, SIBLING)
    assert set(lent["kernel_source"]) == {"moe_torch_flow_min_latency"} and len(lent) == 2
    frames, info = add_borrowed({"moe": own}, "gb300-nvl72", OWN, {"moe": sib}, SIBLING)
    assert len(frames["moe"]) == 4 and (frames["moe"].iloc[:2]["latency_ms"] == own["latency_ms"]).all()
    assert info["moe"]["from"] == "gb200-nvl72" and info["moe"]["rows"] == 2


def test_systems_without_a_sibling_borrow_nothing():
    own = moe_rows([1], [0.04], kernel="moe_torch_flow_cutlass")
    frames, info = add_borrowed({"moe": own}, "h200-hgx", OWN, {"moe": moe_rows([1], [0.02])}, SIBLING)
    assert info == {} and len(frames["moe"]) == 1
