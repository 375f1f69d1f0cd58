"""Serving: aggregated continuous batching with chunked prefill, TTFT, and the KV hand-off of
disaggregated serving.

**Aggregated** (one instance prefills and decodes; TensorRT-LLM, SGLang and vLLM with chunked
prefill): every iteration decodes one token for each running request; when a request is
waiting, a chunk of its prompt runs too. How the chunk meets the decode depends on the
framework's scheduler (:data:`SCHEDULERS`):

- *mixed batches* (TensorRT-LLM's in-flight batching, vLLM V1): the chunk and the running
  requests' decode tokens go through **one** forward pass. The GEMMs, the MoE and the
  collectives run at m = chunk + decode tokens, compute-bound at chunk sizes, so the decode's own
  weight streaming is absorbed into the chunk's; what the decode adds to the pass is its
  attention over the running requests' KV and its ``B`` tokens at a prompt token's cost
  ``t`` (the prefill's non-attention time per prompt token). A pass with a chunk lasts ``T_chunk + T_decode_attention + B t`` and
  replaces one decode iteration, so a prefill of ``n`` chunks costs the other requests
  ``T_prefill - n x absorbed`` beyond their regular iterations, absorbed =
  ``T_decode - T_decode_attention - B t`` (at least 0);
- *separate batches* (SGLang: ``--enable-mixed-chunk`` is off by default): the prefill batch runs
  alone and the running requests wait ``T_prefill``.

In a closed loop of ``B`` requests per attention rank (the benchmark's concurrency), while one
request decodes its ``osl - 1`` tokens the other ``B - 1`` each finish and are replaced about
once, so its decode sees ``B - 1`` whole prefills:

    TPOT = T_decode + (B - 1) / (osl - 1) x (T_prefill - n x absorbed)

(absorbed as above with mixed batches, 0 with separate ones; per
attention-DP rank: ranks prefill their own requests in parallel).

**TTFT** of a request: the wait for the scheduler to take it, its own prefill passes (each,
with mixed batches, also carrying the other requests' decode attention) and, disaggregated,
the KV-cache transfer to the decode instance. The wait is half an iteration on average (it
arrives at a random point of the pass in flight) plus, under an *overlap* scheduler (all three
frameworks by default), one whole iteration more: the next pass was already prepared while
the current one ran, so a new request joins the one after it. Queueing behind other prompts
is not modelled: in a closed loop of ``c <= 4`` requests with randomised lengths the chance
that another prompt is prefilling when one arrives is about ``(c - 1) T_prefill / cycle``,
well under 1 % for the validation runs; the validation restricts TTFT to concurrency <= 4.
Launch settings that trade TTFT for throughput (SGLang's ``--stream-interval`` and
``--scheduler-recv-interval``) add whole iterations (:func:`launch_setting_wait_iterations`); the
validation prices every row at the frameworks' defaults, since the runs do not record them.

**KV transfer** (disaggregated): each decode GPU receives the KV it will hold, i.e. the decode
layout's share (KVP splits the tokens, TPA splits or duplicates the KV heads; MLA's latent is
whole on every TPA rank), at NVLink speed when prefill and decode instances share an NVLink
domain and at the scale-out NIC's otherwise, whichever side (sending or receiving GPUs) is
narrower setting the pace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cost import terms as t
from .cost.memory import kv_elements_per_request
from .layout import LayoutArrays
from .precision import Precision
from .specs.model import ModelSpec


@dataclass(frozen=True)
class SchedulerModel:
    """How a framework's scheduler places a prefill chunk relative to the running decodes."""

    #: prefill chunks share the forward pass with the running requests' decode tokens
    mixed_batches: bool
    #: the next iteration is prepared while one runs, so a new request waits one iteration more
    overlap: bool
    #: the prefill's token is streamed at once even with a stream interval > 1 (else the first output
    #: waits until the output length reaches the interval)
    streams_first_token: bool
    source: str


SCHEDULERS: dict[str, SchedulerModel] = {
    "trtllm": SchedulerModel(
        mixed_batches=True, overlap=True, streams_first_token=True,
        source="TensorRT-LLM docs, 'Tuning Max Batch Size and Max Num Tokens' (in-flight batching schedules "
               "context and generation requests in one step); PyTorch backend disable_overlap_scheduler "
               "defaults to False (py_executor._executor_loop_overlap: batch n+1 is scheduled and launched "
               "before batch n's results are handled); the context response is returned at once when "
               "stream_interval > 1 (NVIDIA/TensorRT-LLM#5836)"),
    "sglang": SchedulerModel(
        mixed_batches=False, overlap=True, streams_first_token=False,
        source="SGLang server arguments: --enable-mixed-chunk (mix prefill and decode in a batch) defaults to "
               "off; the overlap scheduler is on unless --disable-overlap-schedule; a streaming request is "
               "output when its output length is a multiple of --stream-interval (default 1; "
               "scheduler_output_processor_mixin.stream_output_generation) and new requests are polled "
               "every --scheduler-recv-interval iterations (default 1)"),
    "vllm": SchedulerModel(
        mixed_batches=True, overlap=True, streams_first_token=True,
        source="vLLM V1 scheduler: one token budget per step shared by decode and chunked-prefill tokens; "
               "async scheduling on by default (vllm-project/vllm#27614, tracked in #27679), so step n+1 "
               "is scheduled while step n runs"),
}


