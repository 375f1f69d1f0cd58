"""Sweep files (``sweeps/<name>.yaml``): a study described once, run by ``helixsim sweep``.

A sweep is a model, a hardware system, precisions, a GPU budget, the
strategies and pipeline depths to search, a batch cap, one or more contexts
and HOP-B on/off. Its outputs: the full table (CSV), the frontier table, and
plots (PNG and SVG), each written to a temporary file and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import pandas as pd

from . import __version__
from .api import resolve_hardware, resolve_model
from .backends import check_backend
from .errors import SpecError, closest
from .layout import STRATEGIES
from .outputs import atomic_write_bytes
from .precision import Precision, default_weights
from .search import SearchSpace, frontiers, search
from .specs._schema import TOKENS, from_mapping, read_yaml
from .specs.registry import _looks_like_path, builtin_names, data_dir

_WIDTH = {"max": 4096}


@dataclass(frozen=True)
class PrecisionSpec:
    weights: Optional[str] = None  # None: helixsim.precision.default_weights of the sweep's hardware
    kv_cache: str = "fp8"
    activations: str = "bf16"
    attention_math: Optional[str] = None
    dense_weights: Optional[str] = None

    def build(self, source: str, hw=None) -> Precision:
        weights = self.weights or (default_weights(hw) if hw is not None else "fp8")
        try:
            return Precision(weights, self.kv_cache, self.activations, self.attention_math,
                             dense_weights=self.dense_weights)
        except SpecError as err:
            raise SpecError(source, f"precision.{err.field.lstrip('-').replace('-', '_')}", err.problem) from None


@dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str
    models: tuple[str, ...]
    hardware: tuple[str, ...]      # one system or several (``hardware: gb200-nvl72`` or ``[a, b]``)
    contexts: tuple[int, ...] = field(metadata=TOKENS)
    precision: PrecisionSpec = PrecisionSpec()
    strategies: tuple[str, ...] = STRATEGIES
    max_gpus: Optional[int] = field(default=None, metadata=_WIDTH)
    pp: tuple[int, ...] = (1,)
    hopb: tuple[bool, ...] = (True,)
    max_batch: int = field(default=4096, metadata={"max": 1 << 20})
    ideal: bool = False
    backend: str = "trtllm"     # serving framework whose measured kernels price it (helixsim/backends.py)
    mtp: tuple[int, ...] = field(default=(0,), metadata={"nonneg": True, "max": 16})   # MTP drafts (cost/mtp.py)
    two_batch_overlap: tuple[bool, ...] = (False,)   # ep layouts with/without TBO (helixsim/cost/wideep.py)
    every_batch: bool = False      # every batch up to the largest that fits, not the 1, 2, 3, 4, 6, 8, ... grid
    widths: tuple[int, ...] = field(default=(), metadata=_WIDTH)   # layout widths (default: powers of two)

    def space(self) -> SearchSpace:
        return SearchSpace(strategies=self.strategies, max_gpus=self.max_gpus, pp=self.pp, hopb=self.hopb,
                           max_batch=self.max_batch, contexts=self.contexts, mtp=self.mtp,
                           two_batch_overlap=self.two_batch_overlap,
                           every_batch=self.every_batch, widths=self.widths or None)


def dedupe_lists(spec: SweepSpec) -> SweepSpec:
    """The spec with repeated entries of its lists dropped (first kept): ``strategies: [helix, helix]``
    would price every layout twice and double the frontier."""
    return replace(spec, **{f: tuple(dict.fromkeys(getattr(spec, f)))
                            for f in ("models", "hardware", "contexts", "strategies", "pp", "hopb", "mtp",
                                      "two_batch_overlap")})


def _beside(model: str, sweep_path: Path) -> str:
    """A relative model path in a sweep YAML names a file beside the YAML (as an include would);
    the working directory is tried only when no such file is there."""
    if not _looks_like_path(model) or Path(model).is_absolute():
        return model
    candidate = sweep_path.parent / model
    return str(candidate) if candidate.exists() or not Path(model).exists() else model


def load_sweep(name_or_path: str) -> tuple[SweepSpec, Path]:
    """A built-in sweep by name or a sweep YAML path, checked field by field."""
    path = Path(name_or_path)
    if not path.suffix:
        path = data_dir("sweeps") / f"{name_or_path}.yaml"
        if not path.is_file():
            names = builtin_names("sweeps")
            raise SpecError("sweep", "", f"unknown sweep '{name_or_path}'{closest(name_or_path, names)}; known: {', '.join(names)}")
    raw = read_yaml(path)
    if isinstance(raw, dict) and isinstance(raw.get("hardware"), str):
        raw = {**raw, "hardware": [raw["hardware"]]}
    spec = dedupe_lists(from_mapping(SweepSpec, raw, str(path)))
    spec = replace(spec, models=tuple(_beside(m, path) for m in spec.models))
    for i, s in enumerate(spec.strategies):
        if s not in STRATEGIES:
            raise SpecError(str(path), f"strategies[{i}]", f"unknown strategy '{s}'{closest(s, STRATEGIES)}; known: {', '.join(STRATEGIES)}")
    for i, p in enumerate(spec.pp):
        if p & (p - 1):
            raise SpecError(str(path), f"pp[{i}]", f"must be a power of two, got {p}")
    spec.precision.build(str(path))  # names checked; the default weights follow each system
    check_backend(spec.backend, "backend", str(path))
    for i, n in enumerate(spec.mtp):
        if not 0 <= n <= 16:
            raise SpecError(str(path), f"mtp[{i}]", f"must be 0..16 draft tokens, got {n}")
    for i, m in enumerate(spec.models):
        try:
            model = resolve_model(m)
        except SpecError as err:
            raise SpecError(str(path), f"models[{i}]", err.problem) from None
        for j, p in enumerate(spec.pp):  # more stages than layers (or GPUs) prices nothing: an empty table
            if p > model.num_layers or (spec.max_gpus is not None and p > spec.max_gpus):
                limit = (f"{model.name}'s {model.num_layers} layers" if p > model.num_layers
                         else f"max_gpus {spec.max_gpus}")
                raise SpecError(str(path), f"pp[{j}]", f"{p} pipeline stages exceed {limit}")
    for i, h in enumerate(spec.hardware):
        try:
            resolve_hardware(h)
        except SpecError as err:
            raise SpecError(str(path), f"hardware[{i}]", err.problem) from None
    return spec, path


@dataclass
class SweepResult:
    spec: SweepSpec
    model: str
    table: pd.DataFrame
    frontiers: dict[str, pd.DataFrame]
    seconds: float
    hardware: str = ""


def run_sweep(spec: SweepSpec, source: str = "sweep", calibration=None, progress=None,
              ideal: bool | None = None) -> list[SweepResult]:
    """Run the sweep in memory for each of its models and systems (``ideal`` overrides the file's setting).
    ``helixsim sweep`` streams instead (:func:`helixsim.stream.stream_model`)."""
    results = []
    for name in spec.models:
        for hw_name in spec.hardware:
            start = time.perf_counter()
            table = search(resolve_model(name), resolve_hardware(hw_name), spec.space(), spec.precision.build(source, resolve_hardware(hw_name)),
                           ideal=spec.ideal if ideal is None else ideal,
                           calibration=calibration, progress=progress, backend=spec.backend)
            results.append(SweepResult(spec, name, table, frontiers(table), time.perf_counter() - start, hw_name))
    return results


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def provenance(spec: SweepSpec, model: str, sweep_path: Path | None) -> dict:
    """The helixsim version and the sha256 (first 16 hex digits) of every spec file used, in order:
    the sweep, the model, each hardware system. Kept in Parquet metadata and in ``provenance.json``."""
    inputs = []
    for kind, name in [("sweep", None), ("models", model)] + [("hardware", h) for h in spec.hardware]:
        path = sweep_path if kind == "sweep" else (Path(name) if _looks_like_path(name) else data_dir(kind) / f"{name}.yaml")
        if path is not None and Path(path).is_file():
            inputs.append([Path(path).name, file_sha256(path)])
    return {"helixsim": __version__, "sweep": spec.name, "model": model, "inputs": inputs}


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename: no half-written outputs."""
    atomic_write_bytes(path, text.encode("utf-8"))


def prepare_out_dir(out: Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpecError(str(out), "--out", f"cannot create directory ({err.strerror})") from None
    if not os.access(out, os.W_OK):
        raise SpecError(str(out), "--out", "directory is not writable")
    return out


def write_provenance(out: Path, entries: dict[str, dict]) -> Path:
    """Merge ``entries`` (output file name -> provenance) into ``out/provenance.json``."""
    path = Path(out) / "provenance.json"
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
    data.update(entries)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def output_name(spec: SweepSpec, model: str) -> str:
    # a model given as a file contributes its stem: "/x/y/llama.yaml" must not become a folder in the output name
    tag = Path(model).name.removesuffix(".json").removesuffix(".config").removesuffix(".yaml").removesuffix(".yml")
    return f"{spec.name}-{tag}" if len(spec.models) > 1 else spec.name


def write_sweep_outputs(result: SweepResult | list[SweepResult], out: Path, sweep_path: Path | None = None,
                        fmt: str = "parquet") -> list[Path]:
    """Full table and frontier table (``fmt``: parquet or csv; a ``hardware`` column), provenance.json,
    and per (system, context) a frontier plot and the Helix and best-baseline breakdown plots.
    ``result``: one model's results (one per system)."""
    from .stream import FrontierReducer, TableWriter

    results = result if isinstance(result, list) else [result]
    first = results[0]
    out = prepare_out_dir(out)
    prov = provenance(first.spec, first.model, sweep_path)
    name = output_name(first.spec, first.model)
    written = []
    reducer = FrontierReducer()
    writer = TableWriter(out / f"{name}.{fmt}", fmt, prov)
    try:
        for r in results:
            table = r.table.copy()
            table.insert(0, "hardware", pd.Categorical([r.hardware or first.spec.hardware[0]] * len(table)))
            writer.write(table)
            reducer.add(table)
        written.append(writer.close())
    except BaseException:
        writer.abort()
        raise
    fw = TableWriter(out / f"{name}-frontier.{fmt}", fmt, prov)
    try:
        fw.write(reducer.table())
        written.append(fw.close())
    except BaseException:
        fw.abort()
        raise
    written.append(write_provenance(out, {p.name: prov for p in written}))
    written += write_plots(first.spec, first.model, reducer.facets(), out, name)
    return written


def write_plots(spec: SweepSpec, model: str, facets: dict, out: Path, name: str) -> list[Path]:
    """One system and context: the frontier plot and the Helix and best-baseline breakdown plots.
    Several: one faceted frontier figure (systems x contexts) with a key table of the numbered points
    (the breakdowns are columns of the frontier table)."""
    from .plots import plot_breakdown, plot_frontiers

    if len(spec.hardware) > 1 or len(spec.contexts) > 1:
        from .facets import plot_frontier_facets

        title = f"{model}: Pareto frontiers per system and context"
        return plot_frontier_facets(facets, spec.hardware, spec.contexts, out / f"{name}-frontier", title)
    hw_name, ctx = spec.hardware[0], int(spec.contexts[0])
    fronts = facets.get((hw_name, ctx), {})
    title = f"{model} on {hw_name}, context {ctx:,}"
    written = []
    shown = {k: v for k, v in fronts.items()
             if k in ("Helix", "Helix HOP-B off", "Best baseline", "Medha", "Medha+EP (extension)", "Helix no MTP",
                      "Best baseline no MTP", "Best baseline no TBO") and len(v)}
    written += plot_frontiers(shown, out / f"{name}-frontier", title, bands=("Helix", "Best baseline"))
    if len(fronts.get("Helix", [])):
        written += plot_breakdown(fronts["Helix"], out / f"{name}-helix-breakdown", f"Helix frontier: {title}")
    if len(fronts.get("Best baseline", [])):
        written += plot_breakdown(fronts["Best baseline"], out / f"{name}-baseline-breakdown",
                                  f"Best-baseline frontier: {title}")
    return written

def stream_sweep(spec: SweepSpec, sweep_path: Path, out: Path, fmt: str = "parquet", calibration=None,
                 workers: int = 1, scheduler=None, progress=None, ideal: bool | None = None):
    """``helixsim sweep``: per model, every system priced chunk by chunk and streamed to the table file,
    the frontiers reduced as the chunks come; then the frontier table, provenance.json and plots.
    Yields (StreamResult, files written) per model."""
    from .stream import stream_model

    out = prepare_out_dir(out)
    systems = [(h, resolve_hardware(h)) for h in spec.hardware]
    for model in spec.models:
        prov = provenance(spec, model, sweep_path)
        name = output_name(spec, model)
        res = stream_model(resolve_model(model), systems, spec.space(), spec.precision.build(str(sweep_path), systems[0][1] if len(systems) == 1 else None),
                           out / f"{name}.{fmt}", out / f"{name}-frontier.{fmt}", fmt, prov,
                           ideal=spec.ideal if ideal is None else ideal, calibration=calibration,
                           workers=workers, scheduler=scheduler, progress=progress, backend=spec.backend,
                           mtps=tuple(spec.mtp) or (0,), tbos=tuple(spec.two_batch_overlap) or (False,))
        written = list(res.written)
        written.append(write_provenance(out, {p.name: prov for p in res.written}))
        written += write_plots(spec, model, res.facets, out, name)
        yield res, written
