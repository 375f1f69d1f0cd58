"""The provenance of one configuration's decode step in one pass (the single-point path of
:func:`helixsim.uncertainty.step_provenance`).

For a sweep, :func:`~helixsim.uncertainty.step_provenance` composes the step twice: once while recording
every kernel call's time, roofline mask and excursion beyond the measured domain, and once more replaying
the four weightings of each recorded time (roofline, law, widen up, widen down) stacked on a leading axis.
A single point's kernel calls are scalars, so here each call returns its time and its four weightings
already stacked (a leading axis of five) and the step is composed once: row 0 is the step, rows 1-4 the
replay. Every row goes through the same elementwise arithmetic as in the two passes, so the numbers are
those of the two passes (``tests/test_point_fast.py``).
"""

from __future__ import annotations

import contextlib

import numpy as np

from .calibration.domain import excursion_one
from .cost.rows import chosen_only
from .cost.step import decode_step
from .uncertainty import KERNEL_METHODS, _clip_to, provenance_of, weightings


class _Stacked:
    """Wraps a calibrated kernel model: a priced call returns (time, its four weightings) on a leading axis."""

    def __init__(self, k, per_doubling: float):
        self._k = k
        self._w = per_doubling
        # a step asks for some shapes more than once (the same all-reduce after attention and after the FFN,
        # each GEMM of the shared expert twice), and points of one configuration share the shapes that do not
        # depend on what differs between them (HOP-B's one-request chunk whatever the batch; every GEMM,
        # collective and MoE whatever the context): each is priced once per process (shared_memo)
        self._seen = shared_memo(k, per_doubling)
        if self._seen is None and not hasattr(k, "reset_log"):   # another model without a log: once per step
            self._seen = {}

    def __getattr__(self, name):
        attr = getattr(self._k, name)
        if name in KERNEL_METHODS:
            attr = self._stacking(name, attr)
        self.__dict__[name] = attr   # found once per step
        return attr

    def _stacking(self, name: str, method):
        k, w = self._k, self._w

        def call(*args, **kwargs):
            if self._seen is not None:
                try:
                    key = (name, tuple(map(_key, args)), tuple([(n, _key(v)) for n, v in kwargs.items()]) if kwargs else ())
                    out = self._seen.get(key)
                except (TypeError, ValueError):   # an argument that is no dictionary key: priced every time
                    return priced(*args, **kwargs)
                if out is None:
                    out = self._seen[key] = priced(*args, **kwargs)
                    out.setflags(write=False)
                return out
            return priced(*args, **kwargs)

        def priced(*args, **kwargs):
            t = np.asarray(method(*args, **kwargs), float)
            r, dd = excursion_one(k, name, args, kwargs)
            # the shape the recorded call had: its time's, broadcast with its arguments' (roofline mask, doublings)
            # (every array of one point holds one element: the broadcast shape is ones, as many as the most axes)
            ndim = t.ndim
            for v in (*args, *kwargs.values()) if kwargs else args:
                if isinstance(v, np.ndarray) and v.ndim > ndim:
                    ndim = v.ndim
            tt = t.item()
            dd = 0.0 if r else dd
            return np.array([tt, *weightings(tt, r, (not r) and dd > 0, dd, w)]).reshape((5,) + (1,) * ndim)

        return call


#: stacked kernel calls kept per kernel model at most; beyond, its memo starts afresh
SHARED_LIMIT = 1 << 12


def shared_memo(k, per_doubling: float) -> dict | None:
    """The stacked kernel calls already priced by a kernel model like ``k`` (same calibration, hardware,
    efficiencies, MoE routing and interval rule), kept beside its calibration; None for a model of another
    class: one that logs which step function asked for each call (a serving framework's,
    :mod:`helixsim.backends`: every asking is noted there) or a what-if wrapper."""
    from .calibration.kernels import CalibratedKernels

    if type(k) is not CalibratedKernels:
        return None
    held = (k.fallback.hw, k.fallback.eff)   # (process-wide objects: compared by identity, kept alive here)
    ident = (k.moe_distribution, tuple((f, tuple(v)) for f, v in sorted(k.kernel_sources.items())), per_doubling)
    memos = k.calibration.__dict__.setdefault("_stacked_calls", [])
    for objects, other, memo in memos:
        if objects[0] is held[0] and objects[1] is held[1] and other == ident:
            if len(memo) >= SHARED_LIMIT:
                memo.clear()
            return memo
    memos.append((held, ident, {}))
    del memos[:-4]   # (a few configurations per calibration: some 20 MB at most in all)
    return memos[-1][2]


def _key(v):
    """A call argument as a dictionary key: a one-element array by its value, shape and kind."""
    if isinstance(v, np.ndarray):
        return v.item(), v.shape, v.dtype.kind
    return type(v), v


def stacked_provenance(k, per_doubling: float, model, layouts, batch, context, prec, q_len=1):
    """(the step's per-op times, their :class:`~helixsim.uncertainty.StepProvenance`) of one configuration:
    what :func:`~helixsim.uncertainty.step_provenance` forms in two passes."""
    # a kernel model that logs its calls (a serving framework's) is asked every variant of a term, as a sweep's
    # is; any other only the one the point takes (rows.chosen_only)
    with contextlib.nullcontext() if hasattr(k, "reset_log") else chosen_only():
        both = decode_step(_Stacked(k, per_doubling), model, layouts, batch, context, prec, q_len=q_len)
    # every op on the step's shape (decode_step broadcasts them to one): an op that prices no kernel call (a term
    # the layout does not have, 0.0) holds no stacked axis, its value in each of the five rows; all ops stacked on
    # a first axis, so that the weightings of every op are clipped to [0, its time] at once (_provenance's
    # arithmetic, elementwise: the same numbers)
    ops = tuple(both)
    shape = np.broadcast_shapes(*(np.shape(v) for v in both.values()))
    if not shape or shape[0] != 5:
        shape = (5,) + shape
    stack = np.empty((len(ops),) + shape)
    for i, v in enumerate(both.values()):
        stack[i] = v
    parts = dict(zip(ops, stack[:, 0]))
    clipped = _clip_to(stack[:, 1:], stack[:, :1])
    return parts, provenance_of(k, parts, *(dict(zip(ops, clipped[:, i])) for i in range(4)))
