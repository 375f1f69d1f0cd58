"""Prefill API: time to first token (TTFT) of one configuration, and the KV-cache hand-off to decode.

>>> from helixsim.prefill import simulate_prefill
>>> r = simulate_prefill("llama-3.1-70b", "h200-hgx", Layout("tp", tpa=8, tpf=8), isl=8192)
>>> r.ttft_ms, r.breakdown_ms["attention"], r.memory_per_gpu_gb
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .api import check_precision, kernels_for, resolve_hardware, resolve_model
from .cost.memory import memory_per_gpu
from .cost.prefill import PREFILL_KEYS, prefill_activation_bytes, prefill_time
from .errors import SpecError
from .layout import Layout, LayoutArrays, check_layout
from .precision import Precision
from .specs._schema import MAX_MAGNITUDE

#: Prefill runs the decode layout model's tp and ep strategies, times a context-parallel width.
PREFILL_STRATEGIES = ("tp", "ep")
#: Tokens per forward pass when the caller gives no --chunk: TensorRT-LLM's default
#: max_num_tokens (8192, trtllm-serve), SGLang's chunked_prefill_size on large GPUs (8192)
#: and vLLM V1's max_num_batched_tokens for online serving (8192 on H100/H200-class GPUs).
DEFAULT_CHUNK_TOKENS = 8192


def prefill_calibration(hw, ideal: bool = False, calibration: str | Path | None = None, backend: str | None = None):
    """The measured prefill-attention grids of ``hw`` (None under --ideal, --calibration none, or without data);
    with ``backend``, that framework's own grids where it measured them."""
    if ideal or (calibration is not None and str(calibration) == "none"):
        return None
    from .calibration import prefill as cp

    if calibration is not None and Path(str(calibration)).is_dir():
        return cp.load(Path(str(calibration)))
    return cp.builtin(hw.name if calibration is None else str(calibration), backend)


