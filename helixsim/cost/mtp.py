"""Multi-token prediction (MTP) speculative decoding, as DeepSeek-R1 is served at low latency.

A step with N draft tokens per request (``--mtp N``):

- **verification**: the main model runs on 1 + N tokens per request. Every GEMM, the
  MoE, the Helix all-to-all and every collective carry (1 + N) x the tokens; attention
  reads each request's KV cache once for its 1 + N queries
  (:func:`helixsim.cost.step.decode_step` with ``q_len = 1 + N``).
- **drafting**: the MTP module drafts the next step's N tokens autoregressively,
  running N times on one token per request (TensorRT-LLM's default "MTP Eagle" path
  for DeepSeek-V3/R1, which reuses the checkpoint's single MTP module N times;
  TensorRT-LLM tech blog 2, "DeepSeek R1 MTP Implementation and Optimization").
  One MTP forward is one decoder layer of the main model's shape (MLA + MoE), its
  ``eh_proj`` projection [2H -> H] of the concatenated embedding and hidden state, and
  the shared LM head (DeepSeek-V3 technical report, arXiv 2412.19437, section 2.2).
  The first of the N forwards really takes the accepted tokens (up to 1 + N per
  request); pricing it on one token is slightly optimistic.
- **acceptance**: draft i is kept only if drafts 1..i-1 were; with per-position
  acceptance rates a_i (conditional on the earlier ones), the tokens a request gains per
  step are ``1 + sum_i prod_{j<=i} a_j`` (the verified token plus the accepted prefix),
  and tokens/s/user = that / step time.

Memory (:func:`mtp_weight_bytes`, :func:`mtp_kv_bytes_per_request`, counted by
:func:`helixsim.cost.memory.memory_per_gpu` when N > 0): the MTP module is one decoder layer of the main
model's shape (MLA + MoE for DeepSeek-V3/R1: ``DeepseekV3MTP(DeepseekV3DecoderLayer)`` in TensorRT-LLM's
modeling_deepseekv3.py, ``DeepseekV2DecoderLayer(..., is_nextn=True)`` in SGLang's deepseek_nextn.py),
split like the main layers and with the framework's absorbed MLA copies, plus ``enorm``, ``hnorm`` and
``shared_head.norm`` (H each) and ``eh_proj`` [2H -> H] in the model dtype (TensorRT-LLM ``Linear(...,
dtype=config.torch_dtype)``, unquantised; SGLang ``nn.Linear``), counted whole on every GPU (SGLang and
TensorRT-LLM under attention DP replicate it; TensorRT-LLM without attention DP splits it row-wise over
TP: over-counted there by at most 0.18 GB for DeepSeek-R1 at TP 8). One module whatever N (TensorRT-LLM's
default MTP Eagle and SGLang's NextN reuse the checkpoint's single layer). The embedding and the LM head
are the main model's: TensorRT-LLM's ``DeepseekV3MTP.forward`` takes the main model's ``embed_tokens`` and
its ``DeepseekV3MTPHead`` holds only the norm (the LM head is passed in); SGLang's EAGLE worker hands the
target's embedding and head to the draft model (``set_embed_and_head``), so neither is counted twice.
NVIDIA's ModelOpt NVFP4 DeepSeek checkpoints leave the MTP layer unquantised
(``exclude_modules`` ``"model.layers.61*"``; SGLang's ``DeepseekV3ForCausalLMNextN`` drops a
``modelopt_fp4`` quant config for it), so with FP4 weights the module is held in BF16
(:func:`mtp_precision`, the one rule for both its weight bytes and its draft time). Its KV cache: one
more layer of the main model's per-token KV (and DSA index keys), sharded like the others, in the main
cache format (TensorRT-LLM keeps ``kv_cache_quant_algo`` for the excluded layer).

Formats of the draft (:func:`mtp_precision`, :func:`eh_proj_dtype`), for NVIDIA's NVFP4 DeepSeek-R1
checkpoints (nvidia/DeepSeek-R1-FP4, nvidia/DeepSeek-R1-0528-FP4-v2, whose ``hf_quant_config.json``
``exclude_modules`` holds ``"model.layers.61*"``): the whole MTP layer is BF16, its MLA projections and
absorbed bmms, ``wo``, router, shared expert and routed experts alike. TensorRT-LLM
``DeepseekV3DecoderLayer._get_decoder_layer_quant_config`` ("The MTP layer in the nvfp4 checkpoint is
unquantized"): a layer matched by the exclude list gets ``QuantConfig(quant_algo=None,
kv_cache_quant_algo=<the main one>)``, so its fused MoE and linears run unquantised. SGLang
``DeepseekV3ForCausalLMNextN._resolve_nextn_quant_config`` with ``"model.layers.61*"``: every linear gets
``UnquantizedLinearMethod`` and the fused MoE no quant method (older releases dropped the ``modelopt_fp4``
config for the NextN layer outright). TensorRT-LLM tech blog 1 (DeepSeek-R1 on 8x B200), "Precision
Strategy" table: "3x MTP Layers | bf16" (its "64x Attention Modules | bf16" counts the MTP layers' too).
So a BF16 MoE kernel, not the NVFP4 one, prices the draft's experts. ``eh_proj`` is unquantised in every
checkpoint (TensorRT-LLM ``Linear(..., dtype=config.torch_dtype)`` without a quant config): the model dtype,
FP8 checkpoints included. DeepSeek's own FP8 checkpoint quantises layer 61 like the others (block FP8),
so there the draft runs in the main layers' formats.
DeepSeek-R1 (hand check in tests/test_mtp_memory.py): MoE layer 256 x 3 x 7168 x 2048 + shared expert
3 x 7168 x 2048 + router 256 x 7168, MLA 187,105,280 + eh_proj 2 x 7168^2 + norms.
With pipeline parallelism the module sits on the last stage and is charged to the busiest one (exact
at pp 1, an upper bound otherwise).

Not modelled: the rejected drafts' KV rewind (a metadata update) and the few extra KV slots a request
reserves for its draft tokens.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import SpecError
from ..layout import LayoutArrays
from ..precision import Precision
from ..specs.model import ModelSpec
from . import terms as t

#: DeepSeek-R1 acceptance length (tokens per step, strict top-1 acceptance) with 1..5 autoregressive
#: MTP layers on 8x B200, ISL/OSL 1k/2k: TensorRT-LLM tech blog 1, "Pushing Latency Boundaries:
#: Optimizing DeepSeek-R1 Performance on NVIDIA B200 GPUs", table "Autoregressive MTP Layers"
#: (column "Acceptance Rate", which is tokens per step: 1.00 without MTP). Consistent with the
#: DeepSeek-V3 technical report (arXiv 2412.19437, section 5.4.3): "the acceptance rate of the
#: second token prediction ranges between 85% and 90%".
DEEPSEEK_R1_ACCEPTANCE_LENGTH = (1.92, 2.58, 2.82, 2.99, 3.01)
SOURCE = ("DeepSeek-R1 acceptance lengths 1.92, 2.58, 2.82, 2.99, 3.01 with 1-5 MTP layers (TensorRT-LLM tech "
          "blog 1, 8x B200, strict acceptance)")


def rates_from_acceptance_length(lengths) -> tuple[float, ...]:
    """Per-position conditional acceptance rates from the acceptance lengths with 1, 2, ... drafts.

    AL_n = 1 + sum_{i<=n} p_i with p_i = prod_{j<=i} a_j, so p_i = AL_i - AL_{i-1} and
    a_i = p_i / p_{i-1} (p_0 = 1).
    """
    al = np.concatenate([[1.0], np.asarray(lengths, float)])
    p = np.diff(al)
    prev = np.concatenate([[1.0], p[:-1]])
    return tuple(float(x) for x in np.round(np.clip(p / prev, 0.0, 1.0), 4))


#: per-position acceptance rates of DeepSeek-R1's MTP module (0.92, 0.7174, 0.3636, 0.7083, 0.1176)
DEFAULT_ACCEPTANCE: tuple[float, ...] = rates_from_acceptance_length(DEEPSEEK_R1_ACCEPTANCE_LENGTH)


def check_acceptance(rates, field: str = "--mtp-acceptance", source: str = "command line") -> tuple[float, ...]:
    """Rates as a tuple of floats in [0, 1]; a one-line SpecError otherwise."""
    try:
        out = tuple(float(r) for r in rates)
    except (TypeError, ValueError):
        raise SpecError(source, field, f"must be numbers in [0, 1], got {rates!r}") from None
    if not out or any(not (0.0 <= r <= 1.0) for r in out):
        raise SpecError(source, field, f"must be numbers in [0, 1], got {rates!r}")
    return out


def acceptance_rates(draft_tokens: int, rates=DEFAULT_ACCEPTANCE) -> tuple[float, ...]:
    """The first ``draft_tokens`` rates; positions beyond the given ones are never accepted (rate 0)."""
    rates = tuple(rates)
    return tuple(rates[i] if i < len(rates) else 0.0 for i in range(int(draft_tokens)))


def accepted_tokens_per_step(draft_tokens, rates=DEFAULT_ACCEPTANCE) -> np.ndarray:
    """Expected tokens a request gains per step: 1 + sum_i prod_{j<=i} a_j over the first N positions."""
    n = np.asarray(draft_tokens, dtype=np.int64)
    top = int(n.max()) if n.size else 0
    a = np.asarray(acceptance_rates(top, rates), float)
    cum = np.concatenate([[1.0], 1.0 + np.cumsum(np.cumprod(a))]) if top else np.array([1.0])
    return cum[n]


def eh_proj_dtype(prec: Precision) -> str:
    """Format of ``eh_proj``: the model dtype whatever the checkpoint (unquantised; module docstring)."""
    return prec.activations


def eh_proj_ms(k, model: ModelSpec, tokens, prec: Precision) -> np.ndarray:
    """MTP input projection: [tokens, 2H] x [2H, H] on each attention GPU (DeepSeek-V3 report, eq. 21), in
    :func:`eh_proj_dtype`."""
    h = model.hidden_size
    return k.gemm_ms(tokens, h, 2 * h, eh_proj_dtype(prec))


def mtp_layer_model(model: ModelSpec) -> ModelSpec:
    """The MTP module as a one-layer model of the main model's shape (an MoE layer where the model has MoE,
    a full softmax-attention layer where the model also has sliding-window or linear-attention layers:
    Qwen3-Next / Qwen3.5's MTP layer is a full-attention layer, HF ``mtp_num_hidden_layers``)."""
    ffn = replace(model.ffn, dense_layers=0) if model.ffn.moe is not None else model.ffn
    return replace(model, num_layers=1, ffn=ffn, attention=replace(model.attention, sliding_window_layers=0),
                   linear_attention=None)


