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
  head counts that of :func:`.extrapolate.predict_family`, element for element (the head
  counts of an envelope not yet seen, e.g. at a new batch, formed together in one
  vectorised call).

GEMMs and MoE layers are priced here, collectives and MoE all-to-alls in :mod:`.point_comm`.

``tests/test_point_fast.py`` checks it against the vectorised path (equal to 1e-12
relative) over models, systems, layouts, frameworks, batches and contexts.
"""

from __future__ import annotations

import functools
import itertools
import math
from bisect import bisect_right
from contextlib import contextmanager
from typing import Mapping

import numpy as np

from .extrapolate import NON_DECREASING_IN, WITH
from .families import FAMILIES
from .table import _norm_key
from ..cost.rows import full_one, shape_one

#: the fast path is used (``vectorised()`` turns it off, to compare the two)
ENABLED = True
#: knot latencies kept per table and roofline at most; beyond, the memo starts afresh
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
    """Per-table constants of a scalar query and the knot latencies already formed (per roofline constants)."""

    def __init__(self, table) -> None:
        self.values = table.values                 # the memo holds while the fitted values are these
        self.xk = [float(v) for v in table._xk]
        self.last_knot = float(table.knots[-1])
        self.has: dict = {}
        self.floors: dict = {}
        self.levels: dict = {}
        self._by_roof: dict = {}

    def entries(self, roof) -> dict:
        held = self._by_roof.get(id(roof))
        if held is None or held[0] is not roof:
            held = self._by_roof[id(roof)] = (roof, {})
        if len(held[1]) >= MEMO_LIMIT:
            held[1].clear()
        return held[1]


def _memo(table) -> _TableMemo:
    memo = table.__dict__.get("_point_memo")
    if memo is None or memo.values is not table.values:
        memo = table.__dict__["_point_memo"] = _TableMemo(table)
    return memo


def _memo_with(table, cat: tuple) -> _TableMemo | None:
    """The memo of ``table`` where it has data for ``cat``, else None."""
    if table is None:
        return None
    memo = _memo(table)
    has = memo.has.get(cat)
    if has is None:
        has = memo.has[cat] = table.has(cat)
    return memo if has else None


def per_calibration(method):
    """A kernel-model method whose result depends on its (hashable) arguments, the calibration, the kernel
    sources and the MoE routing alone (which measured kernels may run a call): found once per calibration
    and kept beside it, not once per call (a single point asks for each of them at every kernel call)."""
    @functools.wraps(method)
    def wrapper(self, *args):
        cache = self.calibration.__dict__.setdefault("_kernel_lists", {})
        # (a table argument by identity: it is one of this calibration's own)
        key = (type(self), method.__name__, tuple(a if isinstance(a, (str, int, float, tuple)) else id(a) for a in args),
               self.moe_distribution,
               tuple((f, tuple(v)) for f, v in sorted(self.kernel_sources.items())))
        found = cache.get(key)
        if found is None:
            found = cache[key] = tuple(method(self, *args))
        return found

    return wrapper


def scalar(value) -> float:
    """A float of a Python number, a numpy scalar or a one-element array."""
    return float(value.item()) if isinstance(value, np.ndarray) else float(value)


def fallback_one(method, arrays: tuple, *rest, **kwargs) -> np.ndarray:
    """``method(*arrays, *rest, **kwargs)`` (a roofline kernel method) of arguments holding one value each,
    priced in Python floats (the roofline's formulas keep floats as floats: :func:`helixsim.cost.terms.as_float`;
    the same IEEE arithmetic) and shaped as the arrays would make it."""
    return full_one(shape_one(arrays), method(*(scalar(a) for a in arrays), *rest, **kwargs))


# numpy's log2 and power on a float give the bits numpy gives on arrays (Python's math.log2 and ** may
# differ in the last place), so the fast path is bit for bit the vectorised one
_log2, _pow2 = np.log2, functools.partial(np.power, 2.0)


def query_one(table, spec, cat: tuple, cols: Mapping[str, object], const: Mapping[str, object] | None,
              roof) -> float:
    """:meth:`.kernels.CalibratedKernels._query` of one query: the calibrated latency (ms), NaN where
    ``cat`` has no data or a ``num`` or axis value is not finite and positive."""
    memo = _memo_with(table, cat)
    if memo is None:
        return math.nan
    c = {k: v if type(v) is float else scalar(v) for k, v in cols.items()}
    for k in spec.num:
        v = c[k]
        if not (v > 0 and v != math.inf):
            return math.nan
    v = c[spec.axis]
    if not (v > 0 and v != math.inf):
        return math.nan
    const = const or {}
    return predict_family_one(memo, table, spec, cat, c, const, roof)


def predict_family_one(memo: _TableMemo, table, spec, cat: tuple, cols: dict, const: Mapping[str, object],
                       roof) -> float:
    """:func:`.extrapolate.predict_family` of one query (``cols``: floats), as a float."""
    entries = memo.entries(roof)
    ck = (cat, tuple(const.items()))
    column = NON_DECREASING_IN.get(spec.name)
    if column is None:
        return _once(memo, entries, ck, table, spec, cat, cols, const, roof)
    levels = memo.levels.get((cat, column))
    if levels is None:
        levels = memo.levels[(cat, column)] = sorted(float(h) for h in table.column_values(cat, column).astype(float))
    q = cols[column]
    with_col = WITH.get(spec.name)
    other = cols[with_col] if with_col is not None else None
    queries = [cols]
    for h in levels:
        if not q > h:
            continue
        if other is not None:   # a TP split of the query's heads: h = q / 2^j, at least one KV head
            qq = max(q, 1e-300)
            split = float(_log2(qq / h))
            if not (other * h / qq >= 1.0 - 1e-9 and abs(split - round(split)) < 1e-9):
                continue
        sub = dict(cols)
        sub[column] = h
        if other is not None:
            sub[with_col] = other * h / q
        queries.append(sub)
    keys = _prefetch(entries, ck, table, spec, cat, queries, const, roof)
    out = _once(memo, entries, ck, table, spec, cat, cols, const, roof, keys[0])
    for sub, key in zip(queries[1:], keys[1:]):
        out = _fmax(out, _once(memo, entries, ck, table, spec, cat, sub, const, roof, key))
    return out


def _entry_key(ck: tuple, c: dict, axis: str) -> tuple:
    """The memo key of a query's knot latencies: everything but the axis."""
    return ck, tuple([kv for kv in c.items() if kv[0] != axis])


