"""Render a :class:`helixsim.plan.PlanResult` as ``report.md`` and a self-contained ``report.html``.

The report is built once as a list of blocks (headings, paragraphs, tables,
figures) and written twice: Markdown (figures as PNG files beside it) and
HTML (figures embedded as base64 ``data:`` URIs, inline CSS, no scripts and
no external URLs, so the file can be mailed or opened offline). Every file is
written to a temporary name and renamed into place.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import __version__  # noqa: E402
from .cost.step import BREAKDOWN_KEYS  # noqa: E402
from .plan import UNCALIBRATED, HardwarePlan, PlanResult, PoolPlan  # noqa: E402
from .sweep import atomic_write_text, prepare_out_dir  # noqa: E402

X, Y = "tokens_per_s_user", "tokens_per_s_gpu"
STRATEGY_NAMES = {"helix": "Helix", "tp": "TP", "ep": "EP (DP attention)", "medha": "Medha"}


# ----------------------------------------------------------------------------------------------- blocks
@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # **bold** allowed


@dataclass
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""


@dataclass
class Figure:
    name: str  # file name of the PNG beside report.md
    png: bytes
    alt: str
    caption: str = ""


@dataclass
class Bullets:
    items: Sequence[str]


# ----------------------------------------------------------------------------------------------- formatting
def _n(x: Optional[float], digits: int = 3) -> str:
    """A number with ``digits`` significant digits and thousands separators; an em dash for None."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "\u2014"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:,.{digits}g}" if abs(x) >= 1 else f"{x:.{digits}g}"


def _usd(x: Optional[float]) -> str:
    return "\u2014" if x is None else f"${x:,.2f}"


def _ctx(c: int) -> str:
    if c >= 1_000_000 and c % 1_000_000 == 0:
        return f"{c // 1_000_000}M"
    if c >= 1000 and c % 1000 == 0:
        return f"{c // 1000}K"
    return f"{c:,}"


def _layout(strategy: str, label: str) -> str:
    return f"{strategy} {label}"


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
    """Pareto frontiers (Helix, best baseline) of one system with the interactivity floor as a
    vertical line and the chosen configuration (or the closest one) marked; one panel per context."""
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


# ----------------------------------------------------------------------------------------------- content
def _precision_text(p: dict) -> str:
    return f"weights {p['weights']}, KV cache {p['kv_cache']}, activations {p['activations']}"


def _context_text(result: PlanResult) -> str:
    cs = result.request.contexts
    if len(cs) == 1:
        return f"context {cs[0].context:,} tokens"
    total = sum(c.weight for c in cs)
    return "context mix " + ", ".join(f"{c.context:,} ({100 * c.weight / total:.0f} %)" for c in cs)


def recommendation_text(result: PlanResult) -> str:
    r, w = result.request, result.winner
    if w is None:
        return (f"**No system meets the floor.** None of {', '.join(r.hardware)} can decode {result.model} at "
                f"{r.min_tokens_per_s_user:g} tokens/s/user within its GPU budget; the closest each gets is below.")
    pool = w.main_pool
    c = pool.choice.config
    lines = [f"**Use {w.hardware}**: {w.instances:,} decode instances of **{STRATEGY_NAMES[c.strategy]} "
             f"{c.label}** ({c.n_gpus} GPUs, batch {c.batch}) = **{w.total_gpus:,} GPUs** in {w.units:,} "
             f"{w.unit_name}s, {_n(w.tokens_per_s_user)} tokens/s/user, {_n(c.tokens_per_s_gpu)} tokens/s/GPU, "
             f"**{_usd(w.cost_per_m_tokens)} per million output tokens** at ${w.price_per_gpu_hour:.2f}/GPU-hour, "
             f"{_n(w.energy_per_token_j)} J/token."]
    if len(w.pools) > 1:
        lines[0] = lines[0].replace("decode instances of", "decode instances; the largest pool uses")
    others = [h for h in result.per_hardware if h is not w]
    cheaper = [f"{h.hardware} {_usd(h.cost_per_m_tokens)} ({h.cost_per_m_tokens / w.cost_per_m_tokens:.2f}x)"
               for h in others if h.meets_floor]
    if cheaper:
        lines.append("Other systems: " + "; ".join(cheaper) + ".")
    lines.append(_family_text(pool))
    return " ".join(lines)


