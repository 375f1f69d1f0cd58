"""Block-scaled FP8 experts on Hopper with TensorRT-LLM take only the block-scaled FP8 MoE kernels.

TensorRT-LLM's ``CutlassFusedMoE._get_quant_method`` (tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py)
gives a checkpoint with FP8 block scales ``DeepSeekFP8BlockScalesFusedMoEMethod`` (quantization.py) on SM90; the
per-tensor ``FP8QDQFusedMoEMethod`` serves per-tensor checkpoints only. Golden values are measured rows of the
calibration data (/work/shared/calibration/h200_sxm/moe.csv.gz, TensorRT-LLM ``moe_torch_flow_cutlass``,
power_law_1.01 routing):

- fp8_block, 8 tokens, hidden 7168, inter 2048, top-8, 256 experts (DeepSeek-R1), MoE TP 8, EP 1: 0.190099 ms
- fp8 (per-tensor) is not measured at DeepSeek's shape; its nearest measured shape, hidden 4096, inter 2048,
  top-8, 256 experts, TP 8, EP 1, 8 tokens: 0.0883904 ms (a kernel whose efficiency carried over to
  DeepSeek's shape priced the layer at about 0.13 ms, docs/calibration.md "What is still missed" (b)).
"""

from __future__ import annotations

import pytest

from helixsim.api import kernels_for, resolve_hardware, simulate_point
from helixsim.calibration import point
from helixsim.layout import Layout
from helixsim.precision import Precision
from helixsim.specs.registry import load_model

MEASURED_BLOCK_TP8_8TOK_MS = 0.190099   # fp8_block row quoted above
SHAPE = dict(hidden=7168, inter=2048, top_k=8, num_experts=256)


def _moe_kernel_ms(k, blocks: bool, tp=8.0, tokens=8.0) -> float:
    """The priced routed-expert kernel (the router GEMM taken off)."""
    total = k.moe_ms(tokens, SHAPE["hidden"], SHAPE["inter"], SHAPE["top_k"], SHAPE["num_experts"], tp, 1.0, "fp8",
                     fp8_block_scales=blocks)
    return float(total) - float(k.gemm_ms(tokens, SHAPE["num_experts"], SHAPE["hidden"], "bf16", "bf16"))


def test_deepseek_checkpoints_are_block_scaled():
    for name in ("deepseek-r1", "deepseek-v3.2", "kimi-k2"):   # config.json weight_block_size [128, 128]
        assert load_model(name).ffn.moe.fp8_block_scales
    assert not load_model("mixtral-8x22b").ffn.moe.fp8_block_scales


def test_h200_block_scaled_experts_follow_the_measured_block_scaled_kernel():
    k = kernels_for(resolve_hardware("h200-hgx"))
    block = _moe_kernel_ms(k, True)
    # the shipped table holds 4 and 16 tokens; 8 is interpolated between them: within 5 % of the measured row
    assert block == pytest.approx(MEASURED_BLOCK_TP8_8TOK_MS, rel=0.05)
    # a per-tensor checkpoint may still take the faster per-tensor kernel, far below the block-scaled one
    assert _moe_kernel_ms(k, False) < 0.8 * MEASURED_BLOCK_TP8_8TOK_MS
    kernels = k._moe_kernels(k._table("moe"), "fp8", "nvfp4", k.fp8_block_only(True))
    assert kernels and {c[0] for c in kernels} == {"fp8_block"}


def test_blackwell_and_other_frameworks_keep_their_kernels():
    """SM100 runs used TRTLLM-gen's block-scale MoE, which TensorRT-LLM's tables do not measure: unchanged.
    SGLang's own H200 tables hold only block-scaled FP8 MoE kernels: unchanged as well."""
    b200 = kernels_for(resolve_hardware("b200-hgx"))
    assert _moe_kernel_ms(b200, True) == _moe_kernel_ms(b200, False)
    sgl = kernels_for(resolve_hardware("h200-hgx"), backend="sglang")
    assert not sgl.fp8_block_only(True)
    assert _moe_kernel_ms(sgl, True) == _moe_kernel_ms(sgl, False)


def _floats(d: dict, prefix: str = ""):
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _floats(value, f"{prefix}{key}.")
        elif isinstance(value, float):
            yield prefix + key, value


def test_vectorised_and_one_point_paths_agree_on_a_block_scaled_point():
    """helixsim.calibration.point's single-point path prices such a point exactly as the vectorised path
    (the pattern of tests/test_point_fast.py)."""
    prec = Precision(weights="fp8", kv_cache="fp8")
    layouts = (Layout("tp", tpa=8, tpf=8), Layout("tp", tpa=8, tpf=1, ep=8))

    def run():
        return [dict(_floats(simulate_point("deepseek-r1", "h200-hgx", lay, batch=b, context=2048,
                                            precision=prec).to_json_dict()))
                for lay in layouts for b in (8, 64)]

    with point.vectorised():
        reference = run()
    fast = run()
    for ref, got in zip(reference, fast):
        assert got.keys() == ref.keys()
        for key, want in ref.items():
            assert got[key] == pytest.approx(want, rel=1e-12, abs=1e-300, nan_ok=True), key
    # TP 8 at 8 requests: the 58 MoE layers (HF config: 61 layers, first_k_dense_replace 3) alone take at
    # least 58 x the measured block-scaled kernel (interpolated within 5 %)
    assert fast[0]["breakdown_ms.ffn"] >= 58 * 0.95 * MEASURED_BLOCK_TP8_8TOK_MS