def _prefetch(entries: dict, ck: tuple, table, spec, cat: tuple, queries: list[dict], const: Mapping[str, object],
              roof) -> list[tuple]:
    """The knot latencies of those ``queries`` not yet in ``entries``, formed together where there are
    several (one vectorised :meth:`.table.SweepTable.knot_latencies` over them, as the vectorised path
    forms them: the head counts of a decode-attention envelope at a batch not seen before); returns each
    query's memo key (:func:`_entry_key`), in order."""
    missing = {}
    keys = [_entry_key(ck, c, spec.axis) for c in queries]
    for key, c in zip(keys, queries):
        if key not in entries:
            missing[key] = c
    if len(missing) < 2:
        return keys
    group = table._group(tuple(cat))
    if group is None:
        return keys
    rows = list(missing.values())
    n = len(rows)
    arrays = {k: np.array([c[k] for c in rows], float) for k in rows[0]}
    eff = spec.mode == "efficiency"
    near = [arrays[k] if k in arrays else np.full(n, np.nan) for k in spec.near]
    t_all = table.knot_latencies(group, near, [arrays[k] for k in spec.num], np.arange(n),
                                 _roof_fn(spec, roof, const, arrays) if eff else None,
                                 corners=functools.partial(_corners_floats, table))
    lt_all = np.log2(t_all)
    for i, key in enumerate(missing):
        entries[key] = (t_all[i:i + 1], lt_all[i].tolist(), _roof_fn(spec, roof, const, arrays, i))
    return keys


