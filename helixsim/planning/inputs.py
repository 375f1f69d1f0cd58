"""Plan inputs: the plan YAML, the price list, default precision and GPU budget."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from ..api import resolve_hardware, resolve_model
from ..errors import SpecError, closest
from ..layout import STRATEGIES
from ..precision import DTYPES, Precision, default_weights
from ..specs._schema import TOKENS, from_mapping, read_yaml
from ..specs.hardware import HardwareSpec
from ..specs.registry import data_dir

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

    context: int = field(metadata={**TOKENS, "max": 1 << 40})
    weight: float = 1.0


@dataclass(frozen=True)
class PlanSpec:
    """A plan YAML file (strict: unknown keys are refused). Give ``context`` or ``context_mix``."""

    model: str
    hardware: tuple[str, ...]
    users: int = field(metadata={"max": 1 << 40})
    min_tokens_per_s_user: float
    context: Optional[int] = field(default=None, metadata={**TOKENS, "max": 1 << 40})
    context_mix: Optional[tuple[ContextShare, ...]] = None
    max_gpus_per_instance: Optional[int] = field(default=None, metadata={"max": 4096})
    weights: Optional[str] = None
    kv_cache: Optional[str] = None
    price: Optional[str] = None
    hopb: bool = True
    max_batch: int = field(default=4096, metadata={"max": 1 << 20})
    strategies: tuple[str, ...] = STRATEGIES
    sensitivity: bool = True
    mtp: tuple[int, ...] = field(default=(0,), metadata={"nonneg": True, "max": 16})   # MTP drafts searched


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
    w = weights or default_weights(hw)
    return Precision(weights=w, kv_cache=kv_cache or "fp8")

