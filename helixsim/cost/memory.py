"""HBM per GPU: weights (with each strategy's replication), KV cache, activations, reserve.

Memory is linear in the requests a GPU serves, r = ceil(batch / dp):
``bytes(r) = fixed + r x per_request``, so the largest batch that fits is
exact: dp x floor((capacity - fixed) / per_request).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..calibration.shape_memo import query_groups
from ..layout import LayoutArrays
from ..precision import Precision
from ..specs.model import ModelSpec
from . import attention_kinds as ak
from . import terms as t
from .step import EP, is_medha, o_proj_tp
from .dense_dp import dense_ffn_data_parallel
from .mla_absorb import absorbed_copy_bytes_per_layer
from .wideep import expert_slots


@dataclass(frozen=True)
class MemoryBreakdown:
    weights_bytes: np.ndarray
    kv_bytes: np.ndarray
    activation_bytes: np.ndarray
    reserve_bytes: float
    per_request_bytes: np.ndarray   # KV + activations of one request on the busiest GPU

    @property
    def total_bytes(self) -> np.ndarray:
        return self.weights_bytes + self.kv_bytes + self.activation_bytes + self.reserve_bytes


def attention_weight_elements(model: ModelSpec, a: LayoutArrays) -> np.ndarray:
    """Attention weights one GPU holds per layer.

    Sharded by tpa and replicated across KVP ranks and DP groups; the output
    projection (and MLA's W_UV half of kv_b) sharded by N under Helix.
    """
    at, h = model.attention, model.hidden_size
    o_tp = o_proj_tp(a)
    p = model.attention_params()
    if at.is_mla:
        half_kv_b = p["kv_b"] / 2.0
        index = sum(model.indexer_params().values()) if at.is_dsa else 0   # DSA indexer: replicated
        return p["q_a"] + p["kv_a"] + p["q_b"] / a.tpa + half_kv_b / a.tpa + half_kv_b / o_tp + p["o"] / o_tp + index
    kv_heads = t.kv_heads_per_gpu(at.num_kv_heads, a.tpa)
    qkv = h * (at.num_q_heads // a.tpa + 2 * kv_heads) * at.head_dim
    return qkv + p["o"] / o_tp


def ffn_weight_bytes(model: ModelSpec, a: LayoutArrays, expert_bytes: float = 1.0,
                        dense_bytes: float = 1.0, dense_dp: bool = False) -> np.ndarray:
    """FFN weight bytes per GPU summed over layers (elements when both byte widths are 1): dense at
    TP = tpf x ep (``dense_dp``, an MoE model's dense layers run data-parallel under ep: per DP group,
    split tpa ways, helixsim.cost.dense_dp); experts E/ep per rank split tpf ways; shared experts at
    TP = tpf x ep (under ep: per DP group, split tpa ways); the router in the dense format. Where ep does
    not divide E, each rank holds ceil(E / ep) expert slots (redundant copies, helixsim.cost.wideep.expert_slots)."""
    n_ffn = a.tpf * a.ep
    dense_tp = np.where(a.strategy == EP, a.tpa, n_ffn) if dense_dp and model.ffn.moe else n_ffn
    total = model.dense_layers * model.dense_ffn_params() / dense_tp * dense_bytes
    m = model.ffn.moe
    if m:
        routed = (expert_slots(m.num_experts, a.ep) / a.ep) * model.expert_params() / a.tpf * expert_bytes
        shared_tp = np.where(a.strategy == EP, a.tpa, n_ffn)
        shared = model.shared_expert_params() / shared_tp * dense_bytes
        total = total + model.moe_layers * (routed + shared + model.router_params() * dense_bytes)
    return total


def kv_elements_per_request(model: ModelSpec, a: LayoutArrays, context: np.ndarray) -> np.ndarray:
    """KV elements of one request on one GPU, summed over all layers."""
    at = model.attention
    if at.is_mla:
        per_token = t.mla_kv_elements_per_token(at.kv_lora_rank, at.qk_rope_head_dim)
    else:
        per_token = t.gqa_kv_elements_per_token(t.kv_heads_per_gpu(at.num_kv_heads, a.tpa), at.head_dim)
    # float: layers x tokens overflows int64 silently for absurd (but schema-valid) sizes
    full = model.full_attention_layers * np.asarray(t.kv_tokens_per_gpu(context, a.kvp), float)
    slide = 0
    if at.sliding_window_layers:
        slide = at.sliding_window_layers * np.asarray(
            t.kv_tokens_per_gpu(np.minimum(context, at.sliding_window_tokens), a.kvp), float)
    return per_token * (full + slide)


def mixer_state_bytes_per_request(k, model: ModelSpec, a: LayoutArrays, context: np.ndarray,
                                  prec: Precision) -> np.ndarray:
    """Per-request bytes beyond the KV elements, summed over layers: DSA index keys (FP8 + scale,
    sharded by KVP with the KV) and linear-attention states (split over the output-projection TP)."""
    total = np.zeros(np.broadcast(np.asarray(context), a.kvp).shape)
    if model.attention.is_dsa:
        per_token = ak.index_key_bytes_per_token(model.attention.dsa.index_head_dim)
        total = total + model.full_attention_layers * per_token * np.asarray(t.kv_tokens_per_gpu(context, a.kvp), float)
    if model.linear_layers:
        o_tp = o_proj_tp(a)
        total = total + model.linear_layers * ak.gdn_state_bytes(model, 1, o_tp, k.elem_bytes(prec.activations))
    return total


def decoder_weight_bytes(k, model: ModelSpec, a: LayoutArrays, prec: Precision) -> np.ndarray:
    """Bytes one GPU holds for all of ``model``'s decoder layers before the pipeline split: attention
    (``wo`` in its own format, plus the framework's absorbed MLA copies, helixsim.cost.mla_absorb), FFN,
    linear-attention mixers and the layers' norms."""
    w_dense, w_attn = k.elem_bytes(prec.dense_weights_dtype), k.elem_bytes(prec.attention_weights_dtype)
    w_o = k.elem_bytes(prec.o_proj_weights_dtype)
    o_elems = model.attention_params()["o"] / o_proj_tp(a)  # wo: its own format
    attn_bytes = ((attention_weight_elements(model, a) - o_elems) * w_attn + o_elems * w_o
                  + absorbed_copy_bytes_per_layer(k, model, a, prec))   # the framework's W_UK/W_UV copies (mla_absorb)
    layer_weights = (model.softmax_layers * attn_bytes
                     + ffn_weight_bytes(model, a, k.elem_bytes(prec.weights), w_dense, dense_ffn_data_parallel(k)))
    if model.linear_layers:
        o_tp = o_proj_tp(a)
        layer_weights = layer_weights + model.linear_layers * ak.linear_weight_elements(model, o_tp) * w_attn
    return layer_weights + model.norm_params_per_layer() * model.num_layers * k.elem_bytes(prec.activations)


def kv_bytes_per_request(k, model: ModelSpec, a: LayoutArrays, context: np.ndarray, prec: Precision) -> np.ndarray:
    """KV-cache bytes of one request on one GPU over all of ``model``'s layers (with DSA index keys and
    linear-attention states), before the pipeline split."""
    return (kv_elements_per_request(model, a, context) * k.elem_bytes(prec.kv_cache)
            + mixer_state_bytes_per_request(k, model, a, context, prec))


def _kv_key_fields(model: ModelSpec) -> tuple[str, ...] | None:
    """The layout fields that one request's KV bytes on a pipeline stage read (:func:`kv_bytes_per_request`
    and the stage share): KVP width and pp, with tpa for grouped KV heads; None where linear-attention
    states (split by the output projection's TP) join them."""
    if model.linear_layers:
        return None
    return ("kvp", "pp") if model.attention.is_mla else ("kvp", "tpa", "pp")


def stage_kv_bytes_per_request(k, model: ModelSpec, a: LayoutArrays, context, prec: Precision,
                               stage: np.ndarray) -> np.ndarray:
    """``stage x kv_bytes_per_request``. On a sweep's grid (layouts as a column, contexts as a row) computed
    once per distinct (KVP width, pp[, tpa]) and spread to the layouts' rows: each number is the same
    operations on the same operands as the plain product, so the same bits (tests/test_memory_per_width.py)."""
    fields, ctx = _kv_key_fields(model), np.asarray(context)
    n = a.kvp.shape[0] if a.kvp.ndim == 2 else 0
    if (fields is None or ctx.ndim != 2 or ctx.shape[0] != 1 or ctx.shape[1] < 2 or n <= 64
            or any(getattr(a, f).shape != (n, 1) for f in fields) or np.shape(stage) != (n, 1)):
        return stage * kv_bytes_per_request(k, model, a, context, prec)
    first, which = query_groups([getattr(a, f)[:, 0] for f in fields], n)   # one row per distinct key
    sub = LayoutArrays(*(np.broadcast_to(getattr(a, f), a.kvp.shape)[first]
                         for f in LayoutArrays.__dataclass_fields__))
    return (stage[first] * kv_bytes_per_request(k, model, sub, ctx, prec))[which]


def memory_per_gpu(k, model: ModelSpec, a: LayoutArrays, batch: np.ndarray, context: np.ndarray,
                   prec: Precision, mtp=0) -> MemoryBreakdown:
    """Bytes on the busiest GPU of the busiest pipeline stage (stages hold ceil(L/pp) layers;
    embedding and LM head, vocabulary-split, are charged to it as well: over the stage's GPUs,
    or, for Medha and for ep's DP attention groups, over the group's tpa GPUs, as their LM
    head runs in :func:`~.step.lm_head_ms`). With ``mtp`` > 0 draft tokens the MTP module's weights
    and its layer's KV cache are charged to it too (:func:`helixsim.cost.mtp.mtp_weight_bytes`)."""
    stage = t.cdiv(model.num_layers, a.pp) / model.num_layers
    act = k.elem_bytes(prec.activations)
    vocab_split = np.where(is_medha(a.strategy) | (a.strategy == EP), a.tpa, a.kvp * a.tpa * a.dp)
    embeddings = model.embedding_params() * (1 if model.tie_word_embeddings else 2) / vocab_split * act
    weights = stage * decoder_weight_bytes(k, model, a, prec) + embeddings
    kv_req = stage_kv_bytes_per_request(k, model, a, context, prec, stage)
    drafting = np.asarray(mtp) > 0
    if drafting.any():   # the MTP module, on the last stage (charged to the busiest: exact at pp 1)
        from .mtp import mtp_kv_bytes_per_request, mtp_weight_bytes

        weights = weights + np.where(drafting, mtp_weight_bytes(k, model, a, prec), 0.0)
        kv_req = kv_req + np.where(drafting, mtp_kv_bytes_per_request(k, model, a, context, prec), 0.0)
    act_req = (8.0 * model.hidden_size + model.vocab_size / vocab_split) * act
    per_request = kv_req + act_req
    requests = t.cdiv(batch, a.dp)
    return MemoryBreakdown(weights_bytes=np.asarray(weights, float), kv_bytes=requests * kv_req,
                           activation_bytes=requests * act_req, reserve_bytes=k.eff.memory_reserve_gb * 1e9,
                           per_request_bytes=np.asarray(per_request, float))


def largest_batch(mem: MemoryBreakdown, a: LayoutArrays, capacity_bytes: float) -> np.ndarray:
    """Largest batch whose memory fits: dp x floor((capacity - fixed) / per_request), 0 if weights alone overflow."""
    room = capacity_bytes - mem.weights_bytes - mem.reserve_bytes
    per_gpu = np.floor(np.maximum(room, 0.0) / mem.per_request_bytes)
    return (per_gpu * a.dp).astype(np.int64)
