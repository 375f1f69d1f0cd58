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
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from .api import resolve_hardware, resolve_model
from .cost.step import BREAKDOWN_KEYS
from .errors import SpecError, closest
from .layout import STRATEGIES
from .precision import DTYPES, Precision
from .search import BASELINES, SearchSpace, frontiers, search
from .specs._schema import from_mapping, read_yaml
from .specs.hardware import HardwareSpec
from .specs.model import ModelSpec
from .specs.registry import data_dir

#: Default cap on GPUs per decode instance when none is given (keeps the search fast on NVL72).
DEFAULT_GPU_CAP = 64

UNCALIBRATED = "uncalibrated roofline with default efficiencies; no error measured"


def default_price_file() -> Path:
    """The built-in, illustrative price list (the first of the candidate locations that exists)."""
    candidates = [data_dir("hardware") / "prices.yaml", data_dir("hardware") / "efficiency" / "prices.yaml"]
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]


# ----------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ContextShare:
    """One context of a context mix; ``weight`` is its share of the users (normalised over the mix)."""

    context: int = field(metadata={"max": 1 << 40})
    weight: float = 1.0


@dataclass(frozen=True)
class PlanSpec:
    """A plan YAML file (strict: unknown keys are refused). Give ``context`` or ``context_mix``."""

    model: str
    hardware: tuple[str, ...]
    users: int = field(metadata={"max": 1 << 40})
    min_tokens_per_s_user: float
    context: Optional[int] = field(default=None, metadata={"max": 1 << 40})
    context_mix: Optional[tuple[ContextShare, ...]] = None
    max_gpus_per_instance: Optional[int] = field(default=None, metadata={"max": 4096})
    weights: Optional[str] = None
    kv_cache: Optional[str] = None
    price: Optional[str] = None
    hopb: bool = True
    max_batch: int = field(default=4096, metadata={"max": 1 << 20})
    strategies: tuple[str, ...] = STRATEGIES
    sensitivity: bool = True


def load_plan_file(path: str | Path) -> PlanSpec:
    """Read a plan YAML, field by field (errors name the file and the key)."""
    path = Path(path)
    spec = from_mapping(PlanSpec, read_yaml(path), str(path))
    src = str(path)
    if (spec.context is None) == (spec.context_mix is None):
        raise SpecError(src, "context", "give exactly one of 'context' or 'context_mix'")
    for name in ("weights", "kv_cache"):
        value = getattr(spec, name)
        if value is not None and value not in DTYPES:
            raise SpecError(src, name, f"unknown precision '{value}', choose one of {', '.join(DTYPES)}{closest(value, DTYPES)}")
    for i, s in enumerate(spec.strategies):
        if s not in STRATEGIES:
            raise SpecError(src, f"strategies[{i}]", f"unknown strategy '{s}'{closest(s, STRATEGIES)}; known: {', '.join(STRATEGIES)}")
    try:
        resolve_model(spec.model)
    except SpecError as err:
        raise SpecError(src, "model", err.problem) from None
    if not spec.hardware:
        raise SpecError(src, "hardware", "give at least one hardware system")
    for i, h in enumerate(spec.hardware):
        try:
            resolve_hardware(h)
        except SpecError as err:
            raise SpecError(src, f"hardware[{i}]", err.problem) from None
    return spec


def load_prices(path: str | Path | None = None) -> tuple[dict[str, float], str]:
    """USD per GPU-hour per system name from a price YAML, and the file it came from.

    The file holds ``usd_per_gpu_hour: {<hardware name>: <number>, ...}`` and
    optionally ``as_of`` and ``note`` strings; anything else is refused.
    """
    p = Path(path) if path is not None else default_price_file()
    src = str(p)
    data = read_yaml(p)
    if not isinstance(data, Mapping):
        raise SpecError(src, "(top level)", f"expected a mapping, got {type(data).__name__}")
    allowed = ("usd_per_gpu_hour", "as_of", "note")
    for key in data:
        if key not in allowed:
            raise SpecError(src, str(key), f"unknown key{closest(key, allowed)}")
    table = data.get("usd_per_gpu_hour")
    if not isinstance(table, Mapping) or not table:
        raise SpecError(src, "usd_per_gpu_hour", "expected a mapping of hardware name to USD per GPU-hour")
    prices = {}
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise SpecError(src, f"usd_per_gpu_hour.{name}", f"expected a positive number, got {value!r}")
        prices[str(name)] = float(value)
    return prices, src


