"""Functional numpy reference of Helix attention (exact, float64 or float32).

Sources (tags as in shared/reference/helix_paper.md):
    [P]  Bhatia et al., "Helix Parallelism", arXiv 2507.07120v1, §2.1-2.3.
    [B]  TensorRT-LLM tech blog "Helix Parallelism: Scaling Multi-Million-Token Decoding".
    [K]  TensorRT-LLM cpp/tensorrt_llm/kernels/helixKernels.cu (LSE combine).

Dataflow of one attention layer on a KVP x TPA grid (GPU = (kvp_rank, tpa_rank)):
    1. the KV cache is split over KVP ranks in round-robin blocks of ``block_tokens``
       tokens ([P §2.3], [B]); every TPA rank of a KVP rank holds the KV heads its query
       heads need (ceil(Hkv/TPA) of them, [P §2.1.1]);
    2. every GPU runs attention of its Hq/TPA query heads over its local shard and keeps
       a locally normalised partial output O_i with softmax stats (m_i, l_i);
    3. All-to-All over the query-head axis inside each TPA group: each GPU splits its
       heads into KVP slices and sends slice j to KVP rank j ([P §2.2]);
    4. each GPU rescales and sums the KVP fragments it received (exact LSE combine,
       [B] step 3, [K]) and owns the exact output for Hq/(TPA*KVP) heads.

Tensor layouts (one decode query token per request):
    GQA:  q [B, Hq, dk], k [B, T, Hkv, dk], v [B, T, Hkv, dv]; query head h reads KV head
          h // (Hq // Hkv).
    MLA absorbed: q_latent [B, Hq, 512] (already multiplied through W_UK), q_rope
          [B, Hq, 64], latent cache c [B, T, 512], k_rope [B, T, 64]; one shared KV head;
          score = q_latent.c + q_rope.k_rope; value = c, so partial outputs are 512-wide.
All requests of a batch share one context length (shards differ in length across ranks).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

Shard = tuple[np.ndarray, np.ndarray]
"""Per-rank KV cache: (k, v) for GQA, (c, k_rope) for MLA; token axis is axis 1."""

Stats = tuple[np.ndarray, np.ndarray]
"""Softmax statistics (m, l): running max and sum of exp(s - m), per (request, head)."""


# --------------------------------------------------------------------------------------
# Round-robin KV placement ([P §2.3], [B])
# --------------------------------------------------------------------------------------


def round_robin_owner(token_index: ArrayLike, kvp: int, block_tokens: int) -> np.ndarray:
    """KVP rank that stores token ``token_index`` (0-based global position).

    Source: [P §2.3] (appends go to rank 0 for 16 tokens, then rank 1, ...) and [B]
    ("tokens 1-32 go to KVP rank 0, tokens 33-64 to KVP rank 1"; decode rule
    ``active = (decode_block_id % cp_size) == cp_rank``). Vectorised over token_index.
    """
    _check_positive(kvp=kvp, block_tokens=block_tokens)
    return (np.asarray(token_index) // block_tokens) % kvp


def shard_kv_round_robin(
    k: np.ndarray, v: np.ndarray, kvp: int, block_tokens: int
) -> list[Shard]:
    """Split a cache along the token axis (axis 1) into ``kvp`` separate per-rank copies.

    Blocks of ``block_tokens`` consecutive tokens go to ranks 0, 1, ..., kvp-1, 0, ...
    ([P §2.3]; [B] prefill->decode transfer, where the lowest-indexed ranks receive one
    extra block when the block count is not divisible by KVP). A rank may be empty.
    For MLA pass the latent cache as ``k`` and the rope keys as ``v``.
    """
    if k.shape[:2] != v.shape[:2]:
        raise ValueError(f"k and v disagree on [B, T]: {k.shape[:2]} vs {v.shape[:2]}")
    owner = round_robin_owner(np.arange(k.shape[1]), kvp, block_tokens)
    shards = []
    for rank in range(kvp):
        idx = np.flatnonzero(owner == rank)
        shards.append((k[:, idx].copy(), v[:, idx].copy()))
    return shards


def append_decode_token(
    shards: list[Shard],
    k_new: np.ndarray,
    v_new: np.ndarray,
    block_tokens: int,
    token_index: int | None = None,
) -> list[Shard]:
    """Append one decode token ([B, ...] per cache, no token axis) to its active rank.

    Rule ([B], with the global position as in [D]'s speculative-decoding form):
    ``decode_block_id = token_index // block_tokens``; the active rank is the one with
    ``decode_block_id % kvp == rank``; only it stores the token, the other ranks are
    unchanged. ``token_index`` is the global 0-based position of the new token
    (prefill length + decode step); by default it is the number of cached tokens, and
    if given it must equal that. Returns a new list (inputs are not modified).
    """
    kvp = len(shards)
    cached = sum(s[0].shape[1] for s in shards)
    if token_index is None:
        token_index = cached
    if token_index != cached:
        raise ValueError(f"token_index {token_index} != cached tokens {cached}")
    active = int(round_robin_owner(token_index, kvp, block_tokens))
    out = list(shards)
    k_old, v_old = shards[active]
    out[active] = (
        np.concatenate([k_old, k_new[:, None]], axis=1),
        np.concatenate([v_old, v_new[:, None]], axis=1),
    )
    return out


# --------------------------------------------------------------------------------------
# Head layout on the KVP x TPA grid ([P §2.1.1, §2.2])
# --------------------------------------------------------------------------------------


def query_heads_for_tpa_rank(tpa_rank: int, q_heads: int, tpa: int) -> tuple[int, int]:
    """Half-open range of query heads held by ``tpa_rank``: Hq/TPA contiguous heads."""
    if q_heads % tpa:
        raise ValueError(f"tpa={tpa} must divide q_heads={q_heads}")
    per = q_heads // tpa
    return tpa_rank * per, (tpa_rank + 1) * per


def kv_heads_for_tpa_rank(
    tpa_rank: int, q_heads: int, kv_heads: int, tpa: int
) -> tuple[int, int]:
    """Half-open range of KV heads that ``tpa_rank``'s query heads read.

    [P §2.1.1] gives each TPA rank ceil(Hkv/TPA) KV heads (TPA > Hkv replicates heads,
    e.g. MLA's single latent head). Raises if this layout would need more than that,
    which happens when neither of TPA, Hkv divides the other and groups straddle ranks.
    """
    if q_heads % kv_heads:
        raise ValueError(f"kv_heads={kv_heads} must divide q_heads={q_heads}")
    group = q_heads // kv_heads
    q_lo, q_hi = query_heads_for_tpa_rank(tpa_rank, q_heads, tpa)
    kv_lo, kv_hi = q_lo // group, (q_hi - 1) // group + 1
    if kv_hi - kv_lo > math.ceil(kv_heads / tpa):
        raise ValueError(
            f"tpa rank {tpa_rank} needs {kv_hi - kv_lo} KV heads, more than "
            f"ceil({kv_heads}/{tpa}); choose tpa dividing Hkv or a multiple of it"
        )
    return kv_lo, kv_hi


def validate_helix_layout(q_heads: int, kv_heads: int, kvp: int, tpa: int) -> None:
    """Check a (Hq, Hkv, KVP, TPA) layout is valid for the All-to-All of [P §2.2].

    Needs TPA | Hq, KVP | Hq/TPA (each GPU splits its heads into KVP equal slices) and a
    KV-head assignment of ceil(Hkv/TPA) heads per TPA rank.
    """
    _check_positive(q_heads=q_heads, kv_heads=kv_heads, kvp=kvp, tpa=tpa)
    if q_heads % tpa or (q_heads // tpa) % kvp:
        raise ValueError(f"need tpa | Hq and kvp | Hq/tpa (Hq={q_heads}, tpa={tpa}, kvp={kvp})")
    for t in range(tpa):
        kv_heads_for_tpa_rank(t, q_heads, kv_heads, tpa)


# --------------------------------------------------------------------------------------
# Local attention with softmax statistics (Flash-Decoding partials, [P §2.1.1], [B])
# --------------------------------------------------------------------------------------


def _partial_from_scores(scores: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Locally normalised softmax-weighted sum plus stats, from scores [B, H, T].

    ``values`` is [B, T, H, dv] (may be a broadcast view). Empty shard (T = 0):
    O = 0, m = -inf, l = 0, which the LSE combine gives zero weight.
    Source: [P §7]/[B] formulas m_i = max s, l_i = sum exp(s - m_i),
    O_i = (1/l_i) sum exp(s - m_i) v.
    """
    b, h, t = scores.shape
    dtype = np.result_type(scores, values)
    if t == 0:
        return (
            np.zeros((b, h, values.shape[-1]), dtype),
            np.full((b, h), -np.inf, dtype),
            np.zeros((b, h), dtype),
        )
    m = scores.max(axis=-1)
    p = np.exp(scores - m[..., None])
    l = p.sum(axis=-1)
    o = np.einsum("bht,bthd->bhd", p, values) / l[..., None]
    return o, m, l


def local_attention(
    q: np.ndarray,
    k_shard: np.ndarray,
    v_shard: np.ndarray,
    scale: float,
    kv_head_of_q: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GQA attention of q [B, H, dk] over one shard k [B, T_i, Hkv, dk], v [B, T_i, Hkv, dv].

    Returns (O_i [B, H, dv], m_i [B, H], l_i [B, H]) with O_i normalised by its local
    softmax sum ([P §2.1.1] step "local FlashAttention ... partial output plus LSE").
    ``kv_head_of_q[h]`` is the shard-local KV head of query head h; default
    h // (H // Hkv). Handles T_i = 0.
    """
    h, hkv = q.shape[1], k_shard.shape[2]
    if kv_head_of_q is None:
        if h % hkv:
            raise ValueError(f"Hkv={hkv} must divide H={h}")
        kv_head_of_q = np.arange(h) // (h // hkv)
    k_q = k_shard[:, :, kv_head_of_q]  # [B, T, H, dk]
    v_q = v_shard[:, :, kv_head_of_q]  # [B, T, H, dv]
    scores = np.einsum("bhd,bthd->bht", q, k_q) * scale
    return _partial_from_scores(scores, v_q)


def local_attention_mla(
    q_latent: np.ndarray,
    q_rope: np.ndarray,
    c_shard: np.ndarray,
    k_rope_shard: np.ndarray,
    scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MLA attention in absorbed form over one shard of the shared latent cache.

    score = (q_latent . c + q_rope . k_rope) * scale, value = c, so O_i is in the
    512-wide latent space, before the W_UV up-projection ([B]; [K] output shape
    [num_tokens, num_heads * kv_lora_rank]). Shapes: q_latent [B, H, dc],
    q_rope [B, H, dr], c [B, T_i, dc], k_rope [B, T_i, dr].
    """
    scores = (
        np.einsum("bhc,btc->bht", q_latent, c_shard)
        + np.einsum("bhr,btr->bht", q_rope, k_rope_shard)
    ) * scale
    b, t, dc = c_shard.shape
    values = np.broadcast_to(c_shard[:, :, None, :], (b, t, q_latent.shape[1], dc))
    return _partial_from_scores(scores, values)


# --------------------------------------------------------------------------------------
# All-to-All over query heads and exact LSE combine ([P §2.2], [B], [K])
# --------------------------------------------------------------------------------------


def all_to_all_query_heads(
    partials_per_rank: list[list[np.ndarray]],
    stats_per_rank: list[list[Stats]],
    kvp: int,
    tpa: int,
    act_bytes: float = 2,
    stat_bytes: float = 8,
) -> tuple[list[list[np.ndarray]], list[list[Stats]], np.ndarray]:
    """Explicit All-to-All over the query-head axis inside each TPA group ([P §2.2]).

    Input indexed [kvp_rank][tpa_rank]: partial O [B, Hq/TPA, dv] and stats (m, l)
    [B, Hq/TPA]. Source GPU (s, t) splits its heads into KVP slices of Hq/(TPA*KVP)
    and sends slice r to GPU (r, t) (slice s stays local).

    Returns, indexed [kvp_rank][tpa_rank] of the destination:
      * fragments [KVP, B, Hq/(TPA*KVP), dv], stacked by source KVP rank;
      * stats (m, l), each [KVP, B, Hq/(TPA*KVP)];
    and ``sent_bytes`` [KVP, TPA]: bytes each GPU sent to other GPUs, counting partials
    at ``act_bytes`` per element and stats at ``stat_bytes`` per (request, head)
    (two float32, [B]). Values are exchanged unrounded; only the byte count uses
    ``act_bytes``.
    """
    heads = partials_per_rank[0][0].shape[1]
    if heads % kvp:
        raise ValueError(f"kvp={kvp} must divide heads per TPA rank ({heads})")
    width = heads // kvp
    inbox: list[list[list]] = [[[None] * kvp for _ in range(tpa)] for _ in range(kvp)]
    sent_bytes = np.zeros((kvp, tpa))
    for src in range(kvp):
        for t in range(tpa):
            o, (m, l) = partials_per_rank[src][t], stats_per_rank[src][t]
            for dst in range(kvp):
                cut = slice(dst * width, (dst + 1) * width)
                message = (o[:, cut].copy(), m[:, cut].copy(), l[:, cut].copy())
                inbox[dst][t][src] = message
                if dst != src:
                    sent_bytes[src, t] += message[0].size * act_bytes + message[1].size * stat_bytes
    fragments = [[np.stack([msg[0] for msg in inbox[r][t]]) for t in range(tpa)] for r in range(kvp)]
    stats = [
        [(np.stack([msg[1] for msg in inbox[r][t]]), np.stack([msg[2] for msg in inbox[r][t]]))
         for t in range(tpa)]
        for r in range(kvp)
    ]
    return fragments, stats, sent_bytes


def lse_combine(fragments: np.ndarray, stats: Stats) -> np.ndarray:
    """Exact rescale-and-sum of KVP partial outputs ([P §2.1.1 step 5], [B], [K]).

    fragments [n, ..., dv] are locally normalised partials, stats = (m, l) with shape
    [n, ...]. With M = max_i m_i:
        w_i = l_i exp(m_i - M) / sum_k l_k exp(m_k - M),   O = sum_i w_i O_i
    (the float2 (max, sum) form of helixKernels.cu). Empty fragments (l = 0,
    m = -inf) get weight 0; if every fragment is empty the result is 0.
    """
    m, l = stats
    m_max = m.max(axis=0)
    m_max = np.where(np.isfinite(m_max), m_max, 0)
    scaled = l * np.exp(m - m_max)
    total = scaled.sum(axis=0)
    w = scaled / np.where(total > 0, total, 1)
    return (w[..., None] * fragments).sum(axis=0)


# --------------------------------------------------------------------------------------
# End-to-end Helix attention and single-device references
# --------------------------------------------------------------------------------------

LocalFn = Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _run_helix(
    local_fn: LocalFn, q_heads: int, kvp: int, tpa: int, act_bytes: float
) -> tuple[np.ndarray, np.ndarray]:
    """Local attention on every (kvp, tpa) GPU, All-to-All, combine, reassemble.

    ``local_fn(kvp_rank, tpa_rank, q_lo, q_hi)`` returns that GPU's (O, m, l).
    Returns (output [B, Hq, dv], sent_bytes [KVP, TPA]).
    """
    partials: list[list[np.ndarray]] = [[None] * tpa for _ in range(kvp)]
    stats: list[list[Stats]] = [[None] * tpa for _ in range(kvp)]
    for r in range(kvp):
        for t in range(tpa):
            q_lo, q_hi = query_heads_for_tpa_rank(t, q_heads, tpa)
            o, m, l = local_fn(r, t, q_lo, q_hi)
            partials[r][t], stats[r][t] = o, (m, l)
    fragments, frag_stats, sent = all_to_all_query_heads(partials, stats, kvp, tpa, act_bytes)
    b, _, dv = partials[0][0].shape
    out = np.empty((b, q_heads, dv), partials[0][0].dtype)
    width = q_heads // (tpa * kvp)
    for r in range(kvp):
        for t in range(tpa):
            lo = query_heads_for_tpa_rank(t, q_heads, tpa)[0] + r * width
            out[:, lo:lo + width] = lse_combine(fragments[r][t], frag_stats[r][t])
    return out, sent


def helix_attention_from_shards(
    q: np.ndarray,
    shards: list[Shard],
    tpa: int,
    scale: float | None = None,
    act_bytes: float = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Helix GQA attention over already-sharded KV (KVP = len(shards)).

    GPU (r, t) attends its Hq/TPA query heads over shard r restricted to the KV heads
    those query heads read. Returns (output [B, Hq, dv], sent_bytes [KVP, TPA]).
    """
    q_heads, dk = q.shape[1], q.shape[2]
    kv_heads = shards[0][0].shape[2]
    kvp = len(shards)
    validate_helix_layout(q_heads, kv_heads, kvp, tpa)
    scale = 1.0 / math.sqrt(dk) if scale is None else scale
    group = q_heads // kv_heads

    def local(r: int, t: int, q_lo: int, q_hi: int):
        kv_lo, kv_hi = kv_heads_for_tpa_rank(t, q_heads, kv_heads, tpa)
        k_r, v_r = shards[r]
        kv_index = np.arange(q_lo, q_hi) // group - kv_lo
        return local_attention(q[:, q_lo:q_hi], k_r[:, :, kv_lo:kv_hi], v_r[:, :, kv_lo:kv_hi],
                               scale, kv_index)

    return _run_helix(local, q_heads, kvp, tpa, act_bytes)


def helix_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    kvp: int,
    tpa: int,
    block_tokens: int = 16,
    scale: float | None = None,
    act_bytes: float = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """End-to-end Helix GQA attention: round-robin shard, local attention, A2A, combine.

    q [B, Hq, dk], k [B, T, Hkv, dk], v [B, T, Hkv, dv]. Default scale 1/sqrt(dk).
    Returns (output [B, Hq, dv], sent_bytes [KVP, TPA]).
    """
    shards = shard_kv_round_robin(k, v, kvp, block_tokens)
    return helix_attention_from_shards(q, shards, tpa, scale, act_bytes)


def helix_attention_mla_from_shards(
    q_latent: np.ndarray,
    q_rope: np.ndarray,
    shards: list[Shard],
    tpa: int,
    scale: float | None = None,
    act_bytes: float = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Helix MLA (absorbed) attention over shards of (c, k_rope), KVP = len(shards).

    The single latent head is replicated on every TPA rank (ceil(1/TPA) = 1).
    Returns (output [B, Hq, dc] in latent space, sent_bytes [KVP, TPA]).
    """
    q_heads = q_latent.shape[1]
    kvp = len(shards)
    validate_helix_layout(q_heads, 1, kvp, tpa)
    scale = _mla_default_scale(q_latent, q_rope) if scale is None else scale

    def local(r: int, t: int, q_lo: int, q_hi: int):
        c_r, rope_r = shards[r]
        return local_attention_mla(q_latent[:, q_lo:q_hi], q_rope[:, q_lo:q_hi], c_r, rope_r, scale)

    return _run_helix(local, q_heads, kvp, tpa, act_bytes)


def helix_attention_mla(
    q_latent: np.ndarray,
    q_rope: np.ndarray,
    c: np.ndarray,
    k_rope: np.ndarray,
    kvp: int,
    tpa: int,
    block_tokens: int = 16,
    scale: float | None = None,
    act_bytes: float = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """End-to-end Helix MLA attention in absorbed form (latent c [B, T, dc], k_rope [B, T, dr]).

    Default scale 1/sqrt(dc + dr) (DeepSeek itself uses 1/sqrt(qk_nope + qk_rope) = 1/sqrt(192);
    pass ``scale`` to match a model). Returns (output [B, Hq, dc], sent_bytes [KVP, TPA]).
    """
    shards = shard_kv_round_robin(c, k_rope, kvp, block_tokens)
    return helix_attention_mla_from_shards(q_latent, q_rope, shards, tpa, scale, act_bytes)


def reference_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float | None = None
) -> np.ndarray:
    """Single-device softmax GQA attention, softmax(q k^T * scale) v, for comparison.

    q [B, Hq, dk], k [B, T, Hkv, dk], v [B, T, Hkv, dv] -> [B, Hq, dv]; query head h
    reads KV head h // (Hq // Hkv). Written independently of the Helix path.
    """
    hq, hkv = q.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    qg = q.reshape(q.shape[0], hkv, hq // hkv, q.shape[-1])  # [B, Hkv, G, dk]
    scores = np.einsum("bkgd,btkd->bkgt", qg, k) * scale
    return _softmax_weighted(scores, np.einsum("btkd->bktd", v)).reshape(q.shape[0], hq, -1)


def reference_attention_mla(
    q_latent: np.ndarray,
    q_rope: np.ndarray,
    c: np.ndarray,
    k_rope: np.ndarray,
    scale: float | None = None,
) -> np.ndarray:
    """Single-device MLA attention in absorbed form -> [B, Hq, dc] (latent space)."""
    scale = _mla_default_scale(q_latent, q_rope) if scale is None else scale
    scores = (np.einsum("bhc,btc->bht", q_latent, c) + np.einsum("bhr,btr->bht", q_rope, k_rope)) * scale
    return _softmax_weighted(scores[:, None], c[:, None])[:, 0]


def _softmax_weighted(scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """softmax over the last axis of scores [..., G, T] applied to values [..., T, dv]."""
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p @ values


def _mla_default_scale(q_latent: np.ndarray, q_rope: np.ndarray) -> float:
    return 1.0 / math.sqrt(q_latent.shape[-1] + q_rope.shape[-1])


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