def _roof_fn(spec, roof, const: Mapping[str, object], arrays: Mapping[str, np.ndarray], row: int | None = None):
    """The roofline (ms) of queries ``arrays`` (one array per column) at axis values ``xs`` of rows ``pts``
    (``row``: of the one query ``arrays[:][row:row + 1]``, taken when the roofline is asked for)."""
    def roof_fn(xs, pts):
        cols = arrays if row is None else {k: v[row:row + 1] for k, v in arrays.items()}
        return spec.roof(roof, {**const, **{k: v[pts] for k, v in cols.items()}, spec.axis: xs})

    return roof_fn


def _fmax(a: float, b: float) -> float:
    """np.fmax of two floats (a NaN loses)."""
    if b != b:
        return a
    if a != a:
        return b
    return a if a >= b else b


def _once(memo: _TableMemo, entries: dict, ck: tuple, table, spec, cat: tuple, c: dict,
          const: Mapping[str, object], roof, key: tuple | None = None) -> float:
    """:meth:`.table.SweepTable.predict` of one query (``key``: its :func:`_entry_key`, where found already)."""
    axis = spec.axis
    if key is None:
        key = _entry_key(ck, c, axis)
    entry = entries.get(key)
    if entry is None:
        entry = entries[key] = _knots(table, spec, cat, c, const, roof)
    if entry is False:   # no data for cat
        return math.nan
    t_knots, lt, roof_fn = entry
    x = c[axis]
    k = len(lt)
    if k > 1:
        xk = memo.xk
        lx = float(_log2(x if x > 1e-300 else 1e-300))
        j = bisect_right(xk, lx) - 1
        j = 0 if j < 0 else (k - 2 if j > k - 2 else j)
        f = (lx - xk[j]) / (xk[j + 1] - xk[j])
        f = 0.0 if f < 0.0 else (1.0 if f > 1.0 else f)
        out = float(_pow2(lt[j] * (1.0 - f) + lt[j + 1] * f))
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
    roof_fn = _roof_fn(spec, roof, const, arrays)
    t_knots = None
    if not table.near or len(group.subs) <= 1:   # one measured near combination: interpolate here
        t_knots = _knot_latencies_one(table, group.subs[0], [c[k] for k in spec.num],
                                      roof_fn if spec.mode == "efficiency" else None)
    if t_knots is None:
        near = [arrays[k] if k in arrays else np.full(1, np.nan) for k in spec.near]
        t_knots = table.knot_latencies(group, near, [arrays[k] for k in spec.num], _ONE,
                                       roof_fn if spec.mode == "efficiency" else None)
    return t_knots, np.log2(t_knots)[0].tolist(), roof_fn


def _knot_latencies_one(table, sub, num: list[float], roof_fn) -> np.ndarray | None:
    """:meth:`.table.SweepTable.knot_latencies` of one query in sweep group ``sub`` (its corners found in
    plain Python, a sweep measured over every knot read as stored); None where no corner is measured
    (the vectorised code then takes the nearest sweep)."""
    k = len(table.knots)
    if roof_fn is not None:
        roof_k = np.asarray(roof_fn(np.tile(table.knots, 1), np.repeat(_ONE, k)), float).reshape(1, k)
    else:
        roof_k = np.ones((1, k))
    sids, wts = _corner_weights(sub, [float(_log2(value)) for value in num])
    total = np.sum(np.array(wts))    # summed as the vectorised code sums a row of weights
    if total <= 1e-9:
        return None
    acc = np.zeros(k)
    first, last = table._first, table._last
    for sid, w in zip(sids, wts):
        if sid < 0:
            continue
        if first[sid] == 0 and last[sid] == k - 1:   # measured (or stored) at every knot: nothing to fill
            values = table.values[sid]
        else:
            values = table.knot_values(np.array([sid]), roof_k)[0]
        acc = acc + w * values
    t_knots = roof_k * 2.0 ** (acc / total)
    return np.minimum.accumulate(t_knots[:, ::-1], axis=1)[:, ::-1]


