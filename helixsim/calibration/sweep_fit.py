"""Fitting a family's sweeps (:func:`fit_group`): every sweep a piecewise-linear function of log2(axis)
through fixed knots, fitted by robust (Huber, MAD-scaled) least squares with small penalties on changes of
slope along the axis and, where a family asks for it, across neighbouring sweeps (the fitting half of
:mod:`.table`, whose docstring describes the stored form and the prediction)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def knot_span(lx: np.ndarray, xk: np.ndarray) -> tuple[int, int]:
    """Indices of the knots that bracket the data: last knot <= min, first knot >= max."""
    i0 = int(np.searchsorted(xk, lx.min() + 1e-9, side="right") - 1)
    i1 = int(np.searchsorted(xk, lx.max() - 1e-9, side="left"))
    return max(i0, 0), min(i1, len(xk) - 1)


def _triple_penalty(a: np.ndarray, b: np.ndarray, c: np.ndarray, ca: np.ndarray, cb: np.ndarray, cc: np.ndarray,
                    k: int, n_u: int):
    """Sparse rows (slope_bc - slope_ab) for sweep triples (a, b, c) with coordinates (ca, cb, cc), at every knot."""
    from scipy import sparse

    h1, h2 = cb - ca, cc - cb
    coef = np.column_stack([1.0 / h1, -(1.0 / h1 + 1.0 / h2), 1.0 / h2])          # (T, 3)
    sweeps = np.column_stack([a, b, c])                                          # (T, 3)
    knots = np.arange(k)
    rows = np.repeat(np.arange(len(a) * k), 3)
    cols = (sweeps[:, None, :] * k + knots[None, :, None]).ravel()
    vals = np.broadcast_to(coef[:, None, :], (len(a), k, 3)).ravel()
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(a) * k, n_u))


def fit_group(lx: np.ndarray, y: np.ndarray, sweep: np.ndarray, sweep_coords: np.ndarray, xk: np.ndarray,
              lam_axis: float, lam_cross: float, iterations: int = 5, huber: float = 1.5,
              extend: int = 1, cross_dims: Sequence[int] | None = None,
              tie_dims: Sequence[int] = (), lam_tie: float = 0.0,
              tie_offset: np.ndarray | None = None) -> np.ndarray:
    """Joint robust fit of several sweeps that differ only in their ``num`` coordinates.

    Each sweep is piecewise linear in ``lx`` through the knots ``xk``; the
    penalty discourages changes of slope along the axis (``lam_axis``) and
    along every ``num`` dimension between consecutive measured sweeps
    (``lam_cross``), so a sweep's missing points borrow the shape of its
    neighbours. Returns (n_sweeps, n_knots) values, NaN beyond ``extend``
    knots outside each sweep's own data. Straight lines (in log2) are fitted
    exactly.
    """
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    n_s, k = len(sweep_coords), len(xk)
    n_u = n_s * k
    x = np.clip(lx, xk[0], xk[-1])
    if k > 1:
        j = np.clip(np.searchsorted(xk, x, side="right") - 1, 0, k - 2)
        w = (x - xk[j]) / (xk[j + 1] - xk[j])
        data = sparse.csr_matrix((np.concatenate([1.0 - w, w]),
                                  (np.tile(np.arange(len(x)), 2), np.concatenate([sweep * k + j, sweep * k + j + 1]))),
                                 shape=(len(x), n_u))
    else:
        data = sparse.csr_matrix((np.ones(len(x)), (np.arange(len(x)), sweep)), shape=(len(x), n_u))
    pen_blocks = []
    if k > 2 and lam_axis > 0:
        # along the axis: knots (j, j+1, j+2) of every sweep
        s_idx = np.repeat(np.arange(n_s), k - 2)
        j = np.tile(np.arange(k - 2), n_s)
        h1, h2 = xk[j + 1] - xk[j], xk[j + 2] - xk[j + 1]
        rows = np.repeat(np.arange(len(j)), 3)
        cols = np.column_stack([s_idx * k + j, s_idx * k + j + 1, s_idx * k + j + 2]).ravel()
        vals = np.column_stack([1.0 / h1, -(1.0 / h1 + 1.0 / h2), 1.0 / h2]).ravel()
        pen_blocks.append(np.sqrt(lam_axis) * sparse.csr_matrix((vals, (rows, cols)), shape=(len(j), n_u)))
    d = sweep_coords.shape[1]
    if lam_cross > 0 and n_s > 2:
        for dim in (range(d) if cross_dims is None else cross_dims):
            others = np.delete(sweep_coords, dim, axis=1)
            order = np.lexsort([sweep_coords[:, dim]] + [others[:, q] for q in range(others.shape[1])][::-1])
            same_line = np.all(others[order[1:]] == others[order[:-1]], axis=1) if others.shape[1] else np.ones(n_s - 1, bool)
            ok = same_line[:-1] & same_line[1:]
            if not ok.any():
                continue
            a, b, c = order[:-2][ok], order[1:-1][ok], order[2:][ok]
            co = sweep_coords[:, dim]
            pen_blocks.append(np.sqrt(lam_cross) * _triple_penalty(a, b, c, co[a], co[b], co[c], k, n_u))
    tie_rhs = np.zeros(n_u)
    for dim in tie_dims if lam_tie > 0 else ():
        # tied sweeps (same other coordinates, neighbouring codes along ``dim``) are pulled to equal
        # values + tie_offset (e.g. log2 of the roofline, to tie latencies while fitting efficiencies)
        others = np.delete(sweep_coords, dim, axis=1)
        order = np.lexsort([sweep_coords[:, dim]] + [others[:, q] for q in range(others.shape[1])][::-1])
        same = np.all(others[order[1:]] == others[order[:-1]], axis=1) if others.shape[1] else np.ones(n_s - 1, bool)
        a, b = order[:-1][same], order[1:][same]
        if len(a):
            kn = np.arange(k)
            rows = np.repeat(np.arange(len(a) * k), 2)
            cols = np.stack([(a[:, None] * k + kn).ravel(), (b[:, None] * k + kn).ravel()], axis=1).ravel()
            vals = np.tile([1.0, -1.0], len(a) * k)
            block = np.sqrt(lam_tie) * sparse.csr_matrix((vals, (rows, cols)), shape=(len(a) * k, n_u))
            pen_blocks.append(block)
            if tie_offset is not None:
                target = (tie_offset[b] - tie_offset[a]).ravel()
                tie_rhs += block.T @ (np.sqrt(lam_tie) * target)
    penalty = sum((p.T @ p for p in pen_blocks), sparse.csr_matrix((n_u, n_u))) + 1e-9 * sparse.identity(n_u)
    wts = np.ones(len(y))
    coef = np.zeros(n_u)
    for _ in range(iterations):
        wd = data.multiply(wts[:, None]).tocsr()
        lhs = (wd.T @ wd + penalty).tocsc()
        coef = spsolve(lhs, wd.T @ (y * wts) + tie_rhs)
        r = y - data @ coef
        # residual scale per sweep group as a whole (MAD), Huber weights
        scale = max(1.4826 * float(np.median(np.abs(r))), 0.01)
        wts = np.sqrt(np.minimum(1.0, huber * scale / np.maximum(np.abs(r), 1e-12)))
    values = coef.reshape(n_s, k)
    out = np.full((n_s, k), np.nan)
    for s in range(n_s):
        own = lx[sweep == s]
        i0, i1 = knot_span(own, xk)
        i0, i1 = max(i0 - extend, 0), min(i1 + extend, k - 1)
        out[s, i0:i1 + 1] = values[s, i0:i1 + 1]
    return out
