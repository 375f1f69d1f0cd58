"""The formats of NVIDIA's FP4 DeepSeek-R1 checkpoint, layer by layer (issue 12).

nvidia/DeepSeek-R1(-0528)-FP4-v2, the checkpoint TensorRT-LLM's DeepSeek-R1 NVFP4 recipes and
performance tables serve: routed experts, shared experts and the dense FFN layers in NVFP4, the
attention output projection ``wo`` in NVFP4 ("additionally quantizes the wo module in attention
layers", the v2 model card), every other ``self_attn`` weight in BF16 (TensorRT Model Optimizer
``examples/deepseek/ptq.py`` disables ``*attn*`` quantisation; ``quantize_to_nvfp4.py`` writes the
unquantised layers dequantised to BF16; the checkpoint's ``exclude_modules`` lists
``model.layers.N.self_attn*``, TensorRT-LLM issue #5766). Before, helixsim priced all of them FP8.

Golden values: measured kernel latencies (``b200_sxm/gemm.csv.gz``, aiconfigurator-core 0.12.0) and
hand sums of DeepSeek-R1's weight shapes (HF config.json)."""

import json

import numpy as np
import pandas as pd
import pytest

from helixsim.api import kernels_for
from helixsim.cost import step as st
from helixsim.cost.memory import memory_per_gpu
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware, load_model
from helixsim.validation import row_config

# validation/silicon_decode_dev.csv, source_id dsr1_b200_trtllm_fp4_agg_1024x8192_c8_cfg82
ROW = pd.Series({"hf_model_path": "deepseek-ai/DeepSeek-V3", "system": "b200_sxm", "backend": "trtllm",
                 "precision": "fp4", "tp": 4, "pp": 1, "attention_dp": 1, "moe_tp": 4, "moe_ep": 1,
                 "decode_batch": 8, "ctx_mid": 5120, "measured_tpot_ms": 9.144})


class _Formats:
    """Records the weight format of every GEMM / batched matmul a step function prices."""

    def __init__(self, k):
        self.k, self.calls = k, []

    def __getattr__(self, name):
        attr = getattr(self.k, name)
        if name not in ("gemm_ms", "bmm_ms"):
            return attr

        def call(*args, **kwargs):
            self.calls.append((name, args[-1] if name == "gemm_ms" else args[4]))
            return attr(*args, **kwargs)
        return call


def test_a_deepseek_fp4_row_runs_bf16_attention_and_nvfp4_dense_layers():
    prec = row_config(ROW)[3]
    assert (prec.weights, prec.attention_weights_dtype, prec.dense_weights_dtype) == ("fp4", "bf16", "fp4")
    fp8_row = row_config(ROW.replace("fp4", "fp8"))[3]   # DeepSeek's own FP8 checkpoint: every layer FP8
    assert (fp8_row.attention_weights_dtype, fp8_row.dense_weights_dtype) == ("fp8", "fp8")
    gpt = row_config(ROW.replace("deepseek-ai/DeepSeek-V3", "openai/gpt-oss-120b"))[3]
    assert (gpt.attention_weights_dtype, gpt.dense_weights_dtype) == ("bf16", "bf16")   # unchanged


def test_each_projection_takes_its_checkpoint_format():
    """fused q_a/kv_a, q_b and W_UK/W_UV (kv_b) in BF16; wo, the shared expert and the dense FFN in NVFP4."""
    model, hw = load_model("deepseek-r1"), load_hardware("b200-hgx")
    prec = row_config(ROW)[3]
    s = st.step_shapes(model, LayoutArrays.from_layout(Layout("tp", tpa=4, tpf=4)), np.array([8]))
    rec = _Formats(kernels_for(hw))
    st.qkv_proj_ms(rec, model, s, prec)
    assert rec.calls == [("gemm_ms", "bf16"), ("gemm_ms", "bf16"), ("bmm_ms", "bf16")]
    rec.calls.clear()
    st.o_proj_ms(rec, model, s, prec)
    assert rec.calls == [("gemm_ms", "fp4"), ("bmm_ms", "bf16")]
    rec.calls.clear()
    st.dense_ffn_ms(rec, model, s, prec)
    assert {c[1] for c in rec.calls} == {"fp4"}
    rec.calls.clear()
    st.moe_ffn_ms(rec, model, s, 4, 1, prec)
    assert {c[1] for c in rec.calls if c[0] == "gemm_ms"} - {"bf16"} == {"fp4"}   # router BF16, shared NVFP4


def test_wo_is_priced_by_the_measured_nvfp4_gemm():
    """b200_sxm/gemm.csv.gz, m 8, n 7168, k 4096 (wo at TP 4: 32 heads x 128): nvfp4 (torch_flow)
    0.014025 ms, bfloat16 0.011820 ms. The row's wo is the NVFP4 one (within 3 %), and the wo term
    is that GEMM plus the BF16 W_UV batched matmul."""
    model, k = load_model("deepseek-r1"), kernels_for(load_hardware("b200-hgx"))
    prec = row_config(ROW)[3]
    s = st.step_shapes(model, LayoutArrays.from_layout(Layout("tp", tpa=4, tpf=4)), np.array([8]))
    wo = float(k.gemm_ms(8, 7168, 4096, "fp4"))
    assert wo == pytest.approx(0.014025, rel=0.03)
    expected = wo + float(k.bmm_ms(32, 8, 128, 512, "bf16"))
    assert float(np.ravel(st.o_proj_ms(k, model, s, prec))[0]) == pytest.approx(expected)


