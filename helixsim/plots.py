"""Matplotlib figures of helixsim results (headless: the Agg backend).

Every function draws one figure, writes ``<out_stem>.png`` and
``<out_stem>.svg`` (parent folders created), closes the figure and returns
the two written paths.  Empty inputs give a figure that says
"no feasible point" rather than an exception.

* :func:`plot_roofline`: the Helix paper's Figure 1 (DRAM-read roofline,
  arXiv 2507.07120 App. A) from :func:`helixsim.roofline.figure1_panels`.
* :func:`plot_frontiers`: Pareto frontiers, Tokens/s/user vs Tokens/s/GPU
  (paper Figures 5-6), optionally normalised to one frontier's maxima.
* :func:`plot_breakdown`: per-op latency of each frontier point, stacked.
* :func:`plot_predicted_vs_measured`: model against measurement, log-log.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

__all__ = [
    "plot_roofline",
    "plot_frontiers",
    "interval_band",
    "plot_breakdown",
    "plot_predicted_vs_measured",
    "BREAKDOWN_COLUMNS",
    "NO_POINT_TEXT",
]

X_COL = "tokens_per_s_user"
Y_COL = "tokens_per_s_gpu"
NO_POINT_TEXT = "no feasible point"
MAX_LABELS_PER_CURVE = 12

#: Per-op latency columns, in stacking order (decode step order).
BREAKDOWN_COLUMNS: tuple[str, ...] = (
    "qkv_proj_ms", "attention_ms", "attn_comm_ms", "o_proj_ms", "ffn_ms", "ffn_comm_ms",
    "lm_head_ms", "pp_comm_ms", "overhead_ms",
)

_ROOFLINE_PANELS = (
    ("vs_tp", "tp", "TP width (GPUs; TPA = TPF = TP, KVP = 1)"),
    ("vs_context", "context", "KV length S (tokens)"),
    ("vs_kvp", "kvp", "KVP width (TPA fixed, TPF = TPA x KVP)"),
)
_ROOFLINE_SERIES = (
    ("kv_read_us", "KV-cache read", "tab:blue", "o"),
    ("weight_read_us", "weight read", "tab:orange", "s"),
    ("total_us", "total (KV + weights)", "black", "^"),
)


# ---------------------------------------------------------------- helpers
def _save(fig: plt.Figure, out_stem: str | Path) -> list[Path]:
    """Write ``<out_stem>.png`` and ``.svg`` byte-reproducibly (no SVG date, fixed SVG id salt), each to a
    temporary file renamed into place, so an interrupted run leaves no half-written figure."""
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path in paths:
            svg = path.suffix == ".svg"
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle, plt.rc_context({"svg.hashsalt": "helixsim"} if svg else {}):
                    fig.savefig(handle, format=path.suffix[1:], dpi=None if svg else 150, bbox_inches="tight",
                                metadata={"Date": None} if svg else None)
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> the mode a plain open() would give
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    finally:
        plt.close(fig)
    return paths


def _no_point(ax: plt.Axes, text: str = NO_POINT_TEXT) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=14, color="dimgray")


def _spans_decades(values: np.ndarray, decades: float = 1.5) -> bool:
    """True where positive values span more than ``decades`` powers of ten (log axis worth it)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 1 and np.log10(v.max() / v.min()) > decades


def _plain_number(value: float, _pos=None) -> str:
    if value >= 1 << 10 and value == 2 ** round(np.log2(value)):
        return f"2^{int(round(np.log2(value)))}"
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}K"
    return f"{value:g}"


def _evenly(n: int, k: int) -> np.ndarray:
    """Indices of at most ``k`` of ``n`` points, evenly spread, first and last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


# ---------------------------------------------------------------- roofline
def plot_roofline(panels: Mapping[str, pd.DataFrame], setup, out_stem: str | Path) -> list[Path]:
    """The paper's Figure 1: per-layer DRAM read time vs TP width, KV length and KVP width.

    ``panels`` is :func:`helixsim.roofline.figure1_panels` output; ``setup``
    its :class:`~helixsim.roofline.RooflineSetup` (title and annotation).
    Lines: KV-cache read, weight read, and their sum, in microseconds;
    log-2 x axes, log y where the values span decades.
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    for ax, (key, x_col, x_label) in zip(axes, _ROOFLINE_PANELS):
        df = panels.get(key)
        ax.set_xlabel(x_label)
        ax.set_ylabel("DRAM read time per layer (\u00b5s)")
        ax.grid(True, which="major", alpha=0.3)
        if df is None or df.empty:
            _no_point(ax)
            continue
        x = df[x_col].to_numpy(float)
        for col, name, color, marker in _ROOFLINE_SERIES:
            ax.plot(x, df[col], marker=marker, color=color, label=name,
                    linestyle="--" if col == "total_us" else "-", linewidth=1.6, markersize=5)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
        ax.set_xticks(x)
        if key == "vs_context":
            ax.tick_params(axis="x", labelrotation=45)
        if _spans_decades(df[["kv_read_us", "weight_read_us", "total_us"]].to_numpy()):
            ax.set_yscale("log")
        fixed = ""
        if key == "vs_context":
            r = df.iloc[0]
            fixed = f" (TPA={int(r.tpa)}, TPF={int(r.tpf)}, KVP={int(r.kvp)})"
        ax.set_title({"vs_tp": "vs TP width", "vs_context": "vs KV length" + fixed,
                      "vs_kvp": f"vs KVP width (TPA={int(df.tpa.iloc[0])})"}[key], fontsize=11)
        ax.legend(fontsize=9)
    s = setup
    ctx = getattr(s, "context", None)
    sub = f", S={_plain_number(ctx)} tokens" if ctx else ""
    bw = getattr(s, "mem_bw_gbps", None)
    sub += f", MemBW={bw:g} GB/s" if bw else ""
    fig.suptitle(f"DRAM-read roofline per decode layer (no communication): {getattr(s, 'label', '')}{sub}",
                 fontsize=12)
    return _save(fig, out_stem)