def _family_text(pool: PoolPlan) -> str:
    c = pool.choice.config
    if pool.other_family_best is None:
        other = "baseline" if pool.family == "Helix" else "Helix"
        return f"No {other} layout reaches the floor here."
    o = pool.other_family_best
    winner = "Helix" if pool.family == "Helix" else f"The {c.strategy.upper() if c.strategy != 'medha' else 'Medha'} baseline"
    other = (f"the best baseline ({o.strategy} {o.label}, batch {o.batch})" if pool.family == "Helix"
             else f"the best Helix layout ({o.label}, batch {o.batch})")
    return f"{winner} beats {other} by {pool.family_margin:.2f}x tokens/s/GPU at this floor."


def build_blocks(result: PlanResult) -> list:
    r = result.request
    blocks: list = [
        Heading(f"Capacity plan: {result.model}, {r.users:,} users at \u2265 {r.min_tokens_per_s_user:g} tokens/s/user", 1),
        Para(f"{_context_text(result)}; systems compared: {', '.join(r.hardware)}. "
             f"helixsim {__version__}, planned in {result.seconds:.1f} s."),
        Heading("Recommendation"),
        Para(recommendation_text(result)),
    ]
    missing = [(h, p) for h in result.per_hardware for p in h.pools if not p.meets_floor]
    if missing:
        items = []
        for h, p in missing:
            if p.closest is None:
                items.append(f"**{h.hardware}** (context {p.context:,}): no layout of up to {h.max_gpus_per_instance} "
                             f"GPUs fits {result.model} in memory.")
            else:
                c = p.closest
                items.append(f"**{h.hardware}** (context {p.context:,}): no layout reaches {r.min_tokens_per_s_user:g} "
                             f"tokens/s/user; the closest achievable is **{_n(c.tokens_per_s_user)} tokens/s/user** with "
                             f"{c.strategy} {c.label} ({c.n_gpus} GPUs, batch {c.batch}, {_n(c.tokens_per_s_gpu)} tokens/s/GPU).")
        blocks += [Heading("Systems that miss the floor", 3), Bullets(items)]

    blocks += [Heading("Comparison"), _comparison_table(result)]
    if len(r.contexts) > 1:
        blocks.append(_pools_table(result))
    blocks.append(Para("Cost per million output tokens = price per GPU-hour \u00d7 total GPUs / "
                       "(users \u00d7 tokens/s/user \u00d7 3600) \u00d7 10\u2076. Energy per token = TDP \u00d7 total GPUs / "
                       "(users \u00d7 tokens/s/user), GPUs only. Headroom = HBM \u2212 memory used per GPU. "
                       f"Prices from `{r.price_file}` (illustrative defaults unless you passed --price)."))

    blocks.append(Heading("Pareto frontiers"))
    blocks.append(Para("Every configuration priced (grey), the Helix and best-baseline frontiers, the interactivity "
                       "floor (dashed red line; the shaded side is too slow) and the chosen configuration (star)."))
    for hp in result.per_hardware:
        blocks.append(Figure(f"frontier-{_slug(hp.hardware)}.png", frontier_figure(hp, r.min_tokens_per_s_user),
                             f"Pareto frontier of {hp.hardware} with the interactivity floor"))

    blocks += [Heading("Breakdown of the chosen configurations"), _breakdown_table(result),
               Figure("breakdown.png", breakdown_figure(result), "GPU time per output token by op")]

    blocks.append(Heading("Runner-ups"))
    blocks.append(Para("The best layout of every other strategy at the same floor, and the op whose GPU-time per "
                       "token exceeds the winner's the most (what makes it lose)."))
    blocks.append(_runner_up_table(result))

    if len(result.sensitivity) > 1:
        blocks += [Heading("Sensitivity"),
                   Para("Each row re-plans every system with one input changed; cost per million output tokens "
                        "(total GPUs) per system, and the cheapest system with its layout."),
                   _sensitivity_table(result)]

    blocks.append(Heading("Calibration and assumptions"))
    items = [f"**{h.hardware}**: {h.calibration}" for h in result.per_hardware]
    items += ["Per-system precision: " + "; ".join(f"{h.hardware} {_precision_text(h.precision)}" for h in result.per_hardware) + ".",
              "GPU budget per decode instance: " + ", ".join(f"{h.hardware} {h.max_gpus_per_instance}" for h in result.per_hardware)
              + " (default: the NVLink domain, capped at 64); batches up to min(users, "
              f"{r.max_batch}); HOP-B {'on' if r.hopb else 'off'}; strategies {', '.join(r.strategies)}.",
              "Instances = ceil(users / batch). An instance stays inside one NVLink domain, so racks (NVL72) or "
              "nodes (HGX) = ceil(instances / instances per unit); GPUs left over in those units are not charged.",
              "Every user is counted at the configuration's full-batch tokens/s/user; a partly filled last "
              "instance runs no slower. Prefill, speculative decoding and queueing are not modelled."]
    if any(UNCALIBRATED in h.calibration for h in result.per_hardware):
        items.append("The numbers are an analytical roofline: treat differences under ~20 % as within model error.")
    blocks.append(Bullets(items))
    return blocks


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).stem if "/" in name else name)


