"""Prefill / TTFT: hand-calculated golden case, growth with the prompt, context parallelism, CLI contract."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from helixsim.cli import main, run
from helixsim.cost.prefill import PREFILL_KEYS, attended_pairs, chunk_schedule
from helixsim.layout import Layout
from helixsim.precision import Precision
from helixsim.prefill import simulate_prefill
from helixsim.specs.registry import builtin_names, load_model

FP8 = Precision(weights="fp8", kv_cache="fp8")


def test_golden_llama70b_h200_ideal():
    """Hand calculation, textbook roofline (--ideal: H200 datasheet peaks, FP8 dense 1,979 TFLOP/s).

    Llama-3.1-70B, TP 8 (8 query heads, 1 KV head per GPU, head size 128, 80 layers), one prompt
    of 8,192 tokens in one pass:
    attention per layer = 2 x 8 heads x (8192 x 8193 / 2 pairs) x (128 + 128) = 33,558,528 x 4,096 = 1.374557e11 FLOP;
    x 80 layers = 1.099646e13 FLOP at 1.979e15 FLOP/s = 5.5566 ms (compute-bound: the Q/K/V/O
    bytes, 8192 x (8 + 1) x 256 x 1 B per layer, take microseconds).
    QKV GEMM per layer: [8192, 8192] x [8192, 1280] = 2 x 8192 x 1280 x 8192 = 1.71799e11 FLOP
    -> 86.81 us (its 165.7 MB of bytes at 4.8 TB/s take 34.5 us); x 80 = 6.9449 ms.
    """
    r = simulate_prefill("llama-3.1-70b", "h200-hgx", Layout("tp", tpa=8, tpf=8), isl=8192, precision=FP8,
                         ideal=True)
    assert r.breakdown_ms["attention"] == pytest.approx(5.5566, rel=1e-4)
    assert r.breakdown_ms["qkv_proj"] == pytest.approx(6.9449, rel=1e-4)
    assert r.ttft_ms == pytest.approx(sum(r.breakdown_ms.values()), rel=1e-12)


def test_attended_pairs_by_hand():
    assert attended_pairs(4, 0) == pytest.approx(1 + 2 + 3 + 4)
    assert attended_pairs(3, 5) == pytest.approx(6 + 7 + 8)
    assert attended_pairs(4, 0, window=2) == pytest.approx(1 + 2 + 2 + 2)
    assert attended_pairs(2, 10, window=4) == pytest.approx(4 + 4)


def test_chunk_schedule():
    new, prefix = chunk_schedule(np.array([10, 4]), 4)
    assert new.tolist() == [[4, 4, 2], [4, 0, 0]]
    assert prefix.tolist() == [[0, 4, 8], [0, 0, 0]]


@settings(max_examples=12, deadline=None)
@given(model=st.sampled_from(["deepseek-r1", "llama-3.1-70b", "qwen3-32b"]),
       isl=st.integers(min_value=48_000, max_value=200_000))
def test_ttft_superlinear_once_attention_dominates(model, isl):
    """Doubling a long prompt more than doubles TTFT (causal attention is quadratic in it)."""
    lay = Layout("tp", tpa=8, tpf=8)
    a = simulate_prefill(model, "gb200-nvl72", lay, isl, precision=FP8)
    b = simulate_prefill(model, "gb200-nvl72", lay, 2 * isl, precision=FP8)
    assert b.ttft_ms > 2.0 * a.ttft_ms
    assert b.breakdown_ms["attention"] > 3.0 * a.breakdown_ms["attention"]


def test_attention_beyond_measured_lengths_follows_flops():
    """Above the longest measured prompt the measured efficiency is held: time scales with causal FLOPs."""
    lay = Layout("tp", tpa=8, tpf=8)
    a = simulate_prefill("llama-3.1-70b", "h200-hgx", lay, 65_536, chunk=65_536, precision=FP8)
    b = simulate_prefill("llama-3.1-70b", "h200-hgx", lay, 131_072, chunk=131_072, precision=FP8)
    flops_ratio = attended_pairs(131_072, 0) / attended_pairs(65_536, 0)
    assert a.extrapolated and b.extrapolated
    assert b.breakdown_ms["attention"] / a.breakdown_ms["attention"] == pytest.approx(flops_ratio, rel=0.02)
    short = simulate_prefill("llama-3.1-70b", "h200-hgx", lay, 4096, precision=FP8)
    assert not short.extrapolated


def test_context_parallelism_shortens_long_prompts():
    lay = Layout("tp", tpa=8, tpf=8)
    one = simulate_prefill("deepseek-r1", "gb200-nvl72", lay, 262_144, precision=FP8)
    four = simulate_prefill("deepseek-r1", "gb200-nvl72", lay, 262_144, cp=4, precision=FP8)
    assert four.n_gpus == 4 * one.n_gpus
    assert one.breakdown_ms["cp_comm"] == 0.0 and four.breakdown_ms["cp_comm"] > 0.0
    assert one.ttft_ms / 4.0 < four.ttft_ms < one.ttft_ms / 2.0
    assert four.memory_per_gpu_gb < one.memory_per_gpu_gb      # each rank holds a quarter of the KV


def test_cp_across_the_nvlink_domain_pays_the_nic():
    """8-GPU boards: cp 2 of a TP-8 layout spans two boards, so its ring runs on the scale-out NIC."""
    lay = Layout("tp", tpa=8, tpf=8)
    hgx = simulate_prefill("llama-3.1-70b", "h200-hgx", lay, 131_072, cp=2, chunk=131_072, precision=FP8)
    nvl = simulate_prefill("llama-3.1-70b", "gb200-nvl72", lay, 131_072, cp=2, chunk=131_072, precision=FP8)
    assert hgx.breakdown_ms["cp_comm"] > nvl.breakdown_ms["cp_comm"]


def test_smaller_chunks_are_not_faster():
    lay = Layout("tp", tpa=4, tpf=4)
    big = simulate_prefill("qwen3-32b", "b200-hgx", lay, 16_384, chunk=16_384, precision=FP8)
    small = simulate_prefill("qwen3-32b", "b200-hgx", lay, 16_384, chunk=1024, precision=FP8)
    assert small.ttft_ms > big.ttft_ms


@pytest.mark.parametrize("model", builtin_names("models"))
def test_cli_every_builtin_model_with_and_without_cp(model):
    spec = load_model(model)
    tp = 8 if spec.attention.num_q_heads % 8 == 0 else 1
    base = ["prefill", "--model", model, "--hardware", "gb200-nvl72", "--strategy", "tp", "--tpa", str(tp),
            "--tpf", str(tp), "--isl", "65536", "--json"]
    runner = CliRunner()
    outs = []
    for extra in ([], ["--cp", "2"]):
        res = runner.invoke(main, base + extra)
        assert res.exit_code == 0, res.output
        outs.append(json.loads(res.stdout))  # stdout only: a trained-window warning goes to stderr
    for data in outs:
        assert set(PREFILL_KEYS) == set(data["breakdown_ms"])
        assert data["ttft_ms"] == pytest.approx(sum(data["breakdown_ms"].values()), rel=1e-12)
        assert data["ttft_ms"] > 0 and data["memory_per_gpu_gb"] > 0
    assert outs[1]["ttft_ms"] < outs[0]["ttft_ms"] and outs[1]["n_gpus"] == 2 * outs[0]["n_gpus"]


@pytest.mark.parametrize("args, field", [
    (["--strategy", "helix", "--isl", "100"], "--strategy"),
    (["--strategy", "tp", "--isl", "0"], "--isl"),
    (["--strategy", "tp", "--isl", "100", "--cp", "0"], "--cp"),
    (["--strategy", "tp", "--isl", "100", "--kvp", "2"], "--kvp"),
    (["--strategy", "tp", "--isl", "100", "--tpa", "3", "--tpf", "3"], "--tpa"),
])
def test_cli_bad_input_one_line_exit_2(args, field, capsys):
    """Through the console entry point (helixsim.cli.run), which turns click's usage errors into one line."""
    with pytest.raises(SystemExit) as exc:
        run(["prefill", "--model", "qwen3-32b", "--hardware", "h100-hgx", *args])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    text = (out + err).strip()
    assert field in text and len(text.splitlines()) == 1 and text.startswith("error:")


