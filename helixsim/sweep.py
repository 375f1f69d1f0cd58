"""Sweep files (``sweeps/<name>.yaml``): a study described once, run by ``helixsim sweep``.

A sweep is a model, a hardware system, precisions, a GPU budget, the
strategies and pipeline depths to search, a batch cap, one or more contexts
and HOP-B on/off. Its outputs: the full table (CSV), the frontier table, and
plots (PNG and SVG), each written to a temporary file and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from . import __version__
from .api import resolve_hardware, resolve_model
from .backends import check_backend
from .errors import SpecError, closest
from .layout import STRATEGIES
from .precision import Precision
from .search import SearchSpace, frontiers, search
from .specs._schema import from_mapping, read_yaml
from .specs.registry import _looks_like_path, builtin_names, data_dir

_WIDTH = {"max": 4096}


@dataclass(frozen=True)
class PrecisionSpec:
    weights: str = "fp8"
    kv_cache: str = "fp8"
    activations: str = "bf16"
    attention_math: Optional[str] = None
    dense_weights: Optional[str] = None

    def build(self, source: str) -> Precision:
        try:
            return Precision(self.weights, self.kv_cache, self.activations, self.attention_math,
                             dense_weights=self.dense_weights)
        except SpecError as err:
            raise SpecError(source, f"precision.{err.field.lstrip('-').replace('-', '_')}", err.problem) from None


@dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str
    models: tuple[str, ...]
    hardware: str
    contexts: tuple[int, ...]
    precision: PrecisionSpec = PrecisionSpec()
    strategies: tuple[str, ...] = STRATEGIES
    max_gpus: Optional[int] = field(default=None, metadata=_WIDTH)
    pp: tuple[int, ...] = (1,)
    hopb: tuple[bool, ...] = (True,)
    max_batch: int = field(default=4096, metadata={"max": 1 << 20})
    ideal: bool = False
    backend: str = "trtllm"     # serving framework whose measured kernels price it (helixsim/backends.py)
    mtp: tuple[int, ...] = (0,)   # MTP draft tokens per step to search (helixsim/cost/mtp.py)

    def space(self) -> SearchSpace:
        return SearchSpace(strategies=self.strategies, max_gpus=self.max_gpus, pp=self.pp, hopb=self.hopb,
                           max_batch=self.max_batch, contexts=self.contexts, mtp=self.mtp)


def load_sweep(name_or_path: str) -> tuple[SweepSpec, Path]:
    """A built-in sweep by name or a sweep YAML path, checked field by field."""
    path = Path(name_or_path)
    if not path.suffix:
        path = data_dir("sweeps") / f"{name_or_path}.yaml"
        if not path.is_file():
            names = builtin_names("sweeps")
            raise SpecError("sweep", "", f"unknown sweep '{name_or_path}'{closest(name_or_path, names)}; known: {', '.join(names)}")
    spec = from_mapping(SweepSpec, read_yaml(path), str(path))
    for i, s in enumerate(spec.strategies):
        if s not in STRATEGIES:
            raise SpecError(str(path), f"strategies[{i}]", f"unknown strategy '{s}'{closest(s, STRATEGIES)}; known: {', '.join(STRATEGIES)}")
    for i, p in enumerate(spec.pp):
        if p & (p - 1):
            raise SpecError(str(path), f"pp[{i}]", f"must be a power of two, got {p}")
    spec.precision.build(str(path))
    check_backend(spec.backend, "backend", str(path))
    for i, n in enumerate(spec.mtp):
        if not 0 <= n <= 16:
            raise SpecError(str(path), f"mtp[{i}]", f"must be 0..16 draft tokens, got {n}")
    for i, m in enumerate(spec.models):
        try:
            resolve_model(m)
        except SpecError as err:
            raise SpecError(str(path), f"models[{i}]", err.problem) from None
    try:
        resolve_hardware(spec.hardware)
    except SpecError as err:
        raise SpecError(str(path), "hardware", err.problem) from None
    return spec, path


@dataclass
class SweepResult:
    spec: SweepSpec
    model: str
    table: pd.DataFrame
    frontiers: dict[str, pd.DataFrame]
    seconds: float


def run_sweep(spec: SweepSpec, source: str = "sweep", calibration=None, progress=None,
              ideal: bool | None = None) -> list[SweepResult]:
    """Run the sweep for each of its models (``ideal`` overrides the file's setting)."""
    hw = resolve_hardware(spec.hardware)
    results = []
    for name in spec.models:
        start = time.perf_counter()
        table = search(resolve_model(name), hw, spec.space(), spec.precision.build(source),
                       ideal=spec.ideal if ideal is None else ideal,
                       calibration=calibration, progress=progress, backend=spec.backend)
        results.append(SweepResult(spec, name, table, frontiers(table), time.perf_counter() - start))
    return results


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def provenance(spec: SweepSpec, model: str, sweep_path: Path | None) -> str:
    """A one-line header naming the helixsim version and hashes of the spec files used."""
    parts = [f"helixsim {__version__}"]
    for kind, name in (("sweep", None), ("models", model), ("hardware", spec.hardware)):
        path = sweep_path if kind == "sweep" else (Path(name) if _looks_like_path(name) else data_dir(kind) / f"{name}.yaml")
        if path is not None and Path(path).is_file():
            parts.append(f"{Path(path).name}={file_sha256(path)}")
    return "# " + "; ".join(parts)


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename: no half-written outputs."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> the mode a plain open() would give
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_out_dir(out: Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpecError(str(out), "--out", f"cannot create directory ({err.strerror})") from None
    if not os.access(out, os.W_OK):
        raise SpecError(str(out), "--out", "directory is not writable")
    return out


def write_table(df: pd.DataFrame, path: Path, header: str) -> None:
    atomic_write_text(path, header + "\n" + df.to_csv(index=False, float_format="%.6g"))


def write_sweep_outputs(result: SweepResult, out: Path, sweep_path: Path | None = None) -> list[Path]:
    """Full table, frontier table, frontier plot and breakdown plot."""
    from .plots import plot_breakdown, plot_frontiers

    out = prepare_out_dir(out)
    header = provenance(result.spec, result.model, sweep_path)
    # a model given as a file contributes its stem: "/x/y/llama.yaml" must not become a folder in the output name
    tag = Path(result.model).name.removesuffix(".json").removesuffix(".config").removesuffix(".yaml").removesuffix(".yml")
    name = f"{result.spec.name}-{tag}" if len(result.spec.models) > 1 else result.spec.name
    written = [out / f"{name}.csv", out / f"{name}-frontier.csv"]
    write_table(result.table, written[0], header)
    fr = pd.concat([f.assign(frontier=k) for k, f in result.frontiers.items()], ignore_index=True)
    write_table(fr, written[1], header)
    title = f"{result.model} on {result.spec.hardware}, context {', '.join(f'{c:,}' for c in result.spec.contexts)}"
    shown = {k: v for k, v in result.frontiers.items()
             if k in ("Helix", "Helix HOP-B off", "Best baseline", "Medha", "Medha+EP (extension)", "Helix no MTP",
                      "Best baseline no MTP") and len(v)}
    written += plot_frontiers(shown, out / f"{name}-frontier", title, bands=("Helix", "Best baseline"))
    if len(result.frontiers.get("Helix", [])):
        written += plot_breakdown(result.frontiers["Helix"], out / f"{name}-helix-breakdown", f"Helix frontier: {title}")
    if len(result.frontiers.get("Best baseline", [])):
        written += plot_breakdown(result.frontiers["Best baseline"], out / f"{name}-baseline-breakdown",
                                  f"Best-baseline frontier: {title}")
    return written
