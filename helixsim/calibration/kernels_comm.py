"""Calibrated collectives and MoE all-to-all: the communication half of
:class:`helixsim.calibration.kernels.CalibratedKernels` (module docstring there: all_reduce by the faster of
TensorRT-LLM's custom kernels and NCCL, other collectives by NCCL, continued beyond the largest measured GPU
count by the fitted ``alpha(n) + wire(n, M) / bandwidth`` model; MoE dispatch/combine by the fastest measured
all-to-all up to the asked tokens per rank, continued beyond the measured EP sizes by NCCL all-to-all's
fitted model).

:class:`CommKernels` is a mixin: it uses the host's ``_table``, ``_query``, ``calibration``, ``fallback``,
``kernel_sources`` and ``hw``.
"""

from __future__ import annotations

import numpy as np

from . import point as _point
from . import point_comm as _point_comm
from . import roofline as rf
from .families import COLLECTIVE_ELEM_BYTES, collective_dtype
from .shape_memo import distinct_codes, unique_args
from .stored import CollectiveModel

A2A_DTYPES = {"bf16": ("bfloat16",), "fp8": ("fp8",), "fp4": ("nvfp4", "fp4")}
NCCL_OPS = {"all_gather": "all_gather", "reduce_scatter": "reduce_scatter", "all_to_all": "alltoall",
            "all_reduce": "all_reduce"}
NCCL_OPS_INV = {v: k for k, v in NCCL_OPS.items()}


