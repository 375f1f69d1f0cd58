"""GPU system specs: peaks only (``hardware/<name>.yaml``).

Fitted or assumed efficiencies live apart, in :mod:`helixsim.efficiency`
and ``hardware/efficiency/``; a spec here is what the datasheet says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import SpecError
from ._schema import NONNEG, from_mapping, read_yaml


@dataclass(frozen=True)
class DenseTflops:
    """Dense (non-sparse) tensor-core peaks per GPU, TFLOP/s. ``None``: no such unit."""

    fp4: Optional[float]
    fp8: float
    bf16: float

    def for_dtype(self, dtype: str) -> Optional[float]:
        return getattr(self, dtype)


@dataclass(frozen=True)
class CollectiveLatencyUs:
    """Small-message latency floors of collectives inside the NVLink domain, microseconds."""

    all_reduce: float = field(metadata=NONNEG)
    all_gather: float = field(metadata=NONNEG)
    all_to_all: float = field(metadata=NONNEG)
    p2p: float = field(metadata=NONNEG)


@dataclass(frozen=True)
class HardwareSpec:
    """One GPU system (per-GPU figures, plus the shape of its network)."""

    name: str
    description: str
    gpu: str
    hbm_capacity_bytes: int
    hbm_bandwidth_gbps: float
    dense_tflops: DenseTflops
    nvlink_bandwidth_gbps_per_direction: float
    nvlink_domain_gpus: int
    gpus_per_node: int
    scale_out_bandwidth_gbps_per_direction: float
    collective_latency_us: CollectiveLatencyUs
    scale_out_latency_us: float = field(metadata=NONNEG)
    power_w: float

    def peak_tflops(self, dtype: str, source: str = "") -> float:
        """Dense peak for a math precision; an error where the GPU has no such unit."""
        value = self.dense_tflops.for_dtype(dtype)
        if value is None:
            raise SpecError(source or self.name, f"dense_tflops.{dtype}", f"{self.gpu} has no {dtype} tensor cores; choose another precision")
        return value


def load_hardware_file(path: Path) -> HardwareSpec:
    """Read and check one hardware YAML file."""
    data = read_yaml(path)
    spec = from_mapping(HardwareSpec, data, str(path))
    if spec.name != Path(path).stem and not str(path).endswith(".json"):
        raise SpecError(str(path), "name", f"'{spec.name}' must equal the file name '{Path(path).stem}'")
    if spec.gpus_per_node > spec.nvlink_domain_gpus:
        raise SpecError(str(path), "gpus_per_node", "exceeds nvlink_domain_gpus")
    return spec
