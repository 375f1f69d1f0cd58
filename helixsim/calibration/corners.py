"""A fitted table's latencies at its knots for a set of queries (:meth:`.table.SweepTable.knot_latencies`):
the measured sweeps around each query's ``num`` coordinates (the corners of its cell, :func:`corners`) and
their knot values weighted together (:func:`weighted_knot_values`).

Every corner of every query is formed in one pass (one array per step, not one per corner), and the knot
values of all the corners in one call of the table's :meth:`~.table.SweepTable.knot_values`; the weighted sum
then runs corner by corner in the order the corners were always added (``itertools.product`` order of
lower/upper per dimension), so each latency is the same number as corner by corner. A query of one table
asks a handful of queries at a time (a sweep's distinct kernel shapes), so the per-call cost of forming
each corner apart was most of the time.
"""

from __future__ import annotations

import itertools

import numpy as np


def corners(sub, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sweeps (m, C; -1 for none) and weights (m, C) interpolating at log2 coordinates ``q`` (m, d) among the
    sweeps ``sub`` (a :class:`.table._Sub`): multilinear in each dimension, a dimension measured at one value
    held there; a corner without a sweep (or weight below 1e-12) dropped, the rest keeping their weights (the
    caller divides by their sum); where none is left, the nearest sweep alone."""
    m, d = q.shape
    lo, fr, single = [], [], []
    for j in range(d):
        u = sub.luniq[j]
        qj = _clip(q[:, j], u[0], u[-1])
        if len(u) == 1:
            lo.append(np.zeros(m, dtype=int)); fr.append(np.zeros(m)); single.append(True)
            continue
        i = _clip(u.searchsorted(qj, side="right") - 1, 0, len(u) - 2)
        lo.append(i); fr.append((qj - u[i]) / (u[i + 1] - u[i])); single.append(False)
    bits = _corner_bits(d, tuple(single))
    if d:
        # each corner's weight: the product of its factors, left to right from the first (as one corner at a time)
        w = None
        for j in range(d):
            pair = np.empty((m, 2))                             # (m, 2): lower, upper factor
            pair[:, 0] = 1.0 - fr[j]
            pair[:, 1] = fr[j]
            factor = pair[:, bits[:, j]]                        # (m, C)
            w = factor if w is None else w * factor
        sid = sub.dense[tuple(lo[j][:, None] + bits[None, :, j] for j in range(d))]
    else:
        w = np.ones((m, 1))
        sid = np.full((m, 1), int(sub.dense))
    ok = (sid >= 0) & (w > 1e-12)
    sids, wts = np.where(ok, sid, -1), np.where(ok, w, 0.0)
    none = np.add.reduce(wts, axis=1) <= 1e-9   # (wts.sum(axis=1) without its wrapper)
    if none.any():
        # no measured corner: the nearest sweep
        bad = np.nonzero(none)[0]
        qc = (np.column_stack([np.clip(q[bad, j], sub.luniq[j][0], sub.luniq[j][-1]) for j in range(d)])
              if d else np.zeros((len(bad), 0)))
        dist = ((qc[:, None, :] - sub.coords[None, :, :]) ** 2).sum(axis=2)
        sids[bad] = -1
        wts[bad] = 0.0
        sids[bad, 0] = sub.ids[np.argmin(dist, axis=1)]
        wts[bad, 0] = 1.0
    return sids, wts


_BITS: dict[tuple, np.ndarray] = {}


def _corner_bits(d: int, single: tuple) -> np.ndarray:
    """(C, d) lower (0) / upper (1) side of every corner kept, in ``itertools.product`` order (a dimension
    measured at one value has no upper corner); formed once per pattern (read-only)."""
    bits = _BITS.get((d, single))
    if bits is None:
        kept = [b for b in itertools.product((0, 1), repeat=d) if not any(bj and s for bj, s in zip(b, single))]
        bits = np.array(kept, dtype=int).reshape(len(kept), d)
        bits.setflags(write=False)
        _BITS[(d, single)] = bits
    return bits


def weighted_knot_values(table, sids: np.ndarray, wts: np.ndarray, roof_k: np.ndarray | None,
                         from_knot: int = 0) -> np.ndarray:
    """sum over corners of weight x knot values (``table.knot_values``; ``roof_k``: each query's roofline at the
    knots, None for ones), (m, n_knots), added corner by corner from zero, a query without a corner skipped
    for it. Sweeps measured at every knot are read as stored (``knot_values``' own shortcut, without forming
    the roofline it would not read); ``from_knot``: only the knots from that one on (every sweep asked for
    measured at every knot)."""
    m, n_corners = sids.shape
    k = len(table.knots) - from_knot
    acc = np.zeros((m, k))
    has = sids >= 0
    every = bool(has.all())
    if every:   # every query has every corner: their knot values in one call, corner-major
        rows = cols = None
        sid = sids.T.ravel()
    else:
        rows, cols = np.nonzero(has.T)          # corner-major: each corner's queries together, in query order
        sid = sids.T[rows, cols]
    if table._full[sid].all():
        values = (table.values[:, from_knot:] if from_knot else table.values).take(sid, axis=0)
    elif from_knot:
        raise ValueError("knot values from a later knot: every sweep must be measured at every knot")
    else:
        roof = np.ones((m, k)) if roof_k is None else roof_k
        values = table.knot_values(sid, np.tile(roof, (n_corners, 1)) if every else roof[cols])
    if every:   # (values is this call's own array: each corner's product formed in place)
        values = values.reshape(n_corners, m, k)
        for col in range(n_corners):
            acc += np.multiply(wts[:, col][:, None], values[col], out=values[col])
        return acc
    starts = np.searchsorted(rows, np.arange(n_corners + 1))
    for col in range(n_corners):
        a, b = starts[col], starts[col + 1]
        if a == b:
            continue
        ok = has[:, col]
        if b - a == m:   # (the same additions, without picking rows)
            acc += wts[:, col][:, None] * values[a:b]
        else:
            acc[ok] += wts[ok, col][:, None] * values[a:b]
    return acc


def _clip(a, lo, hi):
    """np.clip without its per-call overhead (the same values)."""
    return np.minimum(np.maximum(a, lo), hi)
