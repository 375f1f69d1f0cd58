"""SGLang runs the absorbed W_UK / W_UV batched matmuls of a 128x128 block-scaled FP8 checkpoint in BF16.

Source: SGLang ``DeepseekV2ForCausalLM.post_load_weights`` (python/sglang/srt/models/deepseek_v2.py, 0.5.x)
dequantises such a ``kv_b_proj`` to BF16 on CUDA (``block_quant_dequant(..., torch.bfloat16)``) unless
``SGL_USE_DEEPGEMM_BMM=true`` (off by default), and decode calls ``torch.bmm`` on the BF16 ``w_kc`` / ``w_vc``.

Golden values are measured rows quoted from SGLang's GB200 table
(/work/shared/calibration/gb200/sglang/mla_bmm.csv.gz, 128 heads, 1,024 tokens):

- ``mla_gen_pre`` (q x W_UK):  ``sglang_torch_bmm`` bfloat16 0.0352 ms, ``sglang_sgl_kernel_bmm_fp8`` fp8 0.1932 ms
- ``mla_gen_post`` (attn x W_UV): bfloat16 0.0334 ms, fp8 0.1933 ms

so dequantising saves 0.158 ms (W_UK) and 0.160 ms (W_UV) per layer at that shape.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helixsim import backends
from helixsim.api import kernels_for, resolve_hardware
from helixsim.cost import step
from helixsim.cost.mla_absorb import absorbed_bmm_dtype
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_model

FP8 = Precision(weights="fp8", kv_cache="fp8")
PRE_SAVING_MS = 0.1932 - 0.0352    # mla_gen_pre fp8 - bf16, quoted above
POST_SAVING_MS = 0.1933 - 0.0334   # mla_gen_post fp8 - bf16, quoted above


@pytest.fixture(scope="module")
def gb200():
    hw = resolve_hardware("gb200-nvl72")
    return kernels_for(hw, backend="sglang"), kernels_for(hw)


def test_rule_by_framework_and_checkpoint(gb200):
    sgl, trt = gb200
    ds = load_model("deepseek-r1")   # config.json quantization_config weight_block_size [128, 128]
    assert absorbed_bmm_dtype(sgl, ds, FP8) == "bf16"
    assert absorbed_bmm_dtype(trt, ds, FP8) == "fp8"        # TensorRT-LLM keeps its FP8 block-scaling bmm
    fp4 = Precision(weights="fp4", kv_cache="fp8", attention_weights="bf16")   # NVIDIA's FP4 checkpoint: BF16 attention
    assert absorbed_bmm_dtype(sgl, ds, fp4) == absorbed_bmm_dtype(trt, ds, fp4) == "bf16"
    per_tensor = dataclasses.replace(ds, ffn=dataclasses.replace(
        ds.ffn, moe=dataclasses.replace(ds.ffn.moe, fp8_block_scales=False)))
    assert absorbed_bmm_dtype(sgl, per_tensor, FP8) == "fp8"   # per-tensor FP8 kv_b: SGLang's FP8 bmm


def _per_layer(k, fn, model, prec):
    lay = LayoutArrays.from_layout(Layout("tp", kvp=1, tpa=1, dp=1, tpf=1, ep=1, pp=1, hopb=False))
    s = step.step_shapes(model, lay, np.array([1024]))   # 128 heads on the GPU, 1,024 requests
    return float(np.ravel(fn(k, model, s, prec))[0])


@pytest.mark.parametrize("fn, saving_ms", [(step.qkv_proj_ms, PRE_SAVING_MS), (step.o_proj_ms, POST_SAVING_MS)])
def test_sglang_step_prices_the_bf16_bmm(gb200, monkeypatch, fn, saving_ms):
    sgl, _ = gb200
    ds = load_model("deepseek-r1")
    served = _per_layer(sgl, fn, ds, FP8)
    off = dataclasses.replace(backends.DEFAULTS["sglang"], mla_absorb_bf16_for_block_fp8=False)
    monkeypatch.setitem(backends.DEFAULTS, "sglang", off)
    fp8_bmm = _per_layer(sgl, fn, ds, FP8)
    # the only difference is the bmm: the measured FP8 - BF16 gap of the quoted rows, within 10 %
    assert fp8_bmm - served == pytest.approx(saving_ms, rel=0.10)


# Memory of SGLang's absorbed copies. Hand calculation from DeepSeek-R1's config.json (61 layers, 128 heads,
# kv_lora_rank 512, qk_nope_head_dim 128, v_head_dim 128): w_kc + w_vc = kv_b = 512 x 128 x (128 + 128)
# = 16,777,216 elements a layer, 2 bytes each in BF16 = 33,554,432 bytes; x 61 layers = 2,046,820,352 bytes
# (2.05 GB) per GPU at attention TP 1, /8 = 255,852,544 bytes (0.26 GB) at attention TP 8. SGLang keeps
# kv_b_proj beside them (post_load_weights never deletes it; the MHA prefill path runs it), so these bytes
# come on top of the checkpoint's weights.
BF16_COPIES_TP1_BYTES = 61 * 512 * 128 * (128 + 128) * 2
assert BF16_COPIES_TP1_BYTES == 2_046_820_352


def _weights_bytes(k, model, layout, prec):
    from helixsim.cost.memory import memory_per_gpu

    lay = LayoutArrays.from_layout(layout)
    return memory_per_gpu(k, model, lay, np.array([1]), np.array([1024]), prec)


def _with_and_without_copies(k, layout, prec, monkeypatch, backend="sglang"):
    """Memory of DeepSeek-R1 with the framework's copies, without them (its rule switched off), and the extra bytes."""
    ds = load_model("deepseek-r1")
    with_copies = _weights_bytes(k, ds, layout, prec)
    off = dataclasses.replace(backends.DEFAULTS[backend], mla_absorb_weight_copies="")
    monkeypatch.setitem(backends.DEFAULTS, backend, off)
    without = _weights_bytes(k, ds, layout, prec)
    return with_copies, without, float(np.ravel(with_copies.weights_bytes - without.weights_bytes)[0])


