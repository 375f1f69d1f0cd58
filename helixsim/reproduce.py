"""``helixsim reproduce``: run the paper's studies and set the paper's claims beside the simulated values.

The paper's numbers are what the simulator is checked against; nothing here
is tuned to them (see README, "Reproducing the paper"). Next to the paper's
GB200 studies it runs the TensorRT-LLM Helix blog's measured GB300 setting
(FP4 weights, FP8 KV cache, no HOP-B, against TP/EP without KV parallelism).

Gains (:mod:`helixsim.pareto`) are read over all feasible points of each side,
not only frontier points. The HOP-B loss compares every configuration with
itself with HOP-B off; ``hopb_off_loss`` is the largest such loss among the
points of the HOP-B-on Helix frontier, ``hopb_off_loss_any_layout`` the largest
over every Helix configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .api import resolve_hardware
from .hopb_study import hopb_chunks
from .pareto import batch_gain, interactivity_gain, same_config_x_loss, table_at_end, throughput_gain
from .search import BASELINES, frontiers
from .sweep import SweepResult, load_sweep, run_sweep, write_sweep_outputs

#: Helix paper v1 (arXiv 2507.07120) §3.2-3.3 and abstract.
PAPER_CLAIMS = {
    "deepseek-r1": {"interactivity_gain": 1.5, "throughput_gain": 32.0, "batch_gain": 32.0, "hopb_off_loss": 0.01},
    "llama-3.1-405b": {"interactivity_gain": 1.13, "throughput_gain": 4.0, "batch_gain": 4.0, "hopb_off_loss": 0.12},
}
BLOG = "deepseek-r1-gb300-blog"
#: TensorRT-LLM Helix blog (blog22, "up to 32x concurrency improvement and 1.8x interactivity
#: improvement compared to conventional parallelism approaches"), measured on GB300 NVL72, FP4,
#: 1M tokens, without HOP-B. The blog states no throughput figure at equal interactivity.
BLOG_CLAIMS = {BLOG: {"interactivity_gain": 1.8, "batch_gain": 32.0}}
STUDIES = {"deepseek-r1": "paper-fig5-deepseek-r1-1m", "llama-3.1-405b": "paper-fig6-llama-405b-1m"}
HOPB_STUDY = "paper-fig7-hopb"
BLOG_STUDY = "gb300-deepseek-r1-1m"
GAINS = ("interactivity_gain", "throughput_gain", "batch_gain")
METRICS = GAINS + ("hopb_off_loss",)
RANGED = METRICS + ("hopb_off_loss_any_layout",)
#: Columns that identify one configuration (a layout at a batch and context).
CONFIG_KEYS = ["kvp", "tpa", "dp", "tpf", "ep", "pp", "batch", "context"]


@dataclass
class Reproduction:
    metrics: dict[str, dict]
    results: list[SweepResult]
    paths: list[Path]
    hopb_tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # per model: HOP-B frontier, chunk by chunk


def _clean(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def points(table: pd.DataFrame, strategies, hopb: bool | None = None) -> pd.DataFrame:
    """Feasible rows of ``table`` run by ``strategies`` (and, for Helix, with HOP-B on or off)."""
    sel = table["strategy"].isin(list(strategies))
    if "feasible" in table.columns:
        sel &= table["feasible"].eq(True)
    if hopb is not None:
        sel &= table["hopb"].astype(bool) == hopb
    return table[sel]


def gains(helix: pd.DataFrame, base: pd.DataFrame) -> dict[str, float | None]:
    """The three gains of Helix's points over the baseline's points (all feasible points of each)."""
    if helix.empty or base.empty:
        return dict.fromkeys(GAINS)
    return {"interactivity_gain": _clean(interactivity_gain(helix, base)),
            "throughput_gain": _clean(throughput_gain(helix, base)),
            "batch_gain": _clean(batch_gain(helix, base))}


def hopb_losses(table: pd.DataFrame, helix_frontier: pd.DataFrame) -> dict[str, float | str | None]:
    """HOP-B off against on, configuration by configuration (no frontier is interpolated).

    ``hopb_off_loss``: the largest loss among the HOP-B-on frontier's points;
    ``hopb_off_loss_any_layout``: the largest over every Helix configuration;
    with the layout and batch (label) where each occurs.
    """
    on, off = points(table, ["helix"], hopb=True), points(table, ["helix"], hopb=False)
    out: dict[str, float | str | None] = {}
    for key, rows in (("hopb_off_loss", helix_frontier), ("hopb_off_loss_any_layout", on)):
        loss = same_config_x_loss(rows, off, CONFIG_KEYS).dropna() if len(rows) else pd.Series(dtype=float)
        out[key] = _clean(float(loss.max())) if len(loss) else None
        out[key + "_at"] = str(rows.loc[loss.idxmax(), "label"]) if len(loss) and loss.max() > 0 else None
    return out


def hopb_forced(res: SweepResult, calibration, ideal) -> tuple[dict, pd.DataFrame]:
    """What HOP-B forced on would change on each point of the Helix frontier (:mod:`.hopb_study`).

    Over the frontier's points where HOP-B applies (kvp > 1, more than one
    request per GPU): ``hopb_forced_ttl_change``, the most favourable change of
    the decode step with chunks priced as kernels and collectives of their size
    (negative: HOP-B would save that fraction of the step), and
    ``hopb_even_split_ttl_change``, the same with the paper's Figure 3
    arithmetic (batched times divided evenly among the chunks).
    """
    keys = ("hopb_forced_ttl_change", "hopb_even_split_ttl_change")
    out: dict = {k: None for k in keys} | {k + "_at": None for k in keys}
    front = res.frontiers["Helix"]
    if front.empty:
        return out, front
    table = hopb_chunks(front, res.model, res.hardware, res.spec.precision.build(res.spec.name, resolve_hardware(res.hardware)),
                        ideal=res.spec.ideal if ideal is None else ideal, calibration=calibration)
    applies = table[(table["kvp"] > 1) & (table["chunks"] > 1)]
    for key, col in zip(keys, ("hopb_ttl_change", "even_split_ttl_change")):
        if len(applies):
            best = applies[col].idxmin()
            out[key], out[key + "_at"] = _clean(float(applies.loc[best, col])), str(applies.loc[best, "label"])
    return out, table


def _study(name: str, calibration, ideal, out: Path | None) -> tuple[list[SweepResult], list[Path]]:
    spec, path = load_sweep(name)
    results = run_sweep(spec, str(path), calibration=calibration, ideal=ideal)
    paths: list[Path] = []
    if out is not None:
        for res in results:
            paths += write_sweep_outputs(res, out, path)
    return results, paths


def with_ranges(central: dict, ends: list[dict]) -> dict:
    """``central`` with ``<metric>_range: [lo, hi]`` beside every gain and loss (nested dicts too):
    the smallest and largest of the central value and the values at the interval's ends."""
    out = {}
    for key, value in central.items():
        if isinstance(value, dict):
            out[key] = with_ranges(value, [e.get(key, {}) for e in ends])
            continue
        out[key] = value
        if key in RANGED and value is not None:
            values = [value] + [e.get(key) for e in ends if e.get(key) is not None]
            out[key + "_range"] = [min(values), max(values)]
    return out


