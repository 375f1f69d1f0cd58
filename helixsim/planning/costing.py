"""Costing: dollars and joules per output token, instances, racks or nodes, one deployment."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    mtp: int = 0   # MTP draft tokens per step (helixsim.cost.mtp); tokens/s count the accepted ones

    @classmethod
    def from_row(cls, row: pd.Series) -> "Config":
        layout = {k: int(row[k]) for k in ("kvp", "tpa", "dp", "tpf", "ep", "pp")}
        layout["hopb"] = bool(row["hopb"])
        label = re.sub(r" b\d+(?= |$)", "", str(row["label"]))  # the layout (and `` mtpN``); the batch is its own field
        return cls(strategy=str(row["strategy"]), layout=layout, label=label, n_gpus=int(row["n_gpus"]),
                   batch=int(row["batch"]), context=int(row["context"]), ttl_ms=float(row["ttl_ms"]),
                   tokens_per_s_user=float(row["tokens_per_s_user"]), tokens_per_s_gpu=float(row["tokens_per_s_gpu"]),
                   memory_per_gpu_gb=float(row["memory_per_gpu_gb"]),
                   breakdown_ms={k: float(row[f"{k}_ms"]) for k in BREAKDOWN_KEYS}, mtp=int(row.get("mtp", 0)))

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
    price_per_gpu_hour: float
    served_tokens_per_s: float
    cost_per_m_tokens: float
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


def deploy(cfg: Config, hw: HardwareSpec, users: int, price: float) -> Deployment:
    inst = instances_needed(users, cfg.batch)
    total = inst * cfg.n_gpus
    unit, name = packaging(hw)
    units = units_needed(hw, cfg.n_gpus, inst)
    return Deployment(
        config=cfg, users=users, instances=inst, total_gpus=total, units=units, unit_name=name,
        idle_gpus_in_units=units * unit - total, billed_gpus=billed_gpus(units, unit), price_per_gpu_hour=price,
        served_tokens_per_s=users * cfg.tokens_per_s_user,
        cost_per_m_tokens=cost_per_million_tokens(price, total, users, cfg.tokens_per_s_user),
        energy_per_token_j=energy_per_token_j(hw.power_w, total, users, cfg.tokens_per_s_user),
        memory_headroom_gb=hw.hbm_capacity_bytes / 1e9 - cfg.memory_per_gpu_gb,
    )

