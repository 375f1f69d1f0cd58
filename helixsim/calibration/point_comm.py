"""One collective and one MoE all-to-all at a time, without numpy's per-call overhead (the single-point
fast path of :meth:`.kernels.CalibratedKernels.collective_ms` and ``_a2a_ms``; table queries through
:mod:`.point`).

``tests/test_point_fast.py`` checks every measured candidate against the vectorised methods (equal to
1e-12 relative), inside and beyond the measured GPU counts and EP sizes.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_right
from typing import Mapping

import numpy as np

from .families import COLLECTIVE_ELEM_BYTES, FAMILIES, collective_dtype
from ..cost.rows import full_one, shape_one
from .point import _fmin, _memo, _memo_with, _nanmax, fallback_one, query_one, scalar


def collective_one(k, op: str, n, message_bytes, roofline_op: Mapping[str, str]) -> np.ndarray:
    """:meth:`.kernels.CalibratedKernels.collective_ms` of one collective (the fastest measured kernel at
    ``n`` GPUs, the roofline beyond the NVLink domain or where none is measured; ``roofline_op``: the
    roofline's name of each measured op)."""
    n_a, m_a = scalar(n), scalar(message_bytes)
    best = math.nan
    for family, cat in k._collective_kernels(op):
        best = _fmin(best, _collective_candidate_one(k, family, cat, n_a, m_a, roofline_op))
    covered = n_a > 1 and m_a > 0 and n_a <= k.hw.nvlink_domain_gpus and math.isfinite(best)
    if covered:   # the roofline's time is not used, only its shape (that of n and the message)
        return full_one(shape_one((n, message_bytes)), best)
    return fallback_one(functools.partial(k.fallback.collective_ms, op), (n, message_bytes))


def _collective_candidate_one(k, family: str, cat: tuple, n: float, nbytes: float,
                              roofline_op: Mapping[str, str]) -> float:
    """:meth:`.kernels.CalibratedKernels._collective_candidate` at one (n, bytes)."""
    table = k._table(family)
    memo = _memo_with(table, cat)
    if memo is None:
        return math.nan
    counts = memo.levels.get((cat, "num_gpus"))
    if counts is None:
        counts = memo.levels[(cat, "num_gpus")] = sorted(float(c) for c in table.column_values(cat, "num_gpus"))
    spec = FAMILIES[family]
    elems = nbytes / COLLECTIVE_ELEM_BYTES[collective_dtype(family, cat)]
    curves, top = [], -math.inf
    for c in counts:   # made non-decreasing in the count (a running maximum, NaN carried)
        top = _nanmax(top, query_one(table, spec, cat, {"num_gpus": c, "message_size": elems}, None, k._p)) \
            if curves else query_one(table, spec, cat, {"num_gpus": c, "message_size": elems}, None, k._p)
        curves.append(top)
    if len(counts) > 1:
        lc = memo.levels.get((cat, "log2 num_gpus"))
        if lc is None:
            lc = memo.levels[(cat, "log2 num_gpus")] = np.log2(np.asarray(counts)).tolist()
        ln = float(np.log2(min(max(n, counts[0]), counts[-1])))
        i = min(max(bisect_right(lc, ln) - 1, 0), len(counts) - 2)
        f = (ln - lc[i]) / (lc[i + 1] - lc[i])
        inside = curves[i] * (1.0 - f) + curves[i + 1] * f
    else:
        inside = curves[0]
    n_hi = counts[-1]
    if not n > n_hi:
        return inside
    model = k.calibration.collectives.get(family, {}).get(cat)
    if model is not None:
        extra = _rise(model.time_ms, n, n_hi, nbytes)
    else:
        op = roofline_op.get(cat[0], "all_reduce")
        extra = _rise(functools.partial(k.fallback.collective_ms, op), n, n_hi, nbytes)
    return curves[-1] + _nanmax(extra, 0.0)


def _rise(time_ms, n: float, n_hi: float, nbytes: float) -> float:
    """``time_ms(n, nbytes) - time_ms(n_hi, nbytes)`` of floats (the fitted model's and the roofline's formulas
    keep floats as floats: the same numbers as elementwise on arrays)."""
    return float(time_ms(float(n), float(nbytes)) - time_ms(float(n_hi), float(nbytes)))


def a2a_one(k, kernels: list, tokens_per_rank, hidden, top_k, ep, wire_elem: float, fb) -> np.ndarray:
    """:meth:`.kernels.CalibratedKernels._a2a_ms` of one MoE dispatch or combine (``kernels``: from
    ``_a2a_kernels``): the fastest measured up to these tokens per rank, the roofline where none is."""
    tok, ep_a = scalar(tokens_per_rank), scalar(ep)
    wire_bytes = tok * top_k * hidden * wire_elem
    offers = [(sum(_a2a_candidate_one(k, f, c, tok, hidden, top_k, ep_a, wire_bytes) for f, c in parts), reach)
              for parts, reach in kernels]
    best = math.nan
    if offers:
        top = max(reach for _, reach in offers)
        for t, reach in offers:
            best = _fmin(best, t if (tok <= reach or reach >= top) else math.nan)
    covered = ep_a > 1 and tok > 0 and ep_a <= k.hw.nvlink_domain_gpus and math.isfinite(best)
    return np.full(np.shape(fb), best) if covered else np.asarray(fb, float)


def _a2a_candidate_one(k, family: str, cat: tuple, tok: float, hidden, top_k, ep: float, wire_bytes: float) -> float:
    """:meth:`.kernels.CalibratedKernels._a2a_candidate` of one query."""
    table = k._table(family)
    memo = _memo(table)
    span = memo.levels.get((cat, "moe_ep_size span"))
    if span is None:
        sizes = table.column_values(cat, "moe_ep_size").astype(float)
        span = memo.levels[(cat, "moe_ep_size span")] = (float(sizes.min()), float(sizes.max()))
    lo, hi = span
    inside = query_one(table, FAMILIES[family], cat,
                       {"num_tokens": tok, "hidden_size": float(hidden), "topk": float(top_k),
                        "moe_ep_size": min(max(ep, lo), hi)}, {"comm_dtype": cat[2], "moe_dtype": cat[2]}, k._p)
    if not ep > hi:
        return inside
    model = k.calibration.collectives.get("nccl", {}).get(("alltoall", "half"))
    if model is not None:
        extra = _rise(model.time_ms, ep, hi, wire_bytes)
    else:
        extra = _rise(functools.partial(k.fallback.collective_ms, "all_to_all"), ep, hi, wire_bytes)
    return inside + _nanmax(extra, 0.0)
