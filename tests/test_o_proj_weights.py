"""The attention output projection ``wo`` in a format of its own (``Precision.o_proj_weights``, ``--o-proj-weights``).

nvidia/DeepSeek-R1-FP4 (v1) excludes every ``model.layers.N.self_attn*`` module from quantisation
(TensorRT-LLM issue #5766), ``o_proj`` included, so its ``wo`` is BF16 like the input projections; the
v2 checkpoints (nvidia/DeepSeek-R1-0528-FP4-v2) hold ``wo`` in NVFP4 like the dense FFN, the default.

Golden values: a hand sum of DeepSeek-R1's wo shape (HF config.json: 128 heads x v_head_dim 128 x
hidden 7168) and a measured kernel (``b200_sxm/gemm.csv.gz``, aiconfigurator-core 0.12.0: m 8, n 7168,
k 4096, bfloat16 0.011820 ms, the row quoted in tests/test_fp4_checkpoint_formats.py)."""

import subprocess
import sys

import numpy as np
import pytest

from helixsim.api import kernels_for
from helixsim.cost import step as st
from helixsim.cost.memory import memory_per_gpu
from helixsim.errors import SpecError
from helixsim.fidelity import MTP_BLOG_PRECISION
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware, load_model
from helixsim.wideep_check import SGLANG_GB200_PRECISION, TRTLLM_GB200_PRECISION

V1 = Precision(weights="fp4", kv_cache="fp8", attention_weights="bf16", o_proj_weights="bf16")   # R1-FP4
V2 = Precision(weights="fp4", kv_cache="fp8", attention_weights="bf16")                          # R1-0528-FP4-v2


def test_wo_follows_the_dense_format_unless_named():
    assert V2.o_proj_weights_dtype == "fp4" and V1.o_proj_weights_dtype == "bf16"
    assert Precision(weights="fp4", dense_weights="fp8").o_proj_weights_dtype == "fp8"
    assert Precision(weights="fp8").o_proj_weights_dtype == "fp8"
    # the dense FFN and the attention input projections are not moved by it
    assert (V1.dense_weights_dtype, V1.attention_weights_dtype) == ("fp4", "bf16")


def test_unknown_format_is_a_one_line_error():
    with pytest.raises(SpecError, match="--o-proj-weights.*unknown precision 'int4'"):
        Precision(weights="fp4", o_proj_weights="int4")
    out = subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", "point", "--model", "deepseek-r1",
                          "--hardware", "b200-hgx", "--strategy", "tp", "--tpa", "8", "--tpf", "8", "--batch", "1",
                          "--context", "2048", "--o-proj-weights", "int4"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") <= 1 and "--o-proj-weights" in out.stderr and "Traceback" not in out.stderr


def test_v1_wo_held_in_bf16():
    """wo per layer: 128 x 128 x 7168 = 117,440,512 elements, /8 at TP 8 = 14,680,064 per GPU; from NVFP4's
    0.5625 to BF16's 2 bytes: +21,102,592 bytes a layer, x 61 layers = 1,287,258,112 bytes per GPU."""
    model, k = load_model("deepseek-r1"), kernels_for(load_hardware("b200-hgx"))
    a = LayoutArrays.from_layout(Layout("tp", tpa=8, tpf=8))
    args = (np.array([8]), np.array([4096]))
    diff = memory_per_gpu(k, model, a, *args, V1).weights_bytes - memory_per_gpu(k, model, a, *args, V2).weights_bytes
    assert float(np.ravel(diff)[0]) == pytest.approx(1_287_258_112)


def test_v1_wo_priced_by_the_measured_bf16_gemm():
    """wo at TP 4, batch 8: m 8, n 7168, k 4096 (32 heads x 128); measured BF16 0.011820 ms, NVFP4 0.014025 ms. The
    fitted GEMM model prices this BF16 row 6 % high (within 8 %, which still excludes the NVFP4 kernel, 19 % slower
    here); the o_proj term is that GEMM plus the BF16 W_UV batched matmul."""
    model, k = load_model("deepseek-r1"), kernels_for(load_hardware("b200-hgx"))
    s = st.step_shapes(model, LayoutArrays.from_layout(Layout("tp", tpa=4, tpf=4)), np.array([8]))
    wo = float(k.gemm_ms(8, 7168, 4096, "bf16"))
    assert wo == pytest.approx(0.011820, rel=0.08) and not wo == pytest.approx(0.014025, rel=0.08)
    expected = wo + float(k.bmm_ms(32, 8, 128, 512, "bf16"))
    assert float(np.ravel(st.o_proj_ms(k, model, s, V1))[0]) == pytest.approx(expected)


def test_published_checks_describe_the_served_checkpoints():
    """TensorRT-LLM tech blog 1 served v1 (BF16 attention with wo, BF16 KV, NVFP4 dense FFN); the wide-EP results
    (LMSYS GB200 part II, InferenceX Dynamo + TensorRT-LLM) served v2 (wo NVFP4) with an FP8 KV cache."""
    blog = MTP_BLOG_PRECISION
    assert (blog.attention_weights_dtype, blog.o_proj_weights_dtype, blog.dense_weights_dtype, blog.kv_cache) == \
        ("bf16", "bf16", "fp4", "bf16")
    for fmt in (SGLANG_GB200_PRECISION, TRTLLM_GB200_PRECISION):
        p = Precision(**fmt)
        assert (p.attention_weights_dtype, p.o_proj_weights_dtype, p.dense_weights_dtype, p.kv_cache) == \
            ("bf16", "fp4", "fp4", "fp8")
