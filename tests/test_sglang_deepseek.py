"""SGLang's DeepSeek-R1 kernels as SGLang runs them (issue 12): its KV format for NVIDIA's FP4
checkpoint, its DeepEP low-latency all-to-all, and its shared expert fused into the routed MoE.

Golden values are measured kernel latencies from the calibration data
(``<system>/sglang/<family>.csv.gz``, aiconfigurator-core 0.12.0), quoted with their row."""

import numpy as np
import pandas as pd
import pytest

from helixsim.api import kernels_for, simulate_point
from helixsim.backends import default_kv_cache
from helixsim.calibration.deepep import interpolate_us
from helixsim.cost.shared_experts import fused_shared_expert_ms, fuses_shared_experts
from helixsim.layout import Layout
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware, load_model
from helixsim.validation import row_config

# validation/silicon_decode_dev.csv, source_id dsr1_b200_sglang_fp4_agg_1024x8192_c64_cfg201
ROW = pd.Series({"hf_model_path": "deepseek-ai/DeepSeek-V3", "system": "b200_sxm", "backend": "sglang",
                 "precision": "fp4", "tp": 8, "pp": 1, "attention_dp": 1, "moe_tp": 1, "moe_ep": 8,
                 "decode_batch": 64, "ctx_mid": 5120, "measured_tpot_ms": 16.6231})


def test_sglang_takes_the_fp8_cache_nvidias_fp4_checkpoint_asks_for():
    """SGLang's --kv-cache-dtype auto follows kv_cache_quant_algo = FP8 of nvidia/DeepSeek-R1-FP4
    (ModelOpt ptq.py --enable_fp8_kvcache, default on); DeepSeek's own FP8 checkpoint names no KV format
    (BF16 cache); vLLM keeps its BF16 default; gpt-oss's MXFP4 checkpoint names none either."""
    assert row_config(ROW)[3].kv_cache == "fp8"
    assert row_config(ROW.replace("fp4", "fp8"))[3].kv_cache == "bf16"
    assert default_kv_cache("sglang", "fp4", "deepseek-r1") == "fp8"
    assert default_kv_cache("sglang", "fp4", "gpt-oss-120b") == "bf16"
    assert default_kv_cache("vllm", "fp4", "deepseek-r1") == "bf16"
    assert default_kv_cache("sglang", "fp4") == "bf16"


def test_fp8_cache_halves_sglang_mla_attention_as_measured():
    """b200_sxm/sglang/mla_decode_attention.csv.gz, trtllm_mla kernel, batch 64, 16 heads (TP 8),
    step 8191: BF16 cache 0.127176 ms, FP8 cache 0.063643 ms. The kernel model prices the row's
    attention from those measurements (within 5 %), so the FP8 cache halves it."""
    k = kernels_for(load_hardware("b200-hgx"), backend="sglang")
    bf16 = float(k.mla_attention_ms(64, 16, 512, 64, 8192, "bf16", "bf16"))
    fp8 = float(k.mla_attention_ms(64, 16, 512, 64, 8192, "fp8", "bf16"))
    assert bf16 == pytest.approx(0.127176, rel=0.05)
    assert fp8 == pytest.approx(0.063643, rel=0.05)


def test_sglang_dispatch_and_combine_are_its_measured_deepep_low_latency_kernels():
    """b200_sxm/sglang/deepep_low_latency.csv.gz, hidden 7168, top-8, 256 experts, 64 tokens:
    dispatch 26.606 us, combine 31.453 us; at 16 tokens 23.289 / 23.110 us. TensorRT-LLM's DeepEP
    low-latency table at EP 8 (b200_sxm/moe_alltoall.csv.gz) measures 74.3 / 47.8 us at 16 tokens, the
    ~110 us per layer that made EP 2..8 slow for SGLang rows."""
    hw = load_hardware("b200-hgx")
    k = kernels_for(hw, backend="sglang")
    trt = kernels_for(hw)
    for ep in (2, 8):
        assert float(k.moe_dispatch_ms(64, 7168, 8, ep, "fp8", num_experts=256)) == pytest.approx(26.606e-3)
        assert float(k.moe_combine_ms(64, 7168, 8, ep, "bf16", num_experts=256)) == pytest.approx(31.453e-3)
    assert float(k.moe_dispatch_ms(16, 7168, 8, 8, "fp8", num_experts=256)) == pytest.approx(23.289e-3)
    # 384 experts (Kimi-K2's) has its own rows: 30.417 us at 64 tokens
    assert float(k.moe_dispatch_ms(64, 7168, 8, 8, "fp8", num_experts=384)) == pytest.approx(30.417e-3)
    assert float(trt.moe_dispatch_ms(16, 7168, 8, 8, "fp8")) > 2 * float(k.moe_dispatch_ms(16, 7168, 8, 8, "fp8"))
    # beyond the NVLink domain (16 GPUs on an 8-GPU HGX) and for an unmeasured (hidden, top-k): TensorRT-LLM's
    assert float(k.moe_dispatch_ms(64, 7168, 8, 16, "fp8")) == pytest.approx(float(trt.moe_dispatch_ms(64, 7168, 8, 16, "fp8")))
    assert float(k.moe_dispatch_ms(64, 2880, 4, 2, "fp8")) == pytest.approx(float(trt.moe_dispatch_ms(64, 2880, 4, 2, "fp8")))
    r = simulate_point("deepseek-r1", "b200-hgx", Layout("ep", dp=8, tpf=1, ep=8), batch=512, context=4000,
                       precision=Precision(weights="fp8", kv_cache="bf16"), backend="sglang")
    assert r.backend["kernel_model"]["ffn_comm"]["moe_alltoall"] == "sglang"