def test_bf16_attention_weights_held_in_memory():
    """TP 8, per GPU and layer: q_a + kv_a replicated (7168 x 1536 + 7168 x 576, with their two
    RMSNorm vectors 1536 + 512), q_b / 8 (1536 x 128 x 192 / 8) and kv_b / 8 (512 x 128 x 256 / 8)
    move from NVFP4's 0.5625 to BF16's 2 bytes; wo stays NVFP4. 61 layers."""
    model, k = load_model("deepseek-r1"), kernels_for(load_hardware("b200-hgx"))
    a = LayoutArrays.from_layout(Layout("tp", tpa=8, tpf=8))
    fp4 = Precision(weights="fp4", kv_cache="fp8")
    mixed = Precision(weights="fp4", kv_cache="fp8", attention_weights="bf16")
    elems = (7168 * 1536 + 1536) + (7168 * 576 + 512) + 1536 * 128 * 192 // 8 + 512 * 128 * 256 // 8
    grown = 61 * elems * (2.0 - 0.5625)
    args = (np.array([8]), np.array([4096]))
    diff = (memory_per_gpu(k, model, a, *args, mixed).weights_bytes
            - memory_per_gpu(k, model, a, *args, fp4).weights_bytes)
    assert float(np.ravel(diff)[0]) == pytest.approx(grown)


def _norms(backend, hardware, layout, model="deepseek-r1"):
    k = kernels_for(load_hardware(hardware), backend=backend)
    spec, a = load_model(model), LayoutArrays.from_layout(layout)
    s = st.step_shapes(spec, a, np.array([8]))
    return k, float(np.ravel(st.norms_ms(k, spec, s, Precision(weights="fp8", kv_cache="fp8")))[0])


def test_norms_run_inside_the_tp_all_reduce_where_the_framework_fuses_them():
    """DeepSeek-V3 decoder layers (helixsim.cost.fused_norms): two RMSNorms with residual adds move
    4 x 8 x 7168 x 2 bytes per layer (batch 8, BF16). Unfused they are two kernels (2 launch floors + bytes
    at the HBM roofline); fused into the TP all-reduce (TensorRT-LLM's DeepseekV3DecoderLayer
    PRE/POST_MOE_FUSION; SGLang's FlashInfer all-reduce fusion on SM100, one node) only the bytes remain,
    inside the all-reduce kernel."""
    tp8 = Layout("tp", tpa=8, tpf=8)
    k, fused = _norms("trtllm", "b200-hgx", tp8)
    nbytes = 4 * 8 * 7168 * 2
    assert fused == pytest.approx(nbytes / (k.hbm_gbps * 1e6))
    unfused = 2 * k.eff.kernel_floor_us * 1e-3 + nbytes / (k.hbm_gbps * 1e6)
    one_request = 2 * k.eff.kernel_floor_us * 1e-3 + nbytes / 8 / (k.hbm_gbps * 1e6)   # 1 request per DP rank
    assert _norms("trtllm", "b200-hgx", Layout("ep", dp=8, ep=8))[1] == pytest.approx(one_request)   # attention DP
    assert _norms("trtllm", "b200-hgx", Layout("tp", tpa=1, tpf=1))[1] == pytest.approx(unfused)  # no TP
    assert _norms("sglang", "b200-hgx", tp8)[1] == pytest.approx(fused)
    assert _norms("sglang", "gb200-nvl72", tp8)[1] > fused        # TP 8 spans two 4-GPU GB200 nodes
    assert _norms("sglang", "h200-hgx", tp8)[1] > _norms("trtllm", "h200-hgx", tp8)[1]   # SM90: not fused
    kv, vllm = _norms("vllm", "b200-hgx", tp8)
    assert vllm == pytest.approx(2 * kv.eff.kernel_floor_us * 1e-3 + nbytes / (kv.hbm_gbps * 1e6))
    qwen_bytes = 4 * 8 * 4096 * 2   # Qwen3-235B-A22B (hidden 4096): MoE without MLA, no fusing decoder layer read
    assert _norms("trtllm", "b200-hgx", tp8, model="qwen3-235b-a22b")[1] == pytest.approx(
        2 * k.eff.kernel_floor_us * 1e-3 + qwen_bytes / (k.hbm_gbps * 1e6))
    # Helix, KVP 4 x TPA 2: the attention output ends in an all-reduce over all 8 GPUs, the same decoder
    # layer and all-reduce op (helixsim.cost.fused_norms): fused as under TP
    helix = _norms("trtllm", "b200-hgx", Layout("helix", kvp=4, tpa=2, tpf=1, ep=8))[1]
    assert helix == pytest.approx(fused)
    # DeepSeek-V3.2 (sparse-attention indexer): its decoder layer's source was not read, two kernels stay
    assert _norms("trtllm", "b200-hgx", tp8, model="deepseek-v3.2")[1] == pytest.approx(unfused)


def test_point_takes_the_attention_format_from_the_command_line():
    """``--attention-weights bf16`` prices the input projections from the BF16 GEMM table and leaves the
    experts, the dense layers and the LM head alone; an unknown format exits with status 2."""
    from click.testing import CliRunner

    from helixsim.cli import main

    args = ["point", "--model", "deepseek-r1", "--hardware", "b200-hgx", "--strategy", "tp", "--tpa", "4",
            "--tpf", "4", "--batch", "8", "--context", "5120", "--weights", "fp4", "--json"]

    plain = json.loads(CliRunner().invoke(main, args).output)["breakdown_ms"]
    bf16 = json.loads(CliRunner().invoke(main, args + ["--attention-weights", "bf16"]).output)["breakdown_ms"]
    assert bf16["qkv_proj"] != plain["qkv_proj"]
    assert (bf16["ffn"], bf16["lm_head"]) == (plain["ffn"], plain["lm_head"])
    bad = CliRunner().invoke(main, args + ["--attention-weights", "fp16"])
    assert bad.exit_code == 2
