"""The plan report's content: recommendation, comparison, pools, breakdown, runner-ups, sensitivity."""

from __future__ import annotations

import re
from pathlib import Path

from .. import __version__
from ..cost.step import BREAKDOWN_KEYS
from .inputs import UNCALIBRATED
from .report_blocks import STRATEGY_NAMES, Bullets, Figure, Heading, Para, Table, _ctx, _n, _usd
from .report_figures import breakdown_figure, frontier_figure
from .costing import break_even_price
from .results import PlanResult, PoolPlan, price_sensitivity_summary


# ----------------------------------------------------------------------------------------------- content
def _precision_text(p: dict) -> str:
    return f"weights {p['weights']}, KV cache {p['kv_cache']}, activations {p['activations']}"


def _context_text(result: PlanResult) -> str:
    cs = result.request.contexts
    if len(cs) == 1:
        return f"context {cs[0].context:,} tokens"
    total = sum(c.weight for c in cs)
    return "context mix " + ", ".join(f"{c.context:,} ({100 * c.weight / total:.0f} %)" for c in cs)


def _cost_text(h) -> str:
    """The fleet's billed cost, or why there is none."""
    if h.cost_per_m_tokens is None:
        return f"cost unavailable (no price for {h.hardware})"
    return (f"**{_usd(h.cost_per_m_tokens)} per million output tokens** billing all {h.billed_gpus:,} GPUs "
            f"at ${h.price_per_gpu_hour:.2f}/GPU-hour ({_usd(h.cost_per_m_tokens_used)} counting only the "
            f"{h.total_gpus:,} used)")


def price_text(result: PlanResult) -> str:
    """Price sensitivity of the verdict: the winner at -20 %/+20 % price, the price up to which it stays cheapest."""
    ps = price_sensitivity_summary(result)
    if ps is None:
        return ""
    text = (f"Price sensitivity: at ${ps['price_per_gpu_hour'] * 0.8:.2f}-${ps['price_per_gpu_hour'] * 1.2:.2f}"
            f"/GPU-hour (\u00b120 %) {ps['hardware']} costs {_usd(ps['cost_per_m_tokens_at_price_minus_20pct'])}-"
            f"{_usd(ps['cost_per_m_tokens_at_price_plus_20pct'])} per million tokens")
    if ps["runner_up"] is None:
        return text + "."
    up = ps["stays_cheapest_up_to_price_per_gpu_hour"]
    return (text + f"; it stays the cheapest up to ${up:.2f}/GPU-hour "
            f"({100 * (up / ps['price_per_gpu_hour'] - 1):+.0f} %), where {ps['runner_up']} at its own price "
            f"costs the same, and {ps['runner_up']} would match it at "
            f"${ps['runner_up_break_even_price_per_gpu_hour']:.2f}/GPU-hour.")


def _band(pair, fmt) -> str:
    """``lo-hi`` of an interval, or a dash where there is none (a table without intervals, no price)."""
    if not pair or any(v != v for v in pair):
        return "\u2014"
    return f"{fmt(pair[0])}\u2013{fmt(pair[1])}"


def recommendation_text(result: PlanResult) -> str:
    r, w = result.request, result.winner
    if w is None:
        return (f"**No system meets the floor.** None of {', '.join(r.hardware)} can decode {result.model} at "
                f"{r.min_tokens_per_s_user:g} tokens/s/user within its GPU budget; the closest each gets is below.")
    pool = w.main_pool
    c = pool.choice.config
    lines = [f"**Use {w.hardware}**: {w.instances:,} decode instances of **{STRATEGY_NAMES[c.strategy]} "
             f"{c.label}** ({c.n_gpus} GPUs, batch {c.batch}) = **{w.total_gpus:,} GPUs used, {w.billed_gpus:,} billed** in "
             f"{w.units:,} whole {w.unit_name}{'s' if w.units != 1 else ''}, {_n(w.tokens_per_s_user)} tokens/s/user, {_n(c.tokens_per_s_gpu)} tokens/s/GPU, "
             f"{_cost_text(w)}, {_n(w.energy_per_token_j)} J/token."]
    if len(w.pools) > 1:  # a context mix: the fleet's figures, the largest pool's layout, each labelled
        lines[0] = (lines[0].replace("decode instances of", "decode instances (fleet); the largest pool uses")
                    .replace(f"{_n(c.tokens_per_s_gpu)} tokens/s/GPU",
                             f"{_n(w.fleet_tokens_per_s_gpu)} tokens/s/GPU over the fleet "
                             f"({_n(c.tokens_per_s_gpu)} in the largest pool)"))
    if w.cost_per_m_tokens is None:
        lines.append("No system meeting the floor has a price, so they are ranked by billed GPU-seconds per token "
                     "(the ranking at equal prices).")
    others = [h for h in result.per_hardware if h is not w]
    cheaper = [f"{h.hardware} {_usd(h.cost_per_m_tokens)} ({h.cost_per_m_tokens / w.cost_per_m_tokens:.2f}x; "
               f"as cheap at ${break_even_price(h.price_per_gpu_hour, h.cost_per_m_tokens, w.cost_per_m_tokens):.2f}"
               f"/GPU-hour instead of ${h.price_per_gpu_hour:.2f})"
               for h in others if h.meets_floor and h.cost_per_m_tokens is not None and w.cost_per_m_tokens is not None]
    if cheaper:
        lines.append("Other systems: " + "; ".join(cheaper) + ".")
    unpriced = [h.hardware for h in others if h.meets_floor and h.cost_per_m_tokens is None]
    if unpriced:
        lines.append(f"{', '.join(unpriced)} meet{'s' if len(unpriced) == 1 else ''} the floor but "
                     "cost is unavailable (no price): compare its GPUs below.")
    if price_text(result):
        lines.append(price_text(result))
    lines.append(_family_text(pool, tuple(r.strategies)))
    return " ".join(lines)