def mtp_precision(prec: Precision) -> Precision:
    """Formats the MTP module is stored and run in (its weight bytes and its draft time): BF16 with FP4 weights
    (NVIDIA's NVFP4 DeepSeek checkpoints exclude ``model.layers.61*`` from quantisation; module docstring),
    else the main layers' formats. The KV cache keeps the main format."""
    if prec.weights != "fp4":
        return prec
    return replace(prec, weights="bf16", dense_weights="bf16", attention_weights="bf16", o_proj_weights="bf16")


def mtp_weight_bytes(k, model: ModelSpec, a: LayoutArrays, prec: Precision) -> np.ndarray:
    """Weight bytes of the MTP module on one GPU: one decoder layer (:func:`mtp_layer_model`, split as the
    main layers, in :func:`mtp_precision`) + ``eh_proj`` [2H x H] whole + ``enorm`` / ``hnorm`` /
    ``shared_head.norm``, both in the model dtype; embedding and LM head shared (module docstring)."""
    from .memory import decoder_weight_bytes

    h = model.hidden_size
    return (decoder_weight_bytes(k, mtp_layer_model(model), a, mtp_precision(prec))
            + 2 * h * h * k.elem_bytes(eh_proj_dtype(prec)) + 3 * h * k.elem_bytes(prec.activations))