def default_precision(hw: HardwareSpec, weights: str | None = None, kv_cache: str | None = None) -> Precision:
    """FP4 weights where the GPU has FP4 tensor cores (else FP8), FP8 KV cache, unless given."""
    w = weights or ("fp4" if hw.dense_tflops.fp4 is not None else "fp8")
    return Precision(weights=w, kv_cache=kv_cache or "fp8")


# ----------------------------------------------------------------------------------------------- formulas
def cost_per_million_tokens(price_per_gpu_hour: float, total_gpus: int, users: int, tokens_per_s_user: float) -> float:
    """USD per 10^6 output tokens of a fleet of ``total_gpus`` serving ``users`` at ``tokens_per_s_user`` each.

    dollars/hour = price_per_gpu_hour * total_gpus; tokens/hour = users * tokens_per_s_user * 3600;
    so cost = price_per_gpu_hour * total_gpus / (users * tokens_per_s_user * 3600) * 1e6.
    """
    return price_per_gpu_hour * total_gpus / (users * tokens_per_s_user * 3600.0) * 1e6


def energy_per_token_j(power_w: float, total_gpus: int, users: int, tokens_per_s_user: float) -> float:
    """Joules per output token: GPU power (TDP) of the fleet over the tokens/s it delivers."""
    return power_w * total_gpus / (users * tokens_per_s_user)