def check_whole(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SpecError("command line", name, f"must be a whole number >= {low}, got {value!r}")
    if value > MAX_MAGNITUDE:
        raise SpecError("command line", name, f"must be <= {MAX_MAGNITUDE:g}, got {value!r}")
    return int(value)


def check_prefill_layout(layout: Layout, model, cp: int) -> None:
    if layout.strategy not in PREFILL_STRATEGIES:
        raise SpecError("--strategy", "", f"prefill runs strategies {' or '.join(PREFILL_STRATEGIES)} "
                        f"(sequence sharding is --cp), not '{layout.strategy}'")
    check_layout(layout, model)
    check_whole("--cp", cp)


@dataclass(frozen=True)
class PrefillResult:
    """One prefill configuration, as ``helixsim prefill --json`` prints it."""

    model: str
    hardware: str
    backend: str
    strategy: str
    layout: dict
    cp: int
    n_gpus: int
    isl: int
    requests: int
    chunk_tokens: int
    ttft_ms: float
    tokens_per_s_gpu: float
    memory_per_gpu_gb: float
    feasible: bool
    extrapolated: bool
    breakdown_ms: dict = field(default_factory=dict)
    precision: dict = field(default_factory=dict)
    ttft_ms_lo: float = float("nan")    # 80 % interval, with the serving stack's request path (ttft_interval.py)
    ttft_ms_hi: float = float("nan")
    notes: list = field(default_factory=list)

    def to_json_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def evaluate_prefill(model, hw, layouts: LayoutArrays, isl, requests, chunk, cp, prec: Precision, k=None,
                     pcal=None) -> dict[str, np.ndarray]:
    """Vectorised: ttft_ms, per-op ms, memory per GPU (bytes) and flags for arrays of configurations."""
    k = k if k is not None else kernels_for(hw)
    check_precision(hw, prec)
    parts, extrapolated = prefill_time(k, pcal, model, layouts, isl, requests, chunk, cp, prec)
    shape = parts["qkv_proj"].shape
    ttft = sum(parts[key] for key in PREFILL_KEYS)
    isl_a = np.broadcast_to(np.asarray(isl, np.int64), shape)
    cp_a = np.broadcast_to(np.asarray(cp, np.int64), shape)
    req = np.broadcast_to(np.asarray(requests, np.int64), shape)
    mem = memory_per_gpu(k, model, layouts, req, -(-isl_a // cp_a), prec)
    tokens = -(-req // np.broadcast_to(layouts.dp, shape)) * np.minimum(np.broadcast_to(chunk, shape), isl_a) // cp_a
    act = prefill_activation_bytes(model, tokens, layouts.tpf * layouts.ep, k.elem_bytes(prec.activations))
    total = np.broadcast_to(mem.total_bytes, shape) + act
    n_gpus = np.broadcast_to(layouts.n_gpus, shape) * cp_a
    return {"ttft_ms": ttft, "memory_per_gpu_bytes": total, "feasible": total <= hw.hbm_capacity_bytes,
            "extrapolated": np.broadcast_to(extrapolated, shape), "n_gpus": n_gpus,
            "tokens_per_s_gpu": req * isl_a / (ttft / 1000.0) / n_gpus, **parts}


def simulate_prefill(model, hardware, layout: Layout, isl: int, cp: int = 1, requests: int = 1,
                     chunk: int | None = None, precision: Precision | None = None, ideal: bool = False,
                     calibration: str | Path | None = None, backend: str = "trtllm") -> PrefillResult:
    """Prefill ``requests`` prompts of ``isl`` tokens together on one configuration, priced with
    ``backend``'s measured kernels (TensorRT-LLM's where the framework did not measure one)."""
    m, hw = resolve_model(model), resolve_hardware(hardware)
    prec = precision or Precision()
    check_prefill_layout(layout, m, cp)
    isl = check_whole("--isl", isl)
    requests = check_whole("--requests", requests)
    chunk = DEFAULT_CHUNK_TOKENS if chunk is None else check_whole("--chunk", chunk)
    if isl // chunk > 1 << 16:
        raise SpecError("command line", "--chunk", f"{isl // chunk:,} chunks of {chunk} tokens is too many; "
                        "use a larger --chunk")
    k = kernels_for(hw, ideal, calibration, backend)
    pcal = prefill_calibration(hw, ideal, calibration, backend)
    r = evaluate_prefill(m, hw, LayoutArrays.from_layout(layout), isl, requests, chunk, cp, prec, k, pcal)
    from .ttft_interval import attention_doublings, prefill_attention_top_isl, ttft_interval_ms

    ext_attention = r["attention"] * r["extrapolated"]
    lo, hi = ttft_interval_ms(r["ttft_ms"], ext_attention,
                              attention_doublings(isl, prefill_attention_top_isl(k, pcal, m, prec)), backend, ideal)
    notes = []
    if not ideal:
        notes.append("ttft_ms is the GPU work before the first token; ttft_ms_lo/hi (80 % interval) add the "
                     f"kernel spread and {backend}'s request path through the serving stack (HTTP, tokenising, "
                     "scheduling, streaming), measured as TTFT - prediction on short-prompt runs, not modelled")
    if bool(r["extrapolated"][0]):
        notes.append("prefill attention beyond the measured prompt lengths (or without measured kernels): "
                     "time grows with the causal FLOPs at the last measured efficiency")
    return PrefillResult(
        model=m.name, hardware=hw.name, backend=backend, strategy=layout.strategy, layout=layout.as_dict(), cp=int(cp),
        n_gpus=int(r["n_gpus"][0]), isl=isl, requests=requests, chunk_tokens=min(chunk, isl),
        ttft_ms=float(r["ttft_ms"][0]), tokens_per_s_gpu=float(r["tokens_per_s_gpu"][0]),
        memory_per_gpu_gb=float(r["memory_per_gpu_bytes"][0]) / 1e9, feasible=bool(r["feasible"][0]),
        extrapolated=bool(r["extrapolated"][0]),
        breakdown_ms={key: float(r[key][0]) for key in PREFILL_KEYS},
        ttft_ms_lo=float(lo[0]), ttft_ms_hi=float(hi[0]),
        precision={"weights": prec.weights, "kv_cache": prec.kv_cache, "activations": prec.activations,
                   "attention_math": prec.attention_math_dtype},
        notes=notes)