def mtp_kv_bytes_per_request(k, model: ModelSpec, a: LayoutArrays, context, prec: Precision) -> np.ndarray:
    """KV-cache bytes of one request for the MTP layer on one GPU: one full-attention layer of the main model's
    KV format, sharded like the others (module docstring)."""
    from .memory import kv_bytes_per_request

    return kv_bytes_per_request(k, mtp_layer_model(model), a, context, prec)


def draft_ms(k, model: ModelSpec, a: LayoutArrays, batch, context, prec: Precision, draft_tokens) -> np.ndarray:
    """Time of the N draft forwards of a step (ms): N x (one decoder layer + eh_proj + LM head) on one
    token per request of the micro-batch, on the last pipeline stage."""
    n = np.asarray(draft_tokens)
    if not (n > 0).any():
        return np.zeros(np.broadcast(batch, context, a.kvp, n).shape)
    return n * sum(draft_forward_parts(k, model, a, batch, context, prec).values())


def draft_forward_parts(k, model: ModelSpec, a: LayoutArrays, batch, context, prec: Precision) -> dict:
    """One draft forward (ms) by part: the MTP decoder layer (:func:`mtp_layer_model`) in the MTP module's
    formats (:func:`mtp_precision`, as its weights are counted), its norms, ``eh_proj`` and the shared LM head,
    on one token per request of the micro-batch on the last pipeline stage."""
    from .step import decode_step

    micro = t.cdiv(np.asarray(batch), a.pp)
    one_stage = replace(a, pp=np.ones_like(a.pp))
    parts = decode_step(k, mtp_layer_model(model), one_stage, micro, context, mtp_precision(prec))
    out = {key: v for key, v in parts.items() if key not in ("overhead", "pp_comm", "mtp")}
    out["norms"] = parts["overhead"] - k.eff.step_overhead_us * 1e-3      # the layer's norms, not the step's
    out["eh_proj"] = eh_proj_ms(k, model, t.cdiv(micro, a.dp), prec)
    return out


def mtp_summary(draft_tokens: int, rates=DEFAULT_ACCEPTANCE) -> dict:
    """What a result states about its speculative decoding (JSON ``mtp``)."""
    used = acceptance_rates(draft_tokens, rates)
    return {"draft_tokens": int(draft_tokens), "acceptance_rates": list(used),
            "accepted_tokens_per_step": float(accepted_tokens_per_step(draft_tokens, rates)),
            "acceptance_source": SOURCE if tuple(rates) == DEFAULT_ACCEPTANCE else "given"}