def _corner_weights(sub, q: list[float]) -> tuple[list[int], list[float]]:
    """:meth:`.table.SweepTable._corners` of one query (log2 coordinates ``q``, floats): the sweep of each
    corner (-1 for none) and its weight, in the same order and IEEE arithmetic, without numpy's per-call cost."""
    lists = sub.__dict__.get("_point_lists")
    if lists is None:   # (the sub's coordinates and dense index as Python lists, formed once)
        lists = sub.__dict__["_point_lists"] = ([u.tolist() for u in sub.luniq], sub.dense.tolist())
    luniq, dense = lists
    sides = []   # per column, (index, weight) of its lower and upper neighbour (one where one value is measured)
    for j, qj in enumerate(q):
        u = luniq[j]
        qj = min(max(qj, u[0]), u[-1])
        if len(u) == 1:
            sides.append(((0, 1.0),))
            continue
        i = bisect_right(u, qj) - 1
        i = 0 if i < 0 else (len(u) - 2 if i > len(u) - 2 else i)
        f = (qj - u[i]) / (u[i + 1] - u[i])
        sides.append(((i, 1.0 - f), (i + 1, f)))
    sids, wts = [], []
    for corner in itertools.product(*sides):   # (the order of _corners' bits: the first column slowest)
        w, sid = 1.0, dense
        for i, f in corner:
            w = w * f
            sid = sid[i]
        ok = sid >= 0 and w > 1e-12
        sids.append(sid if ok else -1)
        wts.append(w if ok else 0.0)
    return sids, wts


