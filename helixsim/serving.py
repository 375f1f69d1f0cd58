"""Serving: aggregated continuous batching with chunked prefill, TTFT, and the KV hand-off of
disaggregated serving.

**Aggregated** (one instance prefills and decodes; TensorRT-LLM, SGLang and vLLM with chunked
prefill): every iteration decodes one token for each running request and, when a request is
waiting, also runs a chunk of its prompt in the same forward pass. The decode step and the
chunk share the GPU, so an iteration with a chunk lasts ``T_decode + T_chunk``. In a closed
loop of ``B`` requests per attention rank (the benchmark's concurrency), while one request
decodes its ``osl - 1`` tokens the other ``B - 1`` each finish and are replaced about once,
so its decode sees ``B - 1`` whole prefills:

    TPOT = T_decode(B, context) + (B - 1) / (osl - 1) x T_prefill(isl)

(per attention-DP rank: ranks prefill their own requests in parallel).

**TTFT** of a request: its own prefill, plus half an iteration on average waiting for the
forward pass in flight to finish (requests arrive at random points of an iteration), plus,
disaggregated, the KV-cache transfer to the decode instance. Queueing behind other prompts is
not modelled; the validation restricts TTFT to concurrency <= 4 for that reason.

**KV transfer** (disaggregated): each decode GPU receives the KV it will hold, i.e. the decode
layout's share (KVP splits the tokens, TPA splits or duplicates the KV heads; MLA's latent is
whole on every TPA rank), at NVLink speed when prefill and decode instances share an NVLink
domain and at the scale-out NIC's otherwise, whichever side (sending or receiving GPUs) is
narrower setting the pace.
"""

from __future__ import annotations

import numpy as np

from .cost import terms as t
from .cost.memory import kv_elements_per_request
from .layout import LayoutArrays
from .precision import Precision
from .specs.model import ModelSpec


def kv_cache_bytes(model: ModelSpec, isl, kv_bytes: float) -> np.ndarray:
    """Whole KV cache of one prompt, all layers, no duplication (the bytes the prefill pool produced)."""
    a = LayoutArrays(*(np.ones(1, np.int64) for _ in LayoutArrays.__dataclass_fields__))
    return kv_elements_per_request(model, a, np.asarray(isl)) * kv_bytes


def kv_transfer_ms(k, model: ModelSpec, decode: LayoutArrays, prefill_gpus, isl, prec: Precision,
                   same_domain) -> np.ndarray:
    """Time to move one prompt's KV cache from the prefill pool to the decode instance.

    Receiving side: each decode GPU gets its layout's share (the decode memory model's KV of one
    request, all pipeline stages' layers over pp); sending side: the whole cache spread over the
    prefill GPUs. Link: NVLink (same_domain) or the scale-out NIC, per GPU and direction, with
    the link's efficiency, plus one p2p latency.
    """
    kv_b = k.elem_bytes(prec.kv_cache)
    per_receiver = kv_elements_per_request(model, decode, np.asarray(isl)) * kv_b / decode.pp
    per_sender = kv_cache_bytes(model, isl, kv_b) / np.asarray(prefill_gpus, float)
    hw, eff = k.hw, k.eff
    bw = np.where(same_domain, hw.nvlink_bandwidth_gbps_per_direction * eff.nvlink,
                  hw.scale_out_bandwidth_gbps_per_direction * eff.scale_out)
    latency_us = hw.collective_latency_us.p2p + np.where(same_domain, 0.0, hw.scale_out_latency_us)
    return latency_us * 1e-3 + t.transfer_ms(np.maximum(per_receiver, per_sender), bw)


def aggregated_tpot_ms(decode_ms, prefill_ms, batch_per_rank, osl) -> np.ndarray:
    """TPOT under continuous batching with chunked prefill: the decode step plus the other requests'
    prefills spread over this request's osl - 1 decode iterations (module docstring)."""
    b = np.asarray(batch_per_rank, float)
    steps = np.maximum(np.asarray(osl, float) - 1.0, 1.0)
    return np.asarray(decode_ms, float) + np.maximum(b - 1.0, 0.0) / steps * np.asarray(prefill_ms, float)


def ttft_ms(prefill_ms, iteration_ms, transfer_ms=0.0) -> np.ndarray:
    """Time to first token: own prefill + half an iteration in flight + KV transfer (disaggregated)."""
    return np.asarray(prefill_ms, float) + 0.5 * np.asarray(iteration_ms, float) + np.asarray(transfer_ms, float)