def _comparison_table(result: PlanResult) -> Table:
    """One column per system (side by side), one row per quantity; the winner's name in bold."""
    w = result.winner
    names = [f"**{h.hardware}** (cheapest)" if h is w else h.hardware for h in result.per_hardware]
    rows: list[list[str]] = []

    def row(label, fn):
        rows.append([label] + [fn(h) for h in result.per_hardware])

    def cfg(h):
        if h.meets_floor:
            return h.main_pool.choice.config
        return next((q.closest for q in h.pools if not q.meets_floor and q.closest), None)

    dash = "\u2014"
    def ok(h, text):  # text is a callable: evaluated only where the floor is met
        return text() if h.meets_floor else dash

    row("meets the floor", lambda h: "yes" if h.meets_floor else "**no**")
    row("strategy", lambda h: (STRATEGY_NAMES[cfg(h).strategy] + ("" if h.meets_floor else " (closest)")) if cfg(h) else dash)
    row("layout KVPxTPxDP=TPFxEP", lambda h: cfg(h).label if cfg(h) else "nothing fits")
    row("batch per instance", lambda h: str(cfg(h).batch) if cfg(h) else dash)
    row("GPUs per instance", lambda h: str(cfg(h).n_gpus) if cfg(h) else dash)
    row("instances", lambda h: ok(h, lambda: f"{h.instances:,}"))
    row("total GPUs", lambda h: ok(h, lambda: f"{h.total_gpus:,}"))
    row("racks / nodes", lambda h: ok(h, lambda: f"{h.units:,} {h.unit_name}s ({h.unit_gpus} GPUs each)"))
    row("tokens/s/user", lambda h: _n(h.tokens_per_s_user) if h.meets_floor else
        (f"{_n(cfg(h).tokens_per_s_user)} (max reachable)" if cfg(h) else dash))
    row("tokens/s/GPU", lambda h: _n(cfg(h).tokens_per_s_gpu) if cfg(h) else dash)
    row("price, $/GPU-hour", lambda h: f"{h.price_per_gpu_hour:.2f}")
    row("**$ per million output tokens**", lambda h: ok(h, lambda: f"**{_usd(h.cost_per_m_tokens)}**"))
    row("energy, J/token", lambda h: ok(h, lambda: _n(h.energy_per_token_j)))
    row("HBM headroom, GB/GPU", lambda h: _n(h.hbm_gb - cfg(h).memory_per_gpu_gb) if cfg(h) else dash)
    row("Helix vs best baseline", lambda h: _family_cell(h.main_pool) if h.meets_floor else dash)
    row("precision (weights / KV)", lambda h: f"{h.precision['weights']} / {h.precision['kv_cache']}")
    return Table([""] + names, rows)


