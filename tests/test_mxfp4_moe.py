"""MXFP4 experts (gpt-oss) are priced from the measured MXFP4 MoE kernels, per framework.

Measured values quoted below are rows of the calibration data (``/work/shared/calibration``,
aiconfigurator-core 0.12.0 tables; see hardware/calibration/NOTICE), gpt-oss-120b's MoE shape
(hidden 2880, expert width 2880, top-4 of 128 experts), routing ``power_law_1.01``. The shipped
calibration is a robust fit of those rows, so a prediction at a measured point agrees within the fit's
residual (a few per cent), not exactly.
"""

from pathlib import Path

import numpy as np
import pytest

from helixsim.api import kernels_for
from helixsim.calibration.kernels import moe_candidates
from helixsim.specs.hf import load_hf_config
from helixsim.specs.registry import load_hardware, load_model

GPT_OSS = dict(hidden=2880, inter=2880, top_k=4, experts=128)


def experts_us(hw: str, backend: str, tokens: int, tp: int, ep: int) -> float:
    """Routed-expert kernel time (us) of gpt-oss's MoE, the router GEMM taken off."""
    k = kernels_for(load_hardware(hw), backend=backend)
    tok = np.array([float(tokens)])
    moe = k.moe_ms(tok, GPT_OSS["hidden"], GPT_OSS["inter"], GPT_OSS["top_k"], GPT_OSS["experts"],
                   np.array([float(tp)]), np.array([float(ep)]), "fp4", fp4_format="mxfp4")
    router = k.gemm_ms(tok, GPT_OSS["experts"], GPT_OSS["hidden"], "bf16")
    return float(moe[0] - router[0]) * 1e3


def test_gpt_oss_experts_are_mxfp4_in_the_yaml_and_from_the_hf_config():
    assert load_model("gpt-oss-120b").ffn.moe.fp4_format == "mxfp4"
    root = Path(__file__).resolve().parents[1]
    spec = load_hf_config(root / "models" / "hf" / "openai--gpt-oss-120b.config.json")
    assert spec.ffn.moe.fp4_format == "mxfp4"          # quantization_config.quant_method: mxfp4
    assert load_model("deepseek-r1").ffn.moe.fp4_format == "nvfp4"


def test_mxfp4_experts_never_take_an_nvfp4_kernel():
    cats = [("nvfp4", "moe_torch_flow_min_latency", "balanced"), ("w4a8_mxfp4_mxfp8", "moe_torch_flow", "balanced"),
            ("w4a16_mxfp4", "moe_torch_flow", "balanced"), ("fp8", "moe_torch_flow_cutlass", "balanced")]
    assert {c[0] for c in moe_candidates(cats, "fp4", "mxfp4")} == {"w4a8_mxfp4_mxfp8", "w4a16_mxfp4"}
    # and NVFP4 experts (DeepSeek-R1's checkpoint) never take an MXFP4 kernel measured for another model's
    # shapes, unless no NVFP4 kernel was measured at all (Hopper's tables: then any FP4 kernel, as before)
    assert {c[0] for c in moe_candidates(cats, "fp4", "nvfp4")} == {"nvfp4"}
    hopper = [c for c in cats if c[0] != "nvfp4"]
    assert {c[0] for c in moe_candidates(hopper, "fp4", "nvfp4")} == {"w4a8_mxfp4_mxfp8", "w4a16_mxfp4"}


def test_trtllm_b200_prices_gpt_oss_experts_at_the_measured_mxfp8_kernel():
    """b200_sxm/moe.csv.gz, w4a8_mxfp4_mxfp8 (TensorRT-LLM's MXFP4 x MXFP8 kernel, the one it runs on
    Blackwell: TensorRT-LLM examples/models/core/gpt_oss/README.md), moe_tp 1, moe_ep 8, 64 tokens:
    52.3 us. The NVFP4 min-latency kernel of other models' shapes, which priced gpt-oss before, is
    about a third faster there."""
    assert experts_us("b200-hgx", "trtllm", 64, 1, 8) == pytest.approx(52.3, rel=0.08)


