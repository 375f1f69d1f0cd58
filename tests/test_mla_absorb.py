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
