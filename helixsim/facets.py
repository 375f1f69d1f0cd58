"""Frontier plots of sweeps over several systems and contexts: one panel per (system, context).

Rows are systems, columns contexts (the sweep's order); every panel draws the same strategy groups
in the same colours and markers. Points are numbered rather than labelled in place: the numbers are
keyed to their layouts in a table beside the panels (the Helix and best-baseline frontiers), so
crowded frontiers stay readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .plots import X_COL, Y_COL, _no_point, _save, _spans_decades, plt

SHOWN = ("Helix", "Helix HOP-B off", "Best baseline", "Medha", "Medha+EP (extension)")
MARKERS = dict(zip(SHOWN, "osD^v"))
KEYED = ("Helix", "Best baseline")
MAX_KEYED = 14


def plot_frontier_facets(facets: Mapping[tuple[str, int], Mapping[str, pd.DataFrame]], systems: Sequence[str],
                         contexts: Sequence[int], out_stem: str | Path, title: str) -> list[Path]:
    """Faceted frontiers (systems x contexts) with a key table of the numbered points."""
    rows, cols = len(systems), len(contexts)
    fig = plt.figure(figsize=(4.2 * cols + 4.6, 3.6 * rows + 0.8), constrained_layout=True)
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[1.0] * cols + [1.1])
    colours = {name: f"C{i}" for i, name in enumerate(SHOWN)}
    key_lines, key_tags = [], set()
    for r, hw in enumerate(systems):
        for c, ctx in enumerate(contexts):
            ax = fig.add_subplot(grid[r, c])
            ax.set_title(f"{hw}, context {int(ctx):,}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.tick_params(labelsize=7)
            if r == rows - 1:
                ax.set_xlabel("tokens/s/user", fontsize=8)
            if c == 0:
                ax.set_ylabel("tokens/s/GPU", fontsize=8)
            fronts = {k: v for k, v in facets.get((hw, int(ctx)), {}).items() if k in SHOWN and len(v)}
            if not fronts:
                _no_point(ax)
                continue
            xs, ys, tags = [], [], {}
            for name in SHOWN:
                if name not in fronts:
                    continue
                d = fronts[name].sort_values(X_COL)
                x, y = d[X_COL].to_numpy(float), d[Y_COL].to_numpy(float)
                xs.append(x)
                ys.append(y)
                ax.plot(x, y, marker=MARKERS[name], markersize=4, linewidth=1.3, color=colours[name],
                        label=name if (r, c) == (0, 0) else None)
                if name in KEYED:
                    for j in _spread(len(d), MAX_KEYED // len(KEYED)):
                        seen = (x[j], y[j]) in tags   # a point on both frontiers keeps one number
                        tag = tags.setdefault((x[j], y[j]), f"{len(set(tags.values())) + len(key_tags) + 1}")
                        if not seen:
                            ax.annotate(tag, (x[j], y[j]), xytext=(3, 3), textcoords="offset points", fontsize=6.5,
                                        color=colours[name])
                        row = d.iloc[j]
                        key_lines.append(f"{tag:>3} {hw[:12]:<12} {int(ctx):>9,} {name[:6]:<6} "
                                         f"{real_strategy(row):<6} {str(row.get('label', '')):<22}")
            key_tags.update(tags.values())
            if _spans_decades(np.concatenate(xs)):
                ax.set_xscale("log")
            if _spans_decades(np.concatenate(ys)):
                ax.set_yscale("log")
    key_ax = fig.add_subplot(grid[:, cols])
    key_ax.axis("off")
    head = f"{'#':>3} {'system':<12} {'context':>9} {'group':<6} {'strat.':<6} layout (KVPxTPxDP=TPFxEP) batch"
    foot = ["", "tp*: helix with kvp = 1 (no KV sharding: TP attention, Helix's FFN)"] if any(
        " tp* " in line for line in key_lines) else []
    key_ax.text(0.0, 1.0, "\n".join([head] + key_lines + foot), family="monospace", fontsize=6, va="top",
                transform=key_ax.transAxes)
    handles = [plt.Line2D([], [], color=colours[n], marker=MARKERS[n], label=n) for n in SHOWN]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(SHOWN), fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, out_stem)


def real_strategy(row) -> str:
    """The strategy a point really runs: a Helix layout with kvp = 1 shards no KV, its attention is TP's."""
    strategy = str(row["strategy"])
    return "tp*" if strategy in ("helix", "helix-nohopb") and int(row["kvp"]) == 1 else strategy


def _spread(n: int, k: int) -> list[int]:
    """At most k indices spread evenly over range(n), both ends included."""
    if n <= k:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, k).round().astype(int).tolist()))
