"""The plan's result records: runner-ups, pools, per-hardware plans, the whole plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pandas as pd

from .costing import Config, Deployment
from .inputs import ContextShare


@dataclass(frozen=True)
class RunnerUp:
    """The best configuration of one strategy that did not win, and why it loses."""

    strategy: str
    config: Optional[Config]  # best meeting the floor; None where it cannot reach the floor
    closest: Optional[Config]  # its highest tokens/s/user when it cannot reach the floor
    throughput_ratio: Optional[float]  # winner tokens/s/GPU over this one's
    losing_term: Optional[str]  # op with the largest excess GPU-ms per token over the winner
    losing_term_excess_gpu_ms: Optional[float]
    cost_per_m_tokens: Optional[float]
    cost_ratio: Optional[float] = None  # its billed cost per token over the winner's (>= 1)

    def reason(self) -> str:
        if self.config is None:
            if self.closest is None:
                return "no layout fits in memory"
            return f"cannot reach the floor: at most {self.closest.tokens_per_s_user:.1f} tok/s/user ({self.closest.label})"
        if self.losing_term is None:
            if self.cost_ratio is not None and self.cost_ratio > 1.005:
                return (f"as many tok/s/GPU or more, but costs {100 * (self.cost_ratio - 1):.0f} % more per token "
                        "billed in whole racks / nodes (idle GPUs or a partly filled instance)")
            return "ties the winner"
        lower = 100.0 * (1.0 - 1.0 / self.throughput_ratio)
        return (f"{lower:.0f} % fewer tok/s/GPU than the winner; largest excess: {self.losing_term} "
                f"(+{self.losing_term_excess_gpu_ms:.3g} GPU-ms/token)")


@dataclass
class PoolPlan:
    """The plan for one context on one hardware system (one pool of identical instances)."""

    context: int
    weight: float
    users: int
    n_configurations: int
    choice: Optional[Deployment]
    closest: Optional[Config]  # the highest tokens/s/user when nothing meets the floor
    family: str  # "Helix" or "baseline": which family won
    other_family_best: Optional[Config]  # the best of the other family at the same floor
    family_margin: Optional[float]  # winner tokens/s/GPU over other_family_best's
    runner_ups: list[RunnerUp]
    table: pd.DataFrame = field(repr=False)  # every configuration priced (batch <= users)
    frontiers: dict = field(repr=False, default_factory=dict)

    @property
    def meets_floor(self) -> bool:
        return self.choice is not None


@dataclass
class HardwarePlan:
    """Everything planned for one hardware system."""

    hardware: str
    description: str
    precision: dict
    max_gpus_per_instance: int
    price_per_gpu_hour: Optional[float]  # None: no price given; GPUs and rates are planned, cost is unavailable
    power_w: float
    hbm_gb: float
    unit_gpus: int
    unit_name: str
    pools: list[PoolPlan]
    calibration: str

    @property
    def meets_floor(self) -> bool:
        return all(p.meets_floor for p in self.pools)

    @property
    def main_pool(self) -> PoolPlan:
        """The pool with the most users (the only one without a context mix)."""
        return max(self.pools, key=lambda p: (p.users, p.weight))

    def _chosen(self) -> list[Deployment]:
        return [p.choice for p in self.pools if p.choice is not None]

    def _fleet_sum(self, attr: str):
        """``attr`` summed over every pool's chosen deployment; None where a pool misses the floor."""
        return sum(getattr(d, attr) for d in self._chosen()) if self.meets_floor else None

    @property
    def total_gpus(self) -> Optional[int]:
        return self._fleet_sum("total_gpus")

    @property
    def billed_gpus(self) -> Optional[int]:
        """GPUs in the whole racks or nodes of every pool, idle ones included."""
        return self._fleet_sum("billed_gpus")

    @property
    def instances(self) -> Optional[int]:
        return self._fleet_sum("instances")

    @property
    def units(self) -> Optional[int]:
        return self._fleet_sum("units")

    @property
    def served_tokens_per_s(self) -> Optional[float]:
        return self._fleet_sum("served_tokens_per_s")

    @property
    def cost_per_m_tokens(self) -> Optional[float]:
        """Fleet dollars over fleet tokens, billing every GPU of the whole racks or nodes (pools' costs
        weighted by their share of the tokens); None where the floor is missed or there is no price."""
        return self._cost(self.billed_gpus)

    @property
    def cost_per_m_tokens_used(self) -> Optional[float]:
        """The same counting only the GPUs the instances use (what renting single GPUs would cost)."""
        return self._cost(self.total_gpus)

    def _cost(self, gpus: Optional[int]) -> Optional[float]:
        if not self.meets_floor or self.price_per_gpu_hour is None:
            return None
        return self.price_per_gpu_hour * gpus / (self.served_tokens_per_s * 3600.0) * 1e6

    @property
    def billed_gpu_s_per_token(self) -> Optional[float]:
        """Billed GPU-seconds per output token: the price-free cost (cost = this x price / 3600 x 1e6)."""
        return self.billed_gpus / self.served_tokens_per_s if self.meets_floor else None

    @property
    def fleet_tokens_per_s_gpu(self) -> Optional[float]:
        """Delivered tokens/s over all GPUs (below the configuration's when the last instance is partly full)."""
        return self.served_tokens_per_s / self.total_gpus if self.meets_floor else None

    @property
    def tokens_per_s_user(self) -> Optional[float]:
        """The slowest pool's per-user rate (what every user is guaranteed)."""
        return min(d.config.tokens_per_s_user for d in self._chosen()) if self.meets_floor else None

    def interval_80pct(self) -> dict:
        """The 80 % intervals of the plan's tokens/s/user and cost per million tokens (the chosen steps' time
        intervals, the widest over the pools), and the largest share of a step priced beyond measured kernels."""
        if not self.meets_floor:
            return {}
        lo = min(d.config.slowdown_80pct()[0] for d in self._chosen())
        hi = max(d.config.slowdown_80pct()[1] for d in self._chosen())
        out = {"tokens_per_s_user_80pct": [self.tokens_per_s_user / hi, self.tokens_per_s_user / lo],
               "extrapolated_fraction": max(d.config.extrapolated_fraction for d in self._chosen())}
        if self.cost_per_m_tokens is not None:
            out["cost_per_m_tokens_80pct"] = [self.cost_per_m_tokens * lo, self.cost_per_m_tokens * hi]
        return out

    @property
    def energy_per_token_j(self) -> Optional[float]:
        return self.power_w * self.total_gpus / self.served_tokens_per_s if self.meets_floor else None

    def summary(self) -> dict:
        """The per-hardware JSON record."""
        out: dict[str, Any] = {"hardware": self.hardware, "meets_floor": self.meets_floor,
                               "precision": self.precision, "price_per_gpu_hour": self.price_per_gpu_hour,
                               "max_gpus_per_instance": self.max_gpus_per_instance}
        main = self.main_pool
        if self.meets_floor:
            c = main.choice.config
            out.update(strategy=c.strategy, layout=c.layout, label=c.label, batch=c.batch, mtp=c.mtp,
                       n_gpus_per_instance=c.n_gpus, instances=self.instances, total_gpus=self.total_gpus,
                       billed_gpus=self.billed_gpus, idle_gpus=self.billed_gpus - self.total_gpus,
                       **{f"{self.unit_name}s": self.units},
                       tokens_per_s_user=self.tokens_per_s_user, tokens_per_s_gpu=c.tokens_per_s_gpu,
                       fleet_tokens_per_s_gpu=self.fleet_tokens_per_s_gpu, cost_per_m_tokens=self.cost_per_m_tokens,
                       cost_per_m_tokens_used_gpus=self.cost_per_m_tokens_used,
                       energy_per_token_j=self.energy_per_token_j,
                       memory_headroom_gb=min(p.choice.memory_headroom_gb for p in self.pools),
                       **self.interval_80pct(), breakdown_ms=c.breakdown_ms)
        else:
            out.update(strategy=None, layout=None, batch=None, n_gpus_per_instance=None, instances=None,
                       total_gpus=None, tokens_per_s_user=None, tokens_per_s_gpu=None, cost_per_m_tokens=None)
            missing = [p for p in self.pools if not p.meets_floor]
            out["closest_achievable"] = [
                {"context": p.context, "tokens_per_s_user": p.closest.tokens_per_s_user, "strategy": p.closest.strategy,
                 "layout": p.closest.layout, "label": p.closest.label, "batch": p.closest.batch,
                 "n_gpus_per_instance": p.closest.n_gpus} if p.closest else {"context": p.context, "tokens_per_s_user": None}
                for p in missing]
        if len(self.pools) > 1:
            out["pools"] = [pool_summary(p) for p in self.pools]
        return out


