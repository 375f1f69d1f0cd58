"""Pareto frontiers of decode configurations and Helix-vs-baseline metrics.

Every sweep point of the simulator is a decode configuration with an
interactivity (``tokens_per_s_user``, x) and a throughput
(``tokens_per_s_gpu``, y).  Both are to be *maximised*.  This module extracts
the non-dominated set, gives the step-function ("best throughput at a given
latency budget") view of a frontier, and computes the scalar comparisons used
in the Helix paper (interactivity gain, throughput gain, batch gain, and the
interactivity lost at fixed throughput when a feature is switched off).

Dominance convention (used everywhere in this module)::

    a dominates b  <=>  a.x >= b.x and a.y >= b.y and (a.x > b.x or a.y > b.y)

Consequences:

* exact duplicates do not dominate each other, so *all* copies of a
  non-dominated point stay on the frontier;
* a row with NaN in x or y is never on the frontier and dominates nothing;
* +/-inf are ordinary (ordered) values.
"""

from __future__ import annotations

from typing import Hashable, Optional

import numpy as np
import numpy.typing as npt
import pandas as pd

X_COL = "tokens_per_s_user"
Y_COL = "tokens_per_s_gpu"
BATCH_COL = "batch"

__all__ = [
    "pareto_mask",
    "frontier",
    "best_y_at_least_x",
    "interactivity_gain",
    "throughput_gain",
    "batch_gain",
    "fixed_y_x_loss",
]


