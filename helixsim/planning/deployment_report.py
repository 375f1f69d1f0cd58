"""Whole-deployment plan (``helixsim plan --isl N --osl M``): run it, and render JSON, Markdown and HTML."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..layout import STRATEGIES
from ..prefill import DEFAULT_CHUNK_TOKENS
from .deployment import HardwareDeployment, option_dict, plan_hardware
from .inputs import DEFAULT_GPU_CAP, default_precision, load_prices


@dataclass(frozen=True)
class DeploymentPlan:
    model: str
    isl: int
    osl: int
    users: int
    min_tokens_per_s_user: float
    max_ttft_s: float
    price_file: str
    per_hardware: list[HardwareDeployment]
    #: (isl, osl, share) classes of a length mix (one class: the plain --isl/--osl plan; isl/osl above
    #: are then the share-weighted means)
    lengths: tuple = ()

    def best(self) -> tuple[HardwareDeployment, object] | None:
        cands = [(h, h.best) for h in self.per_hardware if h.best is not None]
        return min(cands, key=lambda c: c[1].cost_per_m_output_tokens) if cands else None

    def to_json(self) -> dict:
        best = self.best()
        rec = None
        if best is not None:
            h, o = best
            rec = {"hardware": h.hardware, "serving": o.kind, **{k: v for k, v in option_dict(o).items() if k != "kind"}}
        return {"request": {"model": self.model, "isl": self.isl, "osl": self.osl, "users": self.users,
                            "min_tokens_per_s_user": self.min_tokens_per_s_user, "max_ttft_s": self.max_ttft_s,
                            "prices": self.price_file,
                            **({"lengths": [{"isl": c[0], "osl": c[1], "share": c[2]} for c in self.lengths]}
                               if len(self.lengths) > 1 else {})},
                "recommendation": rec,
                "per_hardware": [{"hardware": h.hardware, "price_per_gpu_hour": h.price_per_gpu_hour,
                                  "disaggregated": option_dict(h.disaggregated),
                                  "aggregated": option_dict(h.aggregated)} for h in self.per_hardware]}


#: Longest prompt planned: every prefill candidate is priced chunk by chunk, so the chunk count bounds the work.
MAX_PLAN_ISL = 1 << 27


def _check(isl, osl, users, floor, max_ttft_s) -> None:
    for name, v in (("--isl", isl), ("--osl", osl), ("--users", users)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SpecError("command line", name, f"must be a whole number >= 1, got {v!r}")
    if osl < 2:
        raise SpecError("command line", "--osl", f"must be >= 2 (one prefill token plus decode), got {osl}")
    if isl > MAX_PLAN_ISL:
        raise SpecError("command line", "--isl", f"must be <= {MAX_PLAN_ISL:,} tokens "
                        f"({MAX_PLAN_ISL // DEFAULT_CHUNK_TOKENS:,} prefill chunks), got {isl:,}")
    for name, v in (("--min-tokens-per-s-user", floor), ("--max-ttft-s", max_ttft_s)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise SpecError("command line", name, f"must be a number > 0, got {v!r}")


def plan_deployment(model, hardware, isl: int | None, osl: int | None, users: int, min_tokens_per_s_user: float,
                    max_ttft_s: float, prices=None, weights=None, kv_cache=None, max_gpus_per_instance=None,
                    max_batch: int = 4096, strategies=STRATEGIES, calibration=None, lengths=None) -> DeploymentPlan:
    """One (isl, osl), or a length mix ``lengths`` of (isl, osl, share) classes (then isl/osl are not given)."""
    from ..api import resolve_hardware, resolve_model

    classes = tuple((int(a), int(b), float(w)) for a, b, w in lengths) if lengths else ((isl, osl, 1.0),)
    for a, b, _ in classes:
        _check(a, b, users, min_tokens_per_s_user, max_ttft_s)
    total = sum(w for _, _, w in classes)
    isl, osl = (round(sum(a * w for a, _, w in classes) / total), round(sum(b * w for _, b, w in classes) / total))
    m = resolve_model(model)
    hws = [resolve_hardware(h) for h in hardware]
    if not hws:
        raise SpecError("command line", "--hardware", "give at least one hardware system")
    table, src = load_prices(prices)
    out = []
    for hw in hws:
        if hw.name not in table:
            raise SpecError(src, f"usd_per_gpu_hour.{hw.name}", f"no price for '{hw.name}'")
        prec = default_precision(hw, weights, kv_cache)
        budget = max_gpus_per_instance or min(hw.nvlink_domain_gpus, DEFAULT_GPU_CAP)
        out.append(plan_hardware(m, hw, prec, classes, users, float(min_tokens_per_s_user), float(max_ttft_s),
                                 table[hw.name], budget, strategies, max_batch, calibration))
    return DeploymentPlan(m.name, isl, osl, users, float(min_tokens_per_s_user), float(max_ttft_s), src, out, classes)


COLUMNS = [("serving", lambda o: o.kind), ("prefill pool", lambda o: _pool(o.prefill)),
           ("decode pool", lambda o: _pool(o.decode)), ("P:D GPUs", lambda o: o.pd_ratio),
           ("GPUs", lambda o: f"{o.total_gpus:,}"), ("TTFT s", lambda o: f"{o.ttft_s:.2f} ({o.ttft_s_lo:.1f}-{o.ttft_s_hi:.1f})"),
           ("KV transfer ms", lambda o: f"{o.kv_transfer_s * 1e3:.1f}"),
           ("queue wait s", lambda o: f"{o.queue_wait_s:.2f}" if o.prefill is not None else ""),
           ("tok/s/user", lambda o: f"{o.tokens_per_s_user:.1f} ({o.tokens_per_s_user_lo:.1f}-{o.tokens_per_s_user_hi:.1f})"),
           ("$/M input (prefill)", lambda o: f"{o.cost_per_m_tokens_prefill:.3f}"),
           ("$/M output (decode)", lambda o: f"{o.cost_per_m_tokens_decode:.3f}"),
           ("$/M output, all", lambda o: f"{o.cost_per_m_output_tokens:.3f}")]


def _pool(p) -> str:
    return "shared with decode" if p is None else f"{p.instances} x {p.layout} ({p.gpus:,} GPUs)"


def _rows(plan: DeploymentPlan) -> list[tuple[str, list[str]]]:
    rows = []
    for h in plan.per_hardware:
        for o in (h.disaggregated, h.aggregated):
            if o is not None:
                rows.append((h.hardware, [f(o) for _, f in COLUMNS] + ["yes" if o.extrapolated else ""]))
    return rows


NOTES = ("Pools are sized for users in a closed loop (a length mix: disaggregated only, the decode layout chosen at "
         "the decode-time-weighted mean KV length, the prefill queue serving the classes' mixture of prefill times); "
         "the prefill pool (disaggregated) is the smallest whose mean "
         "M/D/c queue wait (Allen-Cunneen) keeps the mean TTFT, wait included, under the limit. TTFT includes the "
         "KV transfer and the queue wait (disaggregated), or the scheduler wait and the running decodes' share of "
         "the prefill passes (aggregated, TensorRT-LLM's scheduler). 'extrapolated': prefill attention beyond the "
         "measured prompt lengths, priced by causal FLOPs at the last measured efficiency. Not modelled: queueing "
         "inside an aggregated instance, TTFT percentiles, prefix caching, speculative decoding. See docs/prefill.md.")


def lengths_text(plan: DeploymentPlan) -> str:
    """'8,192 input / 1,024 output tokens', or the classes of a length mix with their shares."""
    if len(plan.lengths) > 1:
        total = sum(c[2] for c in plan.lengths)
        return "length mix " + ", ".join(f"{c[0]:,}/{c[1]:,} ({100 * c[2] / total:.0f} %)" for c in plan.lengths) \
            + " input/output tokens"
    return f"{plan.isl:,} input / {plan.osl:,} output tokens"


def summary_line(plan: DeploymentPlan) -> str:
    best = plan.best()
    if best is None:
        return (f"No configuration serves {plan.users} users of {plan.model} at {lengths_text(plan)} "
                f"with >= {plan.min_tokens_per_s_user:g} tok/s/user and TTFT <= {plan.max_ttft_s:g} s.")
    h, o = best
    return (f"Recommended: {o.kind} serving on {h.hardware}: {o.prefill_gpus:,} prefill + {o.decode_gpus:,} decode "
            f"GPUs, TTFT {o.ttft_s:.1f} s (80 % interval {o.ttft_s_lo:.1f}-{o.ttft_s_hi:.1f} s), "
            f"{o.tokens_per_s_user:.1f} tok/s/user, "
            f"${o.cost_per_m_tokens_prefill:.3f}/M input tokens (prefill), ${o.cost_per_m_tokens_decode:.3f}/M "
            f"output tokens (decode), ${o.cost_per_m_output_tokens:.2f}/M output tokens in all.")


def text(plan: DeploymentPlan) -> str:
    """The plain-text report ``helixsim plan --isl/--osl`` prints: the summary line, then one line per option."""
    lines = [summary_line(plan)]
    for hw, cells in _rows(plan):
        lines.append(f"  {hw:<14} " + "  ".join(f"{name}: {c}" for (name, _), c in zip(COLUMNS, cells) if c))
    return "\n".join(lines)


def markdown(plan: DeploymentPlan) -> str:
    head = ["hardware"] + [c for c, _ in COLUMNS] + ["extrapolated"]
    lines = [f"# Deployment plan: {plan.model}, {lengths_text(plan)}", "",
             f"{plan.users:,} users, >= {plan.min_tokens_per_s_user:g} tokens/s/user, TTFT <= {plan.max_ttft_s:g} s; "
             f"prices: {plan.price_file}.", "", f"**{summary_line(plan)}**", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([hw] + cells) + " |" for hw, cells in _rows(plan)]
    return "\n".join(lines + ["", NOTES, ""])


def html_report(plan: DeploymentPlan) -> str:
    head = ["hardware"] + [c for c, _ in COLUMNS] + ["extrapolated"]
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in [hw] + cells) + "</tr>"
                   for hw, cells in _rows(plan))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>helixsim deployment plan</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
            f"<h1>Deployment plan: {html.escape(plan.model)}, {html.escape(lengths_text(plan))}</h1>"
            f"<p>{plan.users:,} users, &ge; {plan.min_tokens_per_s_user:g} tokens/s/user, TTFT &le; "
            f"{plan.max_ttft_s:g} s; prices: {html.escape(plan.price_file)}.</p>"
            f"<p><b>{html.escape(summary_line(plan))}</b></p><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + body + "</table>"
            f"<p>{html.escape(NOTES)}</p></body></html>\n")


def write(plan: DeploymentPlan, out: Path) -> list[Path]:
    from ..sweep import atomic_write_text

    paths = [out / "report.md", out / "report.html"]
    atomic_write_text(paths[0], markdown(plan))
    atomic_write_text(paths[1], html_report(plan))
    return paths
