"""Refining a searched table around a tokens/s/user floor: the largest batch that meets it, not the grid's.

A search prices each layout on a batch grid (1, 2, 3, 4, 6, 8, 12, ...) up to its largest batch that
fits. A planner asks for the most tokens/s/GPU (or the cheapest billed configuration) at a floor on
tokens/s/user; that optimum sits where a layout's tokens/s/user crosses the floor, which is between two
grid batches: the grid keeps the smaller one, and at large batches the gap is a third of the batch.

:func:`refine_for_floor` finds, for every layout (and context, MTP depth, two-batch overlap) whose grid
rows cross the floor, the largest batch that still meets it, by a SPLIT-ary search between the two grid
batches: tokens/s/user does not rise with the batch (each step carries more requests' work), so the
search is exact, and tokens/s/GPU, which rises with the batch, is best at that batch. Every batch
priced along the way is added to the table (a few dozen per crossing), so frontiers drawn
from it gain the points too.

A planner that bills whole instances for ``users`` also needs the batches ceil(users / k): one more
request per instance above such a batch saves no instance and costs tokens/s/user, so the cheapest
billed configuration is at one of them (at most about 2 sqrt(users) batches per layout). ``tests/test_refine.py`` checks the result against an exhaustive pricing
of every batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .api import evaluate
from .layout import STRATEGIES, LayoutArrays
from .search import concat_tables, layout_labels, tagged_labels

LAYOUT_KEYS = ("strategy", "kvp", "tpa", "dp", "tpf", "ep", "pp", "hopb")
#: columns that, with the layout, make one series of batches (present in a table or not)
SERIES_KEYS = ("context", "mtp", "two_batch_overlap")
#: probes per gap and round: a gap of g batches takes about log(g) / log(SPLIT) rounds
SPLIT = 32


def _codes(table: pd.DataFrame) -> np.ndarray:
    """Strategy codes (indices into :data:`helixsim.layout.STRATEGIES`) of the table's rows."""
    return pd.Categorical(table["strategy"].astype(str), categories=list(STRATEGIES)).codes.astype(np.int64)