# --------------------------------------------------------------------------
# Non-dominated set
# --------------------------------------------------------------------------
def pareto_mask(x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Boolean mask of the non-dominated points when maximising x and y.

    Exact (see module docstring for the tie rules): duplicates of a
    non-dominated point are all kept, NaN rows are never kept.  O(n log n):
    points are sorted by x descending then y descending; a point is kept iff

    * its y equals the largest y among points with the *same* x (otherwise a
      point with equal x and larger y dominates it), and
    * its y is strictly larger than every y among points with *strictly
      larger* x (otherwise one of those dominates it).

    Args:
        x: 1-D array-like of length n (e.g. tokens/s/user).
        y: 1-D array-like of length n (e.g. tokens/s/GPU).

    Returns:
        ``np.ndarray`` of dtype bool and shape (n,), in the input order.
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length: {xa.size} vs {ya.size}")
    mask = np.zeros(xa.size, dtype=bool)
    valid = np.flatnonzero(~(np.isnan(xa) | np.isnan(ya)))
    if valid.size == 0:
        return mask
    order = valid[np.lexsort((-ya[valid], -xa[valid]))]
    xs, ys = xa[order], ya[order]
    mask[order] = _sorted_frontier_flags(xs, ys)
    return mask


def _sorted_frontier_flags(
    xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Frontier flags for NaN-free points sorted by x desc, then y desc."""
    n = xs.size
    idx = np.arange(n)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = xs[1:] != xs[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    best_in_group = ys[group_start]  # y is sorted descending within a group
    running_max = np.maximum.accumulate(ys)
    # Best y among points with strictly larger x (undefined for the first group).
    has_larger_x = group_start > 0
    best_larger_x = running_max[np.maximum(group_start - 1, 0)]
    return (ys == best_in_group) & (~has_larger_x | (ys > best_larger_x))


def frontier(
    df: pd.DataFrame,
    x: str = X_COL,
    y: str = Y_COL,
    by: Optional[Hashable] = None,
) -> pd.DataFrame:
    """Rows of ``df`` on the Pareto frontier of (x, y), sorted by x ascending.

    If ``df`` has a ``feasible`` column only rows where it is True are
    considered (missing values count as infeasible).  With ``by`` (e.g.
    ``"strategy"``) one frontier is computed per group; the result is then
    sorted by ``(by, x)``.  The original index is preserved.
    """
    if "feasible" in df.columns:
        df = df[df["feasible"].eq(True).to_numpy()]
    if by is None:
        keep = pareto_mask(df[x].to_numpy(), df[y].to_numpy())
        return df[keep].sort_values(x, kind="mergesort")
    keep = np.zeros(len(df), dtype=bool)
    xv, yv = df[x].to_numpy(), df[y].to_numpy()
    codes = df.groupby(by, sort=False, dropna=False).ngroup().to_numpy()
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        keep[rows] = pareto_mask(xv[rows], yv[rows])
    return df[keep].sort_values([by, x], kind="mergesort")


# --------------------------------------------------------------------------
# Step-function view
# --------------------------------------------------------------------------
def best_y_at_least_x(
    frontier_df: pd.DataFrame,
    x_values: npt.ArrayLike,
    x: str = X_COL,
    y: str = Y_COL,
) -> npt.NDArray[np.float64]:
    """For each query ``x0``: the largest ``y`` among points with ``x >= x0``.

    This is "for every interactivity (latency) budget keep the configuration
    with the highest throughput".  NaN where no point reaches ``x0`` (or the
    query is NaN).  Rows with NaN x or y are ignored.  Works on any point set
    (a suffix maximum is used), not only on frontiers.  Swap the column names
    to get "best x at y >= y0".

    Returns:
        float array of the same shape as ``x_values`` (0-d for a scalar).
    """
    px = frontier_df[x].to_numpy(dtype=float)
    py = frontier_df[y].to_numpy(dtype=float)
    ok = ~(np.isnan(px) | np.isnan(py))
    px, py = px[ok], py[ok]
    order = np.argsort(px, kind="mergesort")
    px, py = px[order], py[order]
    # suffix_max[i] = max(py[i:]); a trailing NaN stands for "no point".
    suffix_max = np.append(np.maximum.accumulate(py[::-1])[::-1], np.nan)
    q = np.asarray(x_values, dtype=float)
    pos = np.searchsorted(px, q, side="left")
    out = suffix_max[pos]
    return np.where(np.isnan(q), np.nan, out)


# --------------------------------------------------------------------------
# Helix vs baseline comparisons
# --------------------------------------------------------------------------
def _nondominated(df: pd.DataFrame, x: str = X_COL, y: str = Y_COL) -> pd.DataFrame:
    """Non-dominated rows of ``df`` (idempotent on a frontier), x ascending."""
    keep = pareto_mask(df[x].to_numpy(), df[y].to_numpy())
    return df[keep].sort_values(x, kind="mergesort")


def _max_ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> float:
    """Largest num/den over entries where num is defined; NaN if none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num / den
    ratios = ratios[~np.isnan(ratios)]
    return float(ratios.max()) if ratios.size else float("nan")


def interactivity_gain(helix: pd.DataFrame, base: pd.DataFrame) -> float:
    """Max tokens/s/user reachable by Helix over that of the baseline."""
    return float(np.nanmax(helix[X_COL].to_numpy(dtype=float))
                 / np.nanmax(base[X_COL].to_numpy(dtype=float)))


def _gain_at_base_points(helix: pd.DataFrame, base: pd.DataFrame, qty: str) -> float:
    """max over baseline frontier points b of best_helix_qty(x >= b.x) / b.qty."""
    base_f = _nondominated(base)
    bx = base_f[X_COL].to_numpy(dtype=float)
    helix_best = best_y_at_least_x(helix, bx, x=X_COL, y=qty)
    return _max_ratio(helix_best, base_f[qty].to_numpy(dtype=float))


def throughput_gain(helix: pd.DataFrame, base: pd.DataFrame) -> float:
    """Largest tokens/s/GPU ratio of Helix over the baseline at equal or better
    interactivity.

    For every baseline frontier point b: Helix's best tokens/s/GPU among its
    points with tokens/s/user >= b.x, divided by b's tokens/s/GPU; the maximum
    over b is returned.  Baseline points Helix cannot reach are skipped; NaN if
    it reaches none.  ``base`` is reduced to its non-dominated rows first
    (a no-op for a frontier).
    """
    return _gain_at_base_points(helix, base, Y_COL)


def batch_gain(helix: pd.DataFrame, base: pd.DataFrame) -> float:
    """Like :func:`throughput_gain` with ``batch`` as the quantity: Helix's
    largest batch among its points with tokens/s/user >= b.x over b's batch,
    maximised over the baseline frontier points b."""
    return _gain_at_base_points(helix, base, BATCH_COL)


def _x_at_y(front: pd.DataFrame, y0: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """tokens/s/user of a frontier drawn as a line through its points, at tokens/s/GPU ``y0``."""
    pts = _nondominated(front).sort_values(Y_COL)
    return np.interp(y0, pts[Y_COL].to_numpy(dtype=float), pts[X_COL].to_numpy(dtype=float))


def fixed_y_x_loss(on: pd.DataFrame, off: pd.DataFrame) -> float:
    """Largest fractional loss of tokens/s/user at fixed tokens/s/GPU when
    going from frontier ``on`` to frontier ``off`` (paper §3.3, Fig. 7).

    Each frontier is read as the line drawn through its points (x linear in y
    between neighbours), over the tokens/s/GPU range both cover; the curves
    are compared at every frontier point's y in that range:
    ``1 - x_off(y0) / x_on(y0)``. Returns the maximum (negative if ``off`` is
    better everywhere), or 0.0 where the ranges do not overlap. Reading the
    frontiers as lines, not step functions, keeps one extra point of a
    sparse frontier from posing as a large loss.
    """
    a, b = _nondominated(on), _nondominated(off)
    if a.empty or b.empty:
        return 0.0
    lo = max(a[Y_COL].min(), b[Y_COL].min())
    hi = min(a[Y_COL].max(), b[Y_COL].max())
    y0 = np.concatenate([a[Y_COL].to_numpy(dtype=float), b[Y_COL].to_numpy(dtype=float)])
    y0 = y0[(y0 >= lo) & (y0 <= hi)]
    if y0.size == 0:
        return 0.0
    return float(np.max(1.0 - _x_at_y(b, y0) / _x_at_y(a, y0)))
