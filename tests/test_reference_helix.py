"""Tests for the numpy Helix attention reference (helixsim/reference/helix_attention.py).

Expected values come from: single-device softmax attention (exactness of the LSE combine,
[P §2.1.1] "exact" / [B] "equals single-GPU attention"), the round-robin rules of
[P §2.3] and the TensorRT-LLM blog [B], and the All-to-All volume of [P §2.2] / [B].
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helixsim.reference.helix_attention import (
    all_to_all_query_heads,
    append_decode_token,
    helix_attention,
    helix_attention_from_shards,
    helix_attention_mla,
    kv_heads_for_tpa_rank,
    local_attention,
    lse_combine,
    reference_attention,
    reference_attention_mla,
    round_robin_owner,
    shard_kv_round_robin,
    validate_helix_layout,
)
from helixsim.cost.terms import helix_a2a_send_bytes

FAST = settings(max_examples=40, deadline=None)
TOL = {np.float64: 1e-10, np.float32: 1e-5}
KVPS = (1, 2, 3, 4, 8)
BLOCKS = (1, 3, 4, 16, 32)  # 16 = paper [P §2.3], 32 = TensorRT-LLM [B]


def _valid(q_heads: int, kv_heads: int, kvp: int, tpa: int) -> bool:
    try:
        validate_helix_layout(q_heads, kv_heads, kvp, tpa)
    except ValueError:
        return False
    return True


GQA_CONFIGS = [
    (hq, hkv, kvp, tpa)
    for hq in (8, 12, 16, 24)
    for hkv in (1, 2, 3, 4, 6, 8)
    if hq % hkv == 0
    for kvp in KVPS
    for tpa in (1, 2, 3, 4, 8)
    if _valid(hq, hkv, kvp, tpa)
]
MLA_CONFIGS = [
    (hq, kvp, tpa)
    for hq in (2, 4, 6, 8)
    for kvp in KVPS
    for tpa in (1, 2)
    if _valid(hq, 1, kvp, tpa)
]


def _gqa_inputs(rng, b, hq, hkv, t, dk, dv, dtype):
    q = rng.standard_normal((b, hq, dk))
    k = rng.standard_normal((b, t, hkv, dk))
    v = rng.standard_normal((b, t, hkv, dv))
    return [x.astype(dtype) for x in (q, k, v)]


def _mla_inputs(rng, b, hq, t, dtype, dc=512, dr=64):
    arrays = (
        rng.standard_normal((b, hq, dc)),
        rng.standard_normal((b, hq, dr)),
        rng.standard_normal((b, t, dc)),
        rng.standard_normal((b, t, dr)),
    )
    return [x.astype(dtype) for x in arrays]


def test_config_lists_cover_the_brief():
    kvps = {c[2] for c in GQA_CONFIGS}
    assert kvps == set(KVPS)
    assert {c[1] for c in GQA_CONFIGS} >= {1, 2, 4, 8}
    assert {c[3] for c in GQA_CONFIGS} >= {1, 2, 4, 8}
    assert {c[1] for c in MLA_CONFIGS} == set(KVPS)


# ----------------------------------------------------------------------------- placement


def test_round_robin_owner_paper_blocks_of_16():
    # [P §2.3]: rank 0 for 16 tokens, then rank 1 for the next 16, round robin.
    owners = round_robin_owner(np.arange(80), kvp=4, block_tokens=16)
    assert (owners[:16] == 0).all() and (owners[16:32] == 1).all()
    assert (owners[48:64] == 3).all() and (owners[64:80] == 0).all()


def test_round_robin_owner_trtllm_blocks_of_32():
    # [B]: "tokens 1-32 go to KVP rank 0, tokens 33-64 to KVP rank 1" (1-based).
    assert round_robin_owner(0, 2, 32) == 0 and round_robin_owner(31, 2, 32) == 0
    assert round_robin_owner(32, 2, 32) == 1 and round_robin_owner(63, 2, 32) == 1
    assert round_robin_owner(64, 2, 32) == 0


def test_prefill_lowest_ranks_get_the_extra_block():
    # [B]: "the lowest-indexed ranks receive one extra block when the total isn't divisible".
    k = np.zeros((1, 5 * 32, 1, 2))
    shards = shard_kv_round_robin(k, k, kvp=4, block_tokens=32)
    assert [s[0].shape[1] for s in shards] == [64, 32, 32, 32]


@FAST
@given(t=st.integers(0, 120), kvp=st.sampled_from(KVPS), bt=st.sampled_from(BLOCKS))
def test_shards_partition_the_tokens(t, kvp, bt):
    k = np.arange(t, dtype=float).reshape(1, t, 1, 1)
    v = -k
    shards = shard_kv_round_robin(k, v, kvp, bt)
    assert len(shards) == kvp
    got = np.sort(np.concatenate([s[0].ravel() for s in shards]))
    np.testing.assert_array_equal(got, np.arange(t))
    for rank, (ks, vs) in enumerate(shards):
        np.testing.assert_array_equal(vs, -ks)
        assert (round_robin_owner(ks.ravel().astype(int), kvp, bt) == rank).all()
        assert not np.shares_memory(ks, k)
    lengths = [s[0].shape[1] for s in shards]
    assert max(lengths) - min(lengths) <= bt


@FAST
@given(
    prefill=st.integers(0, 100),
    steps=st.integers(1, 80),
    kvp=st.sampled_from(KVPS),
    bt=st.sampled_from(BLOCKS),
)
def test_decode_appends_keep_ranks_within_one_block(prefill, steps, kvp, bt):
    # [P §2.3] / [B]: staggered appends keep KV growth even; imbalance <= one block.
    rng = np.random.default_rng(prefill * 1000 + steps)
    b, hkv, d = 2, 2, 4
    k = rng.standard_normal((b, prefill + steps, hkv, d))
    v = rng.standard_normal((b, prefill + steps, hkv, d))
    shards = shard_kv_round_robin(k[:, :prefill], v[:, :prefill], kvp, bt)
    for step in range(steps):
        pos = prefill + step
        before = [s[0].shape[1] for s in shards]
        shards = append_decode_token(shards, k[:, pos], v[:, pos], bt, token_index=pos)
        after = [s[0].shape[1] for s in shards]
        grown = [r for r in range(kvp) if after[r] != before[r]]
        assert grown == [int(round_robin_owner(pos, kvp, bt))]  # only the active rank writes
        assert max(after) - min(after) <= bt
    # Same placement as sharding the whole context at once.
    for (ka, va), (kb, vb) in zip(shards, shard_kv_round_robin(k, v, kvp, bt)):
        np.testing.assert_array_equal(ka, kb)
        np.testing.assert_array_equal(va, vb)
    # And attention over the incrementally built shards is still exact.
    q = rng.standard_normal((b, 24, d))  # 24 heads: every KVP in KVPS divides them
    out, _ = helix_attention_from_shards(q, shards, tpa=1)
    np.testing.assert_allclose(out, reference_attention(q, k, v), rtol=0, atol=1e-10)


def test_append_rejects_out_of_order_token():
    shards = shard_kv_round_robin(np.zeros((1, 5, 1, 2)), np.zeros((1, 5, 1, 2)), 2, 4)
    with pytest.raises(ValueError):
        append_decode_token(shards, np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), 4, token_index=7)


# ------------------------------------------------------------------------------- layout


def test_kv_heads_per_tpa_rank():
    # [P §2.1.1]: ceil(Hkv/TPA) KV heads per TPA rank.
    assert [kv_heads_for_tpa_rank(t, 8, 4, 2) for t in range(2)] == [(0, 2), (2, 4)]
    assert [kv_heads_for_tpa_rank(t, 8, 2, 4) for t in range(4)] == [(0, 1), (0, 1), (1, 2), (1, 2)]
    assert [kv_heads_for_tpa_rank(t, 12, 3, 2) for t in range(2)] == [(0, 2), (1, 3)]
    with pytest.raises(ValueError):
        kv_heads_for_tpa_rank(1, 30, 5, 3)  # needs 3 > ceil(5/3) heads


def test_layout_validation():
    validate_helix_layout(128, 1, 8, 1)  # DeepSeek-R1 MLA, TPA pinned to 1 [B]
    with pytest.raises(ValueError):
        validate_helix_layout(8, 2, 3, 1)  # 3 does not divide Hq/TPA
    with pytest.raises(ValueError):
        validate_helix_layout(8, 2, 1, 3)  # TPA does not divide Hq


# ---------------------------------------------------------------------- local + combine


def test_empty_shard_gives_neutral_partial():
    q = np.ones((2, 4, 8))
    k = np.zeros((2, 0, 2, 8))
    o, m, l = local_attention(q, k, np.zeros((2, 0, 2, 3)), 0.5)
    assert o.shape == (2, 4, 3) and (o == 0).all()
    assert np.isneginf(m).all() and (l == 0).all()


@FAST
@given(n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_lse_combine_matches_global_lse_form(n, seed):
    # [P §7] / [B] step 3: O = sum_i exp(LSE_i - LSE_global) O_i, LSE_i = m_i + ln l_i.
    rng = np.random.default_rng(seed)
    o = rng.standard_normal((n, 3, 2, 5))
    m = rng.standard_normal((n, 3, 2)) * 20
    l = rng.uniform(0.5, 50, (n, 3, 2))
    lse = m + np.log(l)
    lse_global = np.log(np.exp(lse).sum(axis=0))
    expected = (np.exp(lse - lse_global)[..., None] * o).sum(axis=0)
    np.testing.assert_allclose(lse_combine(o, (m, l)), expected, rtol=1e-12, atol=1e-12)
    perm = rng.permutation(n)
    np.testing.assert_allclose(lse_combine(o[perm], (m[perm], l[perm])), expected, atol=1e-12)


def test_lse_combine_ignores_empty_fragments():
    o = np.array([[[1.0, 2.0]], [[0.0, 0.0]]])
    m = np.array([[0.3], [-np.inf]])
    l = np.array([[2.0], [0.0]])
    np.testing.assert_array_equal(lse_combine(o, (m, l)), o[0])
    assert (lse_combine(o[1:], (m[1:], l[1:])) == 0).all()


def test_all_to_all_routes_head_slices():
    # [P §2.2]: GPU (s, t) sends head slice r of its Hq/TPA heads to GPU (r, t).
    kvp, tpa, b, heads, dv = 3, 2, 2, 6, 4
    partials = [[np.full((b, heads, dv), 10 * s + t) + np.arange(heads)[:, None] for t in range(tpa)]
                for s in range(kvp)]
    stats = [[(np.full((b, heads), float(s)), np.full((b, heads), float(t))) for t in range(tpa)]
             for s in range(kvp)]
    frags, fstats, sent = all_to_all_query_heads(partials, stats, kvp, tpa, act_bytes=2)
    w = heads // kvp
    for r in range(kvp):
        for t in range(tpa):
            assert frags[r][t].shape == (kvp, b, w, dv)
            for s in range(kvp):
                np.testing.assert_array_equal(frags[r][t][s], partials[s][t][:, r * w:(r + 1) * w])
                assert (fstats[r][t][0][s] == s).all() and (fstats[r][t][1][s] == t).all()
    # Each GPU sends kvp-1 slices of b*w*dv*2 bytes plus b*w*8 stat bytes.
    np.testing.assert_array_equal(sent, np.full((kvp, tpa), (kvp - 1) * (b * w * dv * 2 + b * w * 8)))


# ------------------------------------------------------------------ end-to-end exactness


@FAST
@given(
    cfg=st.sampled_from(GQA_CONFIGS),
    b=st.integers(1, 3),
    t=st.integers(1, 100),
    bt=st.sampled_from(BLOCKS),
    dims=st.sampled_from([(4, 4), (8, 8), (8, 4), (4, 6)]),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**32 - 1),
)
def test_helix_gqa_equals_single_device(cfg, b, t, bt, dims, dtype, seed):
    # Expected: single-device softmax attention ([P §2.1.1]: the combine is exact).
    hq, hkv, kvp, tpa = cfg
    q, k, v = _gqa_inputs(np.random.default_rng(seed), b, hq, hkv, t, *dims, dtype)
    out, sent = helix_attention(q, k, v, kvp, tpa, block_tokens=bt)
    assert out.dtype == dtype and out.shape == (b, hq, dims[1])
    expected = reference_attention(*(x.astype(np.float64) for x in (q, k, v)))
    assert np.max(np.abs(out - expected)) < TOL[dtype]
    assert sent.shape == (kvp, tpa)


def test_helix_gqa_with_empty_shards_explicit():
    # 20 tokens in blocks of 16 over KVP=8: ranks 2..7 hold nothing.
    rng = np.random.default_rng(0)
    q, k, v = _gqa_inputs(rng, 2, 16, 2, 20, 8, 8, np.float64)
    shards = shard_kv_round_robin(k, v, 8, 16)
    assert [s[0].shape[1] for s in shards] == [16, 4, 0, 0, 0, 0, 0, 0]
    out, _ = helix_attention(q, k, v, kvp=8, tpa=2, block_tokens=16)
    np.testing.assert_allclose(out, reference_attention(q, k, v), rtol=0, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    cfg=st.sampled_from(MLA_CONFIGS),
    b=st.integers(1, 2),
    t=st.integers(1, 70),
    bt=st.sampled_from(BLOCKS),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**32 - 1),
)
def test_helix_mla_absorbed_equals_single_device(cfg, b, t, bt, dtype, seed):
    # Expected: single-device absorbed MLA (latent 512 + rope 64, value = latent) [B].
    hq, kvp, tpa = cfg
    ql, qr, c, kr = _mla_inputs(np.random.default_rng(seed), b, hq, t, dtype)
    scale = 1 / math.sqrt(192)  # DeepSeek softmax scale (qk_nope 128 + rope 64)
    out, _ = helix_attention_mla(ql, qr, c, kr, kvp, tpa, block_tokens=bt, scale=scale)
    assert out.dtype == dtype and out.shape == (b, hq, 512)
    expected = reference_attention_mla(*(x.astype(np.float64) for x in (ql, qr, c, kr)), scale=scale)
    assert np.max(np.abs(out - expected)) < TOL[dtype]


# ---------------------------------------------------------------------- A2A byte volume


@FAST
@given(
    cfg=st.sampled_from(GQA_CONFIGS),
    b=st.integers(1, 4),
    t=st.integers(1, 40),
    dv=st.sampled_from([4, 6]),
    act_bytes=st.sampled_from([0.5, 1, 2, 4]),
)
def test_a2a_bytes_equal_closed_form(cfg, b, t, dv, act_bytes):
    # Expected: [P §2.2] / [B] volume, (kvp-1)/kvp * B * Hq/tpa * (dv*act + 8).
    hq, hkv, kvp, tpa = cfg
    q, k, v = _gqa_inputs(np.random.default_rng(t), b, hq, hkv, t, 4, dv, np.float64)
    _, sent = helix_attention(q, k, v, kvp, tpa, block_tokens=4, act_bytes=act_bytes)
    expected = helix_a2a_send_bytes(b, hq, tpa, kvp, dv, act_bytes)
    np.testing.assert_array_equal(sent, np.full((kvp, tpa), expected))


def test_a2a_bytes_deepseek_mla_example():
    # DSR1-like MLA: B=8, 128 heads, TPA=1, KVP=8, 512-wide fp16 latent partials [B]:
    # 7/8*8*128*512*2 + 7/8*8*128*8 = 917504 + 7168 bytes (hand arithmetic).
    rng = np.random.default_rng(1)
    ql, qr, c, kr = _mla_inputs(rng, 8, 128, 24, np.float64)
    out, sent = helix_attention_mla(ql, qr, c, kr, kvp=8, tpa=1, block_tokens=2, act_bytes=2)
    assert helix_a2a_send_bytes(8, 128, 1, 8, 512, 2) == 924672
    np.testing.assert_array_equal(sent, np.full((8, 1), 924672.0))
    np.testing.assert_allclose(out, reference_attention_mla(ql, qr, c, kr), rtol=0, atol=1e-10)


def test_a2a_bytes_zero_without_kvp_and_vectorised():
    assert helix_a2a_send_bytes(16, 64, 8, 1, 128, 2) == 0
    batch = np.array([1, 8, 32])[:, None]
    kvp = np.array([1, 2, 4, 8])[None, :]
    grid = helix_a2a_send_bytes(batch, 128, 1, kvp, 512, 0.5)
    assert grid.shape == (3, 4)
    for i, bb in enumerate([1, 8, 32]):
        for j, kk in enumerate([1, 2, 4, 8]):
            assert grid[i, j] == helix_a2a_send_bytes(bb, 128, 1, kk, 512, 0.5)
    # Independent of sequence length, linear in batch [P §2.1.2].
    np.testing.assert_allclose(grid[2], 32 * grid[0])