def instances_needed(users: int, batch: int) -> int:
    """Decode instances of ``batch`` requests each needed for ``users`` concurrent users."""
    return -(-int(users) // int(batch))


def packaging(hw: HardwareSpec) -> tuple[int, str]:
    """(GPUs per unit, unit name): racks for a rack-scale NVLink domain (NVL72), nodes for HGX boards."""
    if hw.nvlink_domain_gpus > hw.gpus_per_node:
        return hw.nvlink_domain_gpus, "rack"
    return hw.gpus_per_node, "node"


def units_needed(hw: HardwareSpec, n_gpus_per_instance: int, instances: int) -> int:
    """Racks (NVL72) or nodes (HGX) to hold ``instances``; an instance never straddles two units
    when it fits in one, so a 64-GPU instance takes a 72-GPU rack of its own."""
    unit, _ = packaging(hw)
    if n_gpus_per_instance <= unit:
        return instances_needed(instances, unit // n_gpus_per_instance)
    return instances_needed(instances * n_gpus_per_instance, unit)


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Config:
    """One priced configuration of the search table (one decode instance)."""

    strategy: str
    layout: dict
    label: str  # KVPxTPxDP=TPFxEP [ppN]
    n_gpus: int
    batch: int
    context: int
    ttl_ms: float
    tokens_per_s_user: float
    tokens_per_s_gpu: float
    memory_per_gpu_gb: float
    breakdown_ms: dict

    @classmethod
    def from_row(cls, row: pd.Series) -> "Config":
        layout = {k: int(row[k]) for k in ("kvp", "tpa", "dp", "tpf", "ep", "pp")}
        layout["hopb"] = bool(row["hopb"])
        label = re.sub(r" b\d+$", "", str(row["label"]))  # the layout only; the batch is its own field
        return cls(strategy=str(row["strategy"]), layout=layout, label=label, n_gpus=int(row["n_gpus"]),
                   batch=int(row["batch"]), context=int(row["context"]), ttl_ms=float(row["ttl_ms"]),
                   tokens_per_s_user=float(row["tokens_per_s_user"]), tokens_per_s_gpu=float(row["tokens_per_s_gpu"]),
                   memory_per_gpu_gb=float(row["memory_per_gpu_gb"]),
                   breakdown_ms={k: float(row[f"{k}_ms"]) for k in BREAKDOWN_KEYS})

    def gpu_ms_per_token(self) -> dict[str, float]:
        """Each op's GPU-milliseconds per output token (``op_ms * n_gpus / batch``); they sum to
        1000 / tokens_per_s_gpu, so the largest difference between two configurations is what
        separates their throughput per GPU."""
        return {k: v * self.n_gpus / self.batch for k, v in self.breakdown_ms.items()}


@dataclass(frozen=True)
class Deployment:
    """A configuration replicated to serve ``users``."""

    config: Config
    users: int
    instances: int
    total_gpus: int
    units: int
    unit_name: str
    idle_gpus_in_units: int
    price_per_gpu_hour: float
    served_tokens_per_s: float
    cost_per_m_tokens: float
    energy_per_token_j: float
    memory_headroom_gb: float


def deploy(cfg: Config, hw: HardwareSpec, users: int, price: float) -> Deployment:
    inst = instances_needed(users, cfg.batch)
    total = inst * cfg.n_gpus
    unit, name = packaging(hw)
    units = units_needed(hw, cfg.n_gpus, inst)
    return Deployment(
        config=cfg, users=users, instances=inst, total_gpus=total, units=units, unit_name=name,
        idle_gpus_in_units=units * unit - total, price_per_gpu_hour=price,
        served_tokens_per_s=users * cfg.tokens_per_s_user,
        cost_per_m_tokens=cost_per_million_tokens(price, total, users, cfg.tokens_per_s_user),
        energy_per_token_j=energy_per_token_j(hw.power_w, total, users, cfg.tokens_per_s_user),
        memory_headroom_gb=hw.hbm_capacity_bytes / 1e9 - cfg.memory_per_gpu_gb,
    )


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

    def reason(self) -> str:
        if self.config is None:
            if self.closest is None:
                return "no layout fits in memory"
            return f"cannot reach the floor: at most {self.closest.tokens_per_s_user:.1f} tok/s/user ({self.closest.label})"
        if self.losing_term is None:
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
    price_per_gpu_hour: float
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

    @property
    def total_gpus(self) -> Optional[int]:
        return sum(d.total_gpus for d in self._chosen()) if self.meets_floor else None

    @property
    def instances(self) -> Optional[int]:
        return sum(d.instances for d in self._chosen()) if self.meets_floor else None

    @property
    def units(self) -> Optional[int]:
        return sum(d.units for d in self._chosen()) if self.meets_floor else None

    @property
    def served_tokens_per_s(self) -> Optional[float]:
        return sum(d.served_tokens_per_s for d in self._chosen()) if self.meets_floor else None

    @property
    def cost_per_m_tokens(self) -> Optional[float]:
        """Fleet dollars over fleet tokens (pools' costs weighted by their share of the tokens)."""
        if not self.meets_floor:
            return None
        return self.price_per_gpu_hour * self.total_gpus / (self.served_tokens_per_s * 3600.0) * 1e6

    @property
    def fleet_tokens_per_s_gpu(self) -> Optional[float]:
        """Delivered tokens/s over all GPUs (below the configuration's when the last instance is partly full)."""
        return self.served_tokens_per_s / self.total_gpus if self.meets_floor else None

    @property
    def tokens_per_s_user(self) -> Optional[float]:
        """The slowest pool's per-user rate (what every user is guaranteed)."""
        return min(d.config.tokens_per_s_user for d in self._chosen()) if self.meets_floor else None

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
            out.update(strategy=c.strategy, layout=c.layout, label=c.label, batch=c.batch,
                       n_gpus_per_instance=c.n_gpus, instances=self.instances, total_gpus=self.total_gpus,
                       **{f"{self.unit_name}s": self.units},
                       tokens_per_s_user=self.tokens_per_s_user, tokens_per_s_gpu=c.tokens_per_s_gpu,
                       fleet_tokens_per_s_gpu=self.fleet_tokens_per_s_gpu, cost_per_m_tokens=self.cost_per_m_tokens,
                       energy_per_token_j=self.energy_per_token_j,
                       memory_headroom_gb=min(p.choice.memory_headroom_gb for p in self.pools),
                       breakdown_ms=c.breakdown_ms)
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
                 instances=p.choice.instances, total_gpus=p.choice.total_gpus,
                 tokens_per_s_user=c.tokens_per_s_user, tokens_per_s_gpu=c.tokens_per_s_gpu,
                 cost_per_m_tokens=p.choice.cost_per_m_tokens)
    elif p.closest:
        d.update(closest_tokens_per_s_user=p.closest.tokens_per_s_user, closest_label=p.closest.label,
                 closest_strategy=p.closest.strategy)
    return d


@dataclass(frozen=True)
class SensitivityRow:
    scenario: str
    change: str
    cost_per_m_tokens: dict  # hardware -> USD per 1e6 tokens, or None where the floor is not met
    total_gpus: dict  # hardware -> GPUs, or None
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


@dataclass
class PlanResult:
    request: PlanRequest
    model: str
    per_hardware: list[HardwarePlan]
    sensitivity: list[SensitivityRow]
    seconds: float

    @property
    def winner(self) -> Optional[HardwarePlan]:
        """The system with the lowest cost per million tokens among those meeting the floor."""
        ok = [h for h in self.per_hardware if h.meets_floor]
        return min(ok, key=lambda h: h.cost_per_m_tokens) if ok else None

    def recommendation(self) -> dict:
        """What ``helixsim plan --json`` prints: the overall winner's key numbers and a per-hardware list."""
        w = self.winner
        keys = ("hardware", "strategy", "layout", "batch", "n_gpus_per_instance", "instances", "total_gpus",
                "tokens_per_s_user", "tokens_per_s_gpu", "cost_per_m_tokens")
        per = [h.summary() for h in self.per_hardware]
        top = {k: None for k in keys}
        if w is not None:
            s = next(p for p in per if p["hardware"] == w.hardware)
            top = {k: s[k] for k in keys}
            top["label"] = s["label"]
        r = self.request
        return {**top, "meets_floor": w is not None, "model": self.model, "users": r.users,
                "min_tokens_per_s_user": r.min_tokens_per_s_user,
                "contexts": [{"context": c.context, "weight": c.weight} for c in r.contexts],
                "price_file": r.price_file, "per_hardware": per}


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


def split_users(users: int, contexts: Sequence[ContextShare]) -> list[int]:
    """Users per context: ceil(users * weight / sum of weights), so no pool is under-provisioned."""
    total = sum(c.weight for c in contexts)
    return [max(1, math.ceil(users * c.weight / total - 1e-9)) for c in contexts]


def _best(rows: pd.DataFrame) -> Optional[pd.Series]:
    """Highest tokens/s/GPU; ties: higher tokens/s/user, then fewer GPUs."""
    if rows.empty:
        return None
    order = np.lexsort((rows["n_gpus"].to_numpy(), -rows["tokens_per_s_user"].to_numpy(),
                        -rows["tokens_per_s_gpu"].to_numpy()))
    return rows.iloc[order[0]]


def _fastest(rows: pd.DataFrame) -> Optional[pd.Series]:
    if rows.empty:
        return None
    order = np.lexsort((-rows["tokens_per_s_gpu"].to_numpy(), -rows["tokens_per_s_user"].to_numpy()))
    return rows.iloc[order[0]]


def select(table: pd.DataFrame, floor: float) -> Optional[pd.Series]:
    """The chosen row: max tokens/s/GPU among feasible rows with tokens/s/user >= floor."""
    ok = table[table["feasible"].to_numpy(bool) & (table["tokens_per_s_user"].to_numpy() >= floor)]
    return _best(ok)


def _runner_up(strategy: str, table: pd.DataFrame, floor: float, winner: Config, hw: HardwareSpec,
               users: int, price: float) -> RunnerUp:
    sub = table[table["strategy"] == strategy]
    row = select(sub, floor)
    if row is None:
        far = _fastest(sub[sub["feasible"].to_numpy(bool)])
        return RunnerUp(strategy, None, Config.from_row(far) if far is not None else None, None, None, None, None)
    cfg = Config.from_row(row)
    mine, theirs = cfg.gpu_ms_per_token(), winner.gpu_ms_per_token()
    excess = {k: mine[k] - theirs[k] for k in mine}
    term = max(excess, key=excess.get)
    lose = excess[term] > 0 and cfg.tokens_per_s_gpu < winner.tokens_per_s_gpu
    return RunnerUp(strategy, cfg, None, winner.tokens_per_s_gpu / cfg.tokens_per_s_gpu,
                    term if lose else None, excess[term] if lose else None,
                    deploy(cfg, hw, users, price).cost_per_m_tokens)


class _Planner:
    """Runs searches once per (hardware, context, batch cap) and plans pools from them."""

    def __init__(self, model: ModelSpec, strategies: tuple[str, ...], hopb: bool, max_batch: int,
                 calibration=None):
        self.model = model
        self.strategies = strategies
        self.hopb = hopb
        self.max_batch = max_batch
        self.calibration = calibration
        self._cache: dict = {}

    def table(self, hw: HardwareSpec, budget: int, context: int, users: int, prec: Precision) -> pd.DataFrame:
        cap = int(min(self.max_batch, users))
        key = (hw.name, budget, context, cap, prec)
        if key not in self._cache:
            space = SearchSpace(strategies=self.strategies, max_gpus=budget, hopb=(self.hopb,), max_batch=cap,
                                contexts=(int(context),))
            t = search(self.model, hw, space, prec, calibration=self.calibration)
            if "label" not in t.columns:
                t["label"] = pd.Series([], dtype=object)
            self._cache[key] = t
        return self._cache[key]

    def pool(self, hw: HardwareSpec, budget: int, prec: Precision, share: ContextShare, users: int,
             floor: float, price: float, detail: bool = True) -> PoolPlan:
        table = self.table(hw, budget, share.context, users, prec)
        row = select(table, floor)
        choice = closest = other = None
        margin = None
        family = ""
        runner_ups: list[RunnerUp] = []
        if row is None:
            far = _fastest(table[table["feasible"].to_numpy(bool)])
            closest = Config.from_row(far) if far is not None else None
        else:
            cfg = Config.from_row(row)
            choice = deploy(cfg, hw, users, price)
            family = "Helix" if cfg.strategy == "helix" else "baseline"
            members = [s for s in BASELINES] if cfg.strategy == "helix" else ["helix"]
            o = select(table[table["strategy"].isin(members)], floor)
            if o is not None:
                other = Config.from_row(o)
                margin = cfg.tokens_per_s_gpu / other.tokens_per_s_gpu
            if detail:
                runner_ups = [_runner_up(s, table, floor, cfg, hw, users, price)
                              for s in self.strategies if s != cfg.strategy]
        fr = frontiers(table) if detail and len(table) else {}
        return PoolPlan(context=share.context, weight=share.weight, users=users, n_configurations=len(table),
                        choice=choice, closest=closest, family=family, other_family_best=other,
                        family_margin=margin, runner_ups=runner_ups, table=table, frontiers=fr)


def _check_request(users, floor, contexts, max_gpus, max_batch, strategies, source="command line") -> None:
    def whole(name, value, minimum=1):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise SpecError(source, name, f"must be a whole number >= {minimum}, got {value!r}")

    whole("--users", users)
    whole("--max-batch", max_batch)
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


SENSITIVITY = (
    ("context x2", "every context doubled", {"context": 2.0}),
    ("context x0.5", "every context halved", {"context": 0.5}),
    ("users x2", "twice the concurrent users", {"users": 2.0}),
    ("floor +25%", "interactivity floor raised by 25 %", {"floor": 1.25}),
    ("floor -25%", "interactivity floor lowered by 25 %", {"floor": 0.75}),
)


def plan(model: str | ModelSpec, hardware: str | HardwareSpec | Sequence[str | HardwareSpec], context,
         users: int, min_tokens_per_s_user: float, max_gpus_per_instance: int | None = None,
         weights: str | None = None, kv_cache: str | None = None,
         prices: str | Path | Mapping[str, float] | None = None, hopb: bool = True, max_batch: int = 4096,
         strategies: Sequence[str] = STRATEGIES, sensitivity: bool = True, calibration=None) -> PlanResult:
    """Plan a decode fleet for ``users`` concurrent users at ``min_tokens_per_s_user`` each, per hardware.

    ``context``: one context length, or a mix (a sequence of :class:`ContextShare`,
    ``{"context": S, "weight": w}`` mappings or ``(S, w)`` pairs; weights are shares of the users).
    ``max_gpus_per_instance``: GPU budget of one decode instance (default: the NVLink domain,
    capped at 64). ``weights``/``kv_cache``: formats (default FP4/FP8 where the GPU has FP4, else
    FP8/FP8). ``prices``: a price YAML path, a ``{hardware: USD per GPU-hour}`` mapping, or None for
    the built-in illustrative list. ``sensitivity``: also re-plan with the context x2 and x0.5,
    users x2 and the floor +-25 %.
    """
    start = time.perf_counter()
    m = resolve_model(model)
    hws = [resolve_hardware(h) for h in ([hardware] if isinstance(hardware, (str, HardwareSpec)) else hardware)]
    if not hws:
        raise SpecError("command line", "--hardware", "give at least one hardware system")
    contexts = _as_contexts(context)
    strategies = tuple(strategies)
    _check_request(users, min_tokens_per_s_user, contexts, max_gpus_per_instance, max_batch, strategies)
    for name, value in (("--weights", weights), ("--kv-cache", kv_cache)):
        if value is not None and value not in DTYPES:
            raise SpecError("command line", name, f"unknown precision '{value}', choose one of {', '.join(DTYPES)}{closest(value, DTYPES)}")
    if isinstance(prices, Mapping):
        price_table, price_src = {str(k): float(v) for k, v in prices.items()}, "(given)"
    else:
        price_table, price_src = load_prices(prices)
    for hw in hws:
        if hw.name not in price_table:
            raise SpecError(price_src, f"usd_per_gpu_hour.{hw.name}",
                            f"no price for '{hw.name}'; add one (USD per GPU-hour) or pass --price FILE")
    planner = _Planner(m, strategies, hopb, max_batch, calibration)
    setup = []
    for hw in hws:
        prec = default_precision(hw, weights, kv_cache)
        budget = max_gpus_per_instance or min(hw.nvlink_domain_gpus, DEFAULT_GPU_CAP)
        setup.append((hw, prec, budget, calibration_note(hw.name)))

    def run(ctxs, u, floor, detail):
        return [_plan_hardware(planner, hw, prec, budget, ctxs, u, floor, price_table[hw.name], cal, detail)
                for hw, prec, budget, cal in setup]

    per_hw = run(contexts, int(users), float(min_tokens_per_s_user), True)
    request = PlanRequest(model=m.name, hardware=tuple(h.name for h in hws), contexts=contexts, users=int(users),
                          min_tokens_per_s_user=float(min_tokens_per_s_user), max_gpus_per_instance=max_gpus_per_instance,
                          weights=weights, kv_cache=kv_cache, hopb=hopb, max_batch=max_batch, strategies=strategies,
                          price_file=price_src)
    rows = [_sensitivity_row("base", "as requested", per_hw)]
    if sensitivity:
        for name, change, f in SENSITIVITY:
            ctxs = tuple(replace(c, context=max(1, int(round(c.context * f.get("context", 1.0))))) for c in contexts)
            u = int(math.ceil(users * f.get("users", 1.0)))
            variant = run(ctxs, u, float(min_tokens_per_s_user) * f.get("floor", 1.0), False)
            rows.append(_sensitivity_row(name, change, variant))
    return PlanResult(request=request, model=m.name, per_hardware=per_hw, sensitivity=rows,
                      seconds=time.perf_counter() - start)


def _sensitivity_row(name: str, change: str, per_hw: list[HardwarePlan]) -> SensitivityRow:
    ok = [h for h in per_hw if h.meets_floor]
    w = min(ok, key=lambda h: h.cost_per_m_tokens) if ok else None
    return SensitivityRow(
        scenario=name, change=change,
        cost_per_m_tokens={h.hardware: h.cost_per_m_tokens for h in per_hw},
        total_gpus={h.hardware: h.total_gpus for h in per_hw},
        winner=w.hardware if w else None,
        winner_strategy=w.main_pool.choice.config.strategy if w else None,
        winner_label=w.main_pool.choice.config.label if w else None,
        winner_batch=w.main_pool.choice.config.batch if w else None,
    )


def plan_from_spec(spec: PlanSpec, source: str = "plan", calibration=None, **overrides) -> PlanResult:
    """Run :func:`plan` from a :class:`PlanSpec` (a loaded plan YAML); errors name ``source`` and the key."""
    contexts = spec.context_mix if spec.context_mix is not None else (ContextShare(spec.context, 1.0),)
    kwargs = dict(model=spec.model, hardware=spec.hardware, context=contexts, users=spec.users,
                  min_tokens_per_s_user=spec.min_tokens_per_s_user, max_gpus_per_instance=spec.max_gpus_per_instance,
                  weights=spec.weights, kv_cache=spec.kv_cache, prices=spec.price, hopb=spec.hopb,
                  max_batch=spec.max_batch, strategies=spec.strategies, sensitivity=spec.sensitivity)
    kwargs.update(overrides)
    return plan(**kwargs, calibration=calibration)
