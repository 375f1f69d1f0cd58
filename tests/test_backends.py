"""Serving frameworks (--backend): each framework's own measured kernels, TensorRT-LLM's where it has none."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helixsim.api import kernels_for, simulate_point
from helixsim.backends import BACKENDS, BackendKernels, default_kv_cache
from helixsim.calibration.fit import builtin_calibration_path
from helixsim.layout import Layout
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware
from helixsim.validation import row_config

LLAMA = ["point", "--model", "llama-3.1-70b", "--hardware", "b200-hgx", "--strategy", "tp", "--tpa", "4",
         "--tpf", "4", "--batch", "16", "--context", "4000", "--weights", "fp8", "--json"]


def helixsim(*args):
    return subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", *args],
                          capture_output=True, text=True, timeout=120)


def test_every_builtin_system_ships_sglang_and_vllm_tables():
    for hw in ("gb200-nvl72", "gb300-nvl72", "b200-hgx", "h200-hgx", "h100-hgx"):
        root = builtin_calibration_path(hw)
        for backend in ("sglang", "vllm"):
            assert (root / backend / "calibration.json").is_file(), (hw, backend)


def test_vllm_gemm_is_priced_from_vllms_measured_table():
    """At a knot of the fitted vLLM BF16 GEMM table the model returns that table's stored latency
    (the fit of vLLM's measured torch.nn.functional.linear kernel), not TensorRT-LLM's."""
    hw = load_hardware("b200-hgx")
    k = kernels_for(hw, backend="vllm")
    assert isinstance(k, BackendKernels)
    table = pd.read_csv(builtin_calibration_path("b200-hgx") / "vllm" / "gemm" / "bfloat16.csv")
    row = table[(table["n"] == 8192) & (table["k"] == 8192)].iloc[0]
    stored_us = float(row["m=64"])
    got_ms = float(k.gemm_ms(np.array([64.0]), 8192, 8192, "bf16")[0])
    assert got_ms * 1e3 == pytest.approx(stored_us, rel=2e-3)   # tables keep 3 significant digits
    trt = kernels_for(hw)
    assert float(trt.gemm_ms(np.array([64.0]), 8192, 8192, "bf16")[0]) != pytest.approx(got_ms, rel=1e-3)


def test_point_says_which_framework_priced_each_op():
    out = helixsim(*LLAMA, "--backend", "vllm")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["backend"]["name"] == "vllm"
    km = data["backend"]["kernel_model"]
    assert km["qkv_proj"]["gemm"] == "vllm"
    assert km["attention"]["gqa_decode_attention"] == "vllm"
    assert km["attn_comm"]["allreduce_custom"] == "vllm"
    # vLLM measured MLA only as whole modules: DeepSeek's MLA decode attention falls back, and says so
    r = simulate_point("deepseek-r1", "b200-hgx", Layout("tp", tpa=8, tpf=8), batch=8, context=4000,
                       precision=Precision(weights="fp8", kv_cache="bf16"), backend="vllm")
    assert r.backend["kernel_model"]["attention"]["mla_decode_attention"] == "trtllm (fallback)"
    assert r.backend["kernel_model"]["ffn"]["moe"] == "vllm"


def test_kv_cache_default_follows_the_framework():
    # vLLM and SGLang keep a BF16 cache for FP8 checkpoints unless told; TensorRT-LLM recipes use FP8
    assert default_kv_cache("vllm", "fp8") == "bf16"
    assert default_kv_cache("sglang", "fp4") == "bf16"
    assert default_kv_cache("trtllm", "fp8") == "fp8"
    assert default_kv_cache("trtllm", "bf16") == "bf16"
    vllm = json.loads(helixsim(*LLAMA, "--backend", "vllm").stdout)
    trt = json.loads(helixsim(*LLAMA).stdout)
    told = json.loads(helixsim(*LLAMA, "--backend", "vllm", "--kv-cache", "fp8").stdout)
    assert (vllm["precision"]["kv_cache"], trt["precision"]["kv_cache"], told["precision"]["kv_cache"]) == \
        ("bf16", "fp8", "fp8")
    # a BF16 cache holds twice the bytes: vLLM's attention reads more
    assert vllm["breakdown_ms"]["attention"] > told["breakdown_ms"]["attention"]


def test_validation_rows_use_their_backend_and_its_kv_default():
    row = pd.Series({"hf_model_path": "meta-llama/Llama-3.1-70B", "system": "b200_sxm", "precision": "fp8",
                     "tp": 4, "pp": 1, "attention_dp": 1, "moe_tp": None, "moe_ep": None, "decode_batch": 8,
                     "ctx_mid": 2000, "measured_tpot_ms": 10.0, "backend": "vllm"})
    assert row_config(row)[3].kv_cache == "bf16"
    assert row_config(row.drop("backend"))[3].kv_cache == "fp8"


@pytest.mark.parametrize("args", [("--backend", "tensorrt"), ])
def test_unknown_backend_is_one_line_exit_2(args):
    out = helixsim(*LLAMA, *args)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "backend" in out.stderr


def test_unknown_backend_in_a_sweep_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndescription: d\nmodels: [llama-3.1-70b]\nhardware: b200-hgx\ncontexts: [4000]\n"
                    "backend: tgi\n")
    out = helixsim("sweep", str(path), "--out", str(tmp_path / "o"))
    assert out.returncode == 2 and "backend" in out.stderr and out.stderr.count("\n") == 1


def test_backends_listed():
    assert BACKENDS == ("trtllm", "sglang", "vllm")
