"""Tests for helixsim.roofline against the hand-computed Figure 1 table (reference notes §3.8) and the blog's MLA example (§8)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helixsim.roofline import RooflineSetup, figure1_panels, kv_read_time_us, weight_read_time_us
from helixsim.specs.registry import load_hardware, load_model

P = RooflineSetup.paper_fig1()

# Paper Fig. 1: B=8, K=8, Hsz=128, S=1e6, 0.5 B (FP4), 8000 GB/s = 8e6 B/us.
# KV at TPA=1, KVP=1: 8 x 2 x 8 x 128 x 1e6 x 0.5 B = 8.192e9 B -> 8.192e9 / 8e6 = 1024.0 us.
# Each doubling of TPA (up to K=8) or KVP halves it: 512, 256, 128; TPA=8, KVP=8: 128 / 8 = 16.0 us.
#
# Weights at TPA=TPF=1 (H=16384, Q=128, K=8, F=65536):
#   2 H Q Hsz   = 2 x 16384 x 128 x 128 =   536,870,912
#   2 H K Hsz   = 2 x 16384 x   8 x 128 =    33,554,432
#   3 H F       = 3 x 16384 x 65536     = 3,221,225,472
#   sum 3,791,650,816 params x 0.5 B = 1,895,825,408 B / 8e6 B/us = 236.98 us
# TP=8 (TPA=TPF=8): 3,791,650,816 / 8 x 0.5 / 8e6 = 29.62 us.
# TP=16 (Q/16, ceil(8/16)=1 duplicated KV head, F/16):
#   2 x 16384 x 8 x 128 + 2 x 16384 x 1 x 128 + 3 x 16384 x 4096 = 33,554,432 + 4,194,304 + 201,326,592
#   = 239,075,328 x 0.5 / 8e6 = 14.94 us.
# TP=64: 8,388,608 + 4,194,304 + 50,331,648 = 62,914,560 x 0.5 / 8e6 = 3.93 us.
# Helix, TPA=8, TPF=64, KVP=8: 67,108,864 + 4,194,304 + 50,331,648 = 121,634,816 x 0.5 / 8e6 = 7.60 us.
PAPER_TABLE = [  # tpa, tpf, kvp, kv_us, weight_us
    (1, 1, 1, 1024.0, 237.0),
    (2, 2, 1, 512.0, 118.5),
    (4, 4, 1, 256.0, 59.2),
    (8, 8, 1, 128.0, 29.6),
    (16, 16, 1, 128.0, 14.9),   # plateau: TP > K
    (64, 64, 1, 128.0, 3.9),
    (8, 16, 2, 64.0, 17.0),
    (8, 32, 4, 32.0, 10.8),
    (8, 64, 8, 16.0, 7.6),
]


@pytest.mark.parametrize("tpa,tpf,kvp,kv_us,w_us", PAPER_TABLE)
def test_paper_table(tpa, tpf, kvp, kv_us, w_us):
    kv = kv_read_time_us(P.batch, P.kv_heads, P.head_dim, P.context, tpa, kvp, P.bytes_param, P.mem_bw_gbps)
    w = weight_read_time_us(P.hidden, P.q_heads, P.kv_heads, P.head_dim, P.ffn, tpa, tpf,
                            P.bytes_param, P.mem_bw_gbps)
    assert float(kv) == pytest.approx(kv_us, abs=0.1)
    assert float(w) == pytest.approx(w_us, abs=0.1)


def test_exact_values():
    assert float(kv_read_time_us(8, 8, 128, 1e6, 1, 1, 0.5, 8000.0)) == pytest.approx(1024.0, rel=1e-12)
    assert float(weight_read_time_us(16384, 128, 8, 128, 65536, 1, 1, 0.5, 8000.0)) == \
        pytest.approx(1_895_825_408 / 8e6, rel=1e-12)


def test_vs_tp_panel():
    vs_tp = figure1_panels(P)["vs_tp"].set_index("tp")
    assert list(vs_tp.index) == [1, 2, 4, 8, 16, 32, 64]
    assert list(vs_tp.tpa) == list(vs_tp.index) and list(vs_tp.tpf) == list(vs_tp.index)
    assert vs_tp.loc[1, "kv_read_us"] == pytest.approx(1024.0)
    np.testing.assert_allclose(vs_tp.loc[8:, "kv_read_us"], 128.0)
    assert vs_tp.loc[1, "weight_read_us"] == pytest.approx(237.0, abs=0.1)
    assert vs_tp.loc[8, "weight_read_us"] == pytest.approx(29.6, abs=0.1)
    assert vs_tp.loc[16, "weight_read_us"] == pytest.approx(14.9, abs=0.1)  # hand: 14.94 (see header)
    assert vs_tp.loc[64, "weight_read_us"] == pytest.approx(3.9, abs=0.1)   # hand: 3.93
    np.testing.assert_allclose(vs_tp.total_us, vs_tp.kv_read_us + vs_tp.weight_read_us)


def test_plateau_once_tp_exceeds_k():
    for k in (1, 2, 4, 8, 16):
        setup = dataclasses.replace(P, kv_heads=k)
        vs_tp = figure1_panels(setup)["vs_tp"]
        kv = vs_tp.kv_read_us.to_numpy()
        tp = vs_tp.tp.to_numpy()
        assert np.all(kv[tp >= k] == kv[tp == k][0])          # flat at and beyond K
        assert np.all(np.diff(kv[tp <= k]) < 0)               # falls before K
        assert np.all(np.diff(vs_tp.weight_read_us) < 0)      # weights keep shrinking


def test_vs_kvp_panel_and_halving():
    vs_kvp = figure1_panels(P)["vs_kvp"].set_index("kvp")
    assert (vs_kvp.tpa == 8).all() and list(vs_kvp.tpf) == [8 * k for k in vs_kvp.index]
    assert vs_kvp.loc[8, "kv_read_us"] == pytest.approx(16.0)
    kv = vs_kvp.kv_read_us.to_numpy()
    np.testing.assert_allclose(kv[1:] / kv[:-1], 0.5)
    # Property on random inputs: doubling KVP halves the KV read exactly.
    rng = np.random.default_rng(0)
    b, k, tpa = rng.integers(1, 64, 50), rng.integers(1, 16, 50), rng.integers(1, 32, 50)
    s, kvp = rng.uniform(1e3, 1e7, 50), rng.integers(1, 64, 50)
    one = kv_read_time_us(b, k, 128, s, tpa, kvp, 0.5, 8000.0)
    two = kv_read_time_us(b, k, 128, s, tpa, 2 * kvp, 0.5, 8000.0)
    np.testing.assert_allclose(two, one / 2)


def test_vs_context_linear():
    vs_s = figure1_panels(P)["vs_context"]
    assert vs_s.context.min() == 2 ** 14 and vs_s.context.max() == 2 ** 22
    np.testing.assert_allclose(vs_s.kv_read_us / vs_s.context, vs_s.kv_read_us.iloc[0] / 2 ** 14)
    assert vs_s.weight_read_us.nunique() == 1
    # §3.8: at S = 2^20 the KV column is 1.049 x the S = 1e6 value (TPA=8: 128 us -> 134.2 us).
    at_2_20 = vs_s.set_index("context").loc[2 ** 20, "kv_read_us"]
    assert at_2_20 == pytest.approx(128.0 * 1.048576)


def test_blog_mla():
    # Blog: B=8, MLA latent 576 read once, FP8 (1 B), S=1e6, 8e6 B/us:
    # 8 x 576 x 1e6 x 1 B = 4.608e9 B / 8e6 B/us = 576 us; KVP=8: 72 us; KVP=64: 9 us.
    blog = RooflineSetup.blog_fig1()
    assert (blog.kv_heads, blog.head_dim, blog.kv_factor, blog.bytes_param, blog.hidden) == (1, 576, 1, 1.0, 7168)
    vs_kvp = figure1_panels(blog)["vs_kvp"].set_index("kvp")
    assert vs_kvp.loc[1, "kv_read_us"] == pytest.approx(576.0)
    assert vs_kvp.loc[8, "kv_read_us"] == pytest.approx(72.0)
    assert vs_kvp.loc[64, "kv_read_us"] == pytest.approx(9.0)
    assert (vs_kvp.tpa == 1).all()
    # TP > K = 1 duplicates the latent: KV read pinned at its single-GPU value ([B]).
    np.testing.assert_allclose(figure1_panels(blog)["vs_tp"].kv_read_us, 576.0)
    # The paper's factor 2 applied literally would double it.
    assert float(kv_read_time_us(8, 1, 576, 1e6, 1, 1, 1.0, 8000.0, kv_factor=2)) == pytest.approx(1152.0)


def test_from_model():
    hw = load_hardware("gb200-nvl72")
    llama = RooflineSetup.from_model(load_model("llama-3.1-405b"), hw, batch=8, context=1e6, bytes_param=0.5)
    assert (llama.q_heads, llama.kv_heads, llama.head_dim, llama.kv_factor) == (128, 8, 128, 2)
    assert llama.weight_head_dim == pytest.approx(128.0)  # bias-free GQA: the true head size
    assert llama.mem_bw_gbps == hw.hbm_bandwidth_gbps
    vs_tp = figure1_panels(llama)["vs_tp"].set_index("tp")
    # Same attention shapes as Fig. 1, so the same KV read (scaled by bandwidth).
    assert vs_tp.loc[1, "kv_read_us"] == pytest.approx(1024.0 * 8000.0 / hw.hbm_bandwidth_gbps)

    dsr1 = load_model("deepseek-r1")
    mla = RooflineSetup.from_model(dsr1, hw, batch=8, context=1e6, bytes_param=1.0)
    assert (mla.kv_heads, mla.head_dim, mla.kv_factor) == (1, 576, 1)
    # Weight term at TPA=1 reproduces the model's attention parameter count.
    w = weight_read_time_us(mla.hidden, mla.q_heads, mla.kv_heads, mla.weight_head_dim, 0, 1, 1, 1.0, 1e-3)
    assert float(w) == pytest.approx(sum(dsr1.attention_params().values()), rel=1e-9)
    kv = figure1_panels(mla)["vs_kvp"].set_index("kvp").kv_read_us
    assert kv.loc[1] == pytest.approx(576.0 * 8000.0 / hw.hbm_bandwidth_gbps)


def test_vectorised_broadcast():
    tpa = np.array([1, 2, 4, 8, 16])
    out = kv_read_time_us(8, 8, 128, 1e6, tpa[:, None], np.array([1, 2])[None, :], 0.5, 8000.0)
    assert out.shape == (5, 2)
    np.testing.assert_allclose(out[:, 0], [1024, 512, 256, 128, 128])