def _ends(table: pd.DataFrame) -> list[pd.DataFrame]:
    """The table at both ends of its intervals; none where the table carries no interval."""
    if not {"ttl_ms_lo", "ttl_ms_hi"} <= set(table.columns):
        return []
    return [table_at_end(table, "lo"), table_at_end(table, "hi")]


def comparison_metrics(table: pd.DataFrame) -> dict:
    """Gains of Helix over the paper's baselines, over TP/EP alone and with medha-ep added."""
    helix = points(table, ["helix"])
    m = gains(helix, points(table, BASELINES))
    # The paper's DeepSeek-R1 baseline may not include Medha (§3.2: Medha published no MoE
    # results); report the gains against TP/EP(+PP) alone as well, and against helixsim's
    # Medha+EP extension added to the paper's baselines.
    m["without_medha"] = gains(helix, points(table, ["tp", "ep"]))
    m["with_medha_ep"] = gains(helix, points(table, BASELINES + ("medha-ep",)))
    return m


def reproduce(out: Path | None = None, calibration=None, ideal: bool | None = None) -> Reproduction:
    """Run Figures 5, 6 and 7 and the blog's GB300 setting; compute the gains they report.

    Where the tables carry TTL intervals (``ttl_ms_lo``, ``ttl_ms_hi``), every gain and loss
    is computed again with all configurations at the fast end of their intervals and again
    with all at the slow end (one consistent world each, since the intervals of Helix and of
    the baselines come from the same kernel families' errors), and ``<metric>_range`` gives
    the smallest and largest of those and the central value.
    """
    metrics: dict[str, dict] = {}
    results, paths = [], []
    for model, study in STUDIES.items():
        (res,), written = _study(study, calibration, ideal, out)
        metrics[model] = with_ranges(comparison_metrics(res.table),
                                     [comparison_metrics(t) for t in _ends(res.table)])
        results.append(res)
        paths += written
    hopb_results, written = _study(HOPB_STUDY, calibration, ideal, out)
    hopb_tables = {}
    for res in hopb_results:
        ends = [hopb_losses(t, frontiers(t)["Helix"]) for t in _ends(res.table)]
        metrics[res.model].update(with_ranges(hopb_losses(res.table, res.frontiers["Helix"]), ends))
        forced, hopb_tables[res.model] = hopb_forced(res, calibration, ideal)
        metrics[res.model].update(forced)
    results += hopb_results
    paths += written
    (res,), written = _study(BLOG_STUDY, calibration, ideal, out)

    def blog_metrics(table: pd.DataFrame) -> dict:
        g = gains(points(table, ["helix"]), points(table, ["tp", "ep"]))
        return {**g, "without_medha": dict(g), "hopb_off_loss": None}  # the blog's setting has no HOP-B

    metrics[BLOG] = with_ranges(blog_metrics(res.table), [blog_metrics(t) for t in _ends(res.table)])
    results.append(res)
    paths += written
    return Reproduction(metrics, results, paths, hopb_tables)