def _family_text(pool: PoolPlan, strategies: tuple[str, ...] = ("helix", "tp")) -> str:
    c = pool.choice.config
    if pool.other_family_best is None:
        other = "baseline" if pool.family == "Helix" else "Helix"
        if not any((s == "helix") == (other == "Helix") for s in strategies):
            return f"No {other} layout was searched (strategies: {', '.join(strategies)})."
        return f"No {other} layout reaches the floor here."
    o = pool.other_family_best
    winner = "Helix" if pool.family == "Helix" else f"The {STRATEGY_NAMES[c.strategy]} baseline"
    other = (f"the best baseline ({o.strategy} {o.label}, batch {o.batch})" if pool.family == "Helix"
             else f"the best Helix layout ({o.label}, batch {o.batch})")
    if f"{pool.family_margin:.2f}" == "1.00":  # e.g. Helix at KVP 1 is the TP layout itself
        return f"{winner} ties with {other} at this floor (within 0.5 % in billed cost per token)."
    return f"{winner} beats {other} by {pool.family_margin:.2f}x in billed cost per token at this floor."


def build_blocks(result: PlanResult) -> list:
    r = result.request
    blocks: list = [
        Heading(f"Capacity plan: {result.model}, {r.users:,} users at \u2265 {r.min_tokens_per_s_user:g} tokens/s/user", 1),
        Para(f"{_context_text(result)}; systems compared: {', '.join(r.hardware)}. "
             f"helixsim {__version__}."),
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
    blocks.append(Para("Cost per million output tokens = price per GPU-hour \u00d7 billed GPUs (every GPU of the "
                       "whole racks or nodes the instances occupy, idle ones included) / "
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
                        "(billed GPUs, whole racks / nodes) per system, and the cheapest system with its layout."),
                   _sensitivity_table(result)]

    if result.robustness is not None:
        from . import report_blocks
        from .robustness import report_blocks as robustness_blocks

        blocks += robustness_blocks(result.robustness, report_blocks)

    blocks.append(Heading("Calibration and assumptions"))
    items = [f"**{h.hardware}**: {h.calibration}" for h in result.per_hardware]
    items += ["Per-system precision: " + "; ".join(f"{h.hardware} {_precision_text(h.precision)}" for h in result.per_hardware) + ".",
              "GPU budget per decode instance: " + ", ".join(f"{h.hardware} {h.max_gpus_per_instance}" for h in result.per_hardware)
              + " (default: the NVLink domain, capped at 64); batches up to min(users, "
              f"{r.max_batch}); HOP-B {'on' if r.hopb else 'off'}; strategies {', '.join(r.strategies)}.",
              "Instances = ceil(users / batch). An instance stays inside one NVLink domain, so racks (NVL72) or "
              "nodes (HGX) = ceil(instances / instances per unit); the cost bills every GPU of those whole racks or nodes, "
              "idle ones included, and the layout and batch chosen are the cheapest under that billing (the "
              "cost counting used GPUs only is shown beside it). Each pool of a context mix is billed in its own "
              "units. Energy counts the used GPUs at TDP. The break-even price of another system is the price per GPU-hour at which its cost "
              "per million tokens equals the winner's (cost is proportional to price).",
              "Every user is counted at the configuration's full-batch tokens/s/user; a partly filled last "
              "instance runs no slower. Prefill and queueing are not modelled; " + _mtp_text(r.mtp)]
    if any(UNCALIBRATED in h.calibration for h in result.per_hardware):
        items.append("The numbers are an analytical roofline: treat differences under ~20 % as within model error.")
    blocks.append(Bullets(items))
    return blocks


def _mtp_text(drafts: tuple[int, ...]) -> str:
    """The speculative-decoding assumption: none, or the MTP draft counts searched and their acceptance model."""
    if tuple(drafts) == (0,):
        return "speculative decoding is not modelled (plan with --mtp 0,3 to search MTP)."
    from .results import mtp_searched

    m = mtp_searched(drafts)
    per = ", ".join(f"{n} drafts: {v:.2f}" for n, v in m["accepted_tokens_per_step"].items())
    return (f"MTP speculative decoding searched with {', '.join(map(str, m['draft_tokens_searched']))} draft tokens "
            f"per step (labels end ` mtpN`): each step verifies 1 + N tokens per request and runs N MTP forwards; "
            f"tokens/s count the expected accepted tokens per step ({per}), from per-position acceptance rates "
            f"{', '.join(f'{a:.3f}' for a in m['acceptance_rates'])} ({m['acceptance_source']}).")


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
    row("GPUs used", lambda h: ok(h, lambda: f"{h.total_gpus:,}"))
    row("GPUs billed (whole racks / nodes)", lambda h: ok(h, lambda: f"{h.billed_gpus:,} ({h.billed_gpus - h.total_gpus:,} idle)"))
    row("racks / nodes", lambda h: ok(h, lambda: f"{h.units:,} {h.unit_name}s ({h.unit_gpus} GPUs each)"))
    row("tokens/s/user", lambda h: _n(h.tokens_per_s_user) if h.meets_floor else
        (f"{_n(cfg(h).tokens_per_s_user)} (max reachable)" if cfg(h) else dash))
    row("tokens/s/user, 80 % interval", lambda h: ok(h, lambda: _band(h.interval_80pct().get("tokens_per_s_user_80pct"),
                                                                       _n)))
    row("tokens/s/GPU", lambda h: _n(cfg(h).tokens_per_s_gpu) if cfg(h) else dash)
    row("price, $/GPU-hour", lambda h: "no price" if h.price_per_gpu_hour is None else f"{h.price_per_gpu_hour:.2f}")
    row("**$ per million output tokens** (billed GPUs)", lambda h: ok(h, lambda: "unavailable (no price)"
        if h.cost_per_m_tokens is None else f"**{_usd(h.cost_per_m_tokens)}**"))
    row("$ per million, price \u221220 % / +20 %", lambda h: ok(h, lambda: "\u2014" if h.cost_per_m_tokens is None
        else f"{_usd(0.8 * h.cost_per_m_tokens)} / {_usd(1.2 * h.cost_per_m_tokens)}"))
    row("$ per million, 80 % interval", lambda h: ok(h, lambda: _band(h.interval_80pct().get("cost_per_m_tokens_80pct"),
                                                                       _usd)))
    row("share of the step priced beyond measured kernels", lambda h: ok(
        h, lambda: f"{100 * h.interval_80pct()['extrapolated_fraction']:.0f} %"))
    row("$ per million, used GPUs only", lambda h: ok(h, lambda: _usd(h.cost_per_m_tokens_used)))
    row("energy, J/token", lambda h: ok(h, lambda: _n(h.energy_per_token_j)))
    row("HBM headroom, GB/GPU", lambda h: _n(h.hbm_gb - cfg(h).memory_per_gpu_gb) if cfg(h) else dash)
    row("Helix vs best baseline", lambda h: _family_cell(h.main_pool) if h.meets_floor else dash)
    row("precision (weights / KV)", lambda h: f"{h.precision['weights']} / {h.precision['kv_cache']}")
    return Table([""] + names, rows)


def _family_cell(p: PoolPlan) -> str:
    if p.family_margin is None:
        return f"{p.family} only reaches the floor"
    if f"{p.family_margin:.2f}" == "1.00":
        return f"{p.family} ties (within 0.5 %)"
    return f"{p.family} wins by {p.family_margin:.2f}x"


def _pools_table(result: PlanResult) -> Table:
    headers = ["system", "context", "share of users", "users", "strategy", "layout", "batch", "instances",
               "GPUs used", "GPUs billed", "tok/s/user", "tok/s/GPU", "$/M tokens"]
    rows = []
    for h in result.per_hardware:
        total = sum(q.weight for q in h.pools)
        for p in h.pools:
            share = f"{100 * p.weight / total:.0f} %"
            if p.choice:
                c, d = p.choice.config, p.choice
                rows.append([h.hardware, f"{p.context:,}", share, f"{p.users:,}", c.strategy, c.label,
                             str(c.batch), f"{d.instances:,}", f"{d.total_gpus:,}", f"{d.billed_gpus:,}", _n(c.tokens_per_s_user),
                             _n(c.tokens_per_s_gpu), _usd(d.cost_per_m_tokens)])
            else:
                best = f"closest {_n(p.closest.tokens_per_s_user)} tok/s/user" if p.closest else "nothing fits"
                rows.append([h.hardware, f"{p.context:,}", share, f"{p.users:,}", "\u2014", best,
                             "\u2014", "\u2014", "\u2014", "\u2014", "\u2014", "\u2014", "\u2014"])
    return Table(headers, rows, "Per-context pools (each pool billed in its own whole racks / nodes; the fleet is their sum)")


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
            cells.append("misses floor" if gpus is None else
                         f"no price ({gpus:,})" if cost is None else f"{_usd(cost)} ({gpus:,})")
        best = f"{s.winner}: {s.winner_strategy} {s.winner_label} b{s.winner_batch}" if s.winner else "none meets the floor"
        rows.append([f"**{s.scenario}**" if s.scenario == "base" else s.scenario, s.change] + cells + [best])
    return Table(headers, rows)

