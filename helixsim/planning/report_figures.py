"""The plan report's figures: Pareto frontiers with the floor, and GPU time per token by op."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..cost.step import BREAKDOWN_KEYS  # noqa: E402
from ..plots import interval_band  # noqa: E402
from .report_blocks import _ctx  # noqa: E402
from .results import HardwarePlan, PlanResult, PoolPlan  # noqa: E402

X, Y = "tokens_per_s_user", "tokens_per_s_gpu"


# ----------------------------------------------------------------------------------------------- figures
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _log_if_wide(ax, values, axis: str) -> None:
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size > 1 and v.max() / v.min() > 30:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def frontier_figure(hp: HardwarePlan, floor: float) -> bytes:
    """Pareto frontiers (Helix, best baseline) of one system, each with its 80 % band, the
    interactivity floor as a vertical line and the chosen configuration (or the closest one)
    marked; one panel per context."""
    pools = hp.pools
    fig, axes = plt.subplots(1, len(pools), figsize=(8.5 * min(len(pools), 2) if len(pools) > 1 else 9, 5.2),
                             squeeze=False, constrained_layout=True)
    for ax, pool in zip(axes[0], pools):
        _frontier_panel(ax, hp, pool, floor)
    fig.suptitle(f"{hp.hardware}: throughput vs interactivity (up to {hp.max_gpus_per_instance} GPUs per instance)",
                 fontsize=12)
    return _png(fig)


def _frontier_panel(ax, hp: HardwarePlan, pool: PoolPlan, floor: float) -> None:
    t = pool.table
    ok = t[t["feasible"].to_numpy(bool)] if len(t) else t
    ax.set_xlabel("Interactivity, tokens/s/user")
    ax.set_ylabel("Throughput, tokens/s/GPU")
    ax.set_title(f"context {_ctx(pool.context)}, {pool.users:,} users", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ok.empty:
        ax.text(0.5, 0.5, "no layout fits in memory", transform=ax.transAxes, ha="center", va="center",
                fontsize=13, color="dimgray")
        ax.axvline(floor, color="crimson", linestyle="--", linewidth=1.8)
        return
    ax.scatter(ok[X], ok[Y], s=6, color="0.75", alpha=0.6, label=f"all configurations ({len(ok):,})", zorder=1)
    styles = {"Helix": ("tab:blue", "o"), "Best baseline": ("tab:orange", "s")}
    for name, (color, marker) in styles.items():
        fr = pool.frontiers.get(name)
        if fr is not None and len(fr):
            d = fr.sort_values(X)
            ax.plot(d[X], d[Y], color=color, marker=marker, markersize=4, linewidth=1.8,
                    label=f"{name} frontier", zorder=3)
            band = interval_band(d)  # the frontier's 80 % band (None without intervals)
            if band is not None:
                ax.fill(*band, color=color, alpha=0.15, linewidth=0, zorder=2, label=f"{name} 80 % band")
    _log_if_wide(ax, ok[X], "x")
    _log_if_wide(ax, ok[Y], "y")
    lo, hi = ax.get_xlim()
    ax.axvspan(lo, floor, color="crimson", alpha=0.06, zorder=0)
    ax.axvline(floor, color="crimson", linestyle="--", linewidth=1.8,
               label=f"floor {floor:g} tokens/s/user", zorder=2)
    ax.set_xlim(lo, max(hi, floor * 1.1))
    if pool.choice is not None:
        c = pool.choice.config
        ax.scatter([c.tokens_per_s_user], [c.tokens_per_s_gpu], marker="*", s=320, color="gold",
                   edgecolor="black", linewidth=1.0, zorder=5, label="chosen")
        ax.annotate(f"{c.strategy} {c.label} b{c.batch}", (c.tokens_per_s_user, c.tokens_per_s_gpu),
                    textcoords="offset points", xytext=(10, 8), fontsize=9,
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.85), zorder=6)
    elif pool.closest is not None:
        c = pool.closest
        ax.scatter([c.tokens_per_s_user], [c.tokens_per_s_gpu], marker="X", s=160, color="crimson",
                   edgecolor="black", zorder=5, label="closest to the floor")
        ax.annotate(f"best reachable: {c.tokens_per_s_user:.1f} tok/s/user\n{c.strategy} {c.label} b{c.batch}",
                    (c.tokens_per_s_user, c.tokens_per_s_gpu), textcoords="offset points", xytext=(-10, 10),
                    ha="right", fontsize=9, bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.85), zorder=6)
    ax.legend(fontsize=8, loc="best")


def breakdown_figure(result: PlanResult) -> bytes:
    """Stacked bars of GPU-milliseconds per output token by op (= 1000 / tokens/s/GPU) for each
    system's chosen configuration and its runner-ups: the longest bar loses."""
    bars = []  # (label, gpu_ms dict, chosen?)
    for hp in result.per_hardware:
        for pool in hp.pools:
            tag = hp.hardware + (f" @{_ctx(pool.context)}" if len(hp.pools) > 1 else "")
            if pool.choice is not None:
                c = pool.choice.config
                bars.append((f"{tag}: {c.strategy} {c.label} b{c.batch} (chosen)", c.gpu_ms_per_token(), True))
                for ru in pool.runner_ups:
                    if ru.config is not None:
                        r = ru.config
                        bars.append((f"{tag}: {r.strategy} {r.label} b{r.batch}", r.gpu_ms_per_token(), False))
            elif pool.closest is not None:
                c = pool.closest
                bars.append((f"{tag}: {c.strategy} {c.label} b{c.batch} (misses floor)", c.gpu_ms_per_token(), False))
    fig, ax = plt.subplots(figsize=(10, 0.42 * max(len(bars), 2) + 1.6), constrained_layout=True)
    ax.set_xlabel("GPU-milliseconds per output token (= 1000 / tokens/s/GPU)")
    ax.set_title("Where the GPU time of each output token goes (chosen configurations and runner-ups)", fontsize=11)
    if not bars:
        ax.text(0.5, 0.5, "no configuration fits in memory", transform=ax.transAxes, ha="center", va="center")
        return _png(fig)
    pos = np.arange(len(bars))[::-1]
    left = np.zeros(len(bars))
    cmap = plt.get_cmap("tab10")
    for i, key in enumerate(BREAKDOWN_KEYS):
        v = np.array([b[1][key] for b in bars])
        if not np.any(v > 0):
            continue
        ax.barh(pos, v, left=left, color=cmap(i % 10), label=key.replace("_", " "), height=0.7)
        left += v
    ax.set_yticks(pos)
    ax.set_yticklabels([b[0] for b in bars], fontsize=8)
    for tick, b in zip(ax.get_yticklabels(), bars):
        if b[2]:
            tick.set_fontweight("bold")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)