def test_an_unmeasured_tp_split_is_priced_as_the_measured_ep_split_of_its_width():
    """TensorRT-LLM's MXFP4 tables hold moe_tp 1 only. A TP split of width t reads the same expected
    expert bytes per GPU as the EP split of width t (each GPU holds 1/t of every touched expert, or
    every touched expert of 1/t of them), so it takes the measured EP-t kernel rather than the TP-1
    kernel's efficiency on t-times thinner GEMMs (which vLLM's B200 table, measuring both for the same
    TensorRT-LLM-gen kernel, shows to be about 2x too fast at t = 8; test below)."""
    assert experts_us("b200-hgx", "trtllm", 64, 8, 1) == pytest.approx(experts_us("b200-hgx", "trtllm", 64, 1, 8),
                                                                          rel=1e-9)
    # h200_sxm/moe.csv.gz, w4a16_mxfp4 (BF16 activations on Hopper), moe_tp 1, moe_ep 4, 64 tokens: 195.7 us
    assert experts_us("h200-hgx", "trtllm", 64, 4, 1) == pytest.approx(195.7, rel=0.08)


def test_measured_tp_splits_keep_their_own_measurement():
    """b200_sxm/vllm/moe.csv.gz, vllm_gptossmxfp4moe_flashinfer_trtllm_mxfp4_bf16_..., 64 tokens:
    moe_tp 8 / ep 1 72.9 us, moe_tp 1 / ep 8 67.6 us: where the TP split is measured it is used."""
    assert experts_us("b200-hgx", "vllm", 64, 8, 1) == pytest.approx(72.9, rel=0.06)
    assert experts_us("b200-hgx", "vllm", 64, 1, 8) == pytest.approx(67.6, rel=0.06)


def test_vllm_hopper_runs_openais_triton_mxfp4_kernel():
    """vLLM's MXFP4 MoE method uses OpenAI's Triton kernels on SM90 (vLLM quantization/mxfp4.py,
    get_mxfp4_backend); h200_sxm/vllm/moe.csv.gz, vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic,
    moe_tp 8 / ep 1, 64 tokens: 106.1 us (the compressed-tensors Marlin kernel in the same table, which a
    gpt-oss checkpoint cannot reach, was priced at 73 us there before)."""
    assert experts_us("h200-hgx", "vllm", 64, 8, 1) == pytest.approx(106.1, rel=0.06)


def test_point_json_for_gpt_oss_records_vllms_own_moe_kernel():
    from helixsim.api import simulate_point
    from helixsim.layout import Layout
    from helixsim.precision import Precision

    r = simulate_point("gpt-oss-120b", "h200-hgx", Layout("tp", tpa=8, tpf=8), batch=64, context=5000,
                       precision=Precision(weights="fp4", kv_cache="bf16", dense_weights="bf16"), backend="vllm")
    assert r.backend["kernel_model"]["ffn"]["moe"] == "vllm"


def test_a_malformed_quantization_config_is_a_one_line_error(tmp_path):
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cfg = json.loads((root / "models" / "hf" / "openai--gpt-oss-120b.config.json").read_text())
    for bad in (0, {"quant_method": 4}):
        cfg["quantization_config"] = bad
        path = tmp_path / "config.json"
        path.write_text(json.dumps(cfg))
        out = subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", "point", "--model", str(path),
                              "--hardware", "b200-hgx", "--strategy", "tp", "--batch", "1", "--context", "1024"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "quantization_config" in out.stderr, out.stderr


def test_a_sliding_window_layer_runs_the_measured_windowed_kernel():
    """h200_sxm/vllm/gqa_decode_attention.csv.gz, vllm_flash_attn_fa3, BF16 cache, 8 query heads, 1 KV head,
    head_dim 64, batch 32: window_size 128 at step 4095 takes 16.1 us, while window_size 0 at step 127 takes
    10.7 us. gpt-oss's sliding layers (window 128, vLLM on Hopper) are priced at the first, not the second."""
    k = kernels_for(load_hardware("h200-hgx"), backend="vllm")
    windowed = float(k.gqa_attention_ms(np.array([32.0]), 8, 1, 64, np.array([4095.0]), "bf16", "bf16", window=128)[0])
    over_window = float(k.gqa_attention_ms(np.array([32.0]), 8, 1, 64, np.array([127.0]), "bf16", "bf16")[0])
    assert windowed * 1e3 == pytest.approx(16.1, rel=0.06)
    assert over_window * 1e3 == pytest.approx(10.7, rel=0.06)
    # the roofline has no windowed kernel: a window caps the tokens read
    roof = kernels_for(load_hardware("h200-hgx"), calibration="none")
    assert float(roof.gqa_attention_ms(np.array([32.0]), 8, 1, 64, np.array([4095.0]), "bf16", "bf16", window=128)[0]) \
        == pytest.approx(float(roof.gqa_attention_ms(np.array([32.0]), 8, 1, 64, np.array([128.0]), "bf16", "bf16")[0]))
