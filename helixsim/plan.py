"""Capacity planning: which hardware, layout and batch serve U users at X tokens/s each, and at what cost.

A planner asks: *I must serve ``users`` concurrent users of a model at
context S, each decoded at no less than ``min_tokens_per_s_user``. Which GPU
system, how many GPUs (racks, nodes), which layout and batch per decode
instance, and what does a million output tokens cost?*

For every hardware system :func:`plan` runs the layout search
(:func:`helixsim.search.search`) once per context, with batches up to the
number of users (an instance cannot hold more requests than there are
users), then picks the configuration with the highest tokens/s/GPU among
those that fit in HBM and reach the interactivity floor. That configuration
is replicated over ``ceil(users / batch)`` decode instances.

Cost per million output tokens
------------------------------
Every user is decoded at the chosen configuration's ``tokens_per_s_user``
(an instance that is not full runs no slower, so this is a lower bound on
what is delivered), so the fleet emits ``users * tokens_per_s_user`` tokens
per second while it pays for ``total_gpus`` GPU-hours per hour::

    dollars per hour     = price_per_gpu_hour * total_gpus
    tokens per hour      = users * tokens_per_s_user * 3600
    cost per 1e6 tokens  = price_per_gpu_hour * total_gpus / (users * tokens_per_s_user * 3600) * 1e6

(:func:`cost_per_million_tokens`). Energy per token is the same ratio with
the GPUs' power: ``power_w * total_gpus / (users * tokens_per_s_user)``
joules (TDP, GPUs only). With a context mix, each context gets its own pool
of instances serving its share of the users, and the fleet's cost is total
dollars over total tokens, i.e. the per-pool costs weighted by each pool's
share of the tokens.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .api import resolve_hardware, resolve_model
from .errors import SpecError, closest
from .trained_window import trained_window_warnings
from .safe_io import short
from .layout import STRATEGIES
from .precision import DTYPES, Precision
from .specs.hardware import HardwareSpec
from .specs.model import ModelSpec
from .planning.costing import (Config, Deployment, cost_per_million_tokens, deploy, energy_per_token_j,  # noqa: F401
                               instances_needed, packaging, units_needed)
from .planning.inputs import (DEFAULT_GPU_CAP, UNCALIBRATED, ContextShare, PlanSpec, default_precision,  # noqa: F401
                              default_price_file, load_plan_file, load_prices)
from .planning.results import (HardwarePlan, PlanRequest, PlanResult, PoolPlan, RunnerUp,  # noqa: F401
                               SensitivityRow, pool_summary)
from .planning.selection import _Planner, select, select_billed, split_users  # noqa: F401
from .planning.robustness import robustness
from .planning.sensitivity import SENSITIVITY, _sensitivity_row


# ----------------------------------------------------------------------------------------------- planning
def calibration_note(hardware_name: str) -> str:
    """The calibration error behind the numbers, from helixsim.calibration.validate.summary_for if present."""
    try:
        from .calibration.validate import summary_for  # built elsewhere; may not exist yet
    except (ImportError, AttributeError):
        return UNCALIBRATED
    try:
        summary = summary_for(hardware_name)
    except Exception as err:  # a broken calibration must not break planning; say so instead
        return f"{UNCALIBRATED} (calibration summary unavailable: {err.__class__.__name__})"
    if not summary:
        return UNCALIBRATED
    if isinstance(summary, Mapping):
        return "; ".join(f"{k}: {_fmt_value(v)}" for k, v in summary.items())
    return str(summary)


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_fmt_value(x)}" for k, x in v.items()) + "}"
    return str(v)



def _check_request(users, floor, contexts, max_gpus, max_batch, strategies, source="command line") -> None:
    def whole(name, value, minimum=1, maximum=1 << 40):  # the plan YAML's limits, for flags too
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise SpecError(source, name, f"must be a whole number >= {minimum}, got {short(repr(value))}")
        if value > maximum:
            raise SpecError(source, name, f"must be <= {maximum:,}, got {short(repr(value))}")

    whole("--users", users)
    whole("--max-batch", max_batch, maximum=1 << 20)
    if max_gpus is not None:
        whole("--max-gpus-per-instance", max_gpus)
        if max_gpus > 4096:
            raise SpecError(source, "--max-gpus-per-instance", f"must be <= 4096, got {max_gpus}")
    if isinstance(floor, bool) or not isinstance(floor, (int, float, np.floating)) or not math.isfinite(floor) or floor <= 0:
        raise SpecError(source, "--min-tokens-per-s-user", f"must be a number > 0, got {floor!r}")
    if not contexts:
        raise SpecError(source, "--context", "give a context (or a context mix)")
    for i, c in enumerate(contexts):
        whole("--context" if len(contexts) == 1 else f"context_mix[{i}].context", c.context)
        if not (isinstance(c.weight, (int, float)) and math.isfinite(c.weight) and c.weight > 0):
            raise SpecError(source, f"context_mix[{i}].weight", f"must be a number > 0, got {c.weight!r}")
    if not strategies:
        raise SpecError(source, "strategies", "give at least one strategy")
    for s in strategies:
        if s not in STRATEGIES:
            raise SpecError(source, "strategies", f"unknown strategy '{s}'{closest(s, STRATEGIES)}; known: {', '.join(STRATEGIES)}")


def _as_contexts(context) -> tuple[ContextShare, ...]:
    if isinstance(context, ContextShare):
        return (context,)
    if isinstance(context, (int, np.integer)) and not isinstance(context, bool):
        return (ContextShare(int(context), 1.0),)
    if isinstance(context, Sequence) and not isinstance(context, str):
        out = []
        for c in context:
            if isinstance(c, ContextShare):
                out.append(c)
            elif isinstance(c, Mapping):
                out.append(ContextShare(c.get("context"), c.get("weight", 1.0)))
            elif isinstance(c, (tuple, list)) and len(c) == 2:
                out.append(ContextShare(c[0], c[1]))
            else:
                out.append(ContextShare(c, 1.0))
        return tuple(out)
    raise SpecError("command line", "--context", f"expected a whole number or a context mix, got {context!r}")


def _plan_hardware(planner: _Planner, hw: HardwareSpec, prec: Precision, budget: int, contexts, users: int,
                   floor: float, price: float, calibration: str, detail: bool) -> HardwarePlan:
    pools = [planner.pool(hw, budget, prec, share, u, floor, price, detail)
             for share, u in zip(contexts, split_users(users, contexts))]
    unit, name = packaging(hw)
    return HardwarePlan(hardware=hw.name, description=hw.description,
                        precision={"weights": prec.weights, "kv_cache": prec.kv_cache,
                                   "activations": prec.activations, "attention_math": prec.attention_math_dtype},
                        max_gpus_per_instance=budget, price_per_gpu_hour=price, power_w=hw.power_w,
                        hbm_gb=hw.hbm_capacity_bytes / 1e9, unit_gpus=unit, unit_name=name, pools=pools,
                        calibration=calibration)



def _refuse_impossible_caps(per_hw: list[HardwarePlan], model: str, max_gpus: int | None) -> None:
    """A user cap that leaves no configuration fitting in memory on any system is refused (exit 2),
    naming the flag: nothing can be planned, so no report would help."""
    empty = [(h, p) for h in per_hw for p in h.pools if p.closest is None and not p.meets_floor]
    if not empty or len({id(h) for h, _ in empty}) < len(per_hw):
        return
    ctx = max(p.context for _, p in empty)
    widest = max(h.max_gpus_per_instance for h in per_hw)
    if max_gpus is not None:
        raise SpecError("command line", "--max-gpus-per-instance",
                        f"no layout of up to {max_gpus} GPUs fits {model} in memory at context {ctx:,} on "
                        f"{', '.join(h.hardware for h in per_hw)}; allow more GPUs per instance")
    raise SpecError("command line", "--hardware",
                    f"no layout of up to {widest} GPUs (the default budget) fits {model} in memory at context "
                    f"{ctx:,} on {', '.join(h.hardware for h in per_hw)}; raise --max-gpus-per-instance")


def plan(model: str | ModelSpec, hardware: str | HardwareSpec | Sequence[str | HardwareSpec], context,
         users: int, min_tokens_per_s_user: float, max_gpus_per_instance: int | None = None,
         weights: str | None = None, kv_cache: str | None = None,
         prices: str | Path | Mapping[str, float] | None = None, hopb: bool = True, max_batch: int = 4096,
         strategies: Sequence[str] = STRATEGIES, sensitivity: bool = True, calibration=None,
         mtp: Sequence[int] = (0,)) -> PlanResult:
    """Plan a decode fleet for ``users`` concurrent users at ``min_tokens_per_s_user`` each, per hardware.

    ``context``: one context length, or a mix (a sequence of :class:`ContextShare`,
    ``{"context": S, "weight": w}`` mappings or ``(S, w)`` pairs; weights are shares of the users).
    ``max_gpus_per_instance``: GPU budget of one decode instance (default: the NVLink domain,
    capped at 64). ``weights``/``kv_cache``: formats (default FP4/FP8 where the GPU has FP4, else
    FP8/FP8). ``prices``: a price YAML path, a ``{hardware: USD per GPU-hour}`` mapping, or None for
    the built-in illustrative list. ``sensitivity``: also re-plan with the context x2 and x0.5,
    users x2 and the floor +-25 %. ``mtp``: MTP draft tokens per step to search as a dimension
    (speculative decoding with DeepSeek-R1's published acceptance, :mod:`helixsim.cost.mtp`; 0: none).
    """
    start = time.perf_counter()
    m = resolve_model(model)
    hws = [resolve_hardware(h) for h in ([hardware] if isinstance(hardware, (str, HardwareSpec)) else hardware)]
    hws = list({h.name: h for h in hws}.values())  # a repeated --hardware is planned once, in its first place
    if not hws:
        raise SpecError("command line", "--hardware", "give at least one hardware system")
    contexts = _as_contexts(context)
    strategies = tuple(strategies)
    _check_request(users, min_tokens_per_s_user, contexts, max_gpus_per_instance, max_batch, strategies)
    mtp = tuple(dict.fromkeys(mtp)) or (0,)
    for n in mtp:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 16:
            raise SpecError("command line", "--mtp", f"must be 0..16 draft tokens, got {short(repr(n))}")
    for name, value in (("--weights", weights), ("--kv-cache", kv_cache)):
        if value is not None and value not in DTYPES:
            raise SpecError("command line", name, f"unknown precision '{value}', choose one of {', '.join(DTYPES)}{closest(value, DTYPES)}")
    if isinstance(prices, Mapping):
        price_table, price_src = {str(k): float(v) for k, v in prices.items()}, "(given)"
    else:
        price_table, price_src = load_prices(prices)
    warnings = [f"no price for {hw.name} in {price_src}: its GPUs and rates are planned, its cost is unavailable "
                f"(add usd_per_gpu_hour.{hw.name} or pass --price FILE)" for hw in hws if hw.name not in price_table]
    planner = _Planner(m, strategies, hopb, max_batch, calibration, mtp)
    setup = []
    for hw in hws:
        prec = default_precision(hw, weights, kv_cache)
        budget = max_gpus_per_instance or min(hw.nvlink_domain_gpus, DEFAULT_GPU_CAP)
        if budget > hw.nvlink_domain_gpus:
            warnings.append(f"--max-gpus-per-instance {budget} exceeds {hw.name}'s NVLink domain of "
                            f"{hw.nvlink_domain_gpus} GPUs: instances wider than {hw.nvlink_domain_gpus} span "
                            f"{packaging(hw)[1]}s and their collectives are priced on the scale-out network")
        setup.append((hw, prec, budget, calibration_note(hw.name)))
    warnings += trained_window_warnings(m, [c.context for c in contexts])

    def run(ctxs, u, floor, detail):
        return [_plan_hardware(planner, hw, prec, budget, ctxs, u, floor, price_table.get(hw.name), cal, detail)
                for hw, prec, budget, cal in setup]

    per_hw = run(contexts, int(users), float(min_tokens_per_s_user), True)
    _refuse_impossible_caps(per_hw, m.name, max_gpus_per_instance)
    request = PlanRequest(model=m.name, hardware=tuple(h.name for h in hws), contexts=contexts, users=int(users),
                          min_tokens_per_s_user=float(min_tokens_per_s_user), max_gpus_per_instance=max_gpus_per_instance,
                          weights=weights, kv_cache=kv_cache, hopb=hopb, max_batch=max_batch, strategies=strategies,
                          price_file=price_src, mtp=mtp)
    rows = [_sensitivity_row("base", "as requested", per_hw)]
    if sensitivity:
        for name, change, f in SENSITIVITY:
            ctxs = tuple(replace(c, context=max(1, int(round(c.context * f.get("context", 1.0))))) for c in contexts)
            u = int(math.ceil(users * f.get("users", 1.0)))
            variant = run(ctxs, u, float(min_tokens_per_s_user) * f.get("floor", 1.0), False)
            rows.append(_sensitivity_row(name, change, variant))
    result = PlanResult(request=request, model=m.name, per_hardware=per_hw, sensitivity=rows, seconds=0.0,
                        warnings=warnings)
    if sensitivity and result.winner is not None:  # the verdict's band and the parameters that would flip it
        hw, prec, _, _ = next(s for s in setup if s[0].name == result.winner.hardware)
        pool = result.winner.main_pool
        result.robustness = robustness(pool.table, float(min_tokens_per_s_user), m, hw, prec, calibration,
                                       hardware_name=hw.name, context=pool.context,
                                       pick=lambda t, f: select_billed(t, f, hw, pool.users))
    result.seconds = time.perf_counter() - start
    return result


def plan_from_spec(spec: PlanSpec, source: str = "plan", calibration=None, **overrides) -> PlanResult:
    """Run :func:`plan` from a :class:`PlanSpec` (a loaded plan YAML); errors name ``source`` and the key."""
    contexts = spec.context_mix if spec.context_mix is not None else (ContextShare(spec.context, 1.0),)
    kwargs = dict(model=spec.model, hardware=spec.hardware, context=contexts, users=spec.users,
                  min_tokens_per_s_user=spec.min_tokens_per_s_user, max_gpus_per_instance=spec.max_gpus_per_instance,
                  weights=spec.weights, kv_cache=spec.kv_cache, prices=spec.price, hopb=spec.hopb,
                  max_batch=spec.max_batch, strategies=spec.strategies, sensitivity=spec.sensitivity, mtp=spec.mtp)
    kwargs.update(overrides)
    return plan(**kwargs, calibration=calibration)
