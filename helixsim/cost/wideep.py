"""Wide expert parallelism as engines run it: two-batch overlap (TBO), the dispatch payload's
format, and redundant expert slots.

SGLang (``--enable-two-batch-overlap``) and TensorRT-LLM's wide-EP path split a DP-attention /
expert-parallel decode step into two micro-batches and run one's DeepEP dispatch/combine while the
other computes (LMSYS blog, "Deploying DeepSeek with PD Disaggregation and Large-Scale Expert
Parallelism on 96 H100 GPUs", 2025, section "Two-batch Overlap"). A layout switch like HOP-B.

Model (:func:`two_batch_overlap_step`), priced from the same measured kernels at half the batch:
per layer, C and M are one micro-batch's compute and communication; the two micro-batches
alternate, so a layer takes max(2C, 2M) and the pipeline's fill costs one min(C, M) per step:

    step = max(2 sum C, 2 sum M) + min(sum C, sum M) / L + lm_head + overhead   (whole batch)

Only the ``ep`` strategy (DP attention + all-to-all) overlaps; other layouts are unchanged. The
compute of a half batch is not half the compute (weights are read by both micro-batches), which
is why TBO pays off only where communication is a large share of the step.
"""

from __future__ import annotations

import numpy as np

from ..layout import STRATEGIES
from . import terms as t

COMM_OPS = ("attn_comm", "ffn_comm")
SERIAL_OPS = ("lm_head", "pp_comm", "overhead", "mtp")
EP = STRATEGIES.index("ep")


def two_batch_overlap_step(full: dict, half: dict, num_layers: int, applies) -> dict:
    """Per-op times of a step run as two overlapped micro-batches (``half``: the step at half the batch).

    Compute ops are twice their half-batch time; the communication ops keep only their exposed
    part (the overlap's total minus the compute), split between them in proportion; lm_head,
    pp_comm, overhead and MTP drafting run once on the whole batch. Where ``applies`` is False,
    ``full`` is returned unchanged.
    """
    comp_ops = [k for k in full if k not in COMM_OPS + SERIAL_OPS]
    comp = sum(half[k] for k in comp_ops)
    comm = sum(half[k] for k in COMM_OPS)
    core = np.maximum(2.0 * comp, 2.0 * comm) + np.minimum(comp, comm) / max(num_layers, 1)
    exposed = core - 2.0 * comp
    out = {}
    for k in full:
        if k in SERIAL_OPS:
            out[k] = full[k]
        elif k in comp_ops:
            out[k] = np.where(applies, 2.0 * half[k], full[k])
        else:
            share = np.divide(half[k], comm, out=np.full(np.shape(comm), 0.5), where=comm > 0)
            out[k] = np.where(applies, exposed * share, full[k])
    return out


def apply_two_batch_overlap(parts: dict, k, model, layouts, batch, context, prec, q_len=1) -> dict:
    """``parts`` of an ``ep`` step with batch >= 2 re-priced as two overlapped micro-batches."""
    from .step import decode_step

    batch = np.asarray(batch)
    applies = (layouts.strategy == EP) & (t.cdiv(batch, layouts.pp * layouts.dp) >= 2)
    if not np.any(applies):
        return parts
    half = decode_step(k, model, layouts, t.cdiv(batch, 2), context, prec, q_len=q_len)
    shape = np.shape(parts["qkv_proj"])
    half = {key: np.broadcast_to(np.asarray(v, float), shape) for key, v in half.items()}
    return two_batch_overlap_step(parts, half, model.num_layers, np.broadcast_to(applies, shape))


# ------------------------------------------------------------------ dispatch payload and expert slots

#: MoE routing after expert-parallel load balancing: the ``*_eplb`` rows of TensorRT-LLM's measured wide-EP
#: MoE kernel (``wideep_moe``: rank 0's routed load after EPLB's replication and placement, DeepSeek's EPLB,
#: https://github.com/deepseek-ai/EPLB); kernels measured without EPLB keep ``power_law_1.01``.
EPLB_ROUTING = "power_law_1.01_eplb"


def use_eplb_routing(k):
    """``k`` pricing the MoE as routed after EPLB (where the kernel model has a routing to choose)."""
    if hasattr(k, "moe_distribution"):
        k.moe_distribution = EPLB_ROUTING
    return k

def dispatch_payload_dtype(hw, prec) -> str:
    """Format of the MoE dispatch payload: the expert GEMM's input format, quantized before sending.

    DeepEP's low-latency kernels dispatch in FP8 (with per-128-channel scales) and combine in BF16
    (DeepEP README, https://github.com/deepseek-ai/DeepEP, "low-latency kernels ... FP8 dispatching
    and BF16 combining"); SGLang fuses NVFP4 quantization into DeepEP's dispatch for NVFP4 experts,
    "halving the required network traffic" (LMSYS blog, GB200 NVL72 part II, 2025); TensorRT-LLM's
    wide-EP all-to-all dispatches NVFP4 tokens with their scale factors (TensorRT-LLM tech blog 14,
    "Fuse several AlltoAll kernels"). So: FP4 experts on a GPU with FP4 tensor cores dispatch FP4,
    FP8 experts dispatch FP8, anything else (BF16 experts, FP4 weight-only on Hopper) the activations.
    The combine stays in the activations' format (BF16): TensorRT-LLM's NVFP4 combine is opt-in.
    """
    if prec.weights == "fp4" and hw.fp4_tensor_cores:
        return "fp4"
    if prec.weights == "fp8":
        return "fp8"
    return prec.activations


def expert_slots(num_experts: int, ep) -> np.ndarray:
    """Expert slots of an EP group: ceil(E / ep) per rank, the slots beyond E holding redundant
    copies of hot experts (EPLB: DeepSeek's EPLB, https://github.com/deepseek-ai/EPLB; SGLang's
    ``--ep-num-redundant-experts``; TensorRT-LLM's MoE load balancer ``num_slots``, tech blog 4).
    That is what lets EP 48 or 72 serve 256 experts (288 slots: 6 or 4 per rank)."""
    ep = np.maximum(np.asarray(ep), 1)
    return -(-num_experts // ep) * ep


def redundant_slot_read_ms(k, model, tpf, ep, prec) -> np.ndarray:
    """Weight read of the redundant slots on one rank per MoE layer (ms): (ceil(E/ep) - E/ep) experts'
    weights at HBM bandwidth, split tpf ways. The MoE kernel is priced for E/ep experts per rank with the
    same expanded tokens; a redundant copy moves no extra tokens but its weights are read when touched,
    which at wide-EP batches they are (an upper bound at small batch). 0 where ep divides E."""
    m = model.ffn.moe
    if m is None:
        return np.zeros(np.shape(ep))
    ep = np.maximum(np.asarray(ep), 1)
    extra = expert_slots(m.num_experts, ep) / ep - m.num_experts / ep
    nbytes = extra * model.expert_params() * k.elem_bytes(prec.weights) / np.maximum(np.asarray(tpf), 1)
    return np.where(extra > 0, k.memory_op_ms(nbytes), 0.0)
