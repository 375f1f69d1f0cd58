"""Prefill (the context phase): the time to build a prompt's KV cache and emit its first token.

Op by op like :mod:`.step`, with every GEMM and MoE at m = the prompt tokens a GPU
processes, and causal prefill attention priced from the measured
``context_attention`` / ``context_mla`` kernels (:mod:`helixsim.calibration.prefill`).

Layouts: the decode layout model's ``tp`` and ``ep`` strategies (attention TP x DP,
FFN TP x EP, PP), times a **context-parallel** width ``cp``: the prompt is split
into cp sequence shards (load-balanced "zigzag" halves, so every shard does 1/cp of
the causal FLOPs), each on a full copy of the layout. Attention needs every
earlier token's K/V, exchanged as **ring attention with pass-KV**: the shards' K/V
travel around the ring while each rank computes on the block it holds, as in
Meta's context-parallel inference (Yang et al., "Context Parallelism for Scalable
Million-Token Inference", arXiv 2411.01783, pass-KV for full prefill) and
Megatron-Core's ring attention; TensorRT-LLM's and SGLang's context-parallel
prefill for MLA gather the (small, 576-wide) latent instead, which moves the
same bytes per rank. Priced as the bytes an all-gather of the layer's K/V moves,
at NVLink speed when the whole cp x layout fits the NVLink domain and at the
scale-out NIC's otherwise, exposed only where it exceeds the attention compute
it overlaps.

**Chunked prefill** (``chunk`` tokens per forward pass): chunk j attends to the
j x chunk tokens before it plus itself. Each chunk pays the GEMM weight reads
again, which is why small chunks are slow. With pipeline parallelism the chunks
stream through the stages: ``sum / pp + (pp - 1) / pp x largest chunk``.
"""

from __future__ import annotations

import numpy as np

from ..layout import LayoutArrays
from ..precision import Precision
from ..specs.model import ModelSpec
from . import step as st
from . import terms as t

PREFILL_KEYS: tuple[str, ...] = ("qkv_proj", "attention", "attn_comm", "cp_comm", "o_proj", "ffn", "ffn_comm",
                                 "lm_head", "pp_comm", "overhead")
ATTENTION_FAMILY = {True: "context_mla", False: "context_attention"}


def attention_dims(model: ModelSpec) -> tuple[int, int, int]:
    """(query/key width, value width, head size key of the measured tables) per head.

    MLA prefill runs un-absorbed (TensorRT-LLM, SGLang, vLLM): keys of nope + rope width, values of v_head_dim.
    """
    a = model.attention
    if a.is_mla:
        return a.qk_nope_head_dim + a.qk_rope_head_dim, a.v_head_dim, a.qk_nope_head_dim + a.qk_rope_head_dim
    return a.head_dim, a.head_dim, a.head_dim


def chunk_schedule(isl, chunk) -> tuple[np.ndarray, np.ndarray]:
    """(new tokens, prefix tokens) of each chunk: shape [configs, max chunks], zero-padded.

    isl and chunk broadcast over configurations; chunk j of a prompt holds
    min(chunk, isl - j x chunk) tokens after a prefix of j x chunk.
    """
    isl = np.atleast_1d(np.asarray(isl, np.int64))
    chunk = np.broadcast_to(np.atleast_1d(np.asarray(chunk, np.int64)), isl.shape)
    n = t.cdiv(isl, chunk)
    j = np.arange(int(n.max()))[None, :]
    prefix = j * chunk[:, None]
    new = np.clip(isl[:, None] - prefix, 0, chunk[:, None])
    return new, np.where(new > 0, prefix, 0)


# ------------------------------------------------------------------ attention

def attended_pairs(new_tokens, prefix, window: int | None = None) -> np.ndarray:
    """(query, key) pairs of causal attention of ``new_tokens`` queries after ``prefix`` cached keys.

    Query i (1-based) sees prefix + i keys, at most ``window`` of them in a sliding-window
    layer: sum over x = prefix+1 .. prefix+new of min(x, window); without a window
    new x (prefix + (new + 1) / 2).
    """
    c, p = np.asarray(new_tokens, float), np.asarray(prefix, float)
    if window is None:
        return c * (p + (c + 1.0) / 2.0)
    u = np.clip(float(window), p, p + c)          # last x still below the window
    return (u * (u + 1.0) - p * (p + 1.0)) / 2.0 + (p + c - u) * window


