"""Cost terms: one small pure function per formula, vectorised over numpy arrays.

Sizes are element counts unless the name says ``_bytes``; times are
milliseconds (``_ms``); bandwidths GB/s (1e9 B/s, ``_gbps``); peaks TFLOP/s.
Notation follows the Helix paper's Appendix A (arXiv 2507.07120):
B batch, Q query heads, K KV heads, Hsz head size, S KV length, H hidden,
F FFN width, TPA/TPF/KVP/EP the parallel widths.
"""

from __future__ import annotations

import numpy as np

ArrayLike = np.ndarray | float | int


def cdiv(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Ceiling division for positive integer arrays."""
    return -(-np.asarray(a) // np.asarray(b))


# --------------------------------------------------------------------- roofline

def as_float(x: ArrayLike) -> np.ndarray | float:
    """``np.asarray(x, float)``, a Python float kept as it is: the single-point path prices one query in
    floats (Python's float arithmetic is numpy's float64 arithmetic, without numpy's per-call cost)."""
    return x if type(x) is float else np.asarray(x, float)


def maximum(a, b):
    """``np.maximum(a, b)``; of two Python floats, in floats (a NaN wins, as in numpy)."""
    if type(a) is float and type(b) is float:
        return a if (a != a or a > b) else b   # (of equal values numpy gives b: max(0.0, -0.0) is -0.0)
    return np.maximum(a, b)


def minimum(a, b):
    """``np.minimum(a, b)``; of two Python floats, in floats (a NaN wins, as in numpy)."""
    if type(a) is float and type(b) is float:
        return a if (a != a or a < b) else b   # (of equal values numpy gives b)
    return np.minimum(a, b)


def where(condition, a, b):
    """``np.where(condition, a, b)``; of a Python bool, the value it picks (the single-point path)."""
    if type(condition) is bool:
        return a if condition else b
    return np.where(condition, a, b)


def where_positive(x, value):
    """``np.where(x > 0, value, 0.0)``; of two Python floats, in floats."""
    if type(x) is float and type(value) is float:
        return value if x > 0 else 0.0
    return np.where(x > 0, value, 0.0)


def transfer_ms(nbytes: ArrayLike, bandwidth_gbps: ArrayLike) -> np.ndarray:
    """Time to move ``nbytes`` at ``bandwidth_gbps`` (GB/s), in ms."""
    return as_float(nbytes) / (as_float(bandwidth_gbps) * 1e6)


def compute_ms(flops: ArrayLike, peak_tflops: ArrayLike) -> np.ndarray:
    """Time to execute ``flops`` at ``peak_tflops`` (TFLOP/s), in ms."""
    return as_float(flops) / (as_float(peak_tflops) * 1e9)


def roofline_ms(nbytes: ArrayLike, flops: ArrayLike, bandwidth_gbps: ArrayLike,
                peak_tflops: ArrayLike, floor_us: ArrayLike = 0.0) -> np.ndarray:
    """Roofline op time: floor + max(bytes / bandwidth, FLOPs / peak) (Williams et al. 2009)."""
    return as_float(floor_us) * 1e-3 + maximum(transfer_ms(nbytes, bandwidth_gbps), compute_ms(flops, peak_tflops))


# --------------------------------------------------------------------- GEMMs

def gemm_flops(m: ArrayLike, n: ArrayLike, k: ArrayLike) -> np.ndarray:
    """2 m n k FLOPs for an [m,k] x [k,n] product."""
    return 2.0 * as_float(m) * as_float(n) * as_float(k)


def gemm_bytes(m: ArrayLike, n: ArrayLike, k: ArrayLike, weight_bytes: float, act_bytes: float) -> np.ndarray:
    """Bytes a decode GEMM moves: the [k,n] weight once, plus input [m,k] and output [m,n] activations."""
    m, n, k = (as_float(x) for x in (m, n, k))
    return k * n * weight_bytes + (m * k + m * n) * act_bytes


# --------------------------------------------------------------------- KV cache

def gqa_kv_elements_per_token(kv_heads_per_gpu: ArrayLike, head_dim: int) -> np.ndarray:
    """K and V elements per token per layer held by one GPU: 2 x ceil(K/TPA) x Hsz (paper App. A)."""
    return 2.0 * np.asarray(kv_heads_per_gpu, float) * head_dim


def mla_kv_elements_per_token(kv_lora_rank: int, qk_rope_head_dim: int) -> int:
    """MLA latent cache per token per layer: kv_lora_rank + rope dims (512 + 64 = 576 for DeepSeek-R1)."""
    return kv_lora_rank + qk_rope_head_dim


def kv_heads_per_gpu(kv_heads: int, tpa: ArrayLike) -> np.ndarray:
    """ceil(K / TPA): with TPA > K each GPU still holds one whole KV head (duplication)."""
    return cdiv(kv_heads, tpa)


def kv_tokens_per_gpu(context: ArrayLike, kvp: ArrayLike) -> np.ndarray:
    """Tokens of one request's KV that one KVP rank holds: ceil(S / KVP).

    Round-robin blocks keep ranks within one block of each other (paper §2.3);
    at long contexts ceil(S/KVP) is exact to well under 0.1 %.
    """
    context, kvp = np.asarray(context), np.asarray(kvp)
    if (context.ndim == kvp.ndim == 2 and context.shape[0] == 1 and kvp.shape[1] == 1 and kvp.shape[0] > 64
            and context.shape[1] > 1):   # a sweep's grid, layouts x contexts: divide once per distinct KVP width
        widths, which = np.unique(kvp[:, 0], return_inverse=True)
        return cdiv(context, widths[:, None])[which.ravel()]
    return cdiv(context, kvp)


def kv_read_bytes(batch: ArrayLike, tokens_per_gpu: ArrayLike, elements_per_token: ArrayLike,
                  kv_bytes: float) -> np.ndarray:
    """KV bytes one GPU reads per layer: B x (S/KVP) x elements x bytes (paper App. A, T_KV numerator)."""
    return (np.asarray(batch, float) * np.asarray(tokens_per_gpu, float)
            * np.asarray(elements_per_token, float) * kv_bytes)


def gqa_attention_flops(batch: ArrayLike, q_heads_per_gpu: ArrayLike, head_dim: int,
                        tokens_per_gpu: ArrayLike) -> np.ndarray:
    """QK^T plus PV: 4 x B x (Q/TPA) x Hsz x S/KVP."""
    return 4.0 * np.asarray(batch, float) * np.asarray(q_heads_per_gpu, float) * head_dim * np.asarray(tokens_per_gpu, float)


def mla_attention_flops(batch: ArrayLike, q_heads_per_gpu: ArrayLike, kv_lora_rank: int,
                        qk_rope_head_dim: int, tokens_per_gpu: ArrayLike) -> np.ndarray:
    """Absorbed MLA: 2 x B x heads x (576 + 512) x S/KVP (scores over the 576-wide key, PV over the 512 latent)."""
    width = (kv_lora_rank + qk_rope_head_dim) + kv_lora_rank
    return 2.0 * np.asarray(batch, float) * np.asarray(q_heads_per_gpu, float) * width * np.asarray(tokens_per_gpu, float)


# --------------------------------------------------------------------- communication volumes

def helix_a2a_send_bytes(batch: ArrayLike, q_heads: ArrayLike, tpa: ArrayLike, kvp: ArrayLike,
                         dv: ArrayLike, act_bytes: ArrayLike, stat_bytes: ArrayLike = 8.0) -> np.ndarray:
    """Bytes one GPU sends in the Helix all-to-all (paper §2.2; TensorRT-LLM Helix blog).

    Each GPU holds partial outputs for its Q/TPA heads and B requests; it keeps
    1/KVP of them and sends the other (KVP-1)/KVP, each head's dv-wide partial
    output in the activation format plus the fp32 (max, sum) statistics.
    Independent of the context length S.
    """
    b, q, tpa, kvp, dv, act, stat = (np.asarray(x, float) for x in (batch, q_heads, tpa, kvp, dv, act_bytes, stat_bytes))
    return (kvp - 1.0) * b * q * (dv * act + stat) / (kvp * tpa)  # divide last: exact for whole numbers


def all_reduce_bytes_on_wire(message_bytes: ArrayLike, n: ArrayLike) -> np.ndarray:
    """Per-GPU bytes of a bandwidth-optimal (ring / two-shot) all-reduce: 2 (n-1)/n x M."""
    n = as_float(n)
    return 2.0 * (n - 1.0) / n * as_float(message_bytes)


def one_shot_all_reduce_bytes(message_bytes: ArrayLike, n: ArrayLike) -> np.ndarray:
    """Per-GPU bytes of a one-shot all-reduce: every GPU reads the n-1 peer buffers, (n-1) x M."""
    return (as_float(n) - 1.0) * as_float(message_bytes)


def all_gather_bytes_on_wire(output_bytes: ArrayLike, n: ArrayLike) -> np.ndarray:
    """Per-GPU bytes received by an all-gather whose gathered output is M: (n-1)/n x M."""
    n = as_float(n)
    return (n - 1.0) / n * as_float(output_bytes)


def all_to_all_bytes_on_wire(send_buffer_bytes: ArrayLike, n: ArrayLike) -> np.ndarray:
    """Per-GPU bytes sent by an all-to-all of a per-rank buffer M: (n-1)/n x M leaves the GPU."""
    n = as_float(n)
    return (n - 1.0) / n * as_float(send_buffer_bytes)


# --------------------------------------------------------------------- overlap

def hopb_makespan(compute_chunk_ms: ArrayLike, comm_chunk_ms: ArrayLike, n_chunks: ArrayLike) -> np.ndarray:
    """HOP-B: n per-request chunks of attention pipelined with their all-to-alls (paper §2.1.3, Fig. 3).

    One compute stream and one communication stream: request i's all-to-all starts once its
    attention is done and the previous all-to-all has left, so the pipeline finishes at
    c + (n-1) max(c, m) + m, where c is one chunk's attention and m one chunk's all-to-all
    (shared/reference/helix_paper.md §3.7; 8 requests of 2 + 1.2 units: 2 + 7 x 2 + 1.2 = 17.2
    against 25.6). The caller prices c and m as a kernel and a collective of one chunk's size,
    each with its own fixed cost. Zero for n = 0; checked against the event schedule of
    :func:`helixsim.reference.hopb.hopb_schedule`.
    """
    n, c, m = (np.asarray(x, float) for x in (n_chunks, compute_chunk_ms, comm_chunk_ms))
    return np.where(n > 0, c + (n - 1.0) * np.maximum(c, m) + m, 0.0)[()]


# --------------------------------------------------------------------- MoE routing

def expected_experts_touched(tokens: ArrayLike, num_experts: int, top_k: int) -> np.ndarray:
    """Expected distinct experts hit by ``tokens`` tokens routing top-k of E uniformly: E (1 - (1 - k/E)^B)."""
    t = np.asarray(tokens, float)
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** t)


def experts_read_per_rank(pairs: ArrayLike, num_experts: int, top_k: int, ep: ArrayLike) -> np.ndarray:
    """Expected distinct local experts an EP rank reads when it serves ``pairs`` expert-token pairs.

    Those pairs come from B = pairs x EP / k tokens (k pairs per token over EP ranks); a token
    routes to k distinct experts of E, so an expert is missed by all B tokens with probability
    (1 - k/E)^B, and the rank holds E/EP of them: (E/EP) (1 - (1 - k/E)^B). At EP = 1 this is
    :func:`expected_experts_touched` of the B tokens (uniform routing; issue 15's roofline fix).
    """
    ep = np.asarray(ep, float)
    tokens = np.asarray(pairs, float) * ep / top_k
    return expected_experts_touched(tokens, num_experts, top_k) / ep


def max_rank_load(mean_load: ArrayLike, ranks: ArrayLike) -> np.ndarray:
    """Load of the busiest of ``ranks`` ranks when each receives a Poisson-like count of mean ``mean_load``.

    Gaussian estimate of the maximum of R draws: mu + sqrt(2 mu ln R) (derived;
    documented in the README as helixsim's routing-imbalance rule). Equals mu for R = 1.
    """
    mu = np.asarray(mean_load, float)
    r = np.maximum(np.asarray(ranks, float), 1.0)
    return mu + np.sqrt(2.0 * mu * np.log(r))
