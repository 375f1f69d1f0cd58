"""The library API a notebook calls; the CLI is a thin shell over it.

>>> from helixsim.api import simulate_point
>>> r = simulate_point("llama-3.1-405b", "gb200-nvl72", Layout("helix", kvp=8, tpa=8, tpf=64),
...                    batch=8, context=1_000_000, precision=Precision(kv_cache="fp8"), ideal=True)
>>> round(r.breakdown_ms["attention"], 3)
4.032
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
from ._lazy import pandas as pd  # imported on first use (helixsim._lazy)

from .cost.kernels import RooflineKernels
from .cost.memory import largest_batch, memory_per_gpu
from .cost.rows import broadcast_view
from .cost.step import BREAKDOWN_KEYS
from .efficiency import IDEAL
from .errors import SpecError
from .layout import STRATEGIES, Layout, LayoutArrays, check_layout
from .precision import Precision
from .specs._schema import MAX_MAGNITUDE
from .specs.hardware import HardwareSpec
from .specs.model import ModelSpec
from .specs.registry import load_efficiency, load_hardware, load_model


def resolve_model(model: str | ModelSpec) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else load_model(model)


def resolve_hardware(hardware: str | HardwareSpec) -> HardwareSpec:
    return hardware if isinstance(hardware, HardwareSpec) else load_hardware(hardware)


def kernels_for(hw: HardwareSpec, ideal: bool = False, calibration: str | Path | None = None,
                backend: str = "trtllm"):
    """The kernel model: textbook roofline (ideal), a calibration where one exists, else default constants.

    ``calibration="none"`` asks for the uncalibrated roofline with the default efficiencies.
    ``backend`` (trtllm, sglang, vllm): whose measured kernels price the step, falling back to
    TensorRT-LLM's (:mod:`helixsim.backends`).
    """
    from .backends import backend_kernels, check_backend

    check_backend(backend)
    if ideal:
        return RooflineKernels(hw, IDEAL)
    roofline = RooflineKernels(hw, load_efficiency(hw.base or hw.name))  # a what-if keeps its base's
    if calibration is not None and str(calibration) == "none":
        return roofline
    from .calibration.stored import builtin_calibration_path
    from .calibration.kernels import calibrated_kernels

    trtllm = calibrated_kernels(roofline, calibration)
    if backend == "trtllm":
        return trtllm
    root = builtin_calibration_path(hw.name) if calibration is None else (
        Path(calibration) if Path(calibration).exists() else builtin_calibration_path(str(calibration)))
    return backend_kernels(trtllm, backend, root)


def check_precision(hw: HardwareSpec, prec: Precision) -> None:
    """Attention math must run on tensor cores the GPU has."""
    if hw.dense_tflops.for_dtype(prec.attention_math_dtype) is None:
        raise SpecError("--attention-math", "", f"{hw.gpu} has no {prec.attention_math_dtype} tensor cores")


def evaluate(model: ModelSpec, hw: HardwareSpec, layouts: LayoutArrays, batch, context,
             precision: Precision, kernels=None, mtp=0, acceptance=None, rows=None,
             two_batch_overlap: bool = False) -> pd.DataFrame:
    """Evaluate every configuration (arrays broadcast together) in one vectorised pass.

    Returns one row per configuration with the layout, n_gpus, batch,
    context, ttl_ms with its 80 % interval (ttl_ms_lo, ttl_ms_hi) and the
    share of it priced outside the measured kernel domain
    (extrapolated_fraction; :mod:`helixsim.uncertainty`), tokens_per_s_user,
    tokens_per_s_gpu, memory, feasibility and the per-op breakdown (``<op>_ms``
    columns). ``frame.attrs["kernel_model"]`` maps each breakdown op to the
    kernel model that priced most of it. ``mtp``: draft tokens per request and
    step (speculative decoding, :mod:`helixsim.cost.mtp`, with per-position
    ``acceptance`` rates, default DeepSeek-R1's); ttl_ms is then the step time and
    tokens/s count the expected accepted tokens. ``rows``: index arrays into the
    broadcast shape of the inputs; only those configurations are returned (a sweep
    prices a grid of (layout, batch) x contexts, the context-free terms once per
    (layout, batch), and keeps the cells that fit). ``strategy`` is categorical.
    """
    columns, kernel_model = _evaluate(model, hw, layouts, batch, context, precision, kernels, mtp, acceptance, rows,
                                      two_batch_overlap)
    out = frame_from_columns(columns)
    out.attrs["kernel_model"] = dict(kernel_model)
    return out


def frame_from_columns(columns: dict) -> pd.DataFrame:
    """The DataFrame of :func:`evaluate_columns`' arrays (strategy codes become a categorical)."""
    columns, bases = dict(columns), set()
    for key, value in columns.items():
        # the frame takes the arrays as they are (copying 28 columns into one block cost a tenth of a
        # sweep), so each must be its own writable array
        if isinstance(value, np.ndarray):
            base = value if value.base is None else value.base
            if not value.flags.writeable or id(base) in bases:
                value = columns[key] = value.copy()
                base = value
            bases.add(id(base))
    columns["strategy"] = pd.Categorical.from_codes(columns["strategy"], categories=pd.Index(STRATEGIES))
    return pd.DataFrame(columns, copy=False)


def evaluate_columns(model: ModelSpec, hw: HardwareSpec, layouts: LayoutArrays, batch, context,
                     precision: Precision, kernels=None, mtp=0, acceptance=None, rows=None,
                     two_batch_overlap: bool = False, tail: dict | None = None) -> dict[str, np.ndarray]:
    """:func:`evaluate` as one flat numpy array per column (``strategy`` as codes into STRATEGIES). With
    ``rows``, ``tail`` (columns of the same names) is appended after the picked cells: a sweep's
    capacity-edge rows after its grid, written once into each column."""
    return _evaluate(model, hw, layouts, batch, context, precision, kernels, mtp, acceptance, rows,
                     two_batch_overlap, tail)[0]


def _evaluate(model: ModelSpec, hw: HardwareSpec, layouts: LayoutArrays, batch, context, precision: Precision,
              kernels=None, mtp=0, acceptance=None, rows=None,
              two_batch_overlap: bool = False, tail: dict | None = None) -> tuple[dict[str, np.ndarray], Mapping[str, str]]:
    from .uncertainty import interval_sums, model_name, ordered_sum, step_provenance
    from .cost.mtp import DEFAULT_ACCEPTANCE, accepted_tokens_per_step, draft_ms

    k = kernels if kernels is not None else kernels_for(hw)
    check_precision(hw, precision)
    batch = np.asarray(batch, dtype=np.int64)
    context = np.asarray(context, dtype=np.int64)
    mtp = np.asarray(mtp, dtype=np.int64)
    acceptance = DEFAULT_ACCEPTANCE if acceptance is None else acceptance
    parts, prov = step_provenance(k, model, layouts, batch, context, precision, q_len=1 + mtp)
    parts["mtp"] = draft_ms(k, model, layouts, batch, context, precision, mtp)
    shape = np.broadcast(parts["qkv_proj"], parts["mtp"]).shape
    parts = {key: broadcast_view(v, shape) for key, v in parts.items()}
    if two_batch_overlap:   # ep layouts as two overlapped micro-batches (helixsim.cost.wideep)
        from .cost.wideep import apply_two_batch_overlap

        parts = apply_two_batch_overlap(parts, k, model, layouts, batch, context, precision, q_len=1 + mtp)
    # the step time: sum() of the ops without its temporaries; of a sweep's kept cells, summed over their picked
    # breakdown columns below (the same additions per cell, on the cells kept, not on the whole grid)
    ttl = None if rows is not None else broadcast_view(ordered_sum(parts[key] for key in BREAKDOWN_KEYS), shape)
    kernel_model = model_name(k)
    mem = memory_per_gpu(k, model, layouts, batch, context, precision, mtp)
    max_b = broadcast_view(largest_batch(mem, layouts, hw.hbm_capacity_bytes), shape)
    total = broadcast_view(mem.total_bytes, shape)
    n_gpus = broadcast_view(layouts.n_gpus, shape)
    b = broadcast_view(batch, shape)
    frame = {
        "strategy": broadcast_view(layouts.strategy, shape),
        **{name: broadcast_view(getattr(layouts, name), shape) for name in ("kvp", "tpa", "dp", "tpf", "ep", "pp", "hopb")},
        "n_gpus": n_gpus, "batch": b, "context": broadcast_view(context, shape),
        **({"mtp": broadcast_view(mtp, shape)} if (mtp > 0).any() else {}),
        **({"two_batch_overlap": np.full(shape, True)} if two_batch_overlap else {}),
        "ttl_ms": ttl, "ttl_ms_lo": None, "ttl_ms_hi": None, "extrapolated_fraction": None,   # derived from the
        "tokens_per_s_user": None, "tokens_per_s_gpu": None,                                  # picked cells, below
        "memory_per_gpu_gb": None, "weights_per_gpu_gb": broadcast_view(mem.weights_bytes / 1e9, shape),
        "kv_per_gpu_gb": broadcast_view(mem.kv_bytes / 1e9, shape),
        "feasible": None, "max_batch": max_b,
        **{f"{key}_ms": parts[key] for key in BREAKDOWN_KEYS},
    }
    if rows is not None:   # the cells as flat indices and as runs along the first axis, found once
        runs = _runs(rows[0], shape[0])
        tail_runs = None if tail is None or runs is None else np.concatenate(
            [runs, np.ones(len(tail["batch"]), runs.dtype)])   # each tail row once, after the grid's runs
        rows = Picked(rows, np.ravel_multi_index(rows, shape), runs, tail_runs)
    columns = {key: value if value is None else np.ravel(value) if rows is None else
               _pick(value, shape, rows, None if tail is None else tail[key]) for key, value in frame.items()}
    if rows is not None:   # (a tail's own step times are this same sum of its own ops)
        columns["ttl_ms"] = ordered_sum(columns[f"{key}_ms"] for key in BREAKDOWN_KEYS)
    per_cell = {"total": total, "tokens": 1000.0 * accepted_tokens_per_step(mtp, acceptance),
                **interval_sums(prov, kernel_model)}
    per_cell = {key: np.ravel(broadcast_view(value, shape)) if rows is None else _pick(np.broadcast_to(value, shape),
                shape, rows) for key, value in per_cell.items()}
    columns.update(_derived_columns(columns, per_cell, hw.hbm_capacity_bytes, kernel_model, tail))
    return columns, prov.kernel_model   # a mapping found on first use (uncertainty._OpModels)


def _derived_columns(columns: dict, per_cell: dict, hbm_bytes, kernel_model_name: str,
                     tail: dict | None) -> dict[str, np.ndarray]:
    """The interval, throughput, memory and feasibility of the picked cells, from their picked step time, batch
    and GPU count (``columns``) and memory in bytes, tokens per step x 1000 and the interval's sums (``per_cell``,
    the picked cells only): the same elementwise arithmetic as on the whole grid, done on the cells kept.
    ``tail``'s rows follow, as they are."""
    from .uncertainty import interval_from_sums

    n = len(per_cell["total"])
    ttl, b, n_gpus = (columns[key][:n] for key in ("ttl_ms", "batch", "n_gpus"))
    total, tokens = per_cell["total"], per_cell["tokens"]
    out = {key: np.empty(n + (0 if tail is None else len(tail[key])), dtype)
           for key, dtype in (("ttl_ms_lo", float), ("ttl_ms_hi", float), ("extrapolated_fraction", float),
                              ("tokens_per_s_user", float), ("tokens_per_s_gpu", float),
                              ("memory_per_gpu_gb", float), ("feasible", bool))}
    if tail is not None:
        for key, column in out.items():
            column[n:] = tail[key]
    for key, value in interval_from_sums(ttl, per_cell, kernel_model_name).items():
        out[key][:n] = value
    tps_user = np.divide(tokens, ttl, out=out["tokens_per_s_user"][:n])
    np.divide(b * tps_user, n_gpus, out=out["tokens_per_s_gpu"][:n])
    np.divide(total, 1e9, out=out["memory_per_gpu_gb"][:n])
    np.less_equal(total, hbm_bytes, out=out["feasible"][:n])
    return out


class Picked(NamedTuple):
    """Cells of a grid to keep: ``rows`` (one index array per axis), the same as ``flat`` indices into the
    grid's shape, and ``runs``: each first-axis index's number of cells where ``rows[0]`` is sorted (as
    np.nonzero gives it), else None."""

    rows: tuple
    flat: np.ndarray
    runs: np.ndarray | None
    tail_runs: np.ndarray | None = None   # runs, then a 1 per row of a tail appended after the cells


def _runs(first: np.ndarray, n: int) -> np.ndarray | None:
    """Cells per index of an axis of length ``n`` where the indices ``first`` are sorted, else None."""
    if len(first) > 1 and np.any(first[1:] < first[:-1]):
        return None
    return np.bincount(first, minlength=n)


def _pick(value, shape: tuple, picked: Picked, tail=None) -> np.ndarray:
    """Cells ``picked`` of ``value`` broadcast to ``shape``, indexing only the axes ``value`` varies along (a
    column that depends on the layout alone is not expanded first, nor a broadcast view). ``take`` of flat
    indices: a quarter of the time of indexing with a tuple of arrays, the same elements; a column varying
    along the first axis alone, each value repeated over its run of cells (np.repeat: a third of take's
    time, the same elements). ``tail``: values appended after them, in the same new array (no second copy
    to concatenate)."""
    from .uncertainty import compact

    rows, flat = picked.rows, picked.flat
    value = compact(value)
    if value.ndim < len(shape):
        value = value.reshape((1,) * (len(shape) - value.ndim) + value.shape)
    n = len(rows[0])
    varies = [i for i, m in enumerate(value.shape) if m > 1]
    if tail is not None and varies == [0] and picked.tail_runs is not None:
        # the rows' values and the tail's in one array, repeated once: each row over its run, each tail value
        # once (the elements of repeating the rows and writing the tail after them, without that copy)
        dtype = np.result_type(value, tail)
        both = np.concatenate([value.reshape(-1).astype(dtype, copy=False), np.asarray(tail).astype(dtype, copy=False)])
        return np.repeat(both, picked.tail_runs)
    out = None
    if tail is not None:
        out = np.empty(n + len(tail), np.result_type(value, tail))
        out[n:] = tail
        if out.dtype != value.dtype:
            out[:n] = _pick(value, shape, picked)
            return out
    if not varies:
        if out is None:
            return np.broadcast_to(value.ravel()[:1], (n,)).copy()
        out[:n] = value.ravel()[0]
        return out
    if varies == [0] and picked.runs is not None:
        if out is None:
            return np.repeat(value.reshape(-1), picked.runs)
        out[:n] = np.repeat(value.reshape(-1), picked.runs)
        return out
    if len(varies) == 1 or value.shape == tuple(shape):
        index = rows[varies[0]] if len(varies) == 1 else flat
        if out is None:
            return value.reshape(-1).take(index)
        value.reshape(-1).take(index, out=out[:n], mode="clip")   # "clip": unbuffered; the indices are in range
        return out
    cells = value[tuple(r if m > 1 else 0 for r, m in zip(rows, value.shape))]
    if out is None:
        return cells
    out[:n] = cells
    return out


@dataclass(frozen=True)
class PointResult:
    """One configuration, as ``helixsim point --json`` prints it."""

    model: str
    hardware: str
    strategy: str
    layout: dict
    n_gpus: int
    batch: int
    context: int
    ttl_ms: float
    ttl_ms_lo: float
    ttl_ms_hi: float
    extrapolated_fraction: float
    tokens_per_s_user: float
    tokens_per_s_gpu: float
    memory_per_gpu_gb: float
    feasible: bool
    infeasible_reason: str | None
    max_batch: int
    breakdown_ms: dict = field(default_factory=dict)
    kernel_model: dict = field(default_factory=dict)
    precision: dict = field(default_factory=dict)
    ideal: bool = False
    backend: dict = field(default_factory=dict)
    mtp: dict = field(default_factory=dict)
    two_batch_overlap: bool = False
    eplb: bool = False

    def to_json_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def infeasible_reason(row: Mapping, hw: HardwareSpec) -> str | None:
    if row["feasible"]:
        return None
    cap = hw.hbm_capacity_bytes / 1e9
    if row["max_batch"] < 1:
        return (f"weights alone ({row['weights_per_gpu_gb']:.1f} GB per GPU) leave no room for one request "
                f"in {cap:.1f} GB of HBM")
    return (f"needs {row['memory_per_gpu_gb']:.1f} GB per GPU, HBM holds {cap:.1f} GB; "
            f"largest batch that fits: {int(row['max_batch'])}")


def simulate_point(model: str | ModelSpec, hardware: str | HardwareSpec, layout: Layout, batch: int,
                   context: int, precision: Precision | None = None, ideal: bool = False,
                   calibration: str | Path | None = None, backend: str = "trtllm", mtp: int = 0,
                   acceptance=None, two_batch_overlap: bool = False, eplb: bool = False) -> PointResult:
    """Simulate one decode step of one configuration (kernels of serving framework ``backend``;
    ``mtp`` draft tokens of speculative decoding with per-position ``acceptance`` rates; ``eplb``: the MoE
    routed as after expert load balancing, :data:`helixsim.cost.wideep.EPLB_ROUTING`)."""
    from .cost.mtp import DEFAULT_ACCEPTANCE, check_acceptance, mtp_summary

    m, hw = resolve_model(model), resolve_hardware(hardware)
    prec = precision or Precision()
    check_layout(layout, m)
    if isinstance(mtp, bool) or not isinstance(mtp, (int, np.integer)) or not 0 <= mtp <= 16:
        raise SpecError("command line", "--mtp", f"must be a whole number of draft tokens in 0..16, got {mtp!r}")
    acceptance = DEFAULT_ACCEPTANCE if acceptance is None else check_acceptance(acceptance)
    for name, value in (("--batch", batch), ("--context", context)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SpecError("command line", name, f"must be a whole number >= 1, got {value!r}")
        if value > MAX_MAGNITUDE:  # beyond this the int64 arithmetic of the cost model would overflow
            raise SpecError("command line", name, f"must be <= {MAX_MAGNITUDE:g}, got {value!r}")
    k = kernels_for(hw, ideal, calibration, backend)
    if eplb:
        from .cost.wideep import use_eplb_routing

        use_eplb_routing(k)
    if hasattr(k, "reset_log"):
        k.reset_log()
    # the columns of evaluate() without its DataFrame: one point need not import pandas
    columns, kernel_model = _evaluate(m, hw, LayoutArrays.from_layout(layout), batch, context, prec, k, mtp,
                                      acceptance, two_batch_overlap=two_batch_overlap)
    row = {key: value[0] for key, value in columns.items()}
    return PointResult(
        model=m.name, hardware=hw.name, strategy=layout.strategy, layout=layout.as_dict(),
        n_gpus=int(row["n_gpus"]), batch=int(batch), context=int(context), ttl_ms=float(row["ttl_ms"]),
        ttl_ms_lo=float(row["ttl_ms_lo"]), ttl_ms_hi=float(row["ttl_ms_hi"]),
        extrapolated_fraction=float(row["extrapolated_fraction"]),
        tokens_per_s_user=float(row["tokens_per_s_user"]), tokens_per_s_gpu=float(row["tokens_per_s_gpu"]),
        memory_per_gpu_gb=float(row["memory_per_gpu_gb"]), feasible=bool(row["feasible"]),
        infeasible_reason=infeasible_reason(row, hw), max_batch=int(row["max_batch"]),
        breakdown_ms={key: float(row[f"{key}_ms"]) for key in BREAKDOWN_KEYS},
        kernel_model=dict(kernel_model),
        precision={"weights": prec.weights, "kv_cache": prec.kv_cache, "activations": prec.activations,
                   "attention_math": prec.attention_math_dtype},
        ideal=ideal,
        backend=backend_summary(backend, k),
        mtp=mtp_summary(mtp, acceptance),
        two_batch_overlap=bool(two_batch_overlap),
        eplb=bool(eplb),
    )


def backend_summary(backend: str, kernels) -> dict:
    """The serving framework of a result and, per breakdown op, whose measured kernels priced it."""
    from .backends import DEFAULTS

    d = DEFAULTS[backend]
    out = {"name": backend, "defaults": d.source}
    if hasattr(kernels, "kernel_model"):
        out["kernel_model"] = kernels.kernel_model()
    elif backend != "trtllm":
        out["kernel_model"] = "trtllm: no calibrated kernels in use (roofline), nothing framework-specific"
    return out
