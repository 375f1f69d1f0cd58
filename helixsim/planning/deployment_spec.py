"""The whole-deployment plan YAML: a length mix (several input/output length classes) and the
deployment targets, read strictly (unknown keys refused, each error naming the file and key).

    model: deepseek-r1
    hardware: [gb200-nvl72, gb300-nvl72]
    users: 1024
    min_tokens_per_s_user: 50
    max_ttft_s: 60
    lengths:                 # classes of requests; share = their share of the users
      - {isl: 8192, osl: 1024, share: 3}
      - {isl: 131072, osl: 8192, share: 1}
    # optional: weights, kv_cache, price, max_gpus_per_instance, max_batch

``helixsim plan --plan FILE`` takes this form when the file has ``lengths``; flags given as well
override its keys (``--isl``/``--osl`` may not: the lengths come from the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from ..errors import SpecError, closest
from ..precision import DTYPES
from ..specs._schema import TOKENS, from_mapping, read_yaml
from .deployment_report import MAX_PLAN_ISL


@dataclass(frozen=True)
class LengthClass:
    """One class of requests: prompt and output tokens, and its share of the users (normalised)."""

    isl: int = field(metadata={**TOKENS, "max": 1 << 40})
    osl: int = field(metadata={**TOKENS, "max": 1 << 40})
    share: float = 1.0


@dataclass(frozen=True)
class DeploymentSpec:
    model: str
    hardware: tuple[str, ...]
    users: int = field(metadata={"max": 1 << 40})
    min_tokens_per_s_user: float
    max_ttft_s: float
    lengths: tuple[LengthClass, ...]
    weights: Optional[str] = None
    kv_cache: Optional[str] = None
    price: Optional[str] = None
    max_gpus_per_instance: Optional[int] = field(default=None, metadata={"max": 4096})
    max_batch: int = field(default=4096, metadata={"max": 1 << 20})


def is_deployment_file(path: str | Path) -> bool:
    """True when a plan YAML describes a whole deployment (it has ``lengths``)."""
    data = read_yaml(Path(path))
    return isinstance(data, Mapping) and "lengths" in data


def load_deployment_file(path: str | Path) -> DeploymentSpec:
    src = str(path)
    spec = from_mapping(DeploymentSpec, read_yaml(Path(path)), src)
    if not spec.lengths:
        raise SpecError(src, "lengths", "give at least one {isl, osl, share} class")
    if not spec.hardware:
        raise SpecError(src, "hardware", "give at least one hardware system")
    for i, c in enumerate(spec.lengths):
        if c.osl < 2:
            raise SpecError(src, f"lengths[{i}].osl", f"must be >= 2 (one prefill token plus decode), got {c.osl}")
        if c.isl > MAX_PLAN_ISL:
            raise SpecError(src, f"lengths[{i}].isl", f"must be <= {MAX_PLAN_ISL:,} tokens, got {c.isl:,}")
    for name in ("weights", "kv_cache"):
        value = getattr(spec, name)
        if value is not None and value not in DTYPES:
            raise SpecError(src, name, f"unknown precision '{value}', choose one of {', '.join(DTYPES)}{closest(value, DTYPES)}")
    return spec