def pool_summary(p: PoolPlan) -> dict:
    d: dict[str, Any] = {"context": p.context, "weight": p.weight, "users": p.users, "meets_floor": p.meets_floor}
    if p.choice:
        c = p.choice.config
        d.update(strategy=c.strategy, layout=c.layout, label=c.label, batch=c.batch, n_gpus_per_instance=c.n_gpus,
                 instances=p.choice.instances, total_gpus=p.choice.total_gpus, billed_gpus=p.choice.billed_gpus,
                 tokens_per_s_user=c.tokens_per_s_user, tokens_per_s_gpu=c.tokens_per_s_gpu,
                 cost_per_m_tokens=p.choice.cost_per_m_tokens)
    elif p.closest:
        d.update(closest_tokens_per_s_user=p.closest.tokens_per_s_user, closest_label=p.closest.label,
                 closest_strategy=p.closest.strategy)
    return d


def cheapest(per_hw: list[HardwarePlan]) -> Optional[HardwarePlan]:
    """The lowest billed cost per million tokens among systems meeting the floor that have a price;
    where none has a price, the fewest billed GPU-seconds per token (the ranking at equal prices)."""
    ok = [h for h in per_hw if h.meets_floor]
    priced = [h for h in ok if h.cost_per_m_tokens is not None]
    if priced:
        return min(priced, key=lambda h: h.cost_per_m_tokens)
    return min(ok, key=lambda h: h.billed_gpu_s_per_token) if ok else None


