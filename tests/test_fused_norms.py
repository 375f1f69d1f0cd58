"""TensorRT-LLM runs a dense Llama or gpt-oss layer's residual adds + RMSNorms inside its TP all-reduces
(helixsim.cost.fused_norms; tensorrt_llm/_torch/models/modeling_llama.py, LlamaDecoderLayer
PRE_MLP_FUSION / POST_MLP_FUSION, only for hidden_size > 4096; modeling_gpt_oss.py,
TransformerBlock.forward_tp)."""

import numpy as np
import pytest

from helixsim.api import evaluate, kernels_for, simulate_point
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware, load_model

# Hand calculation, uncalibrated roofline on B200 (hardware/b200-hgx.yaml: 7,700 GB/s HBM;
# hardware/efficiency/default.yaml: hbm 0.85, kernel floor 3 us, no step overhead).
# Per layer the norms move 4 x batch x hidden x 2 bytes (BF16 activations): batch 8, hidden 8192 ->
# 524,288 bytes in 524,288 / (7,700 x 0.85 x 1e6) ms = 8.0105e-5 ms; 80 layers -> 6.408e-3 ms.
NORM_BYTES_MS_80_LAYERS = 80 * 524_288 / (7_700 * 0.85 * 1e6)
# Two launches of 3 us each per layer when the norms run as kernels of their own: 80 x 2 x 3 us.
NORM_FLOORS_MS_80_LAYERS = 80 * 2 * 3.0e-3


def _overhead_ms(model: str, tpa: int, backend: str = "trtllm", calibration=None, batch: int = 8,
                 weights: str = "fp8", dp: int = 1) -> float:
    hw = load_hardware("b200-hgx")
    strategy = "ep" if dp > 1 else "tp"
    layout = Layout(strategy, kvp=1, tpa=tpa, dp=dp, tpf=tpa * dp, ep=1, pp=1, hopb=False)
    res = evaluate(load_model(model), hw, LayoutArrays.from_layout(layout), np.array([batch]), np.array([4096]),
                   Precision(weights=weights, kv_cache="fp8"), kernels=kernels_for(hw, calibration=calibration,
                                                                                   backend=backend))
    return float(res["overhead_ms"].iloc[0])


def test_trtllm_llama_70b_tp_norms_ride_in_the_allreduce():
    # TP 4: the bytes remain (the all-reduce kernel moves them), the two launches are gone
    assert _overhead_ms("llama-3.1-70b", 4, calibration="none") == pytest.approx(NORM_BYTES_MS_80_LAYERS, rel=1e-9)
    # TP 1 has no all-reduce to carry them: two kernels per layer as before
    assert _overhead_ms("llama-3.1-70b", 1, calibration="none") == pytest.approx(
        NORM_BYTES_MS_80_LAYERS + NORM_FLOORS_MS_80_LAYERS, rel=1e-9)


def test_other_frameworks_and_small_llama_keep_their_norm_kernels():
    # vLLM and SGLang launch their own (fused add +) RMSNorm kernels: 0.48 ms more than TensorRT-LLM at TP 4
    trt = _overhead_ms("llama-3.1-70b", 4)
    for backend in ("vllm", "sglang"):
        assert _overhead_ms("llama-3.1-70b", 4, backend=backend) - trt == pytest.approx(NORM_FLOORS_MS_80_LAYERS)
    # Llama-3.1-8B: hidden 4096, TensorRT-LLM leaves fusion off ("hidden_size > 4096"): 32 layers x 2 x 3 us
    bytes_8b = 32 * 4 * 8 * 4096 * 2 / (7_700 * 0.85 * 1e6)
    assert _overhead_ms("llama-3.1-8b", 4, calibration="none") == pytest.approx(bytes_8b + 32 * 2 * 3.0e-3, rel=1e-9)


def test_trtllm_gpt_oss_tp_norms_ride_in_the_allreduce():
    # gpt-oss (36 layers, hidden 2880): forward_tp fuses at any hidden size; 36 x 2 x 3 us = 0.216 ms
    bytes_oss = 36 * 4 * 8 * 2880 * 2 / (7_700 * 0.85 * 1e6)
    assert _overhead_ms("gpt-oss-120b", 4, calibration="none", weights="fp4") == pytest.approx(bytes_oss, rel=1e-9)
    trt = _overhead_ms("gpt-oss-120b", 4, weights="fp4")
    assert _overhead_ms("gpt-oss-120b", 4, backend="vllm", weights="fp4") - trt == pytest.approx(36 * 2 * 3.0e-3)
    # attention DP (is_tp false: forward_normal) keeps its two norm kernels per layer
    assert _overhead_ms("gpt-oss-120b", 1, calibration="none", weights="fp4", dp=4) >= 36 * 2 * 3.0e-3


def test_single_point_path_agrees():
    hw = load_hardware("b200-hgx")
    layout = Layout("tp", kvp=1, tpa=8, dp=1, tpf=8, ep=1, pp=1, hopb=False)
    prec = Precision(weights="fp8", kv_cache="fp8")
    point = simulate_point("llama-3.1-70b", hw, layout, 16, 4096, prec)
    vec = evaluate(load_model("llama-3.1-70b"), hw, LayoutArrays.from_layout(layout), np.array([16]),
                   np.array([4096]), prec, kernels=kernels_for(hw))
    assert point.breakdown_ms["overhead"] == pytest.approx(float(vec["overhead_ms"].iloc[0]), rel=1e-12)
    assert point.ttl_ms == pytest.approx(float(vec["ttl_ms"].iloc[0]), rel=1e-12)


def test_prefill_keeps_its_norm_kernels():
    # a prefill chunk's all-reduce runs on NCCL and TensorRT-LLM then launches the norm on its own
    # (allreduceOp.cpp runNCCLAllReduce -> fallbackRunSubsequentOps): TensorRT-LLM's prefill overhead equals
    # vLLM's (both two launches per layer; the norms are priced by the same roofline memory op)
    from helixsim.prefill import simulate_prefill

    lay = Layout("tp", kvp=1, tpa=8, dp=1, tpf=8, ep=1, pp=1, hopb=False)
    prec = Precision(weights="fp8", kv_cache="fp8")
    trt = simulate_prefill("llama-3.1-70b", "b200-hgx", lay, isl=4096, precision=prec, backend="trtllm")
    vllm = simulate_prefill("llama-3.1-70b", "b200-hgx", lay, isl=4096, precision=prec, backend="vllm")
    assert trt.breakdown_ms["overhead"] == pytest.approx(vllm.breakdown_ms["overhead"], rel=1e-12)
    # and that overhead holds the two launches: at least 80 layers x 2 x 3 us
    assert trt.breakdown_ms["overhead"] >= NORM_FLOORS_MS_80_LAYERS