NAMES = {"interactivity_gain": "max tokens/s/user, Helix / best baseline",
         "throughput_gain": "tokens/s/GPU at equal or better tokens/s/user",
         "batch_gain": "batch at equal or better tokens/s/user",
         "hopb_off_loss": "tokens/s/user lost with HOP-B off (same configuration, frontier points)"}


def _fmt(key: str, value: float | None, span: list | None = None) -> str:
    if value is None:
        return "n/a"
    one = (lambda v: f"{100 * v:.1f} %") if key == "hopb_off_loss" else (lambda v: f"{v:.2f}x")
    return one(value) + (f" ({one(span[0])} to {one(span[1])})" if span else "")


def claims_table(rep: Reproduction) -> str:
    """Markdown table: paper (or blog) claim vs simulated value, with its range where there is one."""
    lines = ["| setting | metric | claim | helixsim | helixsim, baseline without Medha |", "|---|---|---|---|---|"]
    settings = [(m, f"{m} (paper, GB200)", PAPER_CLAIMS[m]) for m in PAPER_CLAIMS]
    settings += [(BLOG, "deepseek-r1 (blog, GB300, FP8 KV, no HOP-B, vs TP/EP)", BLOG_CLAIMS[BLOG])]
    for key_m, label, claims in settings:
        got = rep.metrics[key_m]
        for key in METRICS:
            value = got.get(key)
            other = got["without_medha"].get(key, value)
            other_span = got["without_medha"].get(key + "_range", got.get(key + "_range"))
            lines.append(f"| {label} | {NAMES[key]} | {_fmt(key, claims.get(key))} "
                         f"| {_fmt(key, value, got.get(key + '_range'))} | {_fmt(key, other, other_span)} |")
    return "\n".join(lines)