def test_deepep_interpolation_between_and_beyond_the_measured_counts():
    """Log-log between measured token counts (hand: 2 and 8 tokens at 10 and 40 us give 20 us at 4),
    the smallest measurement below them (launch floor), the last interval's slope above (bandwidth)."""
    known, us = np.array([2.0, 8.0, 16.0]), np.array([10.0, 40.0, 60.0])
    out = interpolate_us(known, us, np.array([1.0, 4.0, 16.0, 32.0]))
    assert out == pytest.approx([10.0, 20.0, 60.0, 60.0 + 20.0 / 8.0 * 16.0])


def test_sglang_fuses_deepseeks_shared_expert_on_hopper_without_ep():
    """SGLang runs DeepSeek's shared expert as a 257th expert of its Triton fused MoE on Hopper without
    EP; on Blackwell its flashinfer_trtllm runner turns fusion off, and EP turns it off everywhere.
    Fused, the shared expert costs its bytes at HBM speed and no launch: at TP 8 on H200 with 64 tokens
    one layer reads 3 x 7168 x 2048 / 8 FP8 weight bytes (5.5 MB) and moves 64 x (2 x 7168 + 3 x 256)
    BF16 activations (1.9 MB): 7.44 MB / (4.8 TB/s x 0.85) = 1.82 us (memory-bound: 0.2 GFLOP take
    0.1 us), against the two separate GEMM launches (several us each)."""
    model = load_model("deepseek-r1")
    h200, b200 = (kernels_for(load_hardware(n), backend="sglang") for n in ("h200-hgx", "b200-hgx"))
    assert fuses_shared_experts(h200, model, np.array([1, 8])).tolist() == [True, False]
    assert not fuses_shared_experts(b200, model, np.array([1])).any()
    assert not fuses_shared_experts(kernels_for(load_hardware("h200-hgx")), model, np.array([1])).any()
    prec = Precision(weights="fp8", kv_cache="bf16")
    fused = float(fused_shared_expert_ms(h200, model, 64, 8, prec))
    hand_ms = (3 * 7168 * 2048 / 8 * 1.0 + 64 * (2 * 7168 + 3 * 256) * 2.0) / (4800e9 * 0.85) * 1e3
    assert fused == pytest.approx(hand_ms, rel=1e-6)
    lay = Layout("tp", tpa=8, tpf=8)
    on = simulate_point("deepseek-r1", "h200-hgx", lay, batch=64, context=5120, precision=prec, backend="sglang")
    off = simulate_point("deepseek-r1", "h200-hgx", lay, batch=64, context=5120, precision=prec, backend="trtllm")
    assert on.breakdown_ms["ffn"] < off.breakdown_ms["ffn"]


def test_dense_mlp_layers_run_data_parallel_under_attention_dp_in_tensorrt_llm_not_sglang():
    """TensorRT-LLM's _compute_mlp_tp_size is 1 with attention DP: DeepSeek's dense MLP runs on each
    rank's own 8 requests with the whole 7168 x 2 x 18432 gate-up and 18432 x 7168 down weights and no
    collective; SGLang gathers the 64 requests, splits the MLP 8 ways and pays the all-gather and
    reduce-scatter of the batch."""
    from helixsim.cost import step as st
    from helixsim.layout import LayoutArrays

    model = load_model("deepseek-r1")
    hw = load_hardware("b200-hgx")
    prec = Precision(weights="fp8", kv_cache="fp8")
    a = LayoutArrays.from_layout(Layout("ep", dp=8, tpf=1, ep=8))
    s = st.step_shapes(model, a, np.array([64]))
    trt, sgl = kernels_for(hw), kernels_for(hw, backend="sglang")
    own = trt.gemm_ms(8, 2 * 18432, 7168, "fp8") + trt.gemm_ms(8, 7168, 18432, "fp8")
    assert float(st.dense_ffn_ms(trt, model, s, prec)[0]) == pytest.approx(float(own))
    assert float(st.dense_ffn_comm_ms(trt, model, s, prec)[0]) == 0.0
    msg = 64 * 7168 * 2.0
    gathered = sgl.collective_ms("all_gather", 8, msg) + sgl.collective_ms("reduce_scatter", 8, msg)
    assert float(st.dense_ffn_comm_ms(sgl, model, s, prec)[0]) == pytest.approx(float(gathered))
    split = sgl.gemm_ms(64, 2 * 18432 // 8, 7168, "fp8") + sgl.gemm_ms(64, 7168, 18432 // 8, "fp8")
    assert float(st.dense_ffn_ms(sgl, model, s, prec)[0]) == pytest.approx(float(split))


def test_data_parallel_dense_layers_hold_their_whole_weights_per_rank():
    """Run data-parallel, DeepSeek's 3 dense MLP layers (3 x 3 x 7168 x 18432 = 1.19e9 parameters) sit
    whole on every attention-DP rank, not split 8 ways; a dense model's ep layout keeps its split."""
    from helixsim.cost.memory import ffn_weight_bytes
    from helixsim.layout import LayoutArrays

    a = LayoutArrays.from_layout(Layout("ep", dp=8, tpf=1, ep=8))
    ds = load_model("deepseek-r1")
    dense_params = 3 * 3 * 7168 * 18432
    split = ffn_weight_bytes(ds, a, expert_bytes=0.0, dense_bytes=1.0)
    whole = ffn_weight_bytes(ds, a, expert_bytes=0.0, dense_bytes=1.0, dense_dp=True)
    assert float((whole - split)[0]) == pytest.approx(dense_params * (1 - 1 / 8))
    llama = load_model("llama-3.1-70b")
    assert ffn_weight_bytes(llama, a, dense_dp=True)[0] == ffn_weight_bytes(llama, a)[0]
