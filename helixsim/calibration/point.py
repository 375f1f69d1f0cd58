"""One calibrated kernel query at a time, without numpy's per-call overhead (the single-point fast path).

A single point (``simulate_point``, ``helixsim point``) asks every table for one
query at a time: a few dozen kernel calls, each a handful of table lookups, and
through the vectorised :meth:`.table.SweepTable.predict` each lookup is some fifty
numpy calls on arrays of length one. This module prices one query with the same
arithmetic in plain Python floats:

- the latencies at the knots of the query's own configuration (everything but the
  sweep axis: shape, widths, formats, the roofline's constants) are formed by the
  table's own vectorised code (:meth:`.table.SweepTable.knot_latencies`) and kept per
  table, so a GEMM of another ``m``, a collective of another message size or a MoE of
  another token count is one binary search and one interpolation;
- along the axis the interpolation, the continuation above the last knot and the
  family floor are those of :meth:`.table.SweepTable.predict`, and the envelope over
  head counts that of :func:`.extrapolate.predict_family`, element for element.

``tests/test_point_fast.py`` checks it against the vectorised path (equal to 1e-12
relative) over models, systems, layouts, frameworks, batches and contexts.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from contextlib import contextmanager
from typing import Mapping

import numpy as np

from .extrapolate import NON_DECREASING_IN, WITH
from .table import _norm_key

#: the fast path is used (``vectorised()`` turns it off, to compare the two)
ENABLED = True
#: knot latencies kept per table at most; beyond, the memo starts afresh
MEMO_LIMIT = 1 << 16
_ONE = np.arange(1)


@contextmanager
def vectorised():
    """Within the block every query takes the vectorised path (the reference the fast path is checked against)."""
    global ENABLED
    saved, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = saved


class _TableMemo:
    """Per-table constants of a scalar query and the knot latencies already formed."""

    def __init__(self, table) -> None:
        self.values = table.values                 # the memo holds while the fitted values are these
        self.xk = [float(v) for v in table._xk]
        self.last_knot = float(table.knots[-1])
        self.entries: dict = {}
        self.floors: dict = {}
        self.levels: dict = {}


def _memo(table) -> _TableMemo:
    memo = table.__dict__.get("_point_memo")
    if memo is None or memo.values is not table.values:
        memo = table.__dict__["_point_memo"] = _TableMemo(table)
    return memo


def scalar(value) -> float:
    """A float of a Python number, a numpy scalar or a one-element array."""
    return float(value.item()) if isinstance(value, np.ndarray) else float(value)


def predict_family_one(table, spec, cat: tuple, cols: Mapping[str, float], const: Mapping[str, object],
                       roof) -> float:
    """:func:`.extrapolate.predict_family` of one query (``cols``: floats), as a float."""
    out = _once(table, spec, cat, cols, const, roof)
    column = NON_DECREASING_IN.get(spec.name)
    if column is None:
        return out
    memo = _memo(table)
    levels = memo.levels.get((cat, column))
    if levels is None:
        levels = memo.levels[(cat, column)] = sorted(float(h) for h in table.column_values(cat, column).astype(float))
    q = cols[column]
    with_col = WITH.get(spec.name)
    other = cols[with_col] if with_col is not None else None
    for h in levels:
        if not q > h:
            continue
        if other is not None:   # a TP split of the query's heads: h = q / 2^j, at least one KV head
            qq = max(q, 1e-300)
            split = float(np.log2(qq / h))
            if not (other * h / qq >= 1.0 - 1e-9 and abs(split - round(split)) < 1e-9):
                continue
        sub = dict(cols)
        sub[column] = h
        if other is not None:
            sub[with_col] = other * h / q
        lower = _once(table, spec, cat, sub, const, roof)
        out = _fmax(out, lower)
    return out


def _fmax(a: float, b: float) -> float:
    """np.fmax of two floats (a NaN loses)."""
    if b != b:
        return a
    if a != a:
        return b
    return a if a >= b else b


def _once(table, spec, cat: tuple, c: Mapping[str, float], const: Mapping[str, object], roof) -> float:
    memo = _memo(table)
    axis = spec.axis
    key = (cat, roof, tuple(const.items()), tuple((k, v) for k, v in c.items() if k != axis))
    entry = memo.entries.get(key)
    if entry is None:
        entry = _knots(table, spec, cat, c, const, roof)
        if len(memo.entries) >= MEMO_LIMIT:
            memo.entries.clear()
        memo.entries[key] = entry
    if entry is False:   # no data for cat
        return math.nan
    t_knots, lt, roof_fn = entry
    x = c[axis]
    k = len(lt)
    if k > 1:
        xk = memo.xk
        lx = float(np.log2(max(x, 1e-300)))
        j = min(max(bisect_right(xk, lx) - 1, 0), k - 2)
        f = min(max((lx - xk[j]) / (xk[j + 1] - xk[j]), 0.0), 1.0)
        out = 2.0 ** (lt[j] * (1.0 - f) + lt[j + 1] * f)
    else:
        out = float(t_knots[0, 0])
    if x > memo.last_knot:
        xs = np.array([x])
        if spec.mode == "efficiency":
            roof_x, roof_last = roof_fn(xs, _ONE), roof_fn(np.full(1, memo.last_knot), _ONE)
        else:
            roof_x = roof_last = np.ones(1)
        out = float(table._extend(t_knots, xs, roof_x, roof_last)[0])
    if cat in memo.floors:
        floor = memo.floors[cat]
    else:
        floor = memo.floors[cat] = table.floors.get(_norm_key(tuple(cat)))
    if floor is not None and out < floor:
        out = floor
    return out


def _knots(table, spec, cat: tuple, c: Mapping[str, float], const: Mapping[str, object], roof):
    """(knot latencies (1, n_knots), their log2 as floats, the query's roofline function), or False."""
    group = table._group(tuple(cat))
    if group is None:
        return False
    arrays = {k: np.array([v], float) for k, v in c.items()}

    def roof_fn(xs, pts):
        return spec.roof(roof, {**const, **{k: v[pts] for k, v in arrays.items()}, spec.axis: xs})

    near = [arrays[k] if k in arrays else np.full(1, np.nan) for k in spec.near]
    t_knots = table.knot_latencies(group, near, [arrays[k] for k in spec.num], _ONE,
                                   roof_fn if spec.mode == "efficiency" else None)
    return t_knots, np.log2(t_knots)[0].tolist(), roof_fn


def query_one(table, spec, cat: tuple, cols: Mapping[str, object], const: Mapping[str, object] | None,
              roof) -> float:
    """:meth:`.kernels.CalibratedKernels._query` of one query: the calibrated latency (ms), NaN where
    ``cat`` has no data or a ``num`` or axis value is not finite and positive."""
    if table is None or not table.has(cat):
        return math.nan
    c = {k: scalar(v) for k, v in cols.items()}
    for k in spec.num + (spec.axis,):
        v = c[k]
        if not (v > 0 and v != math.inf):
            return math.nan
    return predict_family_one(table, spec, cat, c, dict(const or {}), roof)