def scheduler_for(backend: str | None) -> SchedulerModel:
    """The scheduler model of a framework (TensorRT-LLM's when the framework is not recorded)."""
    return SCHEDULERS.get(str(backend), SCHEDULERS["trtllm"])


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


def absorbed_decode_ms(decode_ms, decode_attention_ms, mixed_batches, decode_tokens=0.0,
                       prefill_ms_per_token=0.0) -> np.ndarray:
    """The part of a decode step that a prefill chunk in the same forward pass absorbs.

    The pass's GEMMs, MoE and collectives run once at m = chunk + decode tokens: compute-bound at
    chunk sizes, so the decode's weight streaming (everything but its attention) is absorbed,
    while each of its ``decode_tokens`` tokens adds what a prompt token costs
    (``prefill_ms_per_token``, the prefill's time per token). Nothing where the framework runs
    prefill batches apart (module docstring)."""
    shared = np.asarray(decode_ms, float) - np.asarray(decode_attention_ms, float)
    shared = shared - np.asarray(decode_tokens, float) * np.asarray(prefill_ms_per_token, float)
    return np.where(mixed_batches, np.maximum(shared, 0.0), 0.0)


def prefill_ms_per_token(prefill_linear_ms, isl) -> np.ndarray:
    """What one token costs a compute-bound pass: the prefill's time less its attention (GEMMs, MoE,
    collectives, norms, all linear in the tokens) over the prompt's tokens."""
    return np.asarray(prefill_linear_ms, float) / np.maximum(np.asarray(isl, float), 1.0)


def aggregated_tpot_ms(decode_ms, prefill_ms, batch_per_rank, osl, chunks=1, absorbed_ms=0.0) -> np.ndarray:
    """TPOT under continuous batching with chunked prefill: the decode step plus the other requests'
    prefills, less the decode work each of their ``chunks`` passes absorbs, spread over this
    request's osl - 1 decode iterations (module docstring)."""
    b = np.asarray(batch_per_rank, float)
    steps = np.maximum(np.asarray(osl, float) - 1.0, 1.0)
    per_prefill = np.maximum(np.asarray(prefill_ms, float) - np.asarray(chunks, float) * np.asarray(absorbed_ms, float),
                             0.0)
    return np.asarray(decode_ms, float) + np.maximum(b - 1.0, 0.0) / steps * per_prefill


def scheduler_wait_iterations(overlap) -> np.ndarray:
    """Iterations a new request waits before its first pass: half the pass in flight, plus the
    pass an overlap scheduler already prepared."""
    return 0.5 + np.where(overlap, 1.0, 0.0)


def launch_setting_wait_iterations(stream_interval, recv_interval, streams_first_token) -> np.ndarray:
    """Iterations a framework's launch settings add to TTFT: polling for new requests only every
    ``recv_interval`` iterations waits (recv_interval - 1) / 2 more on average, and a framework that
    streams only when the output length reaches a multiple of ``stream_interval`` holds the first
    token for stream_interval - 1 decode iterations. Both 0 at the frameworks' defaults (1, 1)."""
    hold = np.where(streams_first_token, 0.0, np.asarray(stream_interval, float) - 1.0)
    return (np.asarray(recv_interval, float) - 1.0) / 2.0 + hold


def mixed_pass_extra_ms(decode_attention_ms, batch_per_rank, chunks, mixed_batches,
                        prefill_ms_per_token=0.0) -> np.ndarray:
    """What the other running requests' decode adds to this request's own prefill passes, in each
    of its ``chunks`` passes: their decode attention, and their tokens through the pass's
    compute-bound GEMMs at a prompt token's cost (mixed batches only)."""
    b = np.asarray(batch_per_rank, float)
    others = np.maximum(b - 1.0, 0.0)
    per_pass = np.asarray(decode_attention_ms, float) * others / np.maximum(b, 1.0) \
        + others * np.asarray(prefill_ms_per_token, float)
    return np.where(mixed_batches, np.asarray(chunks, float) * per_pass, 0.0)


def ttft_ms(prefill_ms, iteration_ms, transfer_ms=0.0, wait_iterations=0.5, mixed_extra_ms=0.0) -> np.ndarray:
    """Time to first token: the scheduler wait (``wait_iterations`` x the running iteration), the own
    prefill with what the running decodes add to its passes, and the KV transfer (disaggregated)."""
    return (np.asarray(prefill_ms, float) + np.asarray(wait_iterations, float) * np.asarray(iteration_ms, float)
            + np.asarray(mixed_extra_ms, float) + np.asarray(transfer_ms, float))
