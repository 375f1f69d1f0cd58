"""Wide expert parallelism as engines run it: two-batch overlap (TBO).

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