def _family_cell(p: PoolPlan) -> str:
    if p.family_margin is None:
        return f"{p.family} only reaches the floor"
    return f"{p.family} wins by {p.family_margin:.2f}x"


def _pools_table(result: PlanResult) -> Table:
    headers = ["system", "context", "share of users", "users", "strategy", "layout", "batch", "instances",
               "GPUs", "tok/s/user", "tok/s/GPU", "$/M tokens"]
    rows = []
    for h in result.per_hardware:
        total = sum(q.weight for q in h.pools)
        for p in h.pools:
            share = f"{100 * p.weight / total:.0f} %"
            if p.choice:
                c, d = p.choice.config, p.choice
                rows.append([h.hardware, f"{p.context:,}", share, f"{p.users:,}", c.strategy, c.label,
                             str(c.batch), f"{d.instances:,}", f"{d.total_gpus:,}", _n(c.tokens_per_s_user),
                             _n(c.tokens_per_s_gpu), _usd(d.cost_per_m_tokens)])
            else:
                best = f"closest {_n(p.closest.tokens_per_s_user)} tok/s/user" if p.closest else "nothing fits"
                rows.append([h.hardware, f"{p.context:,}", share, f"{p.users:,}", "\u2014", best,
                             "\u2014", "\u2014", "\u2014", "\u2014", "\u2014", "\u2014"])
    return Table(headers, rows, "Per-context pools")


def _breakdown_table(result: PlanResult) -> Table:
    shown = []
    for h in result.per_hardware:
        for p in h.pools:
            c = p.choice.config if p.choice else p.closest
            if c is not None:
                tag = h.hardware + (f" @{_ctx(p.context)}" if len(h.pools) > 1 else "")
                shown.append((tag, c, p.choice is not None))
    keys = [k for k in BREAKDOWN_KEYS if any(c.breakdown_ms[k] > 0 for _, c, _ in shown)]
    headers = ["system", "layout, batch", "step ms"] + [k.replace("_", " ") for k in keys]
    rows = [[tag, f"{c.strategy} {c.label} b{c.batch}" + ("" if chosen else " (closest)"), f"{c.ttl_ms:.2f}"]
            + [f"{c.breakdown_ms[k]:.2f} ({100 * c.breakdown_ms[k] / c.ttl_ms:.0f}%)" for k in keys]
            for tag, c, chosen in shown]
    return Table(headers, rows, "Decode-step time per op in ms (share of the step); ops that are zero everywhere are left out")


def _runner_up_table(result: PlanResult) -> Table:
    headers = ["system", "strategy", "best layout at the floor", "batch", "GPUs", "tok/s/user", "tok/s/GPU", "$/M tokens",
               "why it loses"]
    rows = []
    for h in result.per_hardware:
        for p in h.pools:
            if p.choice is None:
                continue
            tag = h.hardware + (f" @{_ctx(p.context)}" if len(h.pools) > 1 else "")
            c = p.choice.config
            rows.append([f"**{tag}**", f"**{c.strategy}**", f"**{c.label}** (chosen)", str(c.batch), str(c.n_gpus),
                         _n(c.tokens_per_s_user),
                         _n(c.tokens_per_s_gpu), _usd(p.choice.cost_per_m_tokens), "\u2014"])
            for ru in p.runner_ups:
                r = ru.config
                rows.append([tag, ru.strategy, r.label if r else "\u2014", str(r.batch) if r else "\u2014",
                             str(r.n_gpus) if r else "\u2014", _n(r.tokens_per_s_user) if r else "\u2014",
                             _n(r.tokens_per_s_gpu) if r else "\u2014", _usd(ru.cost_per_m_tokens), ru.reason()])
    return Table(headers, rows)


