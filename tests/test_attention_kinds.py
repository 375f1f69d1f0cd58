"""Attention kinds beyond dense softmax: DSA (DeepSeek-V3.2) and gated delta-net hybrids (Qwen3.5).

The DSA and gated delta-net laws are fitted on measured kernel rows shipped in
hardware/calibration/<hw>/; their held-out checks fit on four fifths and predict the fifth.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from helixsim.api import kernels_for
from helixsim.calibration.fit import builtin_calibration_path
from helixsim.cost import attention_kinds as ak
from helixsim.cost.memory import memory_per_gpu
from helixsim.cost.step import decode_step
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware, load_model

PREC = Precision(weights="fp4", kv_cache="fp8")


def _helix(kvp, tpa, tpf):
    return LayoutArrays.from_layout(Layout("helix", kvp=kvp, tpa=tpa, tpf=tpf, ep=1))


@pytest.fixture(scope="module")
def gb200():
    return kernels_for(load_hardware("gb200-nvl72"))


# ------------------------------------------------------------------ DSA

@pytest.mark.parametrize("ideal", [False, True])
@pytest.mark.parametrize("kvp", [1, 8, 32])
def test_dsa_attention_grows_with_context_only_through_the_indexer(gb200, ideal, kvp):
    """At fixed top-k (S > k), attention(S2) - attention(S1) equals the indexer's difference alone."""
    k = kernels_for(load_hardware("gb200-nvl72"), ideal=ideal) if ideal else gb200
    m = load_model("deepseek-v3.2")
    a = _helix(kvp, 1, kvp)
    ctx = np.array([16_384, 131_072, 1_000_000, 4_000_000])
    attn = decode_step(k, m, a, np.array([8]), ctx, PREC)["attention"]
    law = ak.indexer_law(k, m, PREC)
    if ideal:
        assert law is None
        idx = ak.dsa_indexer_roofline_ms(k, 8, -(-ctx // kvp), m)
    else:
        idx = law.indexer_ms(8, -(-ctx // kvp))
    per_layer = attn / m.full_attention_layers
    assert np.all(np.diff(per_layer) > 0)
    np.testing.assert_allclose(np.diff(per_layer), np.diff(idx), rtol=1e-9)


def test_dsa_sparse_mla_reads_topk_spread_over_ranks():
    """S > k: the busiest of KVP ranks reads about k/KVP selected tokens (hand values of the Gaussian rule)."""
    sel = ak.dsa_selected_tokens_per_rank(np.array([1_000_000]), np.array([1, 8, 64]), 2048)
    # kvp 1: all 2048; kvp 8: 256 + sqrt(2 x 256 x ln 8) = 256 + 32.6 -> 289; kvp 64: 32 + sqrt(64 ln 64) = 48.6 -> 49
    assert sel.tolist() == [2048, 289, 49]
    assert ak.dsa_selected_tokens_per_rank(1000, 8, 2048) == 125           # dense path: every held token


def test_dsa_topk_merge_priced_only_with_kvp(gb200):
    m = load_model("deepseek-v3.2")
    assert ak.dsa_topk_merge_ms(gb200, m, 8, 1, 1_000_000) == 0.0
    # 8 ranks x 8 requests x 2048 scores x 4 B = 524,288 B gathered
    assert ak.dsa_topk_merge_gather_bytes(8, 1_000_000, 8, 2048) == 8 * 8 * 2048 * 4
    assert ak.dsa_topk_merge_ms(gb200, m, 8, 8, 1_000_000) > 0


@pytest.mark.parametrize("hw", ["gb200-nvl72", "gb300-nvl72"])
def test_dsa_module_matches_held_out_fifth(hw):
    """Fit on four fifths of the measured DSA module rows, predict the fifth: median error under 10 %."""
    k = kernels_for(load_hardware(hw))
    m = load_model("deepseek-v3.2")
    rows = ak.read_dsa_rows(builtin_calibration_path(hw) / "dsa_generation_module")
    err, test = ak.heldout_dsa_errors(k, m, rows[rows["kv_cache_dtype"] == "fp8"])
    assert len(test) > 400 and np.median(err) < 0.10     # ~2,200 fp8 rows on GB200 and GB300, a fifth held out
    law = ak.fit_indexer_law(k, m, rows[rows["kv_cache_dtype"] == "fp8"], hw)
    assert law.beta_ms > 0 and law.alpha_ms > 0


def test_dsa_kv_memory_includes_index_keys():
    """KV per request, one GPU, ideal byte widths: 61 layers x ceil(S/KVP) x (576 FP8 latent + 132 B index key)."""
    k = kernels_for(load_hardware("gb200-nvl72"), ideal=True)
    m = load_model("deepseek-v3.2")
    a = _helix(8, 1, 8)
    mem = memory_per_gpu(k, m, a, np.array([1]), np.array([1_000_000]), PREC)
    assert mem.kv_bytes[0] == pytest.approx(61 * 125_000 * (576 + 132))


# ------------------------------------------------------------------ hybrid linear attention

def _with_full_layers(m, n_full):
    la = dataclasses.replace(m.linear_attention, layers=m.num_layers - n_full)
    return dataclasses.replace(m, linear_attention=la)


@pytest.mark.parametrize("kvp,tpa", [(1, 2), (8, 2), (32, 1)])
def test_hybrid_kv_and_attention_scale_with_full_attention_layers_only(gb200, kvp, tpa):
    """Qwen3.5-style hybrid: what grows with the context (KV memory, attention time) is proportional to
    the number of full-attention layers; the linear layers add a context-independent part."""
    base = load_model("qwen3.5-397b-a17b")
    a = _helix(kvp, tpa, kvp * tpa)
    ctx = np.array([131_072, 1_000_000])
    growth = {}
    for n_full in (15, 30, 60):
        m = _with_full_layers(base, n_full) if n_full < 60 else dataclasses.replace(base, linear_attention=None)
        attn = decode_step(gb200, m, a, np.array([4]), ctx, PREC)["attention"]
        kv = memory_per_gpu(gb200, m, a, np.array([4]), ctx, PREC).kv_bytes
        growth[n_full] = (attn[1] - attn[0], kv[1] - kv[0])
    for n_full in (30, 60):
        assert growth[n_full][0] == pytest.approx(growth[15][0] * n_full / 15, rel=1e-9)
        assert growth[n_full][1] == pytest.approx(growth[15][1] * n_full / 15, rel=1e-9)


def test_linear_state_memory_by_hand():
    """Qwen3.5: 45 linear layers x (64 heads x 128 x 128 fp32 + 12,288 conv channels x 3 x 2 B), split over
    TP = KVP x TPA = 16 (4 value heads, 1 key head per GPU)."""
    k = kernels_for(load_hardware("gb200-nvl72"), ideal=True)
    m = load_model("qwen3.5-397b-a17b")
    a = _helix(8, 2, 16)
    per_gpu = 45 * (4 * 128 * 128 * 4 + (2 * 128 + 4 * 128) * 3 * 2)
    kv_full = 15 * -(-1000 // 8) * 2 * 1 * 256 * 1.0           # 15 layers x 125 tokens x K,V of one head x FP8
    mem = memory_per_gpu(k, m, a, np.array([1]), np.array([1000]), PREC)
    assert mem.kv_bytes[0] == pytest.approx(per_gpu + kv_full)


@pytest.mark.parametrize("hw", ["gb200-nvl72", "gb300-nvl72", "b200-hgx", "h200-hgx"])
def test_gdn_law_held_out(hw):
    """floor + bytes / bandwidth on four fifths of the decode gdn rows predicts the fifth within 12 % median."""
    rows = pd.read_csv(builtin_calibration_path(hw) / "gdn" / "generation.csv.gz")
    assert np.median(ak.heldout_gdn_errors(rows)) < 0.12


def test_gdn_law_bytes_by_hand():
    """One recurrence row of Qwen3.5-397B's shape at batch 8: 2 x 8 x 64 x 128 x 128 x 4 B read and written."""
    unit = ak.LinearLaw(0.0, 1.0, 0.0, 1.0, "bytes")
    row = pd.DataFrame({"kernel_source": ["fused_recurrent_gated_delta_rule", "causal_conv1d_update"],
                        "batch_size": [8, 8], "num_v_heads": [64, 64], "head_k_dim": [128, 128],
                        "head_v_dim": [128, 128], "num_k_heads": [16, 16], "d_conv": [4, 4]})
    assert ak.predict_gdn_rows(unit, row).tolist() == [2 * 8 * 64 * 128 * 128 * 4, 4 * 8 * (2 * 16 * 128 + 64 * 128) * 4]
