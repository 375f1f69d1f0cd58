"""MTP speculative decoding: acceptance model and the verify/draft step."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helixsim.api import evaluate, kernels_for, simulate_point
from helixsim.cost.mtp import (DEEPSEEK_R1_ACCEPTANCE_LENGTH, DEFAULT_ACCEPTANCE, accepted_tokens_per_step,
                               rates_from_acceptance_length)
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware, load_model

PREC = Precision(weights="fp4", kv_cache="fp8", dense_weights="fp8")


def test_acceptance_lengths_of_the_published_table_are_reproduced():
    # TensorRT-LLM tech blog 1: DeepSeek-R1 accepts 1.92, 2.58, 2.82, 2.99, 3.01 tokens per step with 1..5 drafts
    for n, al in enumerate(DEEPSEEK_R1_ACCEPTANCE_LENGTH, start=1):
        assert accepted_tokens_per_step(n) == pytest.approx(al, abs=1e-3)
    assert accepted_tokens_per_step(0) == 1.0
    # hand: a1 = 0.92, a2 = 0.66 / 0.92
    assert DEFAULT_ACCEPTANCE[:2] == pytest.approx((0.92, 0.66 / 0.92), abs=1e-4)
    # positions beyond the given rates are never accepted
    assert accepted_tokens_per_step(8, (0.5,)) == pytest.approx(1.5)
    assert rates_from_acceptance_length([1.5, 1.75]) == (0.5, 0.5)


def test_verification_carries_the_tokens_and_reads_kv_once():
    """A step verifying 1 + N tokens of b requests prices every GEMM and the MoE like a batch of
    b (1 + N) tokens, while attention reads the b requests' KV once (roofline: bandwidth-bound)."""
    model, hw = load_model("deepseek-r1"), load_hardware("b200-hgx")
    k = kernels_for(hw, ideal=True)
    lay = LayoutArrays.from_layout(Layout("tp", tpa=8, tpf=8))
    spec = evaluate(model, hw, lay, 2, 100_000, PREC, kernels=k, mtp=3).iloc[0]
    wide = evaluate(model, hw, lay, 8, 100_000, PREC, kernels=k).iloc[0]
    plain = evaluate(model, hw, lay, 2, 100_000, PREC, kernels=k).iloc[0]
    for op in ("qkv_proj", "o_proj", "ffn", "ffn_comm", "lm_head"):
        assert spec[f"{op}_ms"] == pytest.approx(wide[f"{op}_ms"], rel=1e-12), op
    assert spec["attention_ms"] == pytest.approx(plain["attention_ms"], rel=0.05)
    assert wide["attention_ms"] > 3.5 * plain["attention_ms"]


def test_draft_term_is_n_mtp_forwards():
    model, hw = load_model("deepseek-r1"), load_hardware("b200-hgx")
    k = kernels_for(hw)
    lay = LayoutArrays.from_layout(Layout("tp", tpa=8, tpf=4, ep=2))
    rows = evaluate(model, hw, lay, np.array([1, 1, 1]), 2048, PREC, kernels=k, mtp=np.array([0, 1, 3]))
    assert rows["mtp_ms"].iloc[0] == 0.0
    assert rows["mtp_ms"].iloc[2] == pytest.approx(3 * rows["mtp_ms"].iloc[1], rel=1e-12)
    # one MTP forward is about one decoder layer of 61 (plus eh_proj and the LM head)
    step0 = rows["ttl_ms"].iloc[0]
    assert step0 / 61 < rows["mtp_ms"].iloc[1] < step0 / 61 * 3


def test_point_mtp_json():
    r = simulate_point("deepseek-r1", "b200-hgx", Layout("tp", tpa=8, tpf=4, ep=2), batch=1, context=2048,
                       precision=PREC, mtp=3)
    assert r.mtp["draft_tokens"] == 3 and len(r.mtp["acceptance_rates"]) == 3
    assert r.mtp["accepted_tokens_per_step"] == pytest.approx(2.82, abs=1e-3)
    assert r.tokens_per_s_user == pytest.approx(2.82 * 1000.0 / r.ttl_ms, rel=1e-3)
    assert r.tokens_per_s_user > 1000.0 / r.ttl_ms
    out = subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", "point", "--model",
                          "deepseek-r1", "--hardware", "b200-hgx", "--strategy", "tp", "--tpa", "8", "--tpf", "8",
                          "--batch", "4", "--context", "4096", "--mtp", "2", "--mtp-acceptance", "0.9,0.5",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mtp"]["accepted_tokens_per_step"] == pytest.approx(1 + 0.9 + 0.45)
    bad = subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", "point", "--model",
                          "deepseek-r1", "--hardware", "b200-hgx", "--strategy", "tp", "--tpa", "8", "--tpf", "8",
                          "--batch", "4", "--context", "4096", "--mtp", "2", "--mtp-acceptance", "1.5"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--mtp-acceptance" in bad.stderr
