"""Cost and memory of the token mixers beyond dense softmax attention, and how each shards under Helix.

* **DSA** (DeepSeek Sparse Attention, DeepSeek-V3.2): per query token a lightning
  indexer scores every cached token against its FP8 index key, a top-k picks
  ``index_topk`` tokens, and the MLA attends over those only. Under Helix the
  index keys are sharded with the KV (KVP): each rank scores its ceil(S/KVP)
  tokens and keeps its local top-k; the ranks agree on the global top-k by
  all-gathering their local top-k *scores* (fp32) so every rank knows the
  global k-th score and keeps its own tokens above it; the sparse MLA then reads,
  on the busiest rank, that rank's share of the k selected tokens. Everything
  but the indexer is independent of the context once S > k.
* **Gated delta-net** (linear attention, Qwen3-Next / Qwen3.5): a fixed-size
  recurrent state per request per layer and nothing to shard along the
  sequence. Inside any layout these layers run tensor-parallel over the GPUs
  that hold the output projection (all N = KVP x TPA under Helix, TPA otherwise),
  heads split (key heads duplicated past their count), over the whole micro-batch;
  only softmax-attention layers use KVP.
* **Sliding window** stays in :mod:`.step` (a capped span of the same kernel).

Measured laws (fitted at run time from the shipped kernel rows, see
``hardware/calibration/<hw>/{dsa_generation_module,gdn}/``):

* DSA indexer: ``i0 + i1 x B + S x (alpha + beta x B)`` over the S tokens one rank
  scores: its kernels' launch and per-request setup, the bandwidth-bound scan (beta:
  per request-token) and the per-sequence top-k selection (alpha: per token,
  parallel across requests); plus the module's
  fixed work the kernel tables do not hold (RoPE, FP8 quantisation, top-k setup):
  ``o0 + o1 x B``. Fitted by relative least squares on the module rows after the
  calibrated projections and MLA are subtracted; past the longest measured
  context (131,072) the scan stays linear in tokens (bandwidth-bound: the stated
  physical law), flagged as extrapolated.
* gated delta-net recurrence and its causal-conv update: ``floor + bytes /
  bandwidth`` over the state they read and write.

Without measured rows (other systems, the ``--ideal`` roofline) each falls back
to the roofline of its bytes and FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from .._lazy import pandas as pd  # imported on first use (helixsim._lazy)

from ..precision import Precision
from ..specs.model import ModelSpec
from . import terms as t

#: The longest context the DSA module was measured at (tokens); beyond it the indexer is extrapolated.
DSA_MEASURED_MAX_TOKENS = 131_072
#: The gdn decode rows' ranges: batch 1-1024, 16-64 value heads (whole small models on one GPU).
GDN_MEASURED_MAX_BATCH, GDN_MEASURED_MIN_HEADS = 1024, 16
FP32_BYTES = 4.0


# ------------------------------------------------------------------ DSA terms

def index_key_bytes_per_token(index_head_dim: int) -> float:
    """Bytes of one cached index key: FP8 values plus one fp32 scale per 128 (DeepSeek-V3.2 ``Indexer``
    k_cache / k_scale_cache; 128 + 4 = 132 B for V3.2, reference model_configs.md §3)."""
    return index_head_dim * 1.0 + FP32_BYTES * -(-index_head_dim // 128)


def dsa_indexer_flops(batch, tokens, index_heads: int, index_head_dim: int) -> np.ndarray:
    """Indexer scores: 2 x heads x head_dim per (query, cached token) (model_configs.md §4a: 16,384 x S for V3.2)."""
    return 2.0 * index_heads * index_head_dim * np.asarray(batch, float) * np.asarray(tokens, float)


def dsa_selected_tokens_per_rank(context, kvp, topk: int) -> np.ndarray:
    """Selected tokens the busiest KVP rank's sparse MLA reads.

    S <= k: every token (the dense path), ceil(S/KVP) per rank. S > k: the k
    selections fall on the ranks like independent draws (round-robin KV blocks),
    so the busiest rank gets the Gaussian maximum of KVP loads of mean k/KVP
    (:func:`terms.max_rank_load`), never more than it holds or than k.
    """
    context, kvp = np.asarray(context, float), np.asarray(kvp, float)
    held = t.cdiv(context, kvp).astype(float)
    busiest = np.ceil(t.max_rank_load(topk / kvp, kvp))
    return np.where(context > topk, np.minimum(np.minimum(busiest, held), topk), held)


def dsa_topk_merge_gather_bytes(batch, context, kvp, topk: int) -> np.ndarray:
    """Gathered output of the top-k agreement: every rank's local top-k scores (fp32), B requests.

    Each rank's local list is min(k, ceil(S/KVP)) long; the all-gather over KVP
    ranks yields KVP of them (zero at S <= k: no selection).
    """
    local = np.minimum(topk, t.cdiv(context, kvp))
    return np.where(np.asarray(context) > topk, np.asarray(kvp, float) * np.asarray(batch, float) * local * FP32_BYTES, 0.0)


@dataclass(frozen=True)
class IndexerLaw:
    """DSA module terms fitted on measured rows (ms): indexer i0 + i1 B + S (alpha + beta B) when it
    runs (S > k), fixed o0 + o1 B always."""

    alpha_ms: float
    beta_ms: float
    i0_ms: float
    i1_ms: float
    o0_ms: float
    o1_ms: float
    source: str

    def indexer_ms(self, batch, tokens) -> np.ndarray:
        """Indexer and top-k over ``tokens`` keys per request (zero tokens: the indexer does not run)."""
        tokens = np.asarray(tokens, float)
        batch = np.asarray(batch, float)
        return np.where(tokens > 0, self.i0_ms + self.i1_ms * batch + tokens * (self.alpha_ms + self.beta_ms * batch), 0.0)

    def fixed_ms(self, batch) -> np.ndarray:
        return self.o0_ms + self.o1_ms * np.asarray(batch, float)


def dsa_indexer_roofline_ms(k, batch, tokens, model: ModelSpec) -> np.ndarray:
    """Indexer scan by the roofline: read the index keys once, FP8 score products."""
    d = model.attention.dsa
    nbytes = np.asarray(batch, float) * np.asarray(tokens, float) * index_key_bytes_per_token(d.index_head_dim)
    flops = dsa_indexer_flops(batch, tokens, d.index_heads, d.index_head_dim)
    time = t.roofline_ms(nbytes, flops, k.hbm_gbps, k.hw.dense_tflops.for_dtype(k.math_dtype("fp8")) * k.eff.attention_compute,
                         k.floor_us)
    return np.where(nbytes > 0, time, 0.0)


def dsa_index_proj_ms(k, model: ModelSpec, batch, prec: Precision) -> np.ndarray:
    """Indexer projections, replicated on every attention GPU: wq_b from the q latent, and wk with
    weights_proj from the hidden state as one fused GEMM (DeepSeek-V3.2 ``Indexer``)."""
    a, d, w = model.attention, model.attention.dsa, prec.attention_weights_dtype
    return (k.gemm_ms(batch, d.index_heads * d.index_head_dim, a.q_lora_rank, w)
            + k.gemm_ms(batch, d.index_head_dim + d.index_heads, model.hidden_size, w))


def dsa_attention_ms(k, model: ModelSpec, batch, q_heads, kvp, context, prec: Precision,
                     law: IndexerLaw | None) -> np.ndarray:
    """DSA decode attention of one layer on one GPU: indexer over ceil(S/KVP) keys, sparse MLA over the
    busiest rank's selected tokens, and the module's fixed terms (when measured)."""
    a, d = model.attention, model.attention.dsa
    context = np.asarray(context)
    scanned = np.where(context > d.index_topk, t.cdiv(context, kvp), 0)
    selected = dsa_selected_tokens_per_rank(context, kvp, d.index_topk)
    mla = k.mla_attention_ms(batch, q_heads, a.kv_lora_rank, a.qk_rope_head_dim, selected, prec.kv_cache,
                             k.math_dtype(prec.attention_math_dtype))
    if law is None:
        return mla + dsa_indexer_roofline_ms(k, batch, scanned, model)
    beyond = np.log2(np.maximum(np.asarray(scanned, float) / DSA_MEASURED_MAX_TOKENS, 1.0))
    return mla + k.law_ms(law.indexer_ms(batch, scanned), beyond) + k.law_ms(law.fixed_ms(batch), 0.0)


def dsa_topk_merge_ms(k, model: ModelSpec, batch, kvp, context) -> np.ndarray:
    """All-gather of the local top-k scores over the KVP ranks (zero without KVP)."""
    gathered = dsa_topk_merge_gather_bytes(batch, context, kvp, model.attention.dsa.index_topk)
    return k.collective_ms("all_gather", kvp, gathered)


# ------------------------------------------------------------------ gated delta-net terms

def linear_heads_per_gpu(heads: int, tp) -> np.ndarray:
    """ceil(heads / TP): past the head count each GPU keeps one whole head (duplicated)."""
    return t.cdiv(heads, tp)


def gdn_state_bytes(model: ModelSpec, batch, tp, act_bytes: float) -> np.ndarray:
    """Recurrent plus conv state one GPU holds for ``batch`` requests in one linear layer (value heads
    and conv channels split ``tp`` ways)."""
    la = model.linear_attention
    vh = linear_heads_per_gpu(la.num_value_heads, tp)
    kh = linear_heads_per_gpu(la.num_key_heads, tp)
    state = vh * la.key_head_dim * la.value_head_dim * (FP32_BYTES if la.state_dtype == "fp32" else 2.0)
    conv = (2 * kh * la.key_head_dim + vh * la.value_head_dim) * (la.conv_kernel - 1) * act_bytes
    return np.asarray(batch, float) * (state + conv)


@dataclass(frozen=True)
class LinearLaw:
    """floor + bytes / bandwidth for the recurrence and the conv update (ms, bytes per ms)."""

    rec_floor_ms: float
    rec_bytes_per_ms: float
    conv_floor_ms: float
    conv_bytes_per_ms: float
    source: str


def gdn_recurrent_bytes(model: ModelSpec, batch, tp) -> np.ndarray:
    """The recurrence reads and writes the state once per decode step: 2 x state bytes."""
    la = model.linear_attention
    sb = FP32_BYTES if la.state_dtype == "fp32" else 2.0
    return 2.0 * np.asarray(batch, float) * linear_heads_per_gpu(la.num_value_heads, tp) * la.key_head_dim * la.value_head_dim * sb


def gdn_conv_bytes(model: ModelSpec, batch, tp) -> np.ndarray:
    """The causal-conv update reads its state and weights and writes the state back (bf16)."""
    la = model.linear_attention
    ch = (2 * linear_heads_per_gpu(la.num_key_heads, tp) * la.key_head_dim
          + linear_heads_per_gpu(la.num_value_heads, tp) * la.value_head_dim)
    return 2.0 * 2.0 * np.asarray(batch, float) * ch * la.conv_kernel


def gdn_attention_ms(k, model: ModelSpec, batch, tp, law: LinearLaw | None) -> np.ndarray:
    """Gated delta-net decode on one GPU: recurrence plus conv update (independent of the context)."""
    rec, conv = gdn_recurrent_bytes(model, batch, tp), gdn_conv_bytes(model, batch, tp)
    if law is None:
        return k.memory_op_ms(rec) + k.memory_op_ms(conv)
    # measured: batch 1-1024, 16-64 value heads per GPU; doublings beyond either
    vh = linear_heads_per_gpu(model.linear_attention.num_value_heads, tp)
    beyond = (np.log2(np.maximum(np.asarray(batch, float) / GDN_MEASURED_MAX_BATCH, 1.0))
              + np.log2(np.maximum(GDN_MEASURED_MIN_HEADS / vh, 1.0)))
    return (k.law_ms(law.rec_floor_ms + rec / law.rec_bytes_per_ms, beyond)
            + k.law_ms(law.conv_floor_ms + conv / law.conv_bytes_per_ms, beyond))


def gdn_proj_ms(k, model: ModelSpec, batch, tp, prec: Precision) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) projections of one linear layer at TP = tp: fused q,k,v,z,b,a then out_proj."""
    la, h, w = model.linear_attention, model.hidden_size, prec.attention_weights_dtype
    vh = linear_heads_per_gpu(la.num_value_heads, tp)
    kh = linear_heads_per_gpu(la.num_key_heads, tp)
    width = 2 * kh * la.key_head_dim + 2 * vh * la.value_head_dim + 2 * vh
    return k.gemm_ms(batch, width, h, w), k.gemm_ms(batch, h, vh * la.value_head_dim, w)