def _sensitivity_table(result: PlanResult) -> Table:
    names = list(result.request.hardware)
    headers = ["scenario", "change"] + names + ["cheapest"]
    rows = []
    for s in result.sensitivity:
        cells = []
        for h in names:
            cost, gpus = s.cost_per_m_tokens.get(h), s.total_gpus.get(h)
            cells.append("misses floor" if cost is None else f"{_usd(cost)} ({gpus:,})")
        best = f"{s.winner}: {s.winner_strategy} {s.winner_label} b{s.winner_batch}" if s.winner else "none meets the floor"
        rows.append([f"**{s.scenario}**" if s.scenario == "base" else s.scenario, s.change] + cells + [best])
    return Table(headers, rows)


# ----------------------------------------------------------------------------------------------- markdown
def to_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            lines = []
            if b.caption:
                lines.append(f"*{b.caption}*\n")
            lines.append("| " + " | ".join(b.headers) + " |")
            lines.append("|" + "|".join("---" for _ in b.headers) + "|")
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Figure):
            out.append(f"![{b.alt}]({b.name})" + (f"\n\n*{b.caption}*" if b.caption else ""))
    return "\n\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------- html
_CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 15px;
       line-height: 1.45; color: #1d1d1f; background: #ffffff; margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 48px; box-sizing: border-box; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.recommendation { background: #f3f8ee; border-left: 5px solid #4c9a2a; padding: 10px 14px; }
.scroll { max-width: 100%; overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 12.5px; max-width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
caption { caption-side: top; text-align: left; font-style: italic; padding: 2px 0 4px; }
figure { margin: 10px 0 18px; } img { max-width: 100%; height: auto; display: block; }
code { background: #f2f2f2; padding: 0 3px; word-break: break-all; }
"""


def _inline(text: str) -> str:
    s = html.escape(text, quote=False)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
    return s


def to_html(blocks: list, title: str) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>"]
    after_reco = False
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
            after_reco = b.text == "Recommendation"
        elif isinstance(b, Para):
            cls = ' class="recommendation" id="recommendation"' if after_reco else ""
            parts.append(f"<p{cls}>{_inline(b.text)}</p>")
            after_reco = False
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            cap = f"<caption>{_inline(b.caption)}</caption>" if b.caption else ""
            head = "<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in b.headers) + "</tr>"
            body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            parts.append(f'<div class="scroll"><table>{cap}<thead>{head}</thead><tbody>{body}</tbody></table></div>')
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png).decode("ascii")
            cap = f"<figcaption>{_inline(b.caption)}</figcaption>" if b.caption else ""
            parts.append(f'<figure><img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}">{cap}</figure>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------- writing
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Binary twin of :func:`helixsim.sweep.atomic_write_text`: temporary file, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render(result: PlanResult) -> tuple[str, str, list[Figure]]:
    """(Markdown, HTML, figures) of a plan."""
    blocks = build_blocks(result)
    r = result.request
    title = f"helixsim plan: {result.model}, {r.users:,} users at {r.min_tokens_per_s_user:g} tok/s/user"
    return to_markdown(blocks), to_html(blocks, title), [b for b in blocks if isinstance(b, Figure)]


def write_report(result: PlanResult, out: str | Path) -> list[Path]:
    """Write ``report.md`` (with its PNGs beside it) and the self-contained ``report.html`` into ``out``."""
    out = prepare_out_dir(Path(out))
    md, page, figures = render(result)
    written = []
    for fig in figures:
        atomic_write_bytes(out / fig.name, fig.png)
        written.append(out / fig.name)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", page)
    return [out / "report.md", out / "report.html"] + written