def floor_crossings(table: pd.DataFrame, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (i, j) of ``table`` where one series' batch i meets the floor and its next batch j
    (larger by more than one) does not: the gaps a grid leaves at the floor."""
    if table.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = [_codes(table)] + [table[c].to_numpy() for c in LAYOUT_KEYS[1:]] + \
        [table[c].to_numpy() for c in SERIES_KEYS if c in table]
    batch = table["batch"].to_numpy(np.int64)
    order = np.lexsort([batch] + [np.asarray(k).astype(np.int64) for k in reversed(keys)])
    same = np.ones(len(order) - 1, bool)
    for k in keys:
        k = np.asarray(k)[order]
        same &= k[1:] == k[:-1]
    ok = (table["feasible"].to_numpy(bool) & (table["tokens_per_s_user"].to_numpy(float) >= floor))[order]
    b = batch[order]
    cross = np.flatnonzero(same & ok[:-1] & ~ok[1:] & (b[1:] - b[:-1] > 1))
    return order[cross], order[cross + 1]


def _layouts(table: pd.DataFrame, rows: np.ndarray) -> LayoutArrays:
    sub = table.iloc[rows]
    return LayoutArrays(_codes(sub), *(sub[c].to_numpy(np.int64) for c in LAYOUT_KEYS[1:-1]),
                        sub["hopb"].to_numpy(bool))


class _Series:
    """Layouts (one per series) with their context, MTP depth and overlap, priced at given batches."""

    def __init__(self, model, hw, table: pd.DataFrame, rows: np.ndarray, precision, kernels, columns=None):
        self.model, self.hw, self.precision, self.kernels = model, hw, precision, kernels
        self.columns = table.columns if columns is None else columns   # those of the table being refined
        self.lay = _layouts(table, rows)
        self.ctx = table["context"].to_numpy(np.int64)[rows]
        n = len(rows)
        self.mtp = table["mtp"].to_numpy(np.int64)[rows] if "mtp" in table else np.zeros(n, np.int64)
        self.tbo = table["two_batch_overlap"].to_numpy(bool)[rows] if "two_batch_overlap" in table else np.zeros(n, bool)

    def price(self, series: np.ndarray, batch: np.ndarray) -> list[tuple[np.ndarray, pd.DataFrame]]:
        """(positions into ``series``, rows like the table's) for series ``series`` at batches ``batch``."""
        out = []
        for m in np.unique(self.mtp[series]):
            for t in np.unique(self.tbo[series]):
                pos = np.flatnonzero((self.mtp[series] == m) & (self.tbo[series] == t))
                if not len(pos):
                    continue
                idx, b = series[pos], batch[pos]
                sub = LayoutArrays(*(getattr(self.lay, f)[idx] for f in LayoutArrays.__dataclass_fields__))
                f = evaluate(self.model, self.hw, sub, b, self.ctx[idx], self.precision, kernels=self.kernels,
                             mtp=int(m), two_batch_overlap=bool(t))
                f["label"] = tagged_labels(layout_labels(sub, np.arange(len(idx)), b), int(m), bool(t))
                if "mtp" in self.columns:
                    f["mtp"] = np.full(len(idx), m, dtype=np.int64)
                if "two_batch_overlap" in self.columns:
                    f["two_batch_overlap"] = np.full(len(idx), bool(t))
                out.append((pos, f[[c for c in self.columns if c in f]]))
        return out


def _meets(f: pd.DataFrame, floor: float) -> np.ndarray:
    return f["feasible"].to_numpy(bool) & (f["tokens_per_s_user"].to_numpy(float) >= floor)


def instance_edges(users: int, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(series, batch) pairs: every batch ceil(users / k) (the smallest batch that serves ``users`` with k
    instances) up to each series' ``upper`` batch."""
    b = np.arange(1, int(np.max(upper, initial=0)) + 1, dtype=np.int64)
    inst = -(-int(users) // b)
    edges = b[np.r_[True, inst[1:] < inst[:-1]]] if len(b) else b   # batches that need one instance fewer
    n = np.searchsorted(edges, upper, side="right")
    series = np.repeat(np.arange(len(upper)), n)
    return series, edges[np.arange(len(series)) - np.repeat(np.cumsum(n) - n, n)]


def refine_for_floor(model, hw, table: pd.DataFrame, precision, floor: float, kernels,
                     users: int | None = None, billed_gpus=None) -> pd.DataFrame:
    """``table`` plus, for every series crossing ``floor`` between two grid batches, the batches a search
    prices to find the largest one that meets it (module docstring). ``kernels``: the search's kernel model.

    With ``users``, also each batch ceil(users / k) up to that largest batch, for every series that meets the
    floor: billed in whole instances, a batch just above such an edge buys no instance fewer and loses
    tokens/s/user, so the cheapest configuration serving ``users`` sits on one of these edges.
    ``billed_gpus(rows)``: GPUs billed per row for ``users`` (default: the instances' GPUs)."""
    first, nxt = floor_crossings(table, floor)
    frames = []
    if len(first):
        s = _Series(model, hw, table, first, precision, kernels)
        lo = table["batch"].to_numpy(np.int64)[first]
        hi = table["batch"].to_numpy(np.int64)[nxt]
        while (active := np.flatnonzero(hi - lo > 1)).size:
            # SPLIT - 1 probes per gap at once (a SPLIT-ary search: few vectorised calls, each wide)
            probe = lo[active, None] + -(-(hi - lo)[active, None] * np.arange(1, SPLIT) // SPLIT)
            keep = (probe > lo[active, None]) & (probe < hi[active, None])
            keep[:, 1:] &= probe[:, 1:] != probe[:, :-1]
            r, _ = np.nonzero(keep)
            series, batch = active[r], probe[keep]
            meets = np.zeros(len(series), bool)
            for pos, f in s.price(series, batch):
                meets[pos] = _meets(f, floor)
                frames.append(f)
            # the largest probe meeting the floor, and the smallest failing probe above it
            new_lo = lo.copy()
            np.maximum.at(new_lo, series[meets], batch[meets])
            fail = ~meets & (batch > new_lo[series])
            new_hi = hi.copy()
            np.minimum.at(new_hi, series[fail], batch[fail])
            lo, hi = new_lo, new_hi
    if users is not None:
        billed = billed_gpus or (lambda t: -(-int(users) // t["batch"].to_numpy(np.int64)) * t["n_gpus"].to_numpy())
        frames += _edges(model, hw, table, frames, precision, floor, kernels, int(users), billed)
    if not frames:
        return table
    added = len(frames)
    if "label" in table and not isinstance(table["label"].dtype, pd.CategoricalDtype):
        table = table.assign(label=pd.Categorical(table["label"].astype(str)))
    out = concat_tables([table, *frames])
    keys = [c for c in LAYOUT_KEYS + SERIES_KEYS + ("batch",) if c in out]
    return out[~out.duplicated(subset=keys, keep="first").to_numpy()].reset_index(drop=True) if added else out


def _edges(model, hw, table, frames, precision, floor, kernels, users, billed_gpus) -> list[pd.DataFrame]:
    """The instance-edge batches (:func:`instance_edges`) of every series that meets the floor, up to its
    largest batch meeting it, that could beat its strategy's cheapest row so far (those already priced are
    dropped by the caller).

    Pruning: a batch b needs ceil(users / b) instances of n_gpus GPUs, at most the tokens/s/user of the
    series' largest priced batch below it, so its GPU-seconds per token are at least
    ceil(users / b) n_gpus / tokens/s/user there; billing whole racks or nodes (``billed_gpus``) only adds."""
    both = pd.concat([table[[c for c in table.columns if c != "label"]]] +
                     [f[[c for c in table.columns if c != "label"]] for f in frames], ignore_index=True)
    ok = both[_meets(both, floor)].reset_index(drop=True)
    if ok.empty:
        return []
    keys = [c for c in LAYOUT_KEYS + SERIES_KEYS if c in ok]
    sid = ok.groupby(keys, observed=True, sort=False).ngroup().to_numpy(np.int64)
    b = ok["batch"].to_numpy(np.int64)
    tps = ok["tokens_per_s_user"].to_numpy(float)
    strategy = ok["strategy"].astype(str).to_numpy()
    cost = billed_gpus(ok) / tps                        # GPU-seconds per token x users, billed
    best = pd.Series(cost).groupby(strategy).min()
    top = pd.Series(b).groupby(sid).idxmax().to_numpy()   # row of each series' largest batch meeting the floor
    series, batch = instance_edges(users, b[top])
    row = top[series]
    # the series' largest priced batch at or below each candidate: an upper bound on its tokens/s/user
    order = np.lexsort((b, sid))
    code = sid[order] * (int(b.max()) + int(users) + 2) + b[order]
    at = np.searchsorted(code, sid[row] * (int(b.max()) + int(users) + 2) + batch, side="right") - 1
    below = order[np.clip(at, 0, len(order) - 1)]
    lower = -(-int(users) // batch) * ok["n_gpus"].to_numpy(float)[row] / tps[below]
    keep = lower <= best.reindex(strategy[row]).to_numpy() * (1.0 + 1e-9)
    if not keep.any():
        return []
    s = _Series(model, hw, ok, top, precision, kernels, columns=table.columns)
    return [f for _, f in s.price(series[keep], batch[keep])]
