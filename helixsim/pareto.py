"""Pareto frontiers of decode configurations and Helix-vs-baseline metrics.

Every sweep point of the simulator is a decode configuration with an
interactivity (``tokens_per_s_user``, x) and a throughput
(``tokens_per_s_gpu``, y).  Both are to be *maximised*.  This module extracts
the non-dominated set, gives the step-function ("best throughput at a given
latency budget") view of a frontier, and computes the scalar comparisons used
in the Helix paper (interactivity gain, throughput gain, batch gain, and the
interactivity each configuration loses when a feature is switched off).

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
    "gain_at_equal_or_better_interactivity",
    "gain_target",
    "same_config_x_loss",
    "table_at_end",
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
def gain_at_equal_or_better_interactivity(helix: pd.DataFrame, base: pd.DataFrame, qty: str) -> float:
    """Largest ratio, over interactivity targets x0, of Helix's best ``qty`` among its points with
    tokens/s/user >= x0 to the baseline's best ``qty`` among its points with tokens/s/user >= x0.

    Both sides are read over *all* their points (not only frontier points):
    a configuration off the throughput frontier may still hold the largest
    batch at a target. Each side's best-at-target is a step function that
    changes only at its points' tokens/s/user, so the targets are every
    point's tokens/s/user of either side; targets neither side reaches, or
    only Helix reaches, are skipped. NaN when no target is reached by both.
    """
    return gain_target(helix, base, qty)[0]


def gain_target(helix: pd.DataFrame, base: pd.DataFrame, qty: str) -> tuple[float, float]:
    """(gain, target): :func:`gain_at_equal_or_better_interactivity` and the smallest
    tokens/s/user target x0 at which that largest ratio is reached (NaN, NaN if none)."""
    x0 = np.unique(np.concatenate([helix[X_COL].to_numpy(dtype=float), base[X_COL].to_numpy(dtype=float)]))
    x0 = x0[np.isfinite(x0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = best_y_at_least_x(helix, x0, y=qty) / best_y_at_least_x(base, x0, y=qty)
    ok = np.isfinite(ratios)
    if not ok.any():
        return float("nan"), float("nan")
    i = int(np.argmax(np.where(ok, ratios, -np.inf)))
    return float(ratios[i]), float(x0[i])


def interactivity_gain(helix: pd.DataFrame, base: pd.DataFrame) -> float:
    """Max tokens/s/user reachable by Helix over that of the baseline."""
    return float(np.nanmax(helix[X_COL].to_numpy(dtype=float))
                 / np.nanmax(base[X_COL].to_numpy(dtype=float)))


def throughput_gain(helix: pd.DataFrame, base: pd.DataFrame) -> float:
    """Largest tokens/s/GPU ratio of Helix over the baseline at equal or better interactivity
    (:func:`gain_at_equal_or_better_interactivity` with tokens/s/GPU): at a target x0, each side's
    best tokens/s/GPU among its points with tokens/s/user >= x0."""
    return gain_at_equal_or_better_interactivity(helix, base, Y_COL)


def batch_gain(helix: pd.DataFrame, base: pd.DataFrame) -> float:
    """Like :func:`throughput_gain` with ``batch``: the largest ratio of the batches each side
    sustains at equal or better tokens/s/user (paper §3: batch scalability, the most concurrent
    requests under a fixed TTL budget), over all points, not only frontier points."""
    return gain_at_equal_or_better_interactivity(helix, base, BATCH_COL)


def same_config_x_loss(on: pd.DataFrame, off: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per row of ``on``: the fraction of tokens/s/user lost by the same configuration in ``off``,
    ``1 - x_off / x_on``, matched on ``keys`` (layout widths, batch, context). NaN where ``off``
    has no such configuration. No frontier is drawn or interpolated: each value compares one
    layout at one batch with itself (tokens/s/GPU falls by the same fraction)."""
    matched = on[keys].merge(off[keys + [X_COL]], on=keys, how="left", validate="many_to_one")
    x_off = matched[X_COL].to_numpy(dtype=float)
    return pd.Series(1.0 - x_off / on[X_COL].to_numpy(dtype=float), index=on.index)


def table_at_end(table: pd.DataFrame, end: str) -> pd.DataFrame:
    """``table`` with every configuration moved to one end (``"lo"`` or ``"hi"``) of its TTL interval.

    TTL becomes ``ttl_ms_lo`` (or ``ttl_ms_hi``) and tokens/s/user and tokens/s/GPU scale by
    ttl_ms / that value (batch and GPUs are unchanged).
    """
    col = f"ttl_ms_{end}"
    out = table.copy()
    scale = out["ttl_ms"].to_numpy(float) / out[col].to_numpy(float)
    out["tokens_per_s_user"] = out["tokens_per_s_user"] * scale
    out["tokens_per_s_gpu"] = out["tokens_per_s_gpu"] * scale
    out["ttl_ms"] = out[col]
    return out
