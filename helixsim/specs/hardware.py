"""GPU system specs: peaks only (``hardware/<name>.yaml``).

Fitted or assumed efficiencies live apart, in :mod:`helixsim.efficiency`
and ``hardware/efficiency/``; a spec here is what the datasheet says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import SpecError, closest
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
    #: a what-if: the built-in system this one overrides (its calibration then applies as efficiencies
    #: against this system's peaks; see :func:`load_hardware_file`)
    base: Optional[str] = None

    @property
    def fp4_tensor_cores(self) -> bool:
        """Whether the GPU has FP4 tensor cores: Blackwell (SM100) and later, not Hopper (SM90). The serving
        frameworks choose several kernels by this generation (helixsim.cost.fused_norms, .shared_experts, ...)."""
        return self.dense_tflops.fp4 is not None

    def peak_tflops(self, dtype: str, source: str = "") -> float:
        """Dense peak for a math precision; an error where the GPU has no such unit."""
        value = self.dense_tflops.for_dtype(dtype)
        if value is None:
            raise SpecError(source or self.name, f"dense_tflops.{dtype}", f"{self.gpu} has no {dtype} tensor cores; choose another precision")
        return value


def with_base(data, source: str):
    """A what-if file names ``base:`` (a built-in system) and only the fields it changes, e.g.
    ``{name: b200-2xbw, base: b200-hgx, hbm_bandwidth_gbps: 15400}``: the base's YAML mapping with
    those fields replaced (nested ``dense_tflops`` / ``collective_latency_us`` key by key)."""
    if not isinstance(data, dict) or "base" not in data:
        return data
    from .registry import builtin_names, data_dir

    base = data["base"]
    if not isinstance(base, str) or base not in builtin_names("hardware"):
        names = builtin_names("hardware")
        raise SpecError(source, "base", f"must name a built-in system ({', '.join(names)}), got {base!r}"
                        f"{closest(str(base), names)}")
    merged = dict(read_yaml(data_dir("hardware") / f"{base}.yaml"))
    merged.pop("description", None)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    merged.setdefault("description", f"{base} with {', '.join(k for k in data if k not in ('name', 'base'))} changed")
    return merged


def load_hardware_file(path: Path) -> HardwareSpec:
    """Read and check one hardware YAML file (a full spec, or a ``base:`` what-if of a built-in one)."""
    data = with_base(read_yaml(path), str(path))
    spec = from_mapping(HardwareSpec, data, str(path))
    if spec.name != Path(path).stem and not str(path).endswith(".json"):
        raise SpecError(str(path), "name", f"'{spec.name}' must equal the file name '{Path(path).stem}'")
    if spec.gpus_per_node > spec.nvlink_domain_gpus:
        raise SpecError(str(path), "gpus_per_node", "exceeds nvlink_domain_gpus")
    return spec