@pytest.mark.parametrize("layout, expected_bytes", [
    (Layout("tp", kvp=1, tpa=1, dp=1, tpf=1, ep=1, pp=1, hopb=False), BF16_COPIES_TP1_BYTES),
    (Layout("tp", kvp=1, tpa=8, dp=1, tpf=8, ep=1, pp=1, hopb=False), BF16_COPIES_TP1_BYTES / 8),
    # DP attention (SGLang --enable-dp-attention, attn_tp = tp / dp = 1): every rank holds all 128 heads' copies
    (Layout("ep", kvp=1, tpa=1, dp=8, tpf=1, ep=8, pp=1, hopb=False), BF16_COPIES_TP1_BYTES),
    # Helix (kvp 2 x tpa 4): W_UK split 4 ways, W_UV like wo 8 ways: half /4 + half /8
    (Layout("helix", kvp=2, tpa=4, dp=1, tpf=8, ep=1, pp=1, hopb=False),
     BF16_COPIES_TP1_BYTES / 2 / 4 + BF16_COPIES_TP1_BYTES / 2 / 8),
])
def test_sglang_memory_holds_the_bf16_copies(gb200, monkeypatch, layout, expected_bytes):
    from helixsim.cost.memory import largest_batch

    sgl, trt = gb200
    with_copies, without, extra = _with_and_without_copies(sgl, layout, FP8, monkeypatch)
    assert extra == pytest.approx(expected_bytes, rel=1e-12)
    # the fit decision sees them: HBM sized for the weights and one request's KV without the copies holds none with them
    lay = LayoutArrays.from_layout(layout)
    room = float(np.ravel(without.weights_bytes)[0]) + without.reserve_bytes + float(np.ravel(without.per_request_bytes)[0])
    assert int(np.ravel(largest_batch(without, lay, room))[0]) == layout.dp   # one request per DP group fits
    assert int(np.ravel(largest_batch(with_copies, lay, room))[0]) == 0


def test_copies_in_the_absorbed_format_and_only_under_sglang(gb200, monkeypatch):
    from helixsim.cost.mla_absorb import absorbed_copy_bytes_per_layer

    sgl, trt = gb200
    ds = load_model("deepseek-r1")
    lay = LayoutArrays.from_layout(Layout("tp", kvp=1, tpa=8, dp=1, tpf=8, ep=1, pp=1, hopb=False))
    per_layer_bf16 = BF16_COPIES_TP1_BYTES / 61 / 8

    def copies(k, model, prec):
        return float(np.ravel(absorbed_copy_bytes_per_layer(k, model, lay, prec))[0])

    assert copies(sgl, ds, FP8) == pytest.approx(per_layer_bf16)       # block FP8 kv_b dequantised to BF16
    # NVIDIA's FP4 checkpoint keeps kv_b in BF16: the .contiguous() copies are BF16 too
    assert copies(sgl, ds, Precision(weights="fp4", kv_cache="fp8", attention_weights="bf16")) == pytest.approx(per_layer_bf16)
    per_tensor = dataclasses.replace(ds, ffn=dataclasses.replace(
        ds.ffn, moe=dataclasses.replace(ds.ffn.moe, fp8_block_scales=False)))
    assert copies(sgl, per_tensor, FP8) == pytest.approx(per_layer_bf16 / 2)   # per-tensor FP8 kv_b: FP8 copies, 1 byte
    assert copies(trt, ds, FP8) != per_layer_bf16                       # TensorRT-LLM: its own rule (below)
    assert copies(sgl, load_model("llama-3.1-70b"), FP8) == 0.0          # not MLA


