"""Layout search: every valid layout for a GPU budget, crossed with a batch grid and contexts.

Candidates are the power-of-two widths (1, 2, 4, ... up to the budget) of
(kvp, tpa, dp, tpf, ep) per strategy, filtered by the layout rules of
:mod:`helixsim.layout`; each is crossed with a batch grid from 1 to the
largest batch that fits its memory, and the whole table is priced in one
vectorised :func:`helixsim.api.evaluate` call per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .api import evaluate, kernels_for
from .cost.memory import largest_batch, memory_per_gpu
from .layout import STRATEGIES, LayoutArrays, valid_mask
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
    w = powers_of_two(budget)
    strategies = np.array([STRATEGIES.index(s) for s in space.strategies])
    grids = np.meshgrid(strategies, w, w, w, w, w, np.array(space.pp), np.array(space.hopb), indexing="ij")
    cols = [g.ravel() for g in grids]
    arrays = LayoutArrays(*cols)
    ok = valid_mask(arrays, model)
    n = arrays.n_gpus
    ok &= (n <= budget) & (n >= space.min_gpus)
    # one canonical row per layout: a strategy's unused widths stay at 1
    ok &= (arrays.strategy != STRATEGIES.index("helix")) | (arrays.dp == 1)
    if not model.ffn.moe:
        ok &= arrays.ep == 1
    # medha-ep at ep = 1 is medha itself
    ok &= (arrays.strategy != STRATEGIES.index("medha-ep")) | (arrays.ep > 1)
    # HOP-B only changes Helix: keep one copy of every baseline layout
    ok &= (arrays.strategy == STRATEGIES.index("helix")) | (arrays.hopb == space.hopb[0])
    return LayoutArrays(*(c[ok] for c in cols))


def _take(a: LayoutArrays, idx: np.ndarray) -> LayoutArrays:
    return LayoutArrays(*(getattr(a, f)[idx] for f in LayoutArrays.__dataclass_fields__))


def configurations(model: ModelSpec, hw: HardwareSpec, space: SearchSpace, precision: Precision,
                   kernels) -> tuple[LayoutArrays, np.ndarray, np.ndarray]:
    """Cross layouts x contexts x batches, keeping batches up to each layout's largest that fits
    (and that largest batch itself, so the capacity edge is on the grid)."""
    lay = enumerate_layouts(model, hw, space)
    contexts = np.array(space.contexts, dtype=np.int64)
    li, ci = np.meshgrid(np.arange(len(lay.kvp)), np.arange(len(contexts)), indexing="ij")
    li, ci = li.ravel(), ci.ravel()
    base = _take(lay, li)
    ctx = contexts[ci]
    mem = memory_per_gpu(kernels, model, base, np.ones_like(ctx), ctx, precision)
    cap = np.minimum(largest_batch(mem, base, hw.hbm_capacity_bytes), space.max_batch)
    grid = np.array(space.batches, dtype=np.int64) if space.batches else batch_grid(space.max_batch)
    take = grid[None, :] <= cap[:, None]
    rows, cols = np.nonzero(take)
    extra = np.nonzero((cap >= 1) & ~np.isin(cap, grid))[0]
    rows = np.concatenate([rows, extra])
    batches = np.concatenate([grid[cols], cap[extra]]).astype(np.int64)
    return _take(base, rows), batches, ctx[rows]


def search(model: ModelSpec, hw: HardwareSpec, space: SearchSpace, precision: Precision, ideal: bool = False,
           calibration=None, chunk: int = 100_000,
           progress: Callable[[int, int], None] | None = None, backend: str = "trtllm") -> pd.DataFrame:
    """Price every configuration of ``space``; one row each (see :func:`helixsim.api.evaluate`).

    ``progress(done, total)`` is called after every chunk of ``chunk`` configurations;
    ``backend``: the serving framework whose kernels price it (:mod:`helixsim.backends`).
    """
    k = kernels_for(hw, ideal, calibration, backend)
    lay, batches, ctx = configurations(model, hw, space, precision, k)
    frames = []
    mtps = tuple(space.mtp) or (0,)
    total = len(batches) * len(mtps)
    for i, mtp in enumerate(mtps):   # a handful of draft counts; each priced in vectorised chunks
        for start in range(0, len(batches), chunk):
            sl = np.arange(start, min(start + chunk, len(batches)))
            frame = evaluate(model, hw, _take(lay, sl), batches[sl], ctx[sl], precision, kernels=k, mtp=mtp)
            frames.append(frame.assign(mtp=mtp) if mtps != (0,) else frame)
            if progress:
                progress(i * len(batches) + int(sl[-1]) + 1, total)
    if not frames:
        return evaluate(model, hw, _take(lay, np.arange(0)), batches, ctx, precision, kernels=k)
    table = pd.concat(frames, ignore_index=True)
    table["label"] = layout_labels(table)
    if "mtp" in table:
        table["label"] = table["label"] + np.where(table["mtp"] > 0, " mtp" + table["mtp"].astype(str), "")
    return table


def layout_labels(table: pd.DataFrame) -> pd.Series:
    """Blog-style point labels: ``KVP x TP x DP = TPF x EP [ppN] bB``."""
    fields = ["kvp", "tpa", "dp", "tpf", "ep", "pp"]
    codes = np.stack([table[f].to_numpy(np.int64) for f in fields], axis=1)
    uniq, inverse = np.unique(codes, axis=0, return_inverse=True)  # a few hundred layouts
    names = [f"{k}x{t}x{d}={f}x{e}" + (f" pp{p}" if p > 1 else "") for k, t, d, f, e, p in uniq.tolist()]
    batch = table["batch"].to_numpy(np.int64).tolist()
    return pd.Series([f"{names[i]} b{b}" for i, b in zip(inverse.ravel().tolist(), batch)], index=table.index)


def frontiers(table: pd.DataFrame, groups: dict[str, Sequence[str]] | None = None) -> dict[str, pd.DataFrame]:
    """Pareto frontier per strategy group (default: Helix, best baseline, and each strategy)."""
    from .pareto import frontier

    if groups is None:
        groups = {"Helix": ["helix"], "Best baseline": list(BASELINES)}
        groups.update({name: [s] for s, name in STRATEGY_FRONTIERS.items()})
    out = {}
    if table["hopb"].nunique() > 1:
        table = table.copy()
        table.loc[(table["strategy"] == "helix") & ~table["hopb"].astype(bool), "strategy"] = "helix-nohopb"
        groups = {**groups, "Helix HOP-B off": ["helix-nohopb"]}
    for name, members in groups.items():
        sub = table[table["strategy"].isin(members)]
        out[name] = frontier(sub) if len(sub) else sub.iloc[0:0]
    if "mtp" in table and table["mtp"].nunique() > 1:   # the same frontiers without speculative decoding
        plain = table[table["mtp"] == 0]
        for name in ("Helix", "Best baseline"):
            sub = plain[plain["strategy"].isin(groups[name])]
            out[f"{name} no MTP"] = frontier(sub) if len(sub) else sub.iloc[0:0]
    return out