def context_attention_ms(k, pcal, model: ModelSpec, requests, q_heads, kv_heads, new_tokens, prefix,
                         prec: Precision, cp=1, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Causal prefill attention of one layer on one GPU, and whether it left the measured lengths.

    ``requests`` prompts, each adding ``new_tokens`` after ``prefix`` cached ones; this
    GPU holds ``q_heads`` query heads and does 1/cp of the causal FLOPs (balanced
    shards). Time = roofline / efficiency, the efficiency read from the measured grid
    at isl = prefix + new (the key length each query tile loops over) and work =
    requests x heads; beyond the longest measured isl it is held (time grows with the
    FLOPs: quadratic in the prompt) and flagged. Without a grid (--ideal, FP4 KV with
    no data, no calibration): FLOPs at the peak x the attention-compute efficiency.
    A sliding-window layer (``window``) computes only the (query, key) pairs inside the window.
    """
    from ..calibration.prefill import attention_io_bytes, roofline_ms

    qk, v, hd = attention_dims(model)
    cp = np.asarray(cp, float)
    pairs = attended_pairs(new_tokens, prefix, window)
    flops = 2.0 * np.asarray(requests, float) * np.asarray(q_heads, float) * pairs * (qk + v) / cp
    nbytes = attention_io_bytes(requests, q_heads, kv_heads, np.asarray(new_tokens, float) / cp, qk, v,
                                k.elem_bytes(prec.kv_cache))
    kv_len = np.asarray(prefix, float) + np.asarray(new_tokens, float)
    found = None if (pcal is None or k.eff.ideal) else pcal.grid(
        ATTENTION_FAMILY[model.attention.is_mla], prec.attention_math_dtype, prec.kv_cache, hd)
    if found is None:
        peak = k.hw.dense_tflops.for_dtype(k.math_dtype(prec.attention_math_dtype)) * k.eff.attention_compute
        ms = roofline_ms(flops, nbytes, peak, k.hw.hbm_bandwidth_gbps * k.eff.hbm)
        extrapolated = np.broadcast_to(not k.eff.ideal, np.shape(ms))
    else:
        attn, grid = found
        peak = pcal.peaks["fp8_tflops" if attn == "fp8" else "bf16_tflops"]
        eff = grid.efficiency(kv_len, np.asarray(requests, float) * np.asarray(q_heads, float))
        ms = roofline_ms(flops, nbytes, peak, pcal.peaks["hbm_gbps"]) / eff
        extrapolated = kv_len > grid.max_isl
    live = np.asarray(new_tokens) > 0
    return np.where(live, ms + k.eff.kernel_floor_us * 1e-3, 0.0), live & extrapolated


def cp_exchange_bytes(model: ModelSpec, requests, kv_heads, kv_tokens, prec_kv_bytes: float) -> np.ndarray:
    """K/V bytes of one layer that one context-parallel rank's ring passes on: the keys and values of
    ``kv_tokens`` tokens of ``requests`` prompts for this GPU's KV heads (MLA: the 576-wide latent)."""
    a = model.attention
    per_token = (t.mla_kv_elements_per_token(a.kv_lora_rank, a.qk_rope_head_dim) if a.is_mla
                 else t.gqa_kv_elements_per_token(kv_heads, a.head_dim))
    return np.asarray(requests, float) * np.asarray(kv_tokens, float) * per_token * prec_kv_bytes


def cp_ring_ms(k, model: ModelSpec, requests, kv_heads, kv_tokens, cp, instance_gpus, prec: Precision,
               attention_ms: np.ndarray) -> np.ndarray:
    """Exposed time of one layer's ring pass-KV over cp ranks.

    Each rank receives the (cp - 1)/cp of the K/V it does not hold (all-gather volume)
    in cp - 1 hops of one latency each; the link is NVLink when the whole context-
    parallel instance (cp x layout GPUs) fits the NVLink domain, else the scale-out
    NIC. The ring overlaps the attention compute, so only the excess is exposed,
    plus one hop's latency that nothing hides.
    """
    cp = np.asarray(cp, float)
    total = cp_exchange_bytes(model, requests, kv_heads, kv_tokens, k.elem_bytes(prec.kv_cache))
    bw, extra_us = k.link(np.asarray(instance_gpus))
    hop_ms = (k.collective_latency_us("p2p") + extra_us) * 1e-3
    wire = t.transfer_ms(t.all_gather_bytes_on_wire(total, cp), bw) + (cp - 1.0) * hop_ms
    exposed = np.maximum(wire - attention_ms, 0.0) + hop_ms
    return np.where((cp > 1) & (total > 0), exposed, 0.0)


# ------------------------------------------------------------------ projections (un-absorbed MLA)

def mla_prefill_proj_ms(k, model: ModelSpec, tokens, q_heads, prec: Precision) -> np.ndarray:
    """MLA input projections at m = tokens: fused q_a/kv_a down-projection, q_b, and the kv_b
    up-projection of the latent into this GPU's heads' keys (nope part) and values (prefill does
    not absorb W_UK/W_UV, TensorRT-LLM and SGLang's context path)."""
    a, h, w = model.attention, model.hidden_size, prec.attention_weights_dtype
    return (k.gemm_ms(tokens, a.q_lora_rank + a.kv_lora_rank + a.qk_rope_head_dim, h, w)
            + k.gemm_ms(tokens, q_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim), a.q_lora_rank, w)
            + k.gemm_ms(tokens, q_heads * (a.qk_nope_head_dim + a.v_head_dim), a.kv_lora_rank, w))