# TensorRT-LLM's copies (tensorrt_llm/_torch/modules/attention.py MLA.create_weights, modeling_deepseekv3.py
# load_weights): k_b_proj_trans = W_UK [heads_tp, kv_lora 512, qk_nope 128], FP8 for DeepSeek's block-FP8 kv_b,
# BF16 otherwise; v_b_proj is a view into kv_b_proj (no bytes); on SM100 (B200/GB200/GB300) a block-FP8 kv_b also
# gets BF16 k_b_proj_trans_dequant [heads_tp, 512, 128] and v_b_proj_dequant [heads_tp_cp, 128, 512].
# Hand calculation for DeepSeek-R1 (61 layers, 128 heads):
W_UK_ELEMS_TP1 = 61 * 512 * 128 * 128          # one half of kv_b over all MLA layers: 511,705,088 elements
assert W_UK_ELEMS_TP1 == 511_705_088
TRT_FP8_HOPPER_TP1_BYTES = W_UK_ELEMS_TP1 * 1                           # 0.51 GB: FP8 W_UK only
TRT_BF16_TP1_BYTES = W_UK_ELEMS_TP1 * 2                                 # 1.02 GB: BF16 kv_b (NVIDIA FP4 checkpoint)
TRT_FP8_BLACKWELL_TP1_BYTES = W_UK_ELEMS_TP1 * 1 + 2 * W_UK_ELEMS_TP1 * 2   # + BF16 W_UK and W_UV: 2.56 GB
assert TRT_FP8_BLACKWELL_TP1_BYTES == 2_558_525_440


TP1 = Layout("tp", kvp=1, tpa=1, dp=1, tpf=1, ep=1, pp=1, hopb=False)
TP8 = Layout("tp", kvp=1, tpa=8, dp=1, tpf=8, ep=1, pp=1, hopb=False)
DP8 = Layout("ep", kvp=1, tpa=1, dp=8, tpf=1, ep=8, pp=1, hopb=False)     # enable_attention_dp: tp_size 1, all heads
HELIX = Layout("helix", kvp=2, tpa=4, dp=1, tpf=8, ep=1, pp=1, hopb=False)  # W_UK over tp 4, W_UV over tp x cp 8
FP4_BF16_ATTN = Precision(weights="fp4", kv_cache="fp8", attention_weights="bf16")


@pytest.mark.parametrize("system, layout, prec, expected_bytes", [
    ("h200-hgx", TP1, FP8, TRT_FP8_HOPPER_TP1_BYTES),
    ("h200-hgx", TP8, FP8, TRT_FP8_HOPPER_TP1_BYTES / 8),
    ("h200-hgx", DP8, FP8, TRT_FP8_HOPPER_TP1_BYTES),
    ("b200-hgx", TP1, FP8, TRT_FP8_BLACKWELL_TP1_BYTES),
    ("gb200-nvl72", DP8, FP8, TRT_FP8_BLACKWELL_TP1_BYTES),
    ("gb200-nvl72", HELIX, FP8, W_UK_ELEMS_TP1 / 4 * (1 + 2) + W_UK_ELEMS_TP1 / 8 * 2),
    ("b200-hgx", TP1, FP4_BF16_ATTN, TRT_BF16_TP1_BYTES),          # BF16 kv_b: BF16 W_UK, no dequantised copies
    ("h200-hgx", TP8, Precision(weights="bf16", kv_cache="bf16"), TRT_BF16_TP1_BYTES / 8),
])
def test_trtllm_memory_holds_k_b_proj_trans(monkeypatch, system, layout, prec, expected_bytes):
    trt = kernels_for(resolve_hardware(system))
    _, _, extra = _with_and_without_copies(trt, layout, prec, monkeypatch, "trtllm")
    assert extra == pytest.approx(expected_bytes, rel=1e-12)


def test_trtllm_fit_sees_the_copies(monkeypatch):
    from helixsim.cost.memory import largest_batch

    trt = kernels_for(resolve_hardware("b200-hgx"))
    lay = LayoutArrays.from_layout(TP8)
    with_copies, without, _ = _with_and_without_copies(trt, TP8, FP8, monkeypatch, "trtllm")
    room = float(np.ravel(without.weights_bytes)[0]) + without.reserve_bytes + float(np.ravel(without.per_request_bytes)[0])
    assert int(np.ravel(largest_batch(without, lay, room))[0]) == 1
    assert int(np.ravel(largest_batch(with_copies, lay, room))[0]) == 0