class CommKernels:
    """Collectives and MoE dispatch/combine priced from the measured communication tables."""

    def _collective_candidate(self, family: str, cat: tuple, n: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        """One measured collective at n GPUs.

        The curves at the measured counts are made non-decreasing in the count
        (running maximum), interpolated in log2(n) between them and, above the
        largest, continued by the fitted alpha(n) + wire / bandwidth model.
        """
        table = self._table(family)
        if table is None or not table.has(cat):
            return np.full(n.shape, np.nan)
        eb = COLLECTIVE_ELEM_BYTES[collective_dtype(family, cat)]
        counts, lc = table.float_values(cat, "num_gpus")   # (sorted, and their log2)
        curves = np.maximum.accumulate(self._collective_curves(family, cat, counts, nbytes / eb), axis=0)
        ln = np.log2(_clip(n, counts[0], counts[-1]))
        if len(counts) > 1:
            i = _clip(np.searchsorted(lc, ln, side="right") - 1, 0, len(counts) - 2)
            f = (ln - lc[i]) / (lc[i + 1] - lc[i])
            # each message's curve at its own count (np.take_along_axis along the counts, without its wrapper)
            flat, at = curves.reshape(len(counts), -1), np.arange(i.size)
            lo_c, hi_c = flat[i.ravel(), at].reshape(i.shape), flat[i.ravel() + 1, at].reshape(i.shape)
            inside = lo_c * (1.0 - f) + hi_c * f
        else:
            inside = curves[0]
        n_hi = counts[-1]
        above = n > n_hi
        if not above.any():   # no count beyond the measured ones: the interpolated curves (np.where's pick)
            return np.array(inside, float)
        model: CollectiveModel | None = self.calibration.collectives.get(family, {}).get(cat)
        if model is not None:
            extra = np.maximum(model.time_ms(n, nbytes) - model.time_ms(n_hi, nbytes), 0.0)
        else:
            op = NCCL_OPS_INV.get(cat[0], "all_reduce")
            extra = np.maximum(self.fallback.collective_ms(op, n, nbytes) - self.fallback.collective_ms(op, n_hi, nbytes),
                               0.0)
        # below its smallest measured count a kernel is held at that count (a smaller group is not slower)
        return np.where(above, curves[-1] + extra, inside)

    def _collective_curves(self, family: str, cat: tuple, counts: np.ndarray, elems: np.ndarray) -> np.ndarray:
        """(len(counts),) + elems.shape: the measured kernel's latency at every measured GPU count for every
        message of ``elems`` elements. A curve depends on the message alone, not on the asked GPU count, so each
        distinct message is priced once per count, all counts in one table query (the same values per element
        as one query per count over every message)."""
        inverse, messages = distinct_codes(elems)
        grid = self._query(family, cat, {"num_gpus": np.repeat(counts, len(messages)),
                                         "message_size": np.tile(messages, len(counts))})
        return grid.reshape(len(counts), len(messages))[:, inverse]

    @_point.per_calibration
    def _collective_kernels(self, op: str) -> list[tuple[str, tuple]]:
        """(family, cat) of the measured kernels that may run collective ``op`` (the fastest is taken)."""
        cands = []
        if op == "all_reduce" and self._table("allreduce_custom") is not None:
            allowed = self.kernel_sources.get("allreduce_custom")
            cands += [("allreduce_custom", c) for c in self._table("allreduce_custom").categories()
                      if allowed is None or c[0] in allowed]
        if op in NCCL_OPS:
            cands += [("nccl", (NCCL_OPS[op], d)) for d in ("half", "bfloat16")]
        return cands

    @unique_args
    def collective_ms(self, op: str, n, message_bytes) -> np.ndarray:
        if _point.ENABLED and np.size(n) == 1 and np.size(message_bytes) == 1:   # one point
            return _point_comm.collective_one(self, op, n, message_bytes, NCCL_OPS_INV)
        fb = self.fallback.collective_ms(op, n, message_bytes)
        shape = np.shape(fb)
        n_a = np.broadcast_to(np.asarray(n, float), shape).astype(float)
        m_a = np.broadcast_to(np.asarray(message_bytes, float), shape).astype(float)
        cands = self._collective_kernels(op)
        best = np.full(shape, np.nan)
        for family, cat in cands:
            best = np.fmin(best, self._collective_candidate(family, cat, n_a, m_a))
        covered = (n_a > 1) & (m_a > 0) & (n_a <= self.hw.nvlink_domain_gpus) & np.isfinite(best)
        return np.where(covered, best, fb)

    def _a2a_ms(self, phase: str, tokens_per_rank, hidden: int, top_k: int, ep, dtype: str, fb: np.ndarray,
                num_experts: int = 0) -> np.ndarray:
        shape = np.shape(fb)
        wire_elem = rf.ELEM_BYTES.get(A2A_DTYPES.get(dtype, ("bfloat16",))[0], 2.0)
        if _point.ENABLED and np.size(tokens_per_rank) == np.size(ep) == 1:   # one point
            return _point_comm.a2a_one(self, self._a2a_kernels(phase, dtype), tokens_per_rank, hidden, top_k, ep,
                                  wire_elem, fb)
        tok = np.broadcast_to(np.asarray(tokens_per_rank, float), shape).astype(float)
        ep_a = np.broadcast_to(np.asarray(ep, float), shape).astype(float)
        wire_bytes = tok * top_k * hidden * wire_elem
        offers: list[tuple[np.ndarray, float]] = []     # (time, largest measured tokens per rank)
        for parts, reach in self._a2a_kernels(phase, dtype):
            offers.append((sum(self._a2a_candidate(f, c, tok, hidden, top_k, ep_a, wire_bytes) for f, c in parts),
                           reach))
        # the fastest among the kernels measured up to these tokens; beyond every measured range the
        # one(s) measured furthest, extrapolated (keeps the price non-decreasing in tokens)
        best = np.full(shape, np.nan)
        if offers:
            top = max(t for _, t in offers)
            for t, reach in offers:
                best = np.fmin(best, np.where((tok <= reach) | (reach >= top), t, np.nan))
        covered = (ep_a > 1) & (tok > 0) & (ep_a <= self.hw.nvlink_domain_gpus) & np.isfinite(best)
        return np.where(covered, best, fb)

    @_point.per_calibration
    def _a2a_kernels(self, phase: str, dtype: str) -> list[tuple[list[tuple[str, tuple]], float]]:
        """The measured all-to-all kernels (each a sum of (family, cat) parts) of a phase and payload format,
        each with the largest tokens per rank measured for all its parts."""
        kernels = []
        # NVLink one-/two-sided MoE all-to-all (GB200)
        nv = self._table("moe_alltoall_nvlink")
        if nv is not None:
            combos = []
            for dt in A2A_DTYPES.get(dtype, ()):
                if phase == "dispatch":
                    combos.append([("alltoall_prepare", "NVLinkTwoSided", dt), ("alltoall_dispatch", "NVLinkTwoSided", dt)])
                    combos.append([("alltoall_dispatch", "NVLinkOneSided", dt)])
                else:
                    combos.append([("alltoall_combine", "NVLinkTwoSided", dt)])
                    combos.append([("alltoall_combine_low_precision", "NVLinkTwoSided", dt)])
                    combos.append([("alltoall_combine", "NVLinkOneSided", dt)])
            for parts in combos:
                if all(nv.has(c) for c in parts):
                    kernels.append([("moe_alltoall_nvlink", c) for c in parts])
        deep = self._table("moe_alltoall")
        if deep is not None:
            for c in deep.categories():
                if c[1] == phase and c[2] in A2A_DTYPES.get(dtype, ()):
                    kernels.append([("moe_alltoall", c)])
        return [(parts, min(self._table(f).axis_range(c)[1] for f, c in parts)) for parts in kernels]

    def _a2a_candidate(self, family: str, cat: tuple, tok, hidden, top_k, ep, wire_bytes) -> np.ndarray:
        table = self._table(family)
        sizes = table.float_values(cat, "moe_ep_size")[0]
        lo, hi = sizes[0], sizes[-1]
        inside = self._query(family, cat, {"num_tokens": tok, "hidden_size": hidden, "topk": top_k,
                                           "moe_ep_size": _clip(ep, lo, hi)},
                             {"comm_dtype": cat[2], "moe_dtype": cat[2]})
        above = ep > hi
        if not above.any():   # no EP size beyond the measured ones: the measured kernel (np.where's pick)
            return np.array(inside, float)
        model = self.calibration.collectives.get("nccl", {}).get(("alltoall", "half"))
        if model is not None:
            extra = np.maximum(model.time_ms(ep, wire_bytes) - model.time_ms(hi, wire_bytes), 0.0)
        else:
            extra = np.maximum(self.fallback.collective_ms("all_to_all", ep, wire_bytes)
                               - self.fallback.collective_ms("all_to_all", hi, wire_bytes), 0.0)
        return np.where(above, inside + extra, inside)

    @unique_args
    def moe_dispatch_ms(self, tokens_per_rank, hidden: int, top_k: int, ep, dtype: str = "bf16",
                        num_experts: int = 0) -> np.ndarray:
        return self._a2a_phase_ms("dispatch", tokens_per_rank, hidden, top_k, ep, dtype, num_experts)

    @unique_args
    def moe_combine_ms(self, tokens_per_rank, hidden: int, top_k: int, ep, dtype: str = "bf16",
                       num_experts: int = 0) -> np.ndarray:
        return self._a2a_phase_ms("combine", tokens_per_rank, hidden, top_k, ep, dtype, num_experts)

    def _a2a_phase_ms(self, phase: str, tokens_per_rank, hidden: int, top_k: int, ep, dtype: str,
                      num_experts: int) -> np.ndarray:
        """MoE ``phase`` (dispatch or combine): the measured all-to-all over the roofline's price of the phase."""
        roofline = getattr(self.fallback, f"moe_{phase}_ms")

        def fb_of(tokens, width):
            return roofline(tokens, hidden, top_k, width, dtype, num_experts=num_experts)

        one = _point.ENABLED and np.size(tokens_per_rank) == np.size(ep) == 1   # one point: in floats
        fb = _point.fallback_one(fb_of, (tokens_per_rank, ep)) if one else fb_of(tokens_per_rank, ep)
        return self._a2a_ms(phase, tokens_per_rank, hidden, top_k, ep, dtype, np.asarray(fb, float),
                            num_experts=num_experts)


def _clip(a, lo, hi):
    """np.clip without its per-call overhead (the same values)."""
    return np.minimum(np.maximum(a, lo), hi)