def prefill_qkv_ms(k, model: ModelSpec, s: st.StepShapes, prec: Precision) -> np.ndarray:
    """Input projections at m = the attention GPU's tokens (GQA: the decode step's fused QKV GEMM)."""
    if model.attention.is_mla:
        return mla_prefill_proj_ms(k, model, s.attn_batch, s.q_heads, prec)
    return st.qkv_proj_ms(k, model, s, prec)


def prefill_o_proj_ms(k, model: ModelSpec, s: st.StepShapes, prec: Precision) -> np.ndarray:
    """Output projection [tokens, heads x v] x [heads x v, H] on this GPU's heads (no W_UV bmm in prefill)."""
    a = model.attention
    head_out = a.v_head_dim if a.is_mla else a.head_dim
    return k.gemm_ms(st.o_proj_batch(s), model.hidden_size, (a.num_q_heads // s.o_tp) * head_out,
                     prec.o_proj_weights_dtype)


# ------------------------------------------------------------------ composition

def prefill_time(k, pcal, model: ModelSpec, a: LayoutArrays, isl, requests, chunk, cp,
                 prec: Precision) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-op time (ms, all layers, all chunks) to prefill ``requests`` prompts of ``isl`` tokens
    together, and a flag per configuration where the attention left the measured lengths.

    Arrays broadcast over configurations (1-D). ``chunk`` >= isl means one pass.
    The first token comes out of the last chunk's LM head.
    """
    isl = np.atleast_1d(np.asarray(isl, np.int64))
    shape = np.broadcast(isl, a.kvp, np.asarray(requests), np.asarray(chunk), np.asarray(cp)).shape
    isl = np.broadcast_to(isl, shape)
    requests = np.broadcast_to(np.asarray(requests, np.int64), shape)
    cp = np.broadcast_to(np.asarray(cp, np.int64), shape)
    chunk = np.broadcast_to(np.minimum(np.asarray(chunk, np.int64), isl), shape)
    new, prefix = chunk_schedule(isl, chunk)                     # [configs, chunks]
    col = lambda x: np.asarray(x)[:, None] if np.ndim(x) else x  # noqa: E731 - configs down, chunks across
    lay = LayoutArrays(*(np.broadcast_to(getattr(a, f), shape)[:, None] for f in LayoutArrays.__dataclass_fields__))
    r, c = col(requests), col(cp)
    tokens = r * t.cdiv(new, c)                                  # tokens per CP rank in this chunk
    s = st.step_shapes(model, lay, tokens)
    s = st.StepShapes(**{**s.__dict__, "attn_batch": t.cdiv(r, lay.dp) * t.cdiv(new, c)})
    L, f = model.num_layers, s.layers_factor
    n_slide = model.attention.sliding_window_layers
    win = model.attention.sliding_window_tokens
    attn_req = t.cdiv(r, lay.dp)
    instance = lay.n_gpus * c
    attn_full, extra = context_attention_ms(k, pcal, model, attn_req, s.q_heads, s.kv_heads, new, prefix, prec, c)
    attn = (L - n_slide) * attn_full
    ring = (L - n_slide) * cp_ring_ms(k, model, attn_req, s.kv_heads, prefix + new, c, instance, prec, attn_full)
    if n_slide:
        attn_slide, _ = context_attention_ms(k, pcal, model, attn_req, s.q_heads, s.kv_heads, new, prefix, prec, c,
                                             window=win)
        attn = attn + n_slide * attn_slide
        ring = ring + n_slide * cp_ring_ms(k, model, attn_req, s.kv_heads, np.minimum(prefix + new, win), c,
                                           instance, prec, attn_slide)
    live = new > 0
    ffn = np.zeros(np.shape(tokens), float)
    ffn_comm = np.zeros(np.shape(tokens), float)
    if model.dense_layers:
        ffn = ffn + model.dense_layers * st.dense_ffn_ms(k, model, s, prec)
        ffn_comm = ffn_comm + model.dense_layers * st.dense_ffn_comm_ms(k, model, s, prec)
    if model.moe_layers:
        ffn = ffn + model.moe_layers * st.moe_ffn_ms(k, model, s, lay.tpf, lay.ep, prec)
        ffn_comm = ffn_comm + model.moe_layers * st.moe_comm_ms(k, model, s, lay.tpf, lay.ep, prec)
    per_chunk = {
        "qkv_proj": f * L * prefill_qkv_ms(k, model, s, prec),
        "attention": f * attn,
        "attn_comm": f * L * st.o_proj_allreduce_ms(k, model, s, prec),
        "cp_comm": f * ring,
        "o_proj": f * L * prefill_o_proj_ms(k, model, s, prec),
        "ffn": f * ffn,
        "ffn_comm": f * ffn_comm,
        "pp_comm": st.pp_comm_ms(k, model, s, lay.pp, prec),
        # a prefill chunk's all-reduce runs on NCCL, then the norm as a kernel of its own (helixsim.cost.fused_norms)
        "overhead": f * L * st.norms_ms(k, model, s, prec, allreduce_fusion=False) + k.eff.step_overhead_us * 1e-3,
    }
    per_chunk = {key: np.where(live, np.broadcast_to(v, live.shape), 0.0) for key, v in per_chunk.items()}
    pp = lay.pp[:, 0].astype(float)
    chunk_total = sum(per_chunk.values())
    largest = chunk_total.max(axis=1)
    total = chunk_total.sum(axis=1)
    # pipeline: chunks stream through pp stages; each op's share scaled alike
    pipe = np.where(total > 0, (total / pp + (pp - 1.0) / pp * largest) / np.where(total > 0, total, 1.0), 1.0)
    out = {key: v.sum(axis=1) * pipe for key, v in per_chunk.items()}
    # the first token: LM head of each prompt's last position, once
    head_s = st.step_shapes(model, LayoutArrays(*(np.broadcast_to(getattr(a, fl), shape)
                                                  for fl in LayoutArrays.__dataclass_fields__)), requests)
    out["lm_head"] = st.lm_head_ms(k, model, head_s, prec)
    out = {key: np.broadcast_to(np.asarray(out[key], float), shape) for key in PREFILL_KEYS}
    return out, extra.any(axis=1)


def prefill_activation_bytes(model: ModelSpec, tokens_per_gpu, n_ffn, act_bytes: float) -> np.ndarray:
    """Working set of one prefill pass on a GPU: hidden states, residual and norm outputs (4 x H), the
    attention's Q/K/V/O (4 x H as an upper bound), and the FFN's gate-up output for its share
    of the FFN width (dense: 2F/tpf; MoE: top-k experts' 2F_e per token over EP x TP)."""
    h = model.hidden_size
    m = model.ffn.moe
    ffn_width = (2.0 * m.experts_per_token * m.expert_intermediate_size if m
                 else 2.0 * model.ffn.intermediate_size) / np.asarray(n_ffn, float)
    return np.asarray(tokens_per_gpu, float) * (8.0 * h + ffn_width) * act_bytes