# ---------------------------------------------------------------- frontiers
#: Points with more than this share of their step priced by extrapolation get a ring.
EXTRAPOLATED_MARK = 0.5


def interval_band(points: pd.DataFrame) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Outline (x, y) of a frontier's interval band, or None without ``ttl_ms_lo``/``ttl_ms_hi``.

    Every point moves along its own ray through the origin (its batch per GPU
    is fixed): at the fast end of its interval to x = 1000 / ttl_ms_lo and
    y = y x ttl_ms / ttl_ms_lo, at the slow end likewise with ttl_ms_hi. The
    band lies between the Pareto frontier of the points at their fast ends and
    that of the points at their slow ends: the outline runs along the first
    by increasing x and back along the second.
    """
    from .pareto import pareto_mask

    if points.empty or not {"ttl_ms", "ttl_ms_lo", "ttl_ms_hi"} <= set(points.columns):
        return None
    ttl, y = points["ttl_ms"].to_numpy(float), points[Y_COL].to_numpy(float)
    lo, hi = points["ttl_ms_lo"].to_numpy(float), points["ttl_ms_hi"].to_numpy(float)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo > 0).all()):
        return None

    def front(end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ex, ey = 1000.0 / end, y * ttl / end
        keep = pareto_mask(ex, ey)
        order = np.argsort(ex[keep], kind="mergesort")
        return ex[keep][order], ey[keep][order]

    (fx, fy), (sx, sy) = front(lo), front(hi)
    return np.concatenate([fx, sx[::-1]]), np.concatenate([fy, sy[::-1]])


def plot_frontiers(frontiers: Mapping[str, pd.DataFrame], out_stem: str | Path, title: str,
                   label_points: bool = True, normalize_to: Optional[str] = None,
                   bands: Optional[Sequence[str]] = None) -> list[Path]:
    """Pareto frontiers: x = Tokens/s/user (interactivity), y = Tokens/s/GPU (throughput).

    One line with markers per frontier name, points sorted by x. Where the
    frames carry ``ttl_ms_lo``/``ttl_ms_hi`` each frontier gets a shaded band
    (:func:`interval_band`; only the frontiers named in ``bands`` when it is
    given), and points with ``extrapolated_fraction`` above
    :data:`EXTRAPOLATED_MARK` a ring. With ``label_points`` each point (at most 12 per curve, evenly chosen) is
    annotated with its ``label`` column, when there is one. With
    ``normalize_to`` both axes are divided by that frontier's maxima, as the
    paper normalises its Figures 5-6 to the baseline.
    """
    fig, ax = plt.subplots(figsize=(9, 6), constrained_layout=True)
    frames = {name: df for name, df in frontiers.items()
              if df is not None and not df.empty and {X_COL, Y_COL} <= set(df.columns)}
    sx = sy = 1.0
    norm_note = ""
    if normalize_to is not None:
        ref = frames.get(normalize_to)
        if ref is None:
            raise KeyError(f"normalize_to='{normalize_to}' is not a non-empty frontier; have {sorted(frontiers)}")
        sx, sy = float(ref[X_COL].max()), float(ref[Y_COL].max())
        norm_note = f" (normalised to {normalize_to} max)"
    ax.set_xlabel(f"Interactivity, Tokens/s/user{norm_note or ' (tokens/s)'}")
    ax.set_ylabel(f"Throughput, Tokens/s/GPU{norm_note or ' (tokens/s)'}")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if not frames:
        _no_point(ax)
        return _save(fig, out_stem)

    markers = "osD^v<>Px*"
    all_x, all_y = [], []
    marked = False
    for i, (name, df) in enumerate(frames.items()):
        d = df.sort_values(X_COL)
        x = d[X_COL].to_numpy(float) / sx
        y = d[Y_COL].to_numpy(float) / sy
        all_x.append(x)
        all_y.append(y)
        (line,) = ax.plot(x, y, marker=markers[i % len(markers)], markersize=5, linewidth=1.6,
                          label=f"{name} ({len(d)} pts)")
        band = interval_band(d) if bands is None or name in bands else None
        if band is not None:
            bx, by = band[0] / sx, band[1] / sy
            ax.fill(bx, by, color=line.get_color(), alpha=0.15, linewidth=0)
            all_x.append(bx)
            all_y.append(by)
        if "extrapolated_fraction" in d.columns:
            out = d["extrapolated_fraction"].to_numpy(float) > EXTRAPOLATED_MARK
            if out.any():
                ax.scatter(x[out], y[out], s=110, facecolors="none", edgecolors=line.get_color(), linewidths=1.2,
                           label=None if marked else f"> {EXTRAPOLATED_MARK:.0%} of the step priced outside "
                                                     "measured kernels")
                marked = True
        if label_points and "label" in d.columns:
            labels = d["label"].astype(str).to_numpy()
            for j in _evenly(len(d), MAX_LABELS_PER_CURVE):
                ax.annotate(labels[j], (x[j], y[j]), xytext=(4, 4 + 6 * (i % 3)), textcoords="offset points",
                            fontsize=6.5, color=line.get_color(), alpha=0.9)
    xs, ys = np.concatenate(all_x), np.concatenate(all_y)
    if _spans_decades(xs):
        ax.set_xscale("log")
    if _spans_decades(ys):
        ax.set_yscale("log")
    ax.legend()
    return _save(fig, out_stem)


# ---------------------------------------------------------------- breakdown
def plot_breakdown(frontier: pd.DataFrame, out_stem: str | Path, title: str) -> list[Path]:
    """Stacked bars of per-op decode-step latency (ms) for each frontier point.

    Stacks the ``*_ms`` columns of :data:`BREAKDOWN_COLUMNS` that are present;
    x ticks are the ``label`` column (else the row number), points ordered by
    Tokens/s/user when that column exists.
    """
    cols = [c for c in BREAKDOWN_COLUMNS if frontier is not None and c in frontier.columns]
    n = 0 if frontier is None else len(frontier)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * n + 3), 5.5), constrained_layout=True)
    ax.set_ylabel("Latency per decode step (ms)")
    ax.set_xlabel("Frontier point (layout, batch)")
    ax.set_title(title)
    if n == 0 or not cols:
        _no_point(ax)
        return _save(fig, out_stem)
    d = frontier.sort_values(X_COL) if X_COL in frontier.columns else frontier
    ticks = d["label"].astype(str).tolist() if "label" in d.columns else [str(i) for i in range(n)]
    pos = np.arange(n)
    bottom = np.zeros(n)
    colors = plt.get_cmap("tab10")
    for i, col in enumerate(cols):
        v = d[col].fillna(0.0).to_numpy(float)
        ax.bar(pos, v, bottom=bottom, color=colors(i % 10), label=col[:-3].replace("_", " "), width=0.75)
        bottom += v
    ax.set_xticks(pos)
    ax.set_xticklabels(ticks, rotation=60, ha="right", fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(3, len(cols)), loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out_stem)


# ---------------------------------------------------------------- validation
def plot_predicted_vs_measured(measured: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray,
                               out_stem: str | Path, title: str,
                               groups: Optional[Sequence] = None, unit: str = "ms") -> list[Path]:
    """Log-log scatter of predicted against measured values, with y = x and a +/-10 % band.

    ``groups`` (same length, optional) colours the points by group name;
    ``unit`` names the axes' unit (default ms). Non-positive values are dropped
    (they cannot sit on log axes).
    """
    m = np.asarray(measured, float).ravel()
    p = np.asarray(predicted, float).ravel()
    if m.shape != p.shape:
        raise ValueError(f"measured has {m.size} values, predicted {p.size}")
    g = np.asarray(["all"] * m.size if groups is None else list(groups), dtype=object)
    if g.size != m.size:
        raise ValueError(f"groups has {g.size} values, measured {m.size}")
    ok = np.isfinite(m) & np.isfinite(p) & (m > 0) & (p > 0)
    m, p, g = m[ok], p[ok], g[ok]

    fig, ax = plt.subplots(figsize=(6.5, 6), constrained_layout=True)
    ax.set_xlabel(f"Measured ({unit})")
    ax.set_ylabel(f"Predicted ({unit})")
    ax.set_title(title)
    if m.size == 0:
        _no_point(ax)
        return _save(fig, out_stem)
    lo = min(m.min(), p.min()) / 1.3
    hi = max(m.max(), p.max()) * 1.3
    line = np.geomspace(lo, hi, 50)
    ax.fill_between(line, line * 0.9, line * 1.1, color="gray", alpha=0.2, label="\u00b110 %")
    ax.plot(line, line, color="black", linewidth=1, label="y = x")
    for name in dict.fromkeys(g):
        sel = g == name
        ax.scatter(m[sel], p[sel], s=22, label=None if groups is None else str(name), alpha=0.85)
    err = np.abs(p / m - 1.0)
    ax.text(0.03, 0.97, f"n = {m.size}\nmedian |err| = {100 * np.median(err):.1f} %\n"
            f"within \u00b110 %: {100 * np.mean(err <= 0.1):.0f} %",
            transform=ax.transAxes, va="top", fontsize=9,
            bbox=dict(boxstyle="round", facecolor="white", alpha=0.8))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out_stem)