@dataclass(frozen=True)
class SensitivityRow:
    scenario: str
    change: str
    cost_per_m_tokens: dict  # hardware -> USD per 1e6 tokens, or None where the floor is not met
    total_gpus: dict  # hardware -> billed GPUs (whole racks or nodes), or None
    winner: Optional[str]
    winner_strategy: Optional[str]
    winner_label: Optional[str]
    winner_batch: Optional[int] = None


@dataclass
class PlanRequest:
    model: str
    hardware: tuple[str, ...]
    contexts: tuple[ContextShare, ...]
    users: int
    min_tokens_per_s_user: float
    max_gpus_per_instance: Optional[int]
    weights: Optional[str]
    kv_cache: Optional[str]
    hopb: bool
    max_batch: int
    strategies: tuple[str, ...]
    price_file: str
    mtp: tuple[int, ...] = (0,)   # MTP draft tokens searched (a dimension; 0: none)


@dataclass
class PlanResult:
    request: PlanRequest
    model: str
    per_hardware: list[HardwarePlan]
    sensitivity: list[SensitivityRow]
    seconds: float
    robustness: Optional[Any] = None  # planning.robustness.Robustness of the winner's main pool
    warnings: list = field(default_factory=list)  # one-line notes: missing prices, wide instances, trained window

    @property
    def winner(self) -> Optional[HardwarePlan]:
        """The system with the lowest (billed) cost per million tokens among those meeting the floor."""
        return cheapest(self.per_hardware)

    def recommendation(self) -> dict:
        """What ``helixsim plan --json`` prints: the overall winner's key numbers and a per-hardware list."""
        w = self.winner
        keys = ("hardware", "strategy", "layout", "batch", "mtp", "n_gpus_per_instance", "instances", "total_gpus",
                "tokens_per_s_user", "tokens_per_s_gpu", "cost_per_m_tokens")
        per = [h.summary() for h in self.per_hardware]
        top = {k: None for k in keys}
        if w is not None:
            s = next(p for p in per if p["hardware"] == w.hardware)
            top = {k: s[k] for k in keys}
            top["label"] = s["label"]
            top.update({k: s[k] for k in ("tokens_per_s_user_80pct", "cost_per_m_tokens_80pct",
                                          "extrapolated_fraction") if k in s})
        r = self.request
        return {**top, "meets_floor": w is not None, "model": self.model, "users": r.users,
                "min_tokens_per_s_user": r.min_tokens_per_s_user,
                "contexts": [{"context": c.context, "weight": c.weight} for c in r.contexts],
                "price_file": r.price_file, "per_hardware": per,
                "robustness": self.robustness.summary() if self.robustness is not None else None,
                "price_sensitivity": price_sensitivity_summary(self), "warnings": list(self.warnings),
                **({"mtp": mtp_searched(r.mtp)} if r.mtp != (0,) else {})}


def mtp_searched(drafts: tuple[int, ...]) -> dict:
    """The acceptance model behind a plan that searched MTP draft counts (JSON ``mtp``)."""
    from ..cost.mtp import mtp_summary

    per = [mtp_summary(n) for n in sorted(drafts)]
    return {"draft_tokens_searched": sorted(int(n) for n in drafts),
            "acceptance_rates": per[-1]["acceptance_rates"],
            "accepted_tokens_per_step": {str(p["draft_tokens"]): p["accepted_tokens_per_step"] for p in per},
            "acceptance_source": per[-1]["acceptance_source"]}


def price_sensitivity_summary(result: "PlanResult") -> Optional[dict]:
    """The winner's cost at its price -20 % and +20 %, and the price range over which it stays the
    cheapest: up to the price where the runner-up system (at its own price) costs the same."""
    from .costing import break_even_price, price_sensitivity

    w = result.winner
    if w is None or w.cost_per_m_tokens is None:
        return None
    lo, hi = price_sensitivity(w.price_per_gpu_hour, w.cost_per_m_tokens)
    rivals = [h for h in result.per_hardware if h is not w and h.cost_per_m_tokens is not None]
    out = {"hardware": w.hardware, "price_per_gpu_hour": w.price_per_gpu_hour,
           "cost_per_m_tokens_at_price_minus_20pct": lo, "cost_per_m_tokens_at_price_plus_20pct": hi,
           "runner_up": None, "stays_cheapest_up_to_price_per_gpu_hour": None}
    if rivals:
        second = min(rivals, key=lambda h: h.cost_per_m_tokens)
        out["runner_up"] = second.hardware
        out["stays_cheapest_up_to_price_per_gpu_hour"] = break_even_price(
            w.price_per_gpu_hour, w.cost_per_m_tokens, second.cost_per_m_tokens)
        out["runner_up_break_even_price_per_gpu_hour"] = break_even_price(
            second.price_per_gpu_hour, second.cost_per_m_tokens, w.cost_per_m_tokens)
    return out
