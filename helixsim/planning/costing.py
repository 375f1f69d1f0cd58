"""Costing: dollars and joules per output token, instances, racks or nodes, one deployment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from ..cost.step import BREAKDOWN_KEYS
from ..specs.hardware import HardwareSpec


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


def units_needed(hw: HardwareSpec, n_gpus_per_instance, instances):
    """Racks (NVL72) or nodes (HGX) to hold ``instances``; an instance never straddles two units
    when it fits in one, so a 64-GPU instance takes a 72-GPU rack of its own. Scalars or numpy
    arrays (one entry per configuration)."""
    unit, _ = packaging(hw)
    n = np.asarray(n_gpus_per_instance, dtype=np.int64)
    inst = np.asarray(instances, dtype=np.int64)
    per_unit = np.maximum(unit // np.maximum(n, 1), 1)
    units = np.where(n <= unit, -(-inst // per_unit), -(-(inst * n) // unit))
    return int(units) if units.ndim == 0 else units


def billed_gpus_per_row(table: pd.DataFrame, hw: HardwareSpec, users: int) -> np.ndarray:
    """GPUs billed (whole racks or nodes) to serve ``users`` with each configuration of a search
    table: ceil(users / batch) instances of n_gpus, packed into units of the system's size."""
    unit, _ = packaging(hw)
    inst = -(-int(users) // table["batch"].to_numpy(np.int64))
    return units_needed(hw, table["n_gpus"].to_numpy(np.int64), inst) * unit


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
    mtp: int = 0   # MTP draft tokens per step (helixsim.cost.mtp); tokens/s count the accepted ones
    ttl_ms_lo: float = float("nan")      # 80 % interval of the step time (helixsim.uncertainty)
    ttl_ms_hi: float = float("nan")
    extrapolated_fraction: float = 0.0   # share of the step priced beyond measured kernels

    def slowdown_80pct(self) -> tuple[float, float]:
        """(lo, hi) of the step time over its point value: tokens/s/user scale by the inverse, cost per
        token (same GPUs, same users) by it. (nan, nan) where the table had no interval."""
        return self.ttl_ms_lo / self.ttl_ms, self.ttl_ms_hi / self.ttl_ms

    @classmethod
    def from_row(cls, row: pd.Series) -> "Config":
        layout = {k: int(row[k]) for k in ("kvp", "tpa", "dp", "tpf", "ep", "pp")}
        layout["hopb"] = bool(row["hopb"])
        label = re.sub(r" b\d+(?= |$)", "", str(row["label"]))  # the layout (and `` mtpN``); the batch is its own field
        return cls(strategy=str(row["strategy"]), layout=layout, label=label, n_gpus=int(row["n_gpus"]),
                   batch=int(row["batch"]), context=int(row["context"]), ttl_ms=float(row["ttl_ms"]),
                   tokens_per_s_user=float(row["tokens_per_s_user"]), tokens_per_s_gpu=float(row["tokens_per_s_gpu"]),
                   memory_per_gpu_gb=float(row["memory_per_gpu_gb"]),
                   breakdown_ms={k: float(row[f"{k}_ms"]) for k in BREAKDOWN_KEYS}, mtp=int(row.get("mtp", 0)),
                   ttl_ms_lo=float(row.get("ttl_ms_lo", float("nan"))), ttl_ms_hi=float(row.get("ttl_ms_hi", float("nan"))),
                   extrapolated_fraction=float(row.get("extrapolated_fraction", 0.0)))

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
    billed_gpus: int  # GPUs in the whole racks or nodes the instances occupy (idle ones included)
    price_per_gpu_hour: Optional[float]
    served_tokens_per_s: float
    cost_per_m_tokens: Optional[float]  # billed: every GPU of the whole racks or nodes; None without a price
    cost_per_m_tokens_used: Optional[float]  # the GPUs the instances use only (what renting by the GPU would cost)
    energy_per_token_j: float
    memory_headroom_gb: float


def billed_gpus(units: int, gpus_per_unit: int) -> int:
    """GPUs in the whole racks (NVL72) or nodes (HGX) the instances occupy, idle ones included (a
    64-GPU instance on a 72-GPU rack occupies 72): what renting whole units would bill."""
    return int(units) * int(gpus_per_unit)


def break_even_price(price_per_gpu_hour: float, cost_per_m_tokens: float, target_cost_per_m_tokens: float) -> float:
    """The price per GPU-hour at which a system's cost per million tokens equals ``target``: cost is
    proportional to price (same GPUs, same tokens), so p* = p x target / cost."""
    return price_per_gpu_hour * target_cost_per_m_tokens / cost_per_m_tokens


def price_sensitivity(price_per_gpu_hour: float, cost_per_m_tokens: float, change: float = 0.2) -> tuple[float, float]:
    """Cost per million tokens at the price lowered and raised by ``change`` (default 20 %): the
    layout and GPUs do not depend on the price, so the cost scales with it."""
    return cost_per_m_tokens * (1.0 - change), cost_per_m_tokens * (1.0 + change)


def deploy(cfg: Config, hw: HardwareSpec, users: int, price: Optional[float]) -> Deployment:
    """``cfg`` replicated over ceil(users / batch) instances in whole racks or nodes; the cost bills
    every GPU of those units (idle ones included). ``price`` None: no cost, GPUs and rates only."""
    inst = instances_needed(users, cfg.batch)
    total = inst * cfg.n_gpus
    unit, name = packaging(hw)
    units = units_needed(hw, cfg.n_gpus, inst)
    billed = billed_gpus(units, unit)

    def cost(gpus):
        return None if price is None else cost_per_million_tokens(price, gpus, users, cfg.tokens_per_s_user)

    return Deployment(
        config=cfg, users=users, instances=inst, total_gpus=total, units=units, unit_name=name,
        idle_gpus_in_units=units * unit - total, billed_gpus=billed, price_per_gpu_hour=price,
        served_tokens_per_s=users * cfg.tokens_per_s_user,
        cost_per_m_tokens=cost(billed), cost_per_m_tokens_used=cost(total),
        energy_per_token_j=energy_per_token_j(hw.power_w, total, users, cfg.tokens_per_s_user),
        memory_headroom_gb=hw.hbm_capacity_bytes / 1e9 - cfg.memory_per_gpu_gb,
    )

