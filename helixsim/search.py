"""Layout search: every valid layout for a GPU budget, crossed with a batch grid and contexts.

Candidates are the power-of-two widths (1, 2, 4, ... up to the budget; or the widths a
:class:`SearchSpace` lists, e.g. the divisors of a 72-GPU rack) of (kvp, tpa, dp, tpf, ep)
per strategy, filtered by the layout rules of :mod:`helixsim.layout`; each is crossed with
a batch grid from 1 to the largest batch that fits its memory (that batch included; with
``every_batch`` every batch up to it), and the study is priced chunk by chunk, each chunk in
one vectorised :func:`helixsim.api.evaluate_columns` call for its grid and one for its
capacity-edge rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .api import evaluate, evaluate_columns, frame_from_columns, kernels_for
from .calibration.shape_memo import shape_size
from .cost.memory import largest_batch, memory_per_gpu
from .layout import STRATEGIES, LayoutArrays, layout_label, valid_mask
from .precision import Precision
from .specs.hardware import HardwareSpec
from .specs.model import ModelSpec

#: The paper's baseline set (§3.1: TP, EP with DP attention, Medha-style KVP), each with PP.
BASELINES: tuple[str, ...] = ("tp", "ep", "medha")
#: Frontier names of the strategies; medha-ep is helixsim's extension, outside "Best baseline".
STRATEGY_FRONTIERS: dict[str, str] = {"tp": "TP", "ep": "EP", "medha": "Medha", "medha-ep": "Medha+EP (extension)"}


@dataclass(frozen=True)
class SearchSpace:
    """What to enumerate. ``max_gpus`` caps kvp·tpa·dp·pp; None means the NVLink domain."""

    strategies: tuple[str, ...] = STRATEGIES
    max_gpus: int | None = None
    pp: tuple[int, ...] = (1,)
    hopb: tuple[bool, ...] = (True,)
    max_batch: int = 4096
    contexts: tuple[int, ...] = (1_000_000,)
    min_gpus: int = 1
    batches: tuple[int, ...] | None = None  # explicit grid instead of powers of two and the steps between
    mtp: tuple[int, ...] = (0,)             # MTP draft tokens per step to search (helixsim.cost.mtp)
    two_batch_overlap: tuple[bool, ...] = (False,)   # ep layouts with and/or without TBO (helixsim.cost.wideep)
    every_batch: bool = False   # every batch from 1 to each layout's largest that fits (no grid)
    widths: tuple[int, ...] | None = None   # candidate widths per layout field (default: powers of two)


def powers_of_two(limit: int) -> np.ndarray:
    return 2 ** np.arange(int(np.log2(max(limit, 1))) + 1)


def batch_grid(limit: int) -> np.ndarray:
    """1, 2, 3, 4, 6, 8, 12, 16, ...: powers of two and the 1.5x steps between, up to ``limit``."""
    p = powers_of_two(limit)
    grid = np.unique(np.concatenate([p, (p * 3) // 2]))
    return grid[(grid >= 1) & (grid <= limit)]


def enumerate_layouts(model: ModelSpec, hw: HardwareSpec, space: SearchSpace) -> LayoutArrays:
    """All valid layouts of the chosen strategies within the GPU budget (vectorised)."""
    budget = space.max_gpus or hw.nvlink_domain_gpus
    w = np.array(sorted(set(space.widths)), dtype=np.int64) if space.widths else powers_of_two(budget)
    w = w[(w >= 1) & (w <= budget)]
    strategies = np.array([STRATEGIES.index(s) for s in space.strategies])
    axes = (strategies, w, w, w, w, w, np.array(space.pp), np.array(space.hopb))
    # the GPU budget first, on the broadcast grid (it drops most candidates), then the layout rules on the
    # rest: the same layouts in the same (row-major) order as every mask on every candidate
    grid = LayoutArrays(*np.meshgrid(*axes, indexing="ij", sparse=True))
    n = grid.n_gpus
    # every layout rule implies tpf x ep <= kvp x tpa x dp (the FFN runs on attention's GPUs): applied here too,
    # it leaves the same layouts and drops most candidates before they are expanded
    within = (n <= budget) & (n >= space.min_gpus) & (grid.n_ffn <= grid.n_attention)
    cols = [x[i] for x, i in zip(axes, _nonzero_broadcast(within, tuple(len(x) for x in axes)))]
    arrays = LayoutArrays(*cols)
    ok = valid_mask(arrays, model)
    # one canonical row per layout: a strategy's unused widths stay at 1
    ok &= (arrays.strategy != STRATEGIES.index("helix")) | (arrays.dp == 1)
    if not model.ffn.moe:
        ok &= arrays.ep == 1
    # medha-ep at ep = 1 is medha itself
    ok &= (arrays.strategy != STRATEGIES.index("medha-ep")) | (arrays.ep > 1)
    # HOP-B only changes Helix: keep one copy of every baseline layout
    ok &= (arrays.strategy == STRATEGIES.index("helix")) | (arrays.hopb == space.hopb[0])
    return LayoutArrays(*(c[ok] for c in cols))


def _nonzero_broadcast(mask: np.ndarray, shape: tuple) -> tuple[np.ndarray, ...]:
    """``np.nonzero(np.broadcast_to(mask, shape))``: where ``mask`` is broadcast along leading and trailing axes
    only (the strategies and HOP-B of the layout candidates), found on its own cells and spread over those axes
    in row-major order (the same indices in the same order, without a pass over the broadcast cells)."""
    spread = [m == 1 and n > 1 for m, n in zip(mask.shape, shape)]
    lead, trail = 0, len(shape)
    while lead < trail and spread[lead]:
        lead += 1
    while trail > lead and spread[trail - 1]:
        trail -= 1
    if mask.ndim != len(shape) or lead == trail or any(spread[lead:trail]):
        return np.nonzero(np.broadcast_to(mask, shape))
    inner = np.nonzero(mask.reshape(mask.shape[lead:trail]))
    before, after = shape_size(shape[:lead]), shape_size(shape[trail:])
    m = len(inner[0])
    heads = np.indices(shape[:lead]).reshape(lead, before)
    tails = np.indices(shape[trail:]).reshape(len(shape) - trail, after)
    return (tuple(np.repeat(h, m * after) for h in heads)
            + tuple(np.tile(np.repeat(i, after), before) for i in inner)
            + tuple(np.tile(t, before * m) for t in tails))


def _take(a: LayoutArrays, idx) -> LayoutArrays:
    return LayoutArrays(*(getattr(a, f)[idx] for f in LayoutArrays.__dataclass_fields__))


def capacity(model: ModelSpec, hw: HardwareSpec, lay: LayoutArrays, contexts: np.ndarray, precision: Precision,
             kernels, max_batch: int, mtp: int = 0) -> np.ndarray:
    """Largest batch that fits, per layout (rows) and context (columns), capped at ``max_batch`` (with ``mtp``
    draft tokens: beside the MTP module's weights and KV, helixsim.cost.mtp)."""
    col = LayoutArrays(*(getattr(lay, f)[:, None] for f in LayoutArrays.__dataclass_fields__))
    ctx = np.asarray(contexts, dtype=np.int64)[None, :]
    mem = memory_per_gpu(kernels, model, col, np.ones_like(ctx), ctx, precision, mtp)
    return np.minimum(np.broadcast_to(largest_batch(mem, col, hw.hbm_capacity_bytes), (len(lay.kvp), ctx.size)),
                      max_batch)


#: chunks with at most this many contexts price their capacity-edge batches inside the grid
FOLD_EDGES = 4


@dataclass(frozen=True)
class Chunk:
    """A block of layouts x a block of contexts: priced together, written as one piece."""

    layouts: LayoutArrays        # the block's layouts
    contexts: np.ndarray         # the block's contexts
    cap: np.ndarray              # (layouts, contexts) largest batch that fits
    grid: np.ndarray             # the batch grid

    def plan(self):
        """Grid part: (layout, grid batch) pairs crossed with the contexts and the mask of those that fit;
        edge part: one row per (layout, context) at its largest batch when that is not on the grid."""
        top = self.cap.max(axis=1, initial=0)
        if len(self.contexts) <= FOLD_EDGES:
            return self._plan_folded(top)
        n_grid = np.searchsorted(self.grid, top, side="right")
        li = np.repeat(np.arange(len(top)), n_grid)
        gb = self.grid[np.arange(len(li)) - np.repeat(np.cumsum(n_grid) - n_grid, n_grid)]
        fits = gb[:, None] <= self.cap[li]
        pos = np.minimum(np.searchsorted(self.grid, self.cap), len(self.grid) - 1)
        edge_l, edge_c = np.nonzero((self.cap >= 1) & (self.grid[pos] != self.cap))
        return li, gb, fits, edge_l, edge_c

    def _plan_folded(self, top: np.ndarray):
        """Few contexts: each layout's capacity edges join its grid batches (one priced grid, rows in
        layout, batch, context order), at the cost of a few cells that are not configurations."""
        n = len(top)
        cand = np.sort(np.concatenate([np.broadcast_to(self.grid, (n, len(self.grid))), self.cap], axis=1), axis=1)
        keep = (cand >= 1) & (cand <= top[:, None])
        keep[:, 1:] &= cand[:, 1:] != cand[:, :-1]
        li, j = np.nonzero(keep)
        gb = cand[li, j]
        pos = np.minimum(np.searchsorted(self.grid, gb), len(self.grid) - 1)
        on_grid = self.grid[pos] == gb
        cap = self.cap[li]
        fits = (gb[:, None] <= cap) & (on_grid[:, None] | (gb[:, None] == cap))
        none = np.zeros(0, np.int64)
        return li, gb, fits, none, none

    def with_mtp(self, model: ModelSpec, hw: HardwareSpec, precision: Precision, kernels, mtp: int) -> "Chunk":
        """The chunk with its capacities as they are with ``mtp`` draft tokens (the MTP module takes memory)."""
        if mtp == 0:
            return self
        top = int(self.cap.max(initial=0))
        return replace(self, cap=np.minimum(self.cap, capacity(model, hw, self.layouts, self.contexts, precision,
                                                                kernels, top, mtp)))

    @property
    def n_configurations(self) -> int:
        _, _, fits, edge_l, _ = self.plan()
        return int(fits.sum()) + len(edge_l)


def chunks(model: ModelSpec, hw: HardwareSpec, space: SearchSpace, precision: Precision, kernels,
           rows: int = 1 << 18):
    """The study cut into chunks of about ``rows`` priced grid cells: contexts in blocks small enough for
    one layout's grid, layouts packed greedily into each block. Deterministic: the cut depends only on the
    study, never on how many workers price it."""
    lay = enumerate_layouts(model, hw, space)
    contexts = np.array(space.contexts, dtype=np.int64)
    if space.every_batch:
        grid = np.arange(1, space.max_batch + 1, dtype=np.int64)
    else:
        grid = np.array(sorted(set(space.batches)), dtype=np.int64) if space.batches else batch_grid(space.max_batch)
    per_context = len(grid) + 1
    block = max(1, min(len(contexts), rows // per_context))
    for c0 in range(0, len(contexts), block):
        ctx = contexts[c0:c0 + block]
        cap = capacity(model, hw, lay, ctx, precision, kernels, space.max_batch)
        cost = (np.searchsorted(grid, cap.max(axis=1, initial=0), side="right") + 1) * len(ctx)
        start, total = 0, 0
        for i, c in enumerate(cost.tolist()):
            if total and total + c > rows:
                yield Chunk(_take(lay, slice(start, i)), ctx, cap[start:i], grid)
                start, total = i, 0
            total += c
        if start < len(cost):
            yield Chunk(_take(lay, slice(start, len(cost))), ctx, cap[start:], grid)


def evaluate_chunk(model: ModelSpec, hw: HardwareSpec, chunk: Chunk, precision: Precision, kernels,
                   frame: bool = True, mtps: tuple[int, ...] = (0,), tbos: tuple[bool, ...] = (False,)):
    """Price one chunk: each (layout, batch) of the grid once for all its contexts (the terms that do not
    depend on the context are computed once and broadcast), then the capacity-edge rows; labelled.
    With several MTP draft counts ``mtps`` the chunk is priced once per count (an ``mtp`` column, labels
    ending `` mtpN``); with ``tbos`` containing True its ``ep`` rows are priced again with two-batch
    overlap (a ``two_batch_overlap`` column, labels ending `` tbo``; the other strategies do not overlap).
    A DataFrame, or with ``frame=False`` a dict of numpy columns (strategy codes, label a categorical).
    Each MTP count is planned on its own capacities (:meth:`Chunk.with_mtp`)."""
    parts = []
    for mtp in mtps:
        chunk_m = chunk.with_mtp(model, hw, precision, kernels, mtp)
        li, gb, fits, edge_l, edge_c = chunk_m.plan()
        col = LayoutArrays(*(getattr(chunk.layouts, f)[li][:, None] for f in LayoutArrays.__dataclass_fields__))
        rows = np.nonzero(fits)
        which, batch, spread = _labelled_rows(li, gb, fits, rows[0], edge_l, chunk_m.cap[edge_l, edge_c])
        labels = layout_labels(chunk.layouts, which, batch, spread)
        is_ep = (chunk.layouts.strategy[which] == STRATEGIES.index("ep")).take(spread)
        for tbo in tbos:
            if tbo and not is_ep.any():
                continue
            edge = None   # the capacity-edge rows, priced first and written after the grid's cells
            if len(edge_l):
                edge = evaluate_columns(model, hw, _take(chunk.layouts, edge_l), chunk_m.cap[edge_l, edge_c],
                                        chunk.contexts[edge_c], precision, kernels=kernels, mtp=mtp,
                                        two_batch_overlap=tbo)
            cols = evaluate_columns(model, hw, col, gb[:, None], chunk.contexts[None, :], precision,
                                    kernels=kernels, mtp=mtp, rows=rows, two_batch_overlap=tbo, tail=edge)
            if mtps != (0,):
                cols["mtp"] = np.full(len(spread), mtp, dtype=np.int64)
            if tbos != (False,):
                cols["two_batch_overlap"] = np.full(len(spread), bool(tbo))
            cols["label"] = tagged_labels(labels, mtp, tbo)
            if tbo:   # only ep layouts overlap: the others are already priced without it
                cols = {c: v[is_ep] for c, v in cols.items()}
            parts.append(cols)
    if len(parts) > 1:
        from pandas.api.types import union_categoricals

        label = union_categoricals([p["label"] for p in parts])
        parts = [{**{c: np.concatenate([p[c] for p in parts]) for c in parts[0] if c != "label"}, "label": label}]
    return frame_from_columns(parts[0]) if frame else parts[0]


def configurations(model: ModelSpec, hw: HardwareSpec, space: SearchSpace, precision: Precision,
                   kernels) -> tuple[LayoutArrays, np.ndarray, np.ndarray]:
    """Every configuration of ``space`` as flat arrays (layouts, batches, contexts), in sweep order:
    batches of the grid up to each layout's largest batch that fits, and that largest batch itself
    (so the capacity edge is on the grid)."""
    lays, batches, ctxs = [], [], []
    for ch in chunks(model, hw, space, precision, kernels):
        li, gb, fits, edge_l, edge_c = ch.plan()
        r, c = np.nonzero(fits)
        lays.append(np.concatenate([li[r], edge_l]))
        batches.append(np.concatenate([gb[r], ch.cap[edge_l, edge_c]]))
        ctxs.append(np.concatenate([ch.contexts[c], ch.contexts[edge_c]]))
        lays[-1] = _take(ch.layouts, lays[-1])
    if not lays:
        return _take(enumerate_layouts(model, hw, space), np.arange(0)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat = LayoutArrays(*(np.concatenate([getattr(a, f) for a in lays]) for f in LayoutArrays.__dataclass_fields__))
    return flat, np.concatenate(batches).astype(np.int64), np.concatenate(ctxs)


def search(model: ModelSpec, hw: HardwareSpec, space: SearchSpace, precision: Precision, ideal: bool = False,
           calibration=None, chunk: int = 1 << 20,
           progress: Callable[[int, int], None] | None = None, backend: str = "trtllm") -> pd.DataFrame:
    """Price every configuration of ``space``; one row each (see :func:`helixsim.api.evaluate`).

    ``progress(done, total)`` is called after every chunk of about ``chunk`` grid cells (``total``:
    the number of chunks); ``backend``: the serving framework whose kernels price it
    (:mod:`helixsim.backends`).
    """
    k = kernels_for(hw, ideal, calibration, backend)
    parts = list(chunks(model, hw, space, precision, k, rows=chunk))
    mtps = tuple(space.mtp) or (0,)
    tbos = tuple(space.two_batch_overlap) or (False,)
    frames = []
    for i, ch in enumerate(parts):
        frames.append(evaluate_chunk(model, hw, ch, precision, k, mtps=mtps, tbos=tbos))
        if progress:
            progress(i + 1, len(parts))
    if not frames:
        lay = _take(enumerate_layouts(model, hw, space), np.arange(0))
        table = evaluate(model, hw, lay, np.zeros(0, np.int64), np.zeros(0, np.int64), precision, kernels=k)
        table["label"] = pd.Categorical([])
        return table
    return concat_tables(frames)


def concat_tables(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Chunks stacked into one table, categorical columns keeping one set of categories."""
    if len(frames) == 1:
        return frames[0]
    from pandas.api.types import union_categoricals

    cats = {c: union_categoricals([f[c] for f in frames]) for c in ("label",) if all(c in f for f in frames)}
    table = pd.concat([f.drop(columns=list(cats)) for f in frames], ignore_index=True)
    for c, values in cats.items():
        table[c] = values
    return table[list(frames[0].columns)]


def tagged_labels(labels: pd.Categorical, mtp: int, tbo: bool) -> pd.Categorical:
    """Point labels of rows priced with ``mtp`` draft tokens and/or two-batch overlap: `` mtpN`` / `` tbo`` appended."""
    tag = (f" mtp{mtp}" if mtp > 0 else "") + (" tbo" if tbo else "")
    return labels.rename_categories([f"{c}{tag}" for c in labels.categories]) if tag else labels


def _labelled_rows(li: np.ndarray, gb: np.ndarray, fits: np.ndarray, kept: np.ndarray, edge_l: np.ndarray,
                   edge_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(layout, batch) of each grid row with a kept cell and of each capacity-edge row, and the row of each
    kept configuration (grid cells ``kept``: their grid rows, in order; then the edge rows): a label is
    formed once per row, not once per context."""
    used = fits.any(axis=1)
    if used.all():
        which, batch, spread = li, gb, kept
    else:
        which, batch, spread = li[used], gb[used], (np.cumsum(used) - 1).take(kept)
    if not len(edge_l):
        return which, batch, spread
    tail = np.arange(len(which), len(which) + len(edge_l))
    return np.concatenate([which, edge_l]), np.concatenate([batch, edge_b]), np.concatenate([spread, tail])


def layout_labels(layouts: LayoutArrays, index: np.ndarray, batch: np.ndarray,
                  spread: np.ndarray | None = None) -> pd.Categorical:
    """Blog-style point labels, ``KVP x TP x DP = TPF x EP [ppN] bB``, one category per distinct label:
    row i is layout ``layouts[index[i]]`` at ``batch[i]``, or with ``spread`` row i is row ``spread[i]`` of
    those (each of them used at least once: the categories are those of every (index, batch) given). A Helix
    layout with kvp = 1 shards no KV: its attention is TP's (Helix's FFN), and its label names it so,
    ``tp* 1xTPx1=TPFxEP bB`` (as the key of the faceted frontier plots does, :func:`helixsim.facets.real_strategy`)."""
    helix = STRATEGIES.index("helix")
    names = [("tp* " if code == helix and w[0] == 1 else "") + layout_label(*w)
             for code, *w in zip(*(getattr(layouts, f).tolist() for f in ("strategy", "kvp", "tpa", "dp", "tpf", "ep", "pp")))]
    index = np.asarray(index, dtype=np.int64)
    batch = np.asarray(batch, dtype=np.int64)
    if len(index) == 0:
        return pd.Categorical([])
    # the categories sorted as strings (np.unique's order), found on whole numbers: two labels of different
    # layout names compare as their names followed by " b" do (no name holds " b", so neither is a prefix of
    # the other), two of one name as their batches' decimal digits; equal labels (a Helix layout with HOP-B
    # on and off) get one key
    spelled = sorted(set(names), key=lambda name: name + " b")
    rank = {name: i for i, name in enumerate(spelled)}
    name_rank = np.array([rank[name] for name in names], dtype=np.int64)
    present = np.flatnonzero(np.bincount(batch)).tolist()
    digits = sorted(present, key=str)   # the batches present, in the order of their decimal digits
    width = len(digits)
    batch_rank = np.empty(present[-1] + 1, dtype=np.int64)
    batch_rank[digits] = np.arange(width)
    codes, uniq = _sorted_keys(name_rank[index] * width + batch_rank[batch], len(spelled) * width)
    if spread is not None:
        codes = codes.take(spread)
    # each label as its name's and its batch's spellings joined (no number formatted per label), by the string
    # Index's own elementwise concatenation (the strings and the Index dtype of pd.Index of the joined strings)
    heads, tails = pd.Index([f"{name} b" for name in spelled]), pd.Index([str(d) for d in digits])
    name_of, batch_of = np.divmod(uniq, width)
    return pd.Categorical.from_codes(codes, dtype=_distinct_categories(heads.take(name_of) + tails.take(batch_of)))


def _distinct_categories(labels: pd.Index) -> pd.CategoricalDtype:
    """The unordered categorical dtype of :func:`layout_labels`' categories, without pandas' check that they are
    distinct and not missing (a hash table of every label, a quarter of labelling a sweep chunk): they are, by
    construction, one per distinct (name, batch) key, and no name holds " b", so a label's first " b" parts it
    back into its name and its batch's digits. The dtype ``pd.Categorical.from_codes(codes, categories=labels)``
    forms (its own ``ordered=None`` becomes False); checked where pandas has no unchecked constructor."""
    unchecked = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    return unchecked(labels, ordered=False) if unchecked else pd.CategoricalDtype(labels, ordered=False)


def _sorted_keys(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, sorted distinct keys) of non-negative integer keys below ``space``: through a presence table where
    that is not much larger than a sweep chunk (a few linear passes, no sorting), else by np.unique."""
    if space > 1 << 24:
        uniq, codes = np.unique(key, return_inverse=True)
        return codes, uniq
    seen = np.zeros(space, dtype=bool)
    seen[key] = True
    uniq = np.flatnonzero(seen)
    slot = np.empty(space, dtype=np.intp)
    slot[uniq] = np.arange(len(uniq))
    return slot[key], uniq


def frontiers(table: pd.DataFrame, groups: dict[str, Sequence[str]] | None = None) -> dict[str, pd.DataFrame]:
    """Pareto frontier per strategy group (default: Helix, best baseline, and each strategy)."""
    from .pareto import frontier

    if groups is None:
        groups = {"Helix": ["helix"], "Best baseline": list(BASELINES)}
        groups.update({name: [s] for s, name in STRATEGY_FRONTIERS.items()})
    out = {}
    nohopb = None
    if table["hopb"].nunique() > 1:
        # Helix with HOP-B off is its own group, shown as strategy "helix-nohopb"
        nohopb = ((table["strategy"] == "helix") & ~table["hopb"].astype(bool)).to_numpy()
        groups = {**groups, "Helix HOP-B off": ["helix-nohopb"]}
    for name, members in groups.items():
        mask = table["strategy"].isin(members).to_numpy()
        if nohopb is not None:
            mask = np.where(nohopb, "helix-nohopb" in members, mask)
        sub = table[mask]
        fr = frontier(sub) if len(sub) else sub.iloc[0:0]
        if nohopb is not None and "helix-nohopb" in members:
            fr = fr.assign(strategy=np.where(nohopb[table.index.get_indexer(fr.index)], "helix-nohopb",
                                             fr["strategy"].astype(str)))
        out[name] = fr
    for col, off, tag in (("mtp", 0, "no MTP"), ("two_batch_overlap", False, "no TBO")):
        if col in table and table[col].nunique() > 1:   # the same frontiers without the feature
            plain = (table[col] == off).to_numpy() & (True if nohopb is None else ~nohopb)
            for name in ("Helix", "Best baseline"):
                sub = table[plain & table["strategy"].isin(groups[name]).to_numpy()]
                out[f"{name} {tag}"] = frontier(sub) if len(sub) else sub.iloc[0:0]
    return out
