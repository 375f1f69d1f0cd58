"""Achievable fractions of peak, kept apart from the datasheet peaks.

``hardware/efficiency/default.yaml`` holds the plain constants used until a
system has calibration data; ``hardware/efficiency/<hardware>.yaml`` may
override them for one system. :data:`IDEAL` is the textbook roofline
(``--ideal``): peak everything, no floors, no overheads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .specs._schema import NONNEG, from_mapping, read_yaml

_FRACTION = {"max": 1.0}


@dataclass(frozen=True)
class Efficiency:
    """Fractions of peak and fixed latencies used by the roofline kernels."""

    hbm: float = field(metadata=_FRACTION)
    gemm_compute: float = field(metadata=_FRACTION)
    attention_compute: float = field(metadata=_FRACTION)
    nvlink: float = field(metadata=_FRACTION)
    scale_out: float = field(metadata=_FRACTION)
    kernel_floor_us: float = field(metadata=NONNEG)
    step_overhead_us: float = field(metadata=NONNEG)
    memory_reserve_gb: float = field(metadata=NONNEG)
    collective_floors: bool = True
    ideal: bool = False


IDEAL = Efficiency(hbm=1.0, gemm_compute=1.0, attention_compute=1.0, nvlink=1.0, scale_out=1.0,
                   kernel_floor_us=0.0, step_overhead_us=0.0, memory_reserve_gb=0.0, collective_floors=False, ideal=True)


def load_efficiency_file(path: Path) -> Efficiency:
    return from_mapping(Efficiency, read_yaml(path), str(path))
