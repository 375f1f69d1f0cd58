"""The MTP draft is priced in the formats its module is stored in, the rule its memory uses (mtp_precision).

Expected formats come from the sources, not from the code (helixsim/cost/mtp.py docstring): NVIDIA's NVFP4
DeepSeek-R1 checkpoints (nvidia/DeepSeek-R1-FP4, nvidia/DeepSeek-R1-0528-FP4-v2) exclude "model.layers.61*"
from quantisation, TensorRT-LLM then builds the layer with QuantConfig(quant_algo=None) and SGLang with
unquantised linears and MoE, and TensorRT-LLM tech blog 1's "Precision Strategy" table lists "3x MTP Layers |
bf16": every GEMM, absorbed bmm and MoE of the draft layer is BF16, the KV cache keeps the main format.
DeepSeek's own block-FP8 checkpoint quantises layer 61 like the others: FP8 there. eh_proj is unquantised
(TensorRT-LLM Linear(dtype=config.torch_dtype) without a quant config): BF16 in both.
"""

from __future__ import annotations

import numpy as np
import pytest

from helixsim.api import kernels_for, resolve_hardware
from helixsim.cost.mtp import draft_forward_parts, draft_ms, mtp_layer_model
from helixsim.cost.step import decode_step
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_model

# the blog's min-latency layout: attention TP 8, MoE TP 4 x EP 2, batch 1
BLOG = Layout("tp", kvp=1, tpa=8, dp=1, tpf=4, ep=2, pp=1, hopb=False)
# nvidia/DeepSeek-R1-0528-FP4-v2: attention input projections BF16, wo / dense / experts NVFP4, FP8 KV
FP4_V2 = Precision(weights="fp4", kv_cache="fp8", attention_weights="bf16")
# nvidia/DeepSeek-R1-FP4 (v1) as the blog served it: every self_attn module BF16, BF16 KV
FP4_V1 = Precision(weights="fp4", kv_cache="bf16", attention_weights="bf16", o_proj_weights="bf16")
# the same module stated by hand: everything BF16, the KV cache in the main format
ALL_BF16 = {"fp8": Precision(weights="bf16", kv_cache="fp8", dense_weights="bf16", attention_weights="bf16",
                             o_proj_weights="bf16"),
            "bf16": Precision(weights="bf16", kv_cache="bf16", dense_weights="bf16", attention_weights="bf16",
                              o_proj_weights="bf16")}


def _spied(monkeypatch, k):
    """Record the weight format of every GEMM, absorbed bmm and MoE kernel the kernel model is asked for."""
    calls = []
    for name, pos in (("gemm_ms", 3), ("bmm_ms", 4), ("moe_ms", 7)):
        real = getattr(k, name)

        def spy(*args, _real=real, _name=name, _pos=pos, **kw):
            calls.append((_name, kw.get("weight_dtype", args[_pos] if len(args) > _pos else None)))
            return _real(*args, **kw)

        monkeypatch.setattr(k, name, spy)
    return calls


def _draft(k, model, layout, prec):
    return draft_forward_parts(k, model, LayoutArrays.from_layout(layout), np.array([1]), np.array([2048]), prec)


@pytest.mark.parametrize("prec", [FP4_V1, FP4_V2])
def test_nvfp4_checkpoints_draft_in_bf16(monkeypatch, prec):
    k = kernels_for(resolve_hardware("b200-hgx"))
    model = load_model("deepseek-r1")
    calls = _spied(monkeypatch, k)
    _draft(k, model, BLOG, prec)
    assert {c[0] for c in calls} >= {"gemm_ms", "moe_ms"}
    assert {dtype for _, dtype in calls} == {"bf16"}, calls
    # the main layers of the same step still run their NVFP4 experts (the spy sees the formats)
    calls.clear()
    decode_step(k, mtp_layer_model(model), LayoutArrays.from_layout(BLOG), np.array([1]), np.array([2048]), prec)
    assert ("moe_ms", "fp4") in calls


@pytest.mark.parametrize("prec", [FP4_V1, FP4_V2])
def test_nvfp4_draft_costs_what_the_all_bf16_layer_costs(prec):
    k = kernels_for(resolve_hardware("b200-hgx"))
    model = load_model("deepseek-r1")
    got = _draft(k, model, BLOG, prec)
    want = _draft(k, model, BLOG, ALL_BF16[prec.kv_cache])
    assert got.keys() == want.keys()
    for key in got:
        assert float(np.ravel(got[key])[0]) == float(np.ravel(want[key])[0]), key
    # the draft's experts are the BF16 kernel's, not the NVFP4 one's (the main layers' format)
    main_format = decode_step(k, mtp_layer_model(model), LayoutArrays.from_layout(BLOG), np.array([1]),
                              np.array([2048]), prec)
    assert float(np.ravel(got["ffn"])[0]) != float(np.ravel(main_format["ffn"])[0])
    n = np.array([3])
    three = draft_ms(k, model, LayoutArrays.from_layout(BLOG), np.array([1]), np.array([2048]), prec, n)
    assert float(np.ravel(three)[0]) == pytest.approx(3 * sum(float(np.ravel(v)[0]) for v in got.values()))


def test_fp8_checkpoint_drafts_in_fp8_with_a_bf16_eh_proj(monkeypatch):
    k = kernels_for(resolve_hardware("h200-hgx"))
    model = load_model("deepseek-r1")
    calls = _spied(monkeypatch, k)
    prec = Precision(weights="fp8", kv_cache="fp8")
    parts = _draft(k, model, Layout("tp", kvp=1, tpa=8, dp=1, tpf=8, ep=1, pp=1, hopb=False), prec)
    assert ("moe_ms", "fp8") in calls and ("moe_ms", "bf16") not in calls
    assert ("gemm_ms", "fp8") in calls
    # eh_proj [1, 2H] x [2H, H] in BF16 (the LM head too: it runs in the activation format)
    calls.clear()
    eh = k.gemm_ms(np.array([1]), 7168, 2 * 7168, "bf16")
    assert float(np.ravel(parts["eh_proj"])[0]) == float(np.ravel(eh)[0])