def linear_weight_elements(model: ModelSpec, tp) -> np.ndarray:
    """Weights of one linear layer on one GPU (heads split tp ways, duplicated past their count)."""
    la, h = model.linear_attention, model.hidden_size
    vh = linear_heads_per_gpu(la.num_value_heads, tp)
    kh = linear_heads_per_gpu(la.num_key_heads, tp)
    width = 2 * kh * la.key_head_dim + 2 * vh * la.value_head_dim + 2 * vh
    conv = (2 * kh * la.key_head_dim + vh * la.value_head_dim) * la.conv_kernel
    return h * width + conv + vh * la.value_head_dim * h


# ------------------------------------------------------------------ the measured laws

def _rows_dir(k, family: str) -> Path | None:
    """Measured rows shipped for this system (only with calibrated kernels)."""
    if not hasattr(k, "calibration"):
        return None
    from ..calibration.fit import builtin_calibration_path

    root = builtin_calibration_path(k.hw.name)
    folder = None if root is None else root / family
    return folder if folder is not None and folder.is_dir() else None


def split_fifth(n: int, seed: int = 13) -> np.ndarray:
    """A fixed random fifth of n rows (True = held out)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(n) % 5 == 0


def _relative_lstsq(design: np.ndarray, target: np.ndarray, measured: np.ndarray) -> np.ndarray:
    w = 1.0 / measured
    coef, *_ = np.linalg.lstsq(design * w[:, None], target * w, rcond=None)
    return coef


def dsa_known_ms(k, model: ModelSpec, rows: pd.DataFrame) -> np.ndarray:
    """The parts of a measured DSA module the calibrated kernels already price: projections (MLA and
    indexer), W_UK / W_UV absorption, output projection and the (sparse) MLA, at TP = 128 / num_heads."""
    from .step import TP, StepShapes, o_proj_ms, qkv_proj_ms

    b = rows["batch_size"].to_numpy(float)
    h = rows["num_heads"].to_numpy(float)
    tpa = model.attention.num_q_heads // h
    gemm = rows["gemm_type"].map({"bfloat16": "bf16", "fp8_block": "fp8", "nvfp4": "fp4"}).to_numpy()
    kv = rows["kv_cache_dtype"].map({"bfloat16": "bf16", "fp8": "fp8"}).to_numpy()
    out = np.zeros(len(rows))
    for wd in np.unique(gemm):
        for kd in np.unique(kv):
            sel = (gemm == wd) & (kv == kd)
            if not sel.any():
                continue
            prec = Precision(weights=wd, kv_cache=kd)
            s = StepShapes(strategy=np.full(sel.sum(), TP), micro_batch=b[sel], attn_batch=b[sel], q_heads=h[sel],
                           kv_heads=np.ones(sel.sum()), o_tp=tpa[sel], n_attn=tpa[sel], n_ffn=tpa[sel],
                           layers_factor=np.ones(sel.sum()))
            ctx = rows["step"].to_numpy(float)[sel]
            mla = model.attention
            selected = np.where(ctx > mla.dsa.index_topk, mla.dsa.index_topk, ctx)
            attn = k.mla_attention_ms(b[sel], h[sel], mla.kv_lora_rank, mla.qk_rope_head_dim, selected, kd,
                                      k.math_dtype(prec.attention_math_dtype))
            out[sel] = qkv_proj_ms(k, model, s, prec) + o_proj_ms(k, model, s, prec) + attn
    return out


def fit_indexer_law(k, model: ModelSpec, rows: pd.DataFrame, source: str) -> IndexerLaw:
    """Relative least squares of (measured - known) = o0 + o1 B + [S > k] (i0 + i1 B + S (alpha + beta B)).

    Rows measured exactly at S = index_topk are left out of the fit: the kernel
    takes a much slower path there (up to 2x the neighbouring lengths, on every
    system), which no smooth law in S describes; they stay in the validation.
    """
    topk = model.attention.dsa.index_topk
    rows = rows[rows["step"] != topk]
    meas = rows["latency_ms"].to_numpy(float)
    resid = meas - dsa_known_ms(k, model, rows)
    b = rows["batch_size"].to_numpy(float)
    s = rows["step"].to_numpy(float)
    on = (s > topk).astype(float)
    design = np.column_stack([on * s, on * s * b, on, on * b, np.ones_like(b), b])
    a, beta, i0, i1, o0, o1 = _relative_lstsq(design, resid, meas)
    return IndexerLaw(alpha_ms=float(max(a, 0.0)), beta_ms=float(max(beta, 0.0)), i0_ms=float(i0), i1_ms=float(i1),
                      o0_ms=float(o0), o1_ms=float(o1), source=source)


def predict_dsa_module_ms(k, model: ModelSpec, rows: pd.DataFrame, law: IndexerLaw) -> np.ndarray:
    """Predicted latency of measured DSA module rows (KVP = 1): known kernels plus the fitted law."""
    s = rows["step"].to_numpy(float)
    b = rows["batch_size"].to_numpy(float)
    scanned = np.where(s > model.attention.dsa.index_topk, s, 0.0)
    return dsa_known_ms(k, model, rows) + law.indexer_ms(b, scanned) + law.fixed_ms(b)


def heldout_dsa_errors(k, model: ModelSpec, rows: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """|predicted / measured - 1| on a fixed fifth of ``rows`` after fitting the law on the other four."""
    rows = rows.reset_index(drop=True)
    held = split_fifth(len(rows))
    law = fit_indexer_law(k, model, rows[~held], "held-out check")
    test = rows[held]
    return np.abs(predict_dsa_module_ms(k, model, test, law) / test["latency_ms"].to_numpy() - 1), test


def read_dsa_rows(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "deepseek-v3.2.csv.gz")


_LAWS: dict[tuple, object] = {}


def indexer_law(k, model: ModelSpec, prec: Precision) -> IndexerLaw | None:
    """The measured DSA law for this system and KV format, or None (roofline).

    Fitted once per process and system from the DeepSeek-V3.2 rows, with the
    measured model's own shapes (the built-in ``deepseek-v3.2``); it serves any
    DSA model, whose projections and MLA are priced from its own shapes.
    """
    if not model.attention.is_dsa:
        return None
    folder = _rows_dir(k, "dsa_generation_module")
    if folder is None:
        return None
    key = ("dsa", str(folder), prec.kv_cache)
    if key not in _LAWS:
        from ..api import kernels_for
        from ..specs.registry import load_model

        rows = read_dsa_rows(folder)
        rows = rows[rows["kv_cache_dtype"] == {"bf16": "bfloat16"}.get(prec.kv_cache, prec.kv_cache)]
        # fitted with the system's own calibrated kernels, never through a recording or perturbed wrapper
        _LAWS[key] = None if rows.empty else fit_indexer_law(
            kernels_for(k.hw), load_model("deepseek-v3.2"), rows,
            f"{folder.parent.name}/dsa_generation_module ({len(rows)} rows)")
    return _LAWS[key]


def fit_linear_law(rows: pd.DataFrame, source: str) -> LinearLaw:
    """Fit floor + bytes / bandwidth on the measured recurrence and conv-update rows (decode phase)."""
    params = []
    unit = LinearLaw(0.0, 1.0, 0.0, 1.0, "bytes")       # predicts each row's bytes (floor 0, 1 byte per ms)
    for kernel in ("fused_recurrent_gated_delta_rule", "causal_conv1d_update"):
        r = rows[rows["kernel_source"] == kernel]
        nbytes = predict_gdn_rows(unit, r)
        meas = r["latency_ms"].to_numpy(float)
        floor, inv_bw = _relative_lstsq(np.column_stack([np.ones_like(meas), nbytes]), meas, meas)
        params += [float(max(floor, 0.0)), 1.0 / float(max(inv_bw, 1e-18))]
    return LinearLaw(*params, source=source)


def predict_gdn_rows(law: LinearLaw, rows: pd.DataFrame) -> np.ndarray:
    """Predicted latency (ms) of measured decode gdn rows (recurrence or conv update) by the law."""
    b = rows["batch_size"].to_numpy(float)
    rec = rows["kernel_source"].str.startswith("fused").to_numpy()
    rec_bytes = 2.0 * b * rows["num_v_heads"] * rows["head_k_dim"] * rows["head_v_dim"] * FP32_BYTES
    ch = 2 * rows["num_k_heads"] * rows["head_k_dim"] + rows["num_v_heads"] * rows["head_v_dim"]
    conv_bytes = 2.0 * 2.0 * b * ch * rows["d_conv"]
    return np.where(rec, law.rec_floor_ms + rec_bytes / law.rec_bytes_per_ms,
                    law.conv_floor_ms + conv_bytes / law.conv_bytes_per_ms)


def heldout_gdn_errors(rows: pd.DataFrame) -> np.ndarray:
    """|predicted / measured - 1| of the gated delta-net law on a fixed fifth, fitted on the rest."""
    rows = rows.reset_index(drop=True)
    held = split_fifth(len(rows))
    law = fit_linear_law(rows[~held], "held-out check")
    test = rows[held]
    return np.abs(predict_gdn_rows(law, test) / test["latency_ms"].to_numpy() - 1)


def linear_law(k, model: ModelSpec) -> LinearLaw | None:
    """The measured gated delta-net law for this system (fitted once per process), or None (roofline)."""
    if model.linear_attention is None:
        return None
    folder = _rows_dir(k, "gdn")
    if folder is None:
        return None
    key = ("gdn", str(folder))
    if key not in _LAWS:
        rows = pd.read_csv(folder / "generation.csv.gz")
        _LAWS[key] = fit_linear_law(rows, f"{folder.parent.name}/gdn ({len(rows)} rows)")
    return _LAWS[key]