def _corners_floats(table, sub, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`.table.SweepTable._corners` of queries ``q`` ((m, d) log2 coordinates), each row's corners found
    in floats (:func:`_corner_weights`); where a row has no measured corner, the table's own (its nearest sweep)."""
    rows = [_corner_weights(sub, row) for row in q.tolist()]
    wts = np.array([r[1] for r in rows])
    if (wts.sum(axis=1) <= 1e-9).any():
        return table._corners(sub, q)
    return np.array([r[0] for r in rows]), wts


def _nanmax(a: float, b: float) -> float:
    """np.maximum of two floats (a NaN wins)."""
    if a != a or b != b:
        return math.nan
    return a if a >= b else b


def _fmin(a: float, b: float) -> float:
    """np.fmin of two floats (a NaN loses)."""
    if b != b:
        return a
    if a != a:
        return b
    return a if a <= b else b


def num_covered(table, cat: tuple, near: list[np.ndarray], num: list[np.ndarray]) -> np.ndarray:
    """:meth:`.table.SweepTable.num_covered`, kept per query where there is one query (a single point)."""
    if not ENABLED or any(np.size(a) != 1 for a in near) or any(np.size(a) != 1 for a in num):
        return table.num_covered(cat, near, num)
    key = ("num_covered", cat, tuple(scalar(a) for a in near), tuple(scalar(a) for a in num))
    memo = _memo(table).levels
    if key not in memo:
        memo[key] = table.num_covered(cat, near, num)
        memo[key].setflags(write=False)
    return memo[key]


def _covered_one(table, cat: tuple, near: tuple, num: tuple) -> bool:
    """:meth:`.table.SweepTable.num_covered` of one query (floats), kept per query."""
    key = ("num_covered", cat, near, num)
    memo = _memo(table).levels
    hit = memo.get(key)
    if hit is None:
        hit = bool(table.num_covered(cat, [np.full(1, v) for v in near], [np.full(1, v) for v in num])[0])
        if near == near and num == num:   # (a NaN never finds itself: not kept)
            memo[key] = hit
    return hit


def _merged(k, shape: tuple, fb, t: float) -> np.ndarray:
    """``np.where(fb > 0, k._merge(t, fb), 0.0)`` of one query, shaped ``shape`` (through the kernel model's
    own ``_merge``: a serving framework's model notes there which of its tables priced a call)."""
    fb = np.asarray(fb, float)
    if fb.size == 1 and type(k)._merge is merge_calibrated:   # the calibrated model's own rule, in floats
        f = fb.item()
        return full_one(shape if fb.shape == shape else np.broadcast_shapes(shape, fb.shape),
                        (t if math.isfinite(t) else f) if f > 0 else 0.0)
    return np.where(fb > 0, k._merge(np.full(shape, t), fb), 0.0)


def merge_calibrated(calibrated: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The calibrated time where it is finite, else the fallback's (:meth:`.kernels.CalibratedKernels._merge`)."""
    return np.where(np.isfinite(calibrated), calibrated, fallback)


def gemm_one(k, table, cats: list[tuple], fb, m, n, kk) -> np.ndarray:
    """:meth:`.kernels.CalibratedKernels.gemm_ms` of one GEMM (the fastest of ``cats``)."""
    spec = FAMILIES["gemm"]
    cols = {"m": scalar(m), "n": scalar(n), "k": scalar(kk)}
    t = math.nan
    for cat in cats:
        t = _fmin(t, query_one(table, spec, cat, cols, {"gemm_dtype": cat[0]}, k._p))
    return _merged(k, np.shape(fb), fb, t)


def bmm_one(k, fb, dtypes: tuple, batch, m, n, kk) -> np.ndarray:
    """:meth:`.kernels.CalibratedKernels.bmm_ms` of one bmm: only the table its shape takes is asked (q x W_UK
    where k <= n, else attn x W_UV)."""
    op = "mla_gen_pre" if scalar(kk) <= scalar(n) else "mla_gen_post"
    cat = k._first_cat("mla_bmm", [(op, d) for d in dtypes])
    t = math.nan if cat is None else query_one(
        k._table("mla_bmm"), FAMILIES["mla_bmm"], cat,
        {"num_heads": scalar(batch), "num_tokens": scalar(m), "bmm_n": scalar(n), "bmm_k": scalar(kk)},
        {"bmm_dtype": cat[1]}, k._p)
    return _merged(k, np.shape(fb), fb, t)


def moe_one(k, table, cats: list[tuple], fb, tokens, hidden, inter, top_k, num_experts, tp, ep,
            act_dtype: str) -> np.ndarray:
    """:meth:`.kernels.CalibratedKernels.moe_ms` of one MoE layer: the fastest of ``cats`` measured at this
    TP x EP width (else the fastest with the widths held at a measured edge), plus the router GEMM."""
    spec = FAMILIES["moe"]
    cols = {"num_tokens": scalar(tokens), "hidden_size": float(hidden), "inter_size": float(inter),
            "topk": float(top_k), "num_experts": float(num_experts), "moe_tp_size": scalar(tp),
            "moe_ep_size": scalar(ep)}
    near = (float(hidden), float(inter), float(top_k), float(num_experts))
    width = (cols["moe_tp_size"], cols["moe_ep_size"])
    best = best_any = math.nan
    for cat in cats:
        t = query_one(table, spec, cat, cols, {"moe_dtype": cat[0], "gated": True}, k._p)
        best = _fmin(best, t if _covered_one(table, cat, near, width) else math.nan)
        best_any = _fmin(best_any, t)
    if not math.isfinite(best):
        best = best_any
    if not math.isfinite(best):
        return fb
    router = k.gemm_ms(tokens, num_experts, hidden, "bf16", act_dtype)
    shape = np.broadcast_shapes(np.shape(fb), np.shape(router))
    return _merged(k, shape, fb, best + float(np.asarray(router, float).item()))
