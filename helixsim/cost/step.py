"""Compose per-kernel times into one decode step, per op, for many layouts at once.

Every argument is a numpy array (or broadcastable scalar): one element per
configuration. The step of a configuration is the time one token takes
through all layers (TTL). With pipeline parallelism the batch is split into
pp micro-batches that keep every stage busy; a token still passes through
every layer, so TTL = (sum of per-layer times at micro-batch size) x the
stage-imbalance factor + the (pp - 1) stage hand-offs, and throughput is
batch / TTL (see README, "Modelling choices").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..layout import STRATEGIES, LayoutArrays
from ..precision import STAT_BYTES_PER_HEAD, Precision
from ..specs.model import ModelSpec
from . import attention_kinds as ak
from . import terms as t
from .dense_dp import dense_ffn_data_parallel
from .fused_norms import separate_norm_kernels
from .mla_absorb import absorbed_bmm_dtype
from .rows import PatchedRows, Rows, broadcast_view, select_rows
from .shared_experts import fused_shared_expert_ms, fuses_shared_experts
from .wideep import dispatch_payload_dtype, redundant_slot_read_ms

BREAKDOWN_KEYS: tuple[str, ...] = ("qkv_proj", "attention", "attn_comm", "o_proj", "ffn", "ffn_comm",
                                   "lm_head", "pp_comm", "overhead", "mtp")

HELIX, TP, EP, MEDHA, MEDHA_EP = (STRATEGIES.index(s) for s in ("helix", "tp", "ep", "medha", "medha-ep"))


@dataclass(frozen=True)
class StepShapes:
    """Per-GPU sizes every op needs, derived once from layout, batch and context."""

    strategy: np.ndarray
    micro_batch: np.ndarray      # requests per pipeline micro-batch
    attn_batch: np.ndarray       # requests per attention GPU (micro-batch / dp)
    q_heads: np.ndarray          # query heads per attention GPU (Q / tpa)
    kv_heads: np.ndarray         # KV heads per attention GPU (ceil(K / tpa); 1 for MLA)
    o_tp: np.ndarray             # TP width of the output projection (N for helix, tpa otherwise)
    n_attn: np.ndarray
    n_ffn: np.ndarray
    layers_factor: np.ndarray    # pp x ceil(L / pp) / L: the slowest stage sets the pace


def o_proj_tp(a: LayoutArrays) -> np.ndarray:
    """TP width of the attention output projection (and of MLA's W_UV, linear-attention mixers): all
    N = kvp x tpa GPUs under Helix (paper §2.2), tpa otherwise."""
    return np.where(a.strategy == HELIX, a.kvp * a.tpa, a.tpa)


def step_shapes(model: ModelSpec, a: LayoutArrays, batch: np.ndarray) -> StepShapes:
    mb = t.cdiv(batch, a.pp)
    o_tp = o_proj_tp(a)
    kv_heads = np.ones_like(a.tpa) if model.attention.is_mla else t.kv_heads_per_gpu(model.attention.num_kv_heads, a.tpa)
    layers_factor = a.pp * t.cdiv(model.num_layers, a.pp) / model.num_layers
    return StepShapes(strategy=a.strategy, micro_batch=mb, attn_batch=t.cdiv(mb, a.dp),
                      q_heads=model.attention.num_q_heads // a.tpa, kv_heads=kv_heads, o_tp=o_tp,
                      n_attn=a.n_attention, n_ffn=a.n_ffn, layers_factor=layers_factor)


# ------------------------------------------------------------------ attention side

def qkv_proj_ms(k, model: ModelSpec, s: StepShapes, prec: Precision) -> np.ndarray:
    """Input projections on each attention GPU, replicated across KVP ranks (paper §2.1.1).

    GQA: one fused [H, Q/TPA x Hsz + 2 ceil(K/TPA) Hsz] GEMM. MLA: the q_a and kv_a
    down-projections (unsharded) as one fused [H, q_lora + kv_lora + rope] GEMM, as
    TensorRT-LLM (``fused_a``), SGLang and vLLM (``fused_qkv_a_proj``) run them; q_b
    for this GPU's heads; and the absorbed W_UK batched matmul (heads x [128 -> 512]).
    """
    a, h, w = model.attention, model.hidden_size, prec.attention_weights_dtype
    b = s.attn_batch
    if not a.is_mla:   # an output gate (Qwen3.5) doubles the query part of the fused projection
        return k.gemm_ms(b, ((2 if a.output_gate else 1) * s.q_heads + 2 * s.kv_heads) * a.head_dim, h, w)
    mla = (k.gemm_ms(b, a.q_lora_rank + a.kv_lora_rank + a.qk_rope_head_dim, h, w)
           + k.gemm_ms(b, s.q_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim), a.q_lora_rank, w)
           + k.bmm_ms(s.q_heads, b, a.kv_lora_rank, a.qk_nope_head_dim, absorbed_bmm_dtype(k, model, prec)))
    return mla + ak.dsa_index_proj_ms(k, model, b, prec) if a.is_dsa else mla


def attention_ms(k, model: ModelSpec, s: StepShapes, kvp: np.ndarray, context: np.ndarray,
                 prec: Precision, sliding: bool) -> np.ndarray:
    """Decode attention of one layer over this GPU's ceil(S/KVP) tokens (window-capped for sliding layers)."""
    a = model.attention
    if a.is_dsa:   # indexer over this rank's keys, sparse MLA over its share of the top-k (attention_kinds)
        return ak.dsa_attention_ms(k, model, s.attn_batch, s.q_heads, kvp, context, prec, ak.indexer_law(k, model, prec))
    span = np.minimum(context, a.sliding_window_tokens) if sliding else context
    tokens = t.kv_tokens_per_gpu(span, kvp)
    math = k.math_dtype(prec.attention_math_dtype)
    if a.is_mla:
        return k.mla_attention_ms(s.attn_batch, s.q_heads, a.kv_lora_rank, a.qk_rope_head_dim, tokens, prec.kv_cache, math)
    if sliding:   # without KVP a sliding layer runs the windowed kernel over the whole cache (kernel model)
        tokens = np.where(kvp == 1, context, tokens)
        return k.gqa_attention_ms(s.attn_batch, s.q_heads, s.kv_heads, a.head_dim, tokens, prec.kv_cache, math,
                                  window=int(a.sliding_window_tokens))
    return k.gqa_attention_ms(s.attn_batch, s.q_heads, s.kv_heads, a.head_dim, tokens, prec.kv_cache, math)


def partial_output_bytes(k, model: ModelSpec, s: StepShapes, prec: Precision) -> np.ndarray:
    """One GPU's partial attention outputs plus softmax statistics, all its heads and requests."""
    per_head = model.value_width_per_head * k.elem_bytes(prec.activations) + STAT_BYTES_PER_HEAD
    return s.attn_batch * s.q_heads * per_head


def kvp_combine_ms(k, model: ModelSpec, s: StepShapes, kvp: np.ndarray, prec: Precision) -> np.ndarray:
    """Time of combining the KVP partial results, nothing overlapped.

    helix: one batched all-to-all over the KVP ranks after lockstep attention
    (paper §2.1.2; HOP-B is applied by :func:`hopb_overlap`). medha: partials
    are gathered onto the TP group that owns the FFN, the receiver taking
    (kvp - 1) shards; nothing overlaps (paper §3.2).
    """
    payload = partial_output_bytes(k, model, s, prec)
    return select_rows([s.strategy == HELIX, is_medha(s.strategy)],
                       [lambda r: k.collective_ms("all_to_all", r.pick(kvp), r.pick(payload)),
                        lambda r: k.collective_ms("p2p", r.pick(kvp), r.pick((kvp - 1) * payload))],
                       lambda r: 0.0)


def hopb_chunks_ms(k, model: ModelSpec, s: StepShapes, kvp: np.ndarray, context: np.ndarray,
                   prec: Precision, sliding: bool) -> tuple[np.ndarray, np.ndarray]:
    """One HOP-B chunk (one request, paper §2.1.3): its attention, priced as an attention kernel
    at batch 1 (with that kernel's fixed cost), and its all-to-all, priced as a collective of
    one request's partial outputs (with the collective's latency)."""
    one = replace(s, attn_batch=np.ones_like(s.attn_batch))
    attn = attention_ms(k, model, one, kvp, context, prec, sliding)
    a2a = k.collective_ms("all_to_all", kvp, partial_output_bytes(k, model, one, prec))
    return attn, a2a


def hopb_overlap(k, model: ModelSpec, s: StepShapes, kvp: np.ndarray, hopb: np.ndarray, context: np.ndarray,
                 prec: Precision, sliding: bool, attn_ms: np.ndarray,
                 combine_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(attention, exposed combine) of one layer with HOP-B where it is on and shortens the layer.

    With HOP-B the micro-batch's n requests run as n attention chunks, each
    request's all-to-all leaving as soon as its attention is done:
    c + (n-1) max(c, m) + m (:func:`terms.hopb_makespan`), c and m from
    :func:`hopb_chunks_ms`. Attention is then n x c and the exposed
    communication the rest. Where that is not shorter than lockstep attention
    plus one batched all-to-all (small chunks each paying a fixed cost), the
    runtime keeps the batched schedule: HOP-B is used only where it helps.
    """
    can = np.asarray(hopb, bool) & (s.strategy == HELIX) & (kvp > 1)
    if can.ndim == 0 or can.size != can.shape[0] or can.size == 1:   # one layout, or no layout axis: every cell
        return hopb_pipelined(k, model, s, kvp, context, prec, sliding, attn_ms, combine_ms, can)
    # only the Helix layouts with HOP-B on and kvp > 1 can pipeline: their rows (the layout axis, the first of
    # the step's shape) are priced alone, the others keep lockstep attention (the same values, fewer cells)
    rows = np.flatnonzero(can.ravel())
    if not len(rows):
        return attn_ms, combine_ms
    picked = Rows(rows, -can.ndim, can.shape[0])
    sub = StepShapes(**{f: picked.pick(getattr(s, f)) for f in StepShapes.__dataclass_fields__})
    attn_sub, comb_sub = hopb_pipelined(k, model, sub, picked.pick(kvp), picked.pick(context), prec, sliding,
                                        picked.pick(attn_ms), picked.pick(combine_ms), True)
    # kept apart from the other rows until the step is summed (the combine varies with the context only here)
    return PatchedRows(attn_ms, attn_sub, picked), PatchedRows(combine_ms, comb_sub, picked)


def hopb_pipelined(k, model: ModelSpec, s: StepShapes, kvp, context, prec: Precision, sliding: bool, attn_ms,
                   combine_ms, can) -> tuple[np.ndarray, np.ndarray]:
    """(attention, exposed combine) where ``can`` allows HOP-B and its makespan beats the lockstep
    ``attn_ms + combine_ms`` (:func:`hopb_overlap`), else those two as they are."""
    c, m = hopb_chunks_ms(k, model, s, kvp, context, prec, sliding)
    n = s.attn_batch
    piped = t.hopb_makespan(c, m, n)
    use = can & (piped < attn_ms + combine_ms)
    chunked = n * c
    return np.where(use, chunked, attn_ms), np.where(use, piped - chunked, combine_ms)


def is_medha(strategy: np.ndarray) -> np.ndarray:
    """Both Medha variants (the paper's, and helixsim's with the FFN spread over EP)."""
    return (strategy == MEDHA) | (strategy == MEDHA_EP)


def o_proj_batch(s: StepShapes) -> np.ndarray:
    """Requests through the output projection on one GPU: the whole micro-batch after the
    Helix all-to-all (TP = N) and under TP/Medha; one DP share under ep."""
    return np.where(s.strategy == EP, s.attn_batch, s.micro_batch)


def o_proj_ms(k, model: ModelSpec, s: StepShapes, prec: Precision) -> np.ndarray:
    """Output projection at TP = o_tp (N for Helix, paper §2.2) in its format (Precision.o_proj_weights, by default
    the dense one); MLA adds the
    absorbed W_UV bmm in the attention projections' format (a half of kv_b, Precision.attention_weights; BF16 where
    the framework dequantises a block-scaled FP8 kv_b, mla_absorb)."""
    a, h = model.attention, model.hidden_size
    b = o_proj_batch(s)
    heads = a.num_q_heads // s.o_tp
    head_out = a.v_head_dim if a.is_mla else a.head_dim
    proj = k.gemm_ms(b, h, heads * head_out, prec.o_proj_weights_dtype)   # wo (Precision.o_proj_weights)
    if a.is_mla:
        proj = proj + k.bmm_ms(heads, b, a.v_head_dim, a.kv_lora_rank, absorbed_bmm_dtype(k, model, prec))
    return proj


def o_proj_allreduce_ms(k, model: ModelSpec, s: StepShapes, prec: Precision) -> np.ndarray:
    """All-reduce of the projected [b, H] output across the o_tp GPUs."""
    return k.collective_ms("all_reduce", s.o_tp, o_proj_batch(s) * model.hidden_size * k.elem_bytes(prec.activations))


# ------------------------------------------------------------------ FFN side

def swiglu_ms(k, tokens, hidden: int, inter: int, tp, dtype: str) -> np.ndarray:
    """A SwiGLU MLP split tp ways: fused gate-up [H, 2F/tp] then down [F/tp, H]."""
    return k.gemm_ms(tokens, 2 * inter // tp, hidden, dtype) + k.gemm_ms(tokens, hidden, inter // tp, dtype)


def dense_ffn_ms(k, model: ModelSpec, s: StepShapes, prec: Precision) -> np.ndarray:
    """Dense FFN at TP = tpf x ep over the whole micro-batch (Helix: TPF = N, paper Fig. 4).
    Under ep the DP shares are gathered first, so the FFN sees the whole micro-batch too, unless
    the framework runs it data-parallel (each DP group its own requests at TP = tpa; dense_dp)."""
    f, dense = model.ffn.intermediate_size, prec.dense_weights_dtype
    if not (dense_ffn_data_parallel(k) and model.ffn.moe):   # a dense model's ep layout keeps its FFN split
        return swiglu_ms(k, s.micro_batch, model.hidden_size, f, s.n_ffn, dense)
    return select_rows([s.strategy == EP],
                       [lambda r: swiglu_ms(k, r.pick(s.attn_batch), model.hidden_size, f, r.pick(s.o_tp), dense)],
                       lambda r: swiglu_ms(k, r.pick(s.micro_batch), model.hidden_size, f, r.pick(s.n_ffn), dense))


def dense_ffn_comm_ms(k, model: ModelSpec, s: StepShapes, prec: Precision) -> np.ndarray:
    """TP all-reduce after the dense FFN; under ep an all-gather before and a reduce-scatter after,
    or, data-parallel (dense_dp), an all-reduce of the group's own requests over its tpa GPUs."""
    act = k.elem_bytes(prec.activations)
    msg = s.micro_batch * model.hidden_size * act

    def gathered(r):
        if dense_ffn_data_parallel(k) and model.ffn.moe:
            return k.collective_ms("all_reduce", r.pick(s.o_tp), r.pick(s.attn_batch * model.hidden_size * act))
        n, m = r.pick(s.n_ffn), r.pick(msg)
        return k.collective_ms("all_gather", n, m) + k.collective_ms("reduce_scatter", n, m)

    return select_rows([s.strategy == EP], [gathered],
                       lambda r: k.collective_ms("all_reduce", r.pick(s.n_ffn), r.pick(msg)))


def moe_ffn_ms(k, model: ModelSpec, s: StepShapes, tpf, ep, prec: Precision) -> np.ndarray:
    """Routed experts on the TPF x EP grid plus the shared experts.

    Shared experts run as a dense MLP at TP = tpf x ep over the micro-batch,
    except under ep, where each DP group computes them for its own requests
    with the weights split tpa ways (as in DP-attention deployments).
    """
    m = model.ffn.moe
    routed = k.moe_ms(s.micro_batch, model.hidden_size, m.expert_intermediate_size, m.experts_per_token,
                      m.num_experts, tpf, ep, prec.weights, fp4_format=m.fp4_format,
                      fp8_block_scales=m.fp8_block_scales) + redundant_slot_read_ms(k, model, tpf, ep, prec)
    if not m.shared_experts:
        return routed
    width = m.shared_width
    dense = prec.dense_weights_dtype
    # SGLang runs DeepSeek's shared expert inside the routed kernel where there is no EP (shared_experts)
    return routed + select_rows(
        [fuses_shared_experts(k, model, ep), s.strategy == EP],
        [lambda r: fused_shared_expert_ms(k, model, r.pick(s.micro_batch), r.pick(tpf), prec),
         lambda r: swiglu_ms(k, r.pick(s.attn_batch), model.hidden_size, width, r.pick(s.o_tp), dense)],  # o_tp = tpa
        lambda r: swiglu_ms(k, r.pick(s.micro_batch), model.hidden_size, width, r.pick(s.n_ffn), dense))


def moe_comm_ms(k, model: ModelSpec, s: StepShapes, tpf, ep, prec: Precision) -> np.ndarray:
    """Communication around the MoE.

    helix: intra-expert all-reduce over tpf, then inter-expert all-gather over
    ep and a local reduction (paper §2.2, Fig. 4). tp and medha: one all-reduce
    over the FFN group. ep: dispatch and combine all-to-alls over ep (DeepEP
    style), plus an all-gather and reduce-scatter of tokens within a tpf > 1
    expert group.
    """
    m = model.ffn.moe
    act = k.elem_bytes(prec.activations)
    msg = s.micro_batch * model.hidden_size * act

    def helix(r):
        return k.collective_ms("all_reduce", r.pick(tpf), r.pick(msg)) + k.collective_ms("all_gather", r.pick(ep),
                                                                                       r.pick(ep * msg))

    def dispatch(r):
        tokens, width, group = r.pick(s.attn_batch), r.pick(tpf), r.pick(s.attn_batch * tpf * model.hidden_size * act)
        # dispatch in the experts' input format (FP8/FP4 with scales), combine in BF16 (helixsim.cost.wideep)
        a2a = (k.moe_dispatch_ms(tokens, model.hidden_size, m.experts_per_token, r.pick(ep),
                                 dispatch_payload_dtype(k.hw, prec), num_experts=m.num_experts)
               + k.moe_combine_ms(tokens, model.hidden_size, m.experts_per_token, r.pick(ep), prec.activations,
                                  num_experts=m.num_experts))
        # under ep, a tpf > 1 expert group first gathers its members' tokens and scatters the results back
        return a2a + k.collective_ms("all_gather", width, group) + k.collective_ms("reduce_scatter", width, group)

    return select_rows([s.strategy == HELIX, s.strategy == EP], [helix, dispatch],
                       lambda r: k.collective_ms("all_reduce", r.pick(s.n_ffn), r.pick(msg)))


def medha_broadcast_ms(k, model: ModelSpec, s: StepShapes, kvp, prec: Precision) -> np.ndarray:
    """Medha only: the FFN group sends the layer output to the other kvp - 1 attention groups."""
    msg = s.micro_batch * model.hidden_size * k.elem_bytes(prec.activations)
    tpa = s.n_attn // np.maximum(kvp, 1)
    return select_rows([is_medha(s.strategy)], [lambda r: k.collective_ms("p2p", r.pick(kvp), r.pick((kvp - 1) * msg / tpa))],
                       lambda r: 0.0)


# ------------------------------------------------------------------ once per step

def lm_head_ms(k, model: ModelSpec, s: StepShapes, prec: Precision) -> np.ndarray:
    """Vocabulary-parallel LM head, kept in the activation format, then an all-gather of the
    logits for sampling: over the stage's GPUs for the whole micro-batch (Medha: its TP
    group); under ep each DP group computes its own requests' logits over its tpa GPUs, as
    attention-DP deployments do (no cross-group gather of the whole batch's logits)."""
    n = np.where(is_medha(s.strategy) | (s.strategy == EP), s.o_tp, s.n_attn)  # o_tp = tpa for both
    b = o_proj_batch(s)
    act = prec.activations
    head = k.gemm_ms(b, t.cdiv(model.vocab_size, n), model.hidden_size, act)
    gather = k.collective_ms("all_gather", n, b * model.vocab_size * k.elem_bytes(act))
    return head + gather


def norms_ms(k, model: ModelSpec, s: StepShapes, prec: Precision, allreduce_fusion: bool = True) -> np.ndarray:
    """Two RMSNorms and residual adds per layer: read and write [b, H] a few times; no launches of their
    own where the framework runs them inside the TP all-reduce (:mod:`helixsim.cost.fused_norms`; a
    decode step's all-reduce; ``allreduce_fusion=False`` for prefill chunks, whose all-reduce runs on NCCL
    followed by a norm kernel)."""
    b = np.maximum(s.attn_batch, o_proj_batch(s))
    n = separate_norm_kernels(k, model, s.strategy, s.o_tp, EP) if allreduce_fusion else 2.0
    return k.memory_op_ms(4.0 * b * model.hidden_size * k.elem_bytes(prec.activations), n_kernels=n)


def pp_comm_ms(k, model: ModelSpec, s: StepShapes, pp, prec: Precision) -> np.ndarray:
    """(pp - 1) hand-offs of the micro-batch's hidden states between stages."""
    msg = s.micro_batch * model.hidden_size * k.elem_bytes(prec.activations)
    return (pp - 1) * k.collective_ms("p2p", s.n_attn * pp, msg)


# ------------------------------------------------------------------ the step

def decode_step(k, model: ModelSpec, a: LayoutArrays, batch: np.ndarray, context: np.ndarray,
                prec: Precision, q_len=1) -> dict[str, np.ndarray]:
    """Per-op time (ms, summed over layers) of one decode step for every configuration.

    ``q_len``: tokens per request in the step (1 + draft tokens when speculative decoding
    verifies drafts, :mod:`helixsim.cost.mtp`): every GEMM, the MoE and every collective carry
    q_len x the tokens; attention reads each request's KV once for its q_len queries (priced
    as q_len x the query heads). The ``mtp`` drafting term is added by the caller.
    """
    batch = np.asarray(batch)
    context = np.asarray(context)
    q_len = np.asarray(q_len)
    s = step_shapes(model, a, batch * q_len)
    L = model.num_layers
    n_sliding = model.attention.sliding_window_layers
    n_full = model.full_attention_layers
    n_lin = model.linear_layers                    # linear attention: TP over o_tp GPUs, no KVP (attention_kinds)
    s_attn = s if not (q_len > 1).any() else replace(
        s, attn_batch=t.cdiv(t.cdiv(batch, a.pp), a.dp), q_heads=s.q_heads * q_len)
    combine = kvp_combine_ms(k, model, s, a.kvp, prec)
    attn_full, comb_full = hopb_overlap(k, model, s, a.kvp, a.hopb, context, prec, False,
                                        attention_ms(k, model, s_attn, a.kvp, context, prec, sliding=False), combine)
    if model.attention.is_dsa:   # the ranks agree on the global top-k before the sparse MLA
        comb_full = comb_full + ak.dsa_topk_merge_ms(k, model, s.attn_batch, a.kvp, context)
    attn_slide = comb_slide = 0.0
    if n_sliding:
        attn_slide, comb_slide = hopb_overlap(k, model, s, a.kvp, a.hopb, context, prec, True,
                                              attention_ms(k, model, s_attn, a.kvp, context, prec, sliding=True), combine)
    oar = o_proj_allreduce_ms(k, model, s, prec)

    # (without sliding layers their zero terms are not added: one pass over every cell less each)
    per_layer_attn = n_full * attn_full + n_sliding * attn_slide if n_sliding else n_full * attn_full
    per_layer_comm = (n_full * comb_full + n_sliding * comb_slide if n_sliding else n_full * comb_full) + L * oar
    qkv = (L - n_lin) * qkv_proj_ms(k, model, s, prec)
    oproj = (L - n_lin) * o_proj_ms(k, model, s, prec)
    if n_lin:
        lin_in, lin_out = ak.gdn_proj_ms(k, model, o_proj_batch(s), s.o_tp, prec)
        qkv, oproj = qkv + n_lin * lin_in, oproj + n_lin * lin_out
        per_layer_attn = per_layer_attn + n_lin * ak.gdn_attention_ms(k, model, o_proj_batch(s), s.o_tp,
                                                                       ak.linear_law(k, model))

    ffn = np.zeros(np.broadcast(batch, a.kvp).shape)   # the FFN does not depend on the context
    ffn_comm = L * medha_broadcast_ms(k, model, s, a.kvp, prec) + ffn
    if model.dense_layers:
        ffn = ffn + model.dense_layers * dense_ffn_ms(k, model, s, prec)
        ffn_comm = ffn_comm + model.dense_layers * dense_ffn_comm_ms(k, model, s, prec)
    if model.moe_layers:
        ffn = ffn + model.moe_layers * moe_ffn_ms(k, model, s, a.tpf, a.ep, prec)
        ffn_comm = ffn_comm + model.moe_layers * moe_comm_ms(k, model, s, a.tpf, a.ep, prec)

    f = s.layers_factor
    out = {
        "qkv_proj": f * qkv,
        "attention": f * per_layer_attn,
        "attn_comm": f * per_layer_comm,
        "o_proj": f * oproj,
        "ffn": f * ffn,
        "ffn_comm": f * ffn_comm,
        "lm_head": lm_head_ms(k, model, s, prec),
        "pp_comm": pp_comm_ms(k, model, s, a.pp, prec),
        "overhead": f * L * norms_ms(k, model, s, prec) + k.eff.step_overhead_us * 1e-3,
        "mtp": 0.0,
    }
    # (a replay of recorded kernel times may stack several passes on a leading axis: helixsim.uncertainty)
    shape = np.broadcast_shapes(np.broadcast(batch, context, a.kvp).shape, *(np.shape(v) for v in out.values()))
    return {key: broadcast_view(np.asarray(v, float), shape) for key, v in out.items()}