def test_each_framework_prefills_with_its_own_measured_attention_kernel():
    """SGLang's grids come from its own kernels where it measured the family; vLLM measured no MLA
    prefill kernel, so its MLA prefill borrows TensorRT-LLM's grid; the kernel is the first of the
    framework's preferred sources that the table holds."""
    import pandas as pd

    from helixsim.calibration import prefill as cp

    trt, sgl, vll = (cp.builtin("b200-hgx", b) for b in (None, "sglang", "vllm"))

    def same(a, b, family):
        ga, gb = a.grids[family], b.grids[family]
        return ga.keys() == gb.keys() and all(ga[k].to_frame().equals(gb[k].to_frame()) for k in ga)

    assert not same(sgl, trt, "context_attention") and not same(sgl, trt, "context_mla")
    assert same(vll, trt, "context_mla") and not same(vll, trt, "context_attention")
    rows = pd.DataFrame({"kernel_source": ["triton", "fa3", "fa3"], "latency_ms": [1.0, 2.0, 3.0], "step": 0,
                         "window_size": 0, "attn_dtype": "bfloat16", "kv_cache_dtype": "bfloat16", "head_dim": 128,
                         "num_key_value_heads": 8, "batch_size": 1, "num_heads": 32, "isl": 1024})
    picked = cp.prepare_rows("context_attention", rows, ("trtllm_mha", "fa3", "triton"))
    assert picked["ms"].tolist() == [2.0, 3.0]


def test_prefill_backend_flag_prices_with_the_frameworks_kernels():
    """--backend picks the framework's measured kernels and its default KV format (vLLM: BF16); the
    JSON says which framework priced it; the same layout differs between frameworks."""
    out = {}
    for backend in ("trtllm", "vllm"):
        res = CliRunner().invoke(main, ["prefill", "--model", "llama-3.1-70b", "--hardware", "h200-hgx",
                                        "--strategy", "tp", "--tpa", "4", "--tpf", "4", "--isl", "8192",
                                        "--weights", "fp8", "--backend", backend, "--json"])
        assert res.exit_code == 0, res.output
        out[backend] = json.loads(res.output)
    assert out["vllm"]["backend"] == "vllm" and out["vllm"]["precision"]["kv_cache"] == "bf16"
    assert out["vllm"]["breakdown_ms"]["attention"] != out["trtllm"]["breakdown_ms"]["attention"]
    res = CliRunner().invoke(main, ["prefill", "--model", "llama-3.1-70b", "--hardware", "h200-hgx", "--strategy",
                                    "tp", "--isl", "1024", "--backend", "tensorrt"])
    assert res.exit_code == 2
