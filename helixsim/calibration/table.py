"""Fitted sweep tables: the storage and interpolation core of the calibration.

A measured family is a set of *sweeps*: one kernel configuration (its key:
dtype, shape, parallel widths) measured along one axis (tokens, GEMM m, KV
length, message size). A :class:`SweepTable` holds, for every sweep, the
value of ``log2(latency / roofline)`` (mode ``efficiency``; the stored file
shows the efficiency ``roofline / latency``) or of ``log2(latency)`` (mode
``latency_ms``, used for collectives) at fixed knots of the axis.

Fitting (:func:`.sweep_fit.fit_group`): every sweep is a piecewise-linear function of
log2(axis) through the knots, fitted by robust (Huber, MAD-scaled) least
squares with small penalties on changes of slope along the axis and, where
a family asks for it, across neighbouring sweeps (e.g. batch sizes), so
single noisy rows do not pull the curve and a sweep's missing points borrow
the shape of its neighbours. Straight lines in log2 are fitted exactly.

Prediction (:meth:`SweepTable.predict`) for a query:

1. ``cat`` columns must match exactly (a dtype, a kernel, a routing
   distribution); no match gives NaN and the caller falls back.
2. ``near`` columns pick the nearest measured combination (log2 distance),
   e.g. the nearest model shape for an MoE not in the tables.
3. ``num`` columns are interpolated multilinearly in log2 between the
   measured neighbours (held at the edge of the measured values); missing
   corners are dropped and the rest re-weighted, and with none left the
   nearest sweep is used.
4. along the axis the knot values are interpolated in log2, held at the
   ends of the sweep (efficiency held means time scales with the roofline)
   or, for ``upper == "linear"``, continued above the last knot as a
   straight line in the axis (per-unit slope of the last segment: decode
   attention and transfers are bandwidth-bound there).
5. the result is never below the family's floor (fastest measured latency).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from .._lazy import pandas as pd  # imported on first use (helixsim._lazy)
from .corners import corners as interpolation_corners, weighted_knot_values
from .sweep_fit import fit_group, knot_span  # noqa: F401  (re-exported: the fitting half of a table)

RoofFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# fitting (:func:`fit_group`, :func:`knot_span`): :mod:`.sweep_fit`


# ---------------------------------------------------------------- the table

@dataclass
class _Sub:
    """Sweeps sharing one ``near`` combination: a dense index over their ``num`` coordinates."""

    ids: np.ndarray                 # sweep ids
    coords: np.ndarray              # (len(ids), d) log2 num coordinates
    luniq: list[np.ndarray]         # per dim, sorted unique log2 values
    dense: np.ndarray               # shape (len(u) for u in luniq) -> sweep id or -1


@dataclass
class _Group:
    near_coords: np.ndarray         # (C, n_near) log2 values of the near combinations
    subs: list[_Sub]


@dataclass
class SweepTable:
    """One family's fitted sweeps (see module docstring)."""

    family: str
    cat: tuple[str, ...]
    near: tuple[str, ...]
    num: tuple[str, ...]
    axis: str
    knots: np.ndarray               # axis values (ascending, > 0)
    mode: str                       # "efficiency" or "latency_ms"
    upper: str                      # "hold" or "linear"
    keys: "pd.DataFrame | Mapping[str, np.ndarray]"   # one row per sweep: cat + near + num columns
    values: np.ndarray              # (n_sweeps, n_knots) log2 values, NaN outside a sweep's span
    floors: dict[tuple, float] = field(default_factory=dict)   # cat tuple -> floor (ms)
    _groups: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.knots = np.asarray(self.knots, float)
        if isinstance(self.keys, Mapping):   # columns as arrays (the binary calibration; no pandas needed)
            self._cols = {c: np.asarray(self.keys[c]) for c in self.cat + self.near + self.num}
        else:
            self.keys = self.keys.reset_index(drop=True)
            self._cols = {c: self.keys[c].to_numpy() for c in self.cat + self.near + self.num}
        self._xk = np.log2(self.knots)
        self._dxk = self._xk[1:] - self._xk[:-1]   # each knot interval's width in log2 (read per query)
        self.set_values(self.values)
        n = len(self.values)
        cat_keys = list(zip(*(self._cols[c].tolist() for c in self.cat))) if self.cat else [()] * n
        self._cat_rows: dict[tuple, list[int]] = {}
        self._values_cache: dict[tuple, np.ndarray] = {}
        self._norm: dict[tuple, tuple] = {}   # a cat as asked -> its normalised key (:meth:`_key`)
        for i, key in enumerate(cat_keys):
            self._cat_rows.setdefault(_norm_key(key), []).append(i)

    def set_values(self, values: np.ndarray) -> None:
        """Replace the knot values (one contiguous span of finite values per sweep)."""
        self.values = np.asarray(values, float)
        ok = ~np.isnan(self.values)
        if not ok.any(axis=1).all():
            raise ValueError(f"{self.family}: a sweep has no values")
        self._first = ok.argmax(axis=1)
        self._last = self.values.shape[1] - 1 - ok[:, ::-1].argmax(axis=1)
        self._full = (self._first == 0) & (self._last == self.values.shape[1] - 1)   # measured at every knot

    def key_columns(self) -> dict[str, np.ndarray]:
        """The sweep keys, one array per ``cat``, ``near`` and ``num`` column."""
        return dict(self._cols)

    def key_frame(self) -> "pd.DataFrame":
        """The sweep keys as a DataFrame (one row per sweep)."""
        if isinstance(self.keys, Mapping):
            return pd.DataFrame(self._cols)
        return self.keys

    # ------------------------------------------------------------ lookup structures
    def categories(self) -> list[tuple]:
        return list(self._cat_rows)

    def _key(self, cat: Sequence) -> tuple:
        """``_norm_key(tuple(cat))``, formed once per cat asked for (a query asks several times)."""
        cat = tuple(cat)
        key = self._norm.get(cat)
        if key is None:
            key = self._norm[cat] = _norm_key(cat)
        return key

    def has(self, cat: Sequence) -> bool:
        return self._key(cat) in self._cat_rows

    def column_values(self, cat: Sequence, column: str) -> np.ndarray:
        key = (self._key(cat), column)
        if key not in self._values_cache:
            values = np.unique(self._cols[column][self._cat_rows.get(key[0], [])])
            values.setflags(write=False)
            self._values_cache[key] = values
        return self._values_cache[key]

    def float_values(self, cat: Sequence, column: str) -> tuple[np.ndarray, np.ndarray]:
        """The distinct values of a ``num`` column measured for ``cat`` as sorted floats, and their log2
        (read-only; formed once per table: a collective query asks for them at every call)."""
        key = (self._key(cat), column, float)
        found = self._values_cache.get(key)
        if found is None:
            values = np.sort(self.column_values(cat, column).astype(float))
            found = (values, np.log2(values))
            for a in found:
                a.setflags(write=False)
            self._values_cache[key] = found
        return found

    def axis_range(self, cat: Sequence) -> tuple[float, float]:
        """Smallest and largest axis value covered by any sweep of ``cat``."""
        rows = self._cat_rows.get(self._key(cat), [])
        return float(self.knots[self._first[rows].min()]), float(self.knots[self._last[rows].max()])

    def _float_cols(self, names: tuple[str, ...]) -> np.ndarray:
        return np.column_stack([self._cols[c].astype(float) for c in names])

    def _group(self, cat: tuple) -> _Group | None:
        key = self._key(cat)
        if key in self._groups:
            return self._groups[key]
        rows = self._cat_rows.get(key)
        if rows is None:
            return None
        rows = np.asarray(rows)
        near_vals = np.log2(self._float_cols(self.near)[rows]) if self.near else np.zeros((len(rows), 0))
        num_vals = np.log2(self._float_cols(self.num)[rows]) if self.num else np.zeros((len(rows), 0))
        combos, inverse = np.unique(near_vals, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        subs = []
        for c in range(len(combos)):
            ids = rows[inverse == c]
            coords = num_vals[inverse == c]
            luniq = [np.unique(coords[:, j]) for j in range(coords.shape[1])]
            dense = np.full(tuple(len(u) for u in luniq), -1, dtype=int)
            idx = tuple(np.searchsorted(luniq[j], coords[:, j]) for j in range(coords.shape[1]))
            dense[idx] = ids
            subs.append(_Sub(ids=ids, coords=coords, luniq=luniq, dense=dense))
        group = _Group(near_coords=combos, subs=subs)
        self._groups[key] = group
        return group

    # ------------------------------------------------------------ evaluation along the axis
    def knot_values(self, sid: np.ndarray, roof_knots: np.ndarray) -> np.ndarray:
        """log2 values of sweeps ``sid`` at every knot, (len(sid), n_knots), outside each sweep's span
        filled by the extrapolation rules (``roof_knots``: the roofline at each knot, same shape; ones
        in latency mode):

        - below the first knot of a sweep its latency is held (launch / latency floor);
        - above its last knot the efficiency is held (``hold``: time scales with the roofline) or the
          time continues linearly in the axis (``linear``) with the per-unit slope of the last
          segment, never below the roofline's slope at the efficiency reached.
        """
        if self._full[sid].all():   # measured at every knot: nothing to fill (the values as stored)
            return self.values[sid]
        v = self.values[sid].copy()
        i0, i1 = self._first[sid], self._last[sid]
        rows = np.arange(len(sid))
        j = np.arange(v.shape[1])[None, :]
        below = j < i0[:, None]
        above = j > i1[:, None]
        if not below.any() and not above.any():   # measured at every knot: nothing to fill
            return v
        log_r = np.log2(roof_knots)
        if below.any():
            fill = (v[rows, i0] + log_r[rows, i0])[:, None] - log_r
            v[below] = fill[below]
        if above.any():
            if self.upper == "linear":
                hi, lo = i1, np.maximum(i1 - 1, 0)
                x = self.knots[None, :]
                x_h, x_p = self.knots[hi][:, None], self.knots[lo][:, None]
                r_h, r_p = roof_knots[rows, hi][:, None], roof_knots[rows, lo][:, None]
                t_h = r_h * 2.0 ** v[rows, hi][:, None]
                t_p = r_p * 2.0 ** v[rows, lo][:, None]
                with np.errstate(divide="ignore", invalid="ignore"):
                    seg = np.where(x_h > x_p, np.maximum((t_h - t_p) / (x_h - x_p), 0.0), 0.0)
                    phys = (roof_knots - r_h) / (x - x_h) / np.maximum(1.0, r_h / t_h)
                    t = t_h + np.maximum(seg, np.nan_to_num(phys, nan=0.0, posinf=0.0, neginf=0.0)) * (x - x_h)
                    fill = np.log2(t) - log_r
            else:
                fill = np.broadcast_to(v[rows, i1][:, None], v.shape)
            v[above] = fill[above]
        return v

    def _extend(self, t_knots: np.ndarray, x: np.ndarray, roof_x: np.ndarray, roof_last: np.ndarray) -> np.ndarray:
        """Latency above the last knot from the latencies at the knots (rules of :meth:`knot_values`)."""
        t_h = t_knots[:, -1]
        if self.upper != "linear" or len(self.knots) < 2:
            return t_h * roof_x / roof_last
        x_h, x_p = self.knots[-1], self.knots[-2]
        seg = np.maximum((t_h - t_knots[:, -2]) / (x_h - x_p), 0.0)
        phys = (roof_x - roof_last) / (x - x_h) / np.maximum(1.0, roof_last / t_h)
        return t_h + np.maximum(seg, phys) * (x - x_h)

    # ------------------------------------------------------------ prediction
    def predict(self, cat: Sequence, near: Sequence[np.ndarray], num: Sequence[np.ndarray], x: np.ndarray,
                roof_fn: RoofFn | None = None, rep: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Latency (ms) at flattened query points; NaN where ``cat`` has no data.

        near / num: one array per column (same length as ``x``); roof_fn(x, idx)
        returns the roofline (ms) of query points ``idx`` with the axis set to ``x``
        (required in efficiency mode). rep: optional ``(first, inverse)`` grouping of
        the queries that agree in every coordinate but the axis (``first``: one query
        of each group, ``inverse``: each query's group); their knot latencies are the
        same, so they are formed once per group.

        The latency of the query's own configuration is formed at every knot
        (efficiency interpolated across the neighbouring sweeps, times the
        query's roofline there), made non-decreasing along the axis, and
        interpolated linearly in log2(latency) against log2(axis): time never
        decreases with more tokens, rows or bytes.
        """
        x = np.asarray(x, float).ravel()
        n = len(x)
        group = self._group(cat)
        if group is None or n == 0:
            return np.full(n, np.nan)
        first, inv = rep if rep is not None else (np.arange(n), np.arange(n))
        k = len(self.knots)
        lx = np.log2(np.maximum(x, 1e-300))
        xk = self._xk
        if k > 1:
            j = _clip(xk.searchsorted(lx, side="right") - 1, 0, k - 2)
            f = _clip((lx - xk[j]) / self._dxk[j], 0.0, 1.0)   # (xk[j + 1] - xk[j], formed once per table)
            # no query reads a knot below its own segment's: the knot latencies from the lowest one read
            t_knots, cut = self._knot_latencies_from(group, near, num, first, roof_fn, int(np.minimum.reduce(j)))
            if cut:
                j = j - cut
            if t_knots.size <= 2 * n:   # log2 of every knot latency, then the two each query reads
                lt = np.log2(t_knots)
                lo, hi = lt[inv, j], lt[inv, j + 1]
            else:                       # (fewer queries than knot latencies: log2 of the two each reads)
                lo, hi = np.log2(t_knots[inv, j]), np.log2(t_knots[inv, j + 1])
            out = 2.0 ** (lo * (1.0 - f) + hi * f)
        else:
            t_knots = self.knot_latencies(group, near, num, first, roof_fn)
            out = t_knots[inv, 0].copy()
        top = x > self.knots[-1]
        if top.any():
            pts = np.nonzero(top)[0]
            if self.mode == "efficiency":
                # at x and at the last knot, in one call (the two rows broadcast against the queries)
                both = roof_fn(np.stack([x[pts], np.full(len(pts), self.knots[-1])]), pts[None, :])
                roof_x, roof_last = np.broadcast_to(np.asarray(both, float), (2, len(pts)))
            else:
                roof_x = roof_last = np.ones(len(pts))
            out[pts] = self._extend(t_knots[inv[pts]], x[pts], roof_x, roof_last)
        floor = self.floors.get(self._key(cat))
        if floor is not None:
            out = np.maximum(out, floor)
        return out

    def knot_latencies(self, group: _Group, near: Sequence[np.ndarray], num: Sequence[np.ndarray], first: np.ndarray,
                       roof_fn: RoofFn | None, corners=None) -> np.ndarray:
        """Latencies (ms) at every knot, (len(first), n_knots), of queries ``first`` (the axis aside), made
        non-decreasing along the axis (:meth:`predict`; ``roof_fn`` as there). ``corners``: what
        :meth:`_corners` gives, found another way (a single point's, in floats); :meth:`_corners` by default."""
        return self._knot_latencies_from(group, near, num, first, roof_fn, 0, corners)[0]

    def _knot_latencies_from(self, group: _Group, near: Sequence[np.ndarray], num: Sequence[np.ndarray],
                             first: np.ndarray, roof_fn: RoofFn | None, from_knot: int,
                             corners=None) -> tuple[np.ndarray, int]:
        """(:meth:`knot_latencies` at the knots from ``cut`` on, ``cut``): ``from_knot`` where every corner's
        sweep is measured at every knot (its values read as stored, each knot's latency formed from that
        knot's values and roofline alone, and made non-decreasing from the last knot down: the same numbers
        as in the full array), else 0 (a sweep's values outside its span are filled from other knots)."""
        m = len(first)
        num_q = np.empty((m, len(self.num)))   # log2 coordinates, one column per num column
        for j in range(len(self.num)):
            num_q[:, j] = np.log2(np.asarray(num[j], float).ravel()[first])
        k = len(self.knots)
        if not self.near or len(group.subs) <= 1:   # one measured near combination: every query takes it
            combos = [(0, None)] if m else []
        else:
            combo = self._nearest_combo(group, [_rows_of(np.asarray(a, float).ravel(), first) for a in near], m)
            combos = [(c, np.nonzero(combo == c)[0]) for c in np.unique(combo)]
            if len(combos) == 1:   # one nearest combination: every query takes it
                combos = [(combos[0][0], None)]
        found = [(c, sel, (corners or self._corners)(group.subs[c], num_q if sel is None else num_q[sel]))
                 for c, sel in combos]
        cut = from_knot if from_knot and all(self._full[s[s >= 0]].all() for _, _, (s, _) in found) else 0
        k -= cut
        t_knots = np.full((m, k), np.nan) if len(combos) != 1 or combos[0][1] is not None else None
        for c, sel, (sids, wts) in found:
            rows = first if sel is None else first[sel]
            if self.mode == "efficiency":
                # the roofline at every knot of every query, in one call: the queries' columns (rows) against
                # the knots (columns), broadcast, the same numbers as at every (query, knot) pair spelt out
                roof_k = np.asarray(roof_fn(self.knots[None, cut:], rows[:, None]), float)
                if roof_k.shape != (len(rows), k):
                    roof_k = np.broadcast_to(roof_k, (len(rows), k))
            else:
                roof_k = None   # latencies: no roofline (ones)
            acc = weighted_knot_values(self, sids, wts, roof_k, cut)
            # roof x 2^(acc / sum of weights), formed in place in acc (its own array: no temporaries)
            t = np.power(2.0, np.divide(acc, np.add.reduce(wts, axis=1, keepdims=True), out=acc), out=acc)
            if roof_k is not None:   # (x 1.0 in latency mode: the same bits, not formed)
                t = np.multiply(roof_k, t, out=t)
            if t_knots is None:
                t_knots = t
            else:
                t_knots[sel] = t
        if t_knots is None:
            t_knots = np.full((m, k), np.nan)
        # non-decreasing along the axis: a knot above a later one is lowered to it
        return _running_min_from_last(t_knots), cut

    def _nearest_combo(self, group: _Group, near: Sequence[np.ndarray], n: int) -> np.ndarray:
        """Index of the nearest measured ``near`` combination (log2 distance) for each of n queries."""
        if not self.near or len(group.subs) <= 1:
            return np.zeros(n, dtype=int)
        near = [np.asarray(a, float).ravel() for a in near]
        if n > 1 and all(a.strides == (0,) for a in near):   # one configuration spread (zero-stride): once
            return np.full(n, self._nearest_combo(group, [a[:1] for a in near], 1)[0])
        near_q = np.column_stack([np.log2(a) for a in near])
        # a NaN coordinate (not given by the caller) does not count in the distance
        known = np.isfinite(near_q)
        packed = np.hstack([np.where(known, near_q, 0.0), known])
        # each distinct query once where there are many (a row's nearest combination is its own: a few queries,
        # as a sweep's distinct kernel shapes ask, are measured directly rather than sorted first)
        uq, inv = _unique_rows(packed) if n > 64 else (packed, None)
        d = near_q.shape[1]
        diff = (uq[:, None, :d] - group.near_coords[None, :, :]) * uq[:, None, d:]
        nearest = np.argmin((diff ** 2).sum(axis=2), axis=1)
        return nearest if inv is None else nearest[inv]

    def num_covered(self, cat: Sequence, near: Sequence[np.ndarray], num: Sequence[np.ndarray]) -> np.ndarray:
        """True where every ``num`` coordinate of a query lies within the values measured for its
        nearest ``near`` combination (interpolated, not held at an edge); False where ``cat`` has no data."""
        n = len(np.asarray(num[0] if num else near[0]).ravel()) if (num or near) else 1
        group = self._group(tuple(cat))
        if group is None:
            return np.zeros(n, dtype=bool)
        combo = self._nearest_combo(group, near, n)
        ok = np.ones(n, dtype=bool)
        for j, a in enumerate(num):
            q = np.log2(np.asarray(a, float).ravel())
            lo = np.array([sub.luniq[j][0] for sub in group.subs])[combo]
            hi = np.array([sub.luniq[j][-1] for sub in group.subs])[combo]
            ok &= (q >= lo - 1e-9) & (q <= hi + 1e-9)
        return ok

    def _corners(self, sub: _Sub, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sweeps (m, C; -1 for none) and weights (m, C) interpolating at log2 coordinates ``q``
        (:func:`.corners.corners`)."""
        return interpolation_corners(sub, q)

    # ------------------------------------------------------------ (de)serialisation
    def knot_columns(self) -> list[str]:
        return [f"{self.axis}={_num_str(k)}" for k in self.knots]

    def to_frames(self, latency_ms: np.ndarray, digits: int = 3) -> dict[tuple, pd.DataFrame]:
        """The stored form, one frame per ``cat`` group: ``near`` and ``num`` columns plus one
        column per knot with the fitted latency in microseconds (blank outside a sweep)."""
        frames = {}
        shown = np.asarray(latency_ms, float) * 1e3
        for cat, rows in self._cat_rows.items():
            frame = self.key_frame().loc[rows, list(self.near + self.num)].reset_index(drop=True)
            for c in self.near + self.num:
                frame[c] = [_num_str(v) for v in frame[c]]
            cols = {name: [_sig(v, digits) for v in shown[rows, j]] for j, name in enumerate(self.knot_columns())}
            frames[cat] = pd.concat([frame, pd.DataFrame(cols)], axis=1)
        return frames

    @classmethod
    def keys_and_latency(cls, frames: dict[tuple, pd.DataFrame], meta: dict) -> tuple[pd.DataFrame, np.ndarray]:
        """Inverse of :meth:`to_frames`: the sweep keys and the knot latencies (ms)."""
        cat, near, num = tuple(meta["cat"]), tuple(meta["near"]), tuple(meta["num"])
        kcols = [f"{meta['axis']}={_num_str(k)}" for k in meta["knots"]]
        keys, lat = [], []
        for cat_values, frame in frames.items():
            part = frame[list(near + num)].astype(float).reset_index(drop=True)
            for c, v in zip(cat, cat_values):
                part[c] = _norm_scalar(v)
            keys.append(part[list(cat + near + num)])
            lat.append(frame[kcols].to_numpy(float) * 1e-3)
        return pd.concat(keys, ignore_index=True), np.vstack(lat)

    def meta(self) -> dict:
        return {"family": self.family, "cat": list(self.cat), "near": list(self.near), "num": list(self.num),
                "axis": self.axis, "knots": [float(k) for k in self.knots], "mode": self.mode, "upper": self.upper,
                "floor_ms": {"|".join(str(v) for v in k): float(f"{f:.6g}") for k, f in self.floors.items()}}


def _rows_of(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]`` of a flat column; a column of one value spread (zero-stride) stays so (nothing gathered)."""
    if a.strides == (0,) and len(a) > 1:
        return np.broadcast_to(a[:1], (len(rows),))
    return a[rows]


def _running_min_from_last(t: np.ndarray) -> np.ndarray:
    """``np.minimum.accumulate(t[:, ::-1], axis=1)[:, ::-1]``: each entry lowered to the smallest at or after it
    in its row. Many rows: one np.minimum per column, from the last (the same minimum(running, entry) pairs in
    the same order as the accumulation, row by row; one pass per column instead of one per row)."""
    m, k = t.shape
    if m <= 256:
        return np.minimum.accumulate(t[:, ::-1], axis=1)[:, ::-1]
    out = np.array(t, order="F")
    for j in range(k - 2, -1, -1):
        np.minimum(out[:, j + 1], out[:, j], out=out[:, j])
    return out


def _clip(a, lo, hi):
    """np.clip without its per-call overhead (the same values; a query of one point makes thousands of calls)."""
    return np.minimum(np.maximum(a, lo), hi)


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a 2-D array and each row's index among them: one integer key per row from
    per-column codes (1-D sorts of a few distinct values are far cheaper than numpy's row sort)."""
    key = np.zeros(len(rows), dtype=np.int64)
    space = 1
    for col in rows.T:
        vals, codes = np.unique(col, return_inverse=True)
        space *= len(vals)
        if space >= 2 ** 62:
            uq, inv = np.unique(rows, axis=0, return_inverse=True)
            return uq, np.asarray(inv).ravel()
        key = key * len(vals) + codes.ravel()
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return rows[first], np.asarray(inv).ravel()


def _num_str(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _sig(v: float, digits: int) -> str:
    """``v`` to ``digits`` significant digits, without an exponent where it is at least 1; blank for NaN."""
    if not np.isfinite(v):
        return ""
    r = float(f"{v:.{digits}g}")
    if r >= 10 ** (digits - 1):
        return str(int(round(r)))
    return f"{r:.{digits}g}"


def _norm_scalar(v):
    """Categorical keys compare as strings (CSV round trips turn 0 into '0')."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    return str(v)


def _norm_key(key: tuple) -> tuple:
    return tuple(_norm_scalar(v) for v in key)
