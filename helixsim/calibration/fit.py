"""Fit, save and load a system's calibration.

``fit_calibration(data_dir, hw)`` turns the measured tables of one system
(``<family>.csv.gz``) into a :class:`Calibration`: one fitted
:class:`~.table.SweepTable` per family, plus, for the collectives, a
latency + bytes / bandwidth model used beyond the measured GPU counts.
``save_calibration`` writes it as a small human-readable directory::

    <dir>/calibration.json   manifest: version, source, roofline constants,
                             per-family layout and floors, collective models
    <dir>/<family>.csv       one row per measured configuration, one column
                             per knot of the sweep axis (efficiency, or
                             latency in ms for the collectives)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from ..errors import SpecError
from ..safe_io import read_csv_table, short
from ..specs.hardware import HardwareSpec
from .borrow import SIBLINGS, add_borrowed
from .checks import check_family_frame, read_knot_table, read_manifest
from .families import COLLECTIVE_ELEM_BYTES, FAMILIES, WIRE, FamilySpec, collective_dtype, collective_op
from .roofline import RoofParams
from .stored import (FORMAT, SOURCE, VERSION, Calibration, CollectiveModel,  # noqa: F401 (re-exported)
                     builtin_calibration_path)
from .table import SweepTable, _norm_key, fit_group

#: calibration data directory name -> helixsim hardware name
SYSTEMS: dict[str, str] = {"gb200": "gb200-nvl72", "gb300": "gb300-nvl72", "b200_sxm": "b200-hgx",
                           "h200_sxm": "h200-hgx", "h100_sxm": "h100-hgx"}
COLLECTIVE_FAMILIES = ("nccl", "allreduce_custom")


# ---------------------------------------------------------------- fitting

def read_family(data_dir: Path, family: str, spec_name: str | None = None) -> pd.DataFrame | None:
    """The measured table ``<family>.csv.gz`` (or ``.csv``) of ``data_dir``, checked against the
    columns of family ``spec_name`` (default: ``family``; :func:`~.checks.check_family_frame`),
    or None where there is none."""
    path = Path(data_dir) / f"{family}.csv.gz"
    if not path.exists():
        path = Path(data_dir) / f"{family}.csv"
        if not path.exists():
            return None
    src = short(path, 200)
    df = read_csv_table(path, source=src, dtype=None, keep_default_na=True, na_values=None)
    return check_family_frame(FAMILIES[spec_name or family], df, src)


#: tables whose rows are further kernels of a family, in its columns: SGLang's wide-EP decode MoE
#: (DeepEP + DeepGEMM masked grouped GEMM, kernel_source "deepepmoe") is one more fused-MoE kernel
#: and TensorRT-LLM's wide-EP MoE compute (``wideep_moe``, kernel_source "wideep_compute_cutlass", measured
#: up to EP 256 with rank 0's routed load under each ``distribution``, ``*_eplb`` after EPLB) another
FAMILY_EXTRA_ROWS: dict[str, tuple[str, ...]] = {"moe": ("wideep_generation_moe", "wideep_moe")}


def _same_slots(df: pd.DataFrame) -> pd.DataFrame:
    """wideep_moe rows with redundant expert slots (288 for 256 experts) measure another shape: dropped; so are
    its columns the other MoE tables lack (rank 0's token count etc.), so every row keys the same columns."""
    if "num_slots" not in df or "num_experts" not in df:
        return df
    extra = ["moe_kernel", "dp_num_tokens", "rank0_num_tokens", "num_slots", "simulation_mode"]
    return df[df["num_slots"] == df["num_experts"]].drop(columns=extra, errors="ignore").reset_index(drop=True)


def read_frames(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Every known family table of ``data_dir``; a folder with none is an error."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SpecError(short(data_dir, 200), "", "no such directory of kernel tables")
    frames = {}
    for name in FAMILIES:
        parts = [read_family(data_dir, n, name) for n in (name, *FAMILY_EXTRA_ROWS.get(name, ()))]
        parts = [_same_slots(df) for df in parts if df is not None and len(df)]
        if parts:
            frames[name] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if not frames:
        raise SpecError(short(data_dir, 200), "", "no kernel tables: expected <family>.csv.gz files, families: "
                        + ", ".join(FAMILIES))
    return frames


def fit_table(spec: FamilySpec, df: pd.DataFrame, roof: RoofParams, lam: float | None = None,
              lam_cross: float | None = None) -> SweepTable:
    """Fit one family's sweeps from its (raw) data frame."""
    data = spec.prepare(df)
    keys = list(spec.key_columns)
    for c in spec.near + spec.num:
        data[c] = data[c].astype(float)
    lat = data["_ms"].to_numpy(float)
    if spec.mode == "efficiency":
        y = np.log2(lat / spec.roof(roof, data))
    else:
        y = np.log2(lat)
    lx = np.log2(data[spec.axis].to_numpy(float))
    knots = spec.knots_for(data[spec.axis].to_numpy(float))
    xk = np.log2(knots)
    outer = [c for c in spec.cat if c != spec.tie] + list(spec.near)
    lam_tie = spec.lam_tie if spec.tie and _same_latency(data, spec) else 0.0
    codes = {v: i for i, v in enumerate(sorted(data[spec.tie].astype(str).unique()))} if spec.tie else {}
    key_rows, values = [], []
    for _, gidx in data.groupby(outer, sort=True).indices.items():
        sub = data.iloc[gidx]
        sweeps = sub.groupby(keys, sort=True).indices
        sweep_of = np.empty(len(gidx), dtype=int)
        coords = []
        for s, (key, idx) in enumerate(sweeps.items()):
            key = key if isinstance(key, tuple) else (key,)
            key_rows.append(key)
            sweep_of[idx] = s
            c = list(np.log2(np.asarray(key[len(spec.cat) + len(spec.near):], float)))
            if spec.tie:
                c.append(float(codes[str(key[spec.cat.index(spec.tie)])]))
            coords.append(c)
        coords = np.array(coords).reshape(len(sweeps), len(spec.num) + (1 if spec.tie else 0))
        cross = list(range(len(spec.num))) if spec.cross_dims is None else [spec.num.index(c) for c in spec.cross_dims]
        offset = None
        if spec.tie and spec.mode == "efficiency":
            group_keys = pd.DataFrame([key_rows[-len(sweeps) + s] for s in range(len(sweeps))], columns=keys)
            offset = np.log2(_knot_roof(spec, roof, group_keys, knots))
        values.extend(fit_group(lx[gidx], y[gidx], sweep_of, coords, xk,
                                lam_axis=spec.lam if lam is None else lam,
                                lam_cross=spec.lam_cross if lam_cross is None else lam_cross, extend=spec.extend,
                                cross_dims=cross, tie_dims=[len(spec.num)] if spec.tie else [],
                                lam_tie=lam_tie, tie_offset=offset))
    key_frame = pd.DataFrame(key_rows, columns=keys)
    for c in spec.cat:
        key_frame[c] = key_frame[c].map(lambda v: _norm_key((v,))[0])
    values = np.array(values)
    floors = {}
    cat_min = data.groupby(list(spec.cat))["_ms"].min() if spec.cat else pd.Series({(): data["_ms"].min()})
    for key, val in cat_min.items():
        key = key if isinstance(key, tuple) else (key,)
        floors[_norm_key(key)] = float(val)
    table = SweepTable(family=spec.name, cat=spec.cat, near=spec.near, num=spec.num, axis=spec.axis, knots=knots,
                       mode=spec.mode, upper=spec.upper, keys=key_frame, values=values, floors=floors)
    roof_k = _knot_roof(spec, roof, key_frame, knots) if spec.mode == "efficiency" else np.ones(values.shape)
    if spec.full_span:
        table.set_values(table.knot_values(np.arange(len(values)), roof_k))
    _make_monotone(table, np.log2(roof_k), spec.monotone_in, along_axis=spec.monotone)
    return table


def _same_latency(data: pd.DataFrame, spec: FamilySpec, tolerance: float = 0.1) -> bool:
    """Whether the kernels told apart by ``spec.tie`` run equally fast (median |log2 ratio| below ``tolerance``
    where both were measured): e.g. Blackwell's FP8 MLA bmm dequantises to BF16, Hopper's does not."""
    others = [c for c in spec.key_columns if c != spec.tie] + [spec.axis]
    wide = data.pivot_table(index=others, columns=spec.tie, values="_ms", aggfunc="median")
    if wide.shape[1] < 2:
        return False
    ratios = [np.log2(wide[a] / wide[b]).dropna() for a, b in zip(wide.columns[:-1], wide.columns[1:])]
    return all(len(r) and float(np.median(np.abs(r))) < tolerance for r in ratios)


def _make_monotone(table: SweepTable, log_roof: np.ndarray, dims: tuple[str, ...], along_axis: bool = True) -> None:
    """Latency non-decreasing along the axis (a knot above a later knot is lowered to it: start-up
    outliers go) and along the ``num`` columns ``dims`` (a sweep is raised to its predecessor's latency,
    e.g. a bigger batch or more GPUs never run faster)."""
    lat = table.values + log_roof      # log2 latency
    for i in range(len(lat)) if along_axis else ():
        ok = ~np.isnan(lat[i])
        lat[i, ok] = np.minimum.accumulate(lat[i, ok][::-1])[::-1]
    for dim in dims:
        others = [c for c in table.cat + table.near + table.num if c != dim]
        for _, rows in table.keys.groupby(others, sort=False).indices.items():
            order = rows[np.argsort(table.keys[dim].to_numpy(float)[rows], kind="stable")]
            for a, b in zip(order[:-1], order[1:]):
                both = ~np.isnan(lat[a]) & ~np.isnan(lat[b])
                lat[b, both] = np.maximum(lat[b, both], lat[a, both])
    table.set_values(lat - log_roof)


def fit_collective_model(op: str, n: np.ndarray, nbytes: np.ndarray, t_ms: np.ndarray, elem_bytes: float,
                         iterations: int = 6) -> CollectiveModel:
    """Non-negative robust fit of t = a + b log2(n) + c wire(n, M) in relative error."""
    n, nbytes, t_ms = (np.asarray(a, float) for a in (n, nbytes, t_ms))
    distinct_n = len(np.unique(n)) > 1
    cols = [np.ones_like(n), np.log2(n), WIRE[op](nbytes, n)]
    if not distinct_n:
        cols[1] = np.zeros_like(n)
    design = np.column_stack(cols) / t_ms[:, None]
    w = np.ones(len(t_ms))
    coef = np.zeros(3)
    for _ in range(iterations):
        coef, _ = nnls(design * w[:, None], w, maxiter=1000)
        r = design @ coef - 1.0
        scale = max(1.4826 * float(np.median(np.abs(r))), 0.02)
        w = np.sqrt(np.minimum(1.0, 1.5 * scale / np.maximum(np.abs(r), 1e-12)))
    return CollectiveModel(op=op, alpha_ms=float(coef[0]), alpha_per_log2n_ms=float(coef[1]) if distinct_n else 0.0,
                           ms_per_byte=float(coef[2]), elem_bytes=elem_bytes, n_min=int(n.min()), n_max=int(n.max()))


def fit_collectives(frames: Mapping[str, pd.DataFrame]) -> dict[str, dict[tuple, CollectiveModel]]:
    out: dict[str, dict[tuple, CollectiveModel]] = {}
    for family in COLLECTIVE_FAMILIES:
        if family not in frames:
            continue
        spec = FAMILIES[family]
        data = spec.prepare(frames[family])
        models = {}
        for key, g in data.groupby(list(spec.cat)):
            key = _norm_key(key if isinstance(key, tuple) else (key,))
            eb = COLLECTIVE_ELEM_BYTES[collective_dtype(family, key)]
            op = collective_op(family, key)
            models[key] = fit_collective_model(op, g["num_gpus"].to_numpy(), g["message_size"].to_numpy() * eb,
                                               g["_ms"].to_numpy(), eb)
        out[family] = models
    return out


def fit_frames(frames: Mapping[str, pd.DataFrame], roof: RoofParams, hardware: str) -> Calibration:
    """Fit every family present in ``frames`` (raw data frames keyed by family name)."""
    tables, stats = {}, {}
    for name, df in frames.items():
        if name not in FAMILIES or not len(df):
            continue
        tables[name] = fit_table(FAMILIES[name], df, roof)
        stats[name] = {"rows": int(len(df)), "sweeps": int(len(tables[name].values))}
    return Calibration(hardware=hardware, roof=roof, tables=tables, collectives=fit_collectives(frames), stats=stats)


def system_dir(data_dir: Path, hw_name: str) -> Path:
    """``data_dir`` itself, or its ``<system>/`` sub-directory for hardware ``hw_name``."""
    data_dir = Path(data_dir)
    if any(data_dir.glob("*.csv.gz")) or any(data_dir.glob("*.csv")):
        return data_dir
    for system, name in SYSTEMS.items():
        if name == hw_name and (data_dir / system).is_dir():
            return data_dir / system
    raise SpecError(short(data_dir, 200), "", f"no kernel tables (<family>.csv.gz) for {hw_name}, "
                    f"neither in the folder nor in a system sub-folder ({', '.join(SYSTEMS)})")


def fit_calibration(data_dir: Path, hw: HardwareSpec) -> Calibration:
    """Fit the calibration of ``hw`` from a directory of measured ``<family>.csv.gz`` tables.

    ``data_dir`` is one system's directory, or the root holding ``<system>/`` directories.
    Given a root, a system listed in :data:`~.borrow.SIBLINGS` also takes the kernel
    categories its own data lack from its sibling's directory, as efficiencies.
    """
    frames = read_frames(system_dir(data_dir, hw.name))
    roof = RoofParams.from_hardware(hw)
    borrowed = {}
    sibling = SIBLINGS.get(hw.name, (None,))[0]
    lender = sibling_dir(data_dir, sibling) if sibling else None
    if lender is not None:
        from ..specs.registry import load_hardware

        frames, borrowed = add_borrowed(frames, hw.name, roof, read_frames(lender),
                                        RoofParams.from_hardware(load_hardware(sibling)))
    cal = fit_frames(frames, roof, hw.name)
    for name, info in borrowed.items():
        cal.stats[name]["borrowed"] = info
    return cal


def sibling_dir(data_dir: Path, hw_name: str) -> Path | None:
    """``data_dir/<system>/`` of hardware ``hw_name`` when ``data_dir`` is a data root holding it, else None."""
    for system, name in SYSTEMS.items():
        if name == hw_name and (Path(data_dir) / system).is_dir():
            return Path(data_dir) / system
    return None


# ---------------------------------------------------------------- files

def _knot_roof(spec: FamilySpec, roof: RoofParams, keys: pd.DataFrame, knots: np.ndarray) -> np.ndarray:
    """Roofline (ms) of every sweep (rows of ``keys``) at every knot: shape (sweeps, knots)."""
    s, k = len(keys), len(knots)
    rep = keys.iloc[np.repeat(np.arange(s), k)].reset_index(drop=True)
    rep[spec.axis] = np.tile(np.asarray(knots, float), s)
    if spec.derive is not None:
        rep = spec.derive(rep)
    return np.asarray(spec.roof(roof, rep), float).reshape(s, k)


def knot_latency_ms(cal: Calibration, name: str) -> np.ndarray:
    """The fitted latency (ms) of every sweep of family ``name`` at every knot (NaN outside a sweep)."""
    table, spec = cal.tables[name], FAMILIES[name]
    if table.mode == "efficiency":
        return _knot_roof(spec, cal.roof, table.key_frame(), table.knots) * 2.0 ** table.values
    return 2.0 ** table.values


def _file_name(cat: tuple) -> str:
    return "__".join(str(v) for v in cat) + ".csv" if cat else "all.csv"


def save_calibration(cal: Calibration, path: Path, digits: int = 3) -> None:
    """Write ``cal`` as ``path/calibration.json`` plus ``path/<family>/<cat values>.csv`` tables.

    Each table row is one measured configuration (its ``near`` and ``num``
    columns), each knot column ``<axis>=<value>`` the fitted latency in
    microseconds at that axis value (``digits`` significant digits).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    families = {}
    for name, table in sorted(cal.tables.items()):
        (path / name).mkdir(exist_ok=True)
        for old in (path / name).glob("*.csv"):
            old.unlink()
        files = {}
        for cat, frame in table.to_frames(knot_latency_ms(cal, name), digits).items():
            file = f"{name}/{_file_name(cat)}"
            frame.to_csv(path / file, index=False)
            files[file] = list(cat)
        families[name] = {**table.meta(), **cal.stats.get(name, {}), "files": files}
    manifest = {
        "format": FORMAT,
        "version": cal.version,
        "hardware": cal.hardware,
        "source": cal.source,
        "tables": ("<family>/<cat values>.csv: one row per measured configuration (its 'near' and 'num' columns), "
                   "one column per knot '<axis>=<value>' with the fitted latency in microseconds (blank outside "
                   "the measured sweep). Predictions interpolate log2(latency / roofline) ('efficiency' mode; "
                   "the roofline uses the constants below) or log2(latency) ('latency_ms' mode) in log2 of the "
                   "axis and of the 'num' columns; see helixsim/calibration/table.py."),
        "roofline": cal.roof.to_dict(),
        "families": families,
        "collective_models": {fam: {"|".join(k): m.to_dict() for k, m in models.items()}
                              for fam, models in sorted(cal.collectives.items())},
    }
    (path / "calibration.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def load_calibration(path: Path) -> Calibration:
    """Read a directory written by :func:`save_calibration` (or its ``calibration.json``)."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    manifest = read_manifest(path)
    src = short(path / "calibration.json", 200)
    try:
        return _calibration_from(manifest, path)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        if isinstance(err, SpecError):
            raise
        what = f"missing key {err}" if isinstance(err, KeyError) else f"{err.__class__.__name__}: {err}"
        raise SpecError(src, "", f"malformed calibration ({short(what, 100)})") from None


def _calibration_from(manifest: dict, path: Path) -> Calibration:
    if manifest.get("format") != FORMAT:
        raise SpecError(short(path, 200), "format", f"not a helixsim calibration (expected '{FORMAT}')")
    if int(manifest.get("version", 0)) > VERSION:
        raise SpecError(short(path, 200), "version",
                        f"calibration version {short(manifest['version'])} is newer than this helixsim ({VERSION})")
    roof = RoofParams(**manifest["roofline"])
    tables, stats = {}, {}
    for name, meta in manifest["families"].items():
        if name not in FAMILIES:
            continue
        frames = {tuple(cat): read_knot_table(path, file) for file, cat in meta["files"].items()}
        keys, lat = SweepTable.keys_and_latency(frames, meta)
        knots = np.asarray(meta["knots"], float)
        if meta["mode"] == "efficiency":
            values = np.log2(lat / _knot_roof(FAMILIES[name], roof, keys, knots))
        else:
            values = np.log2(lat)
        floors = {_norm_key(tuple(k.split("|")) if k else ()): float(f) for k, f in meta.get("floor_ms", {}).items()}
        tables[name] = SweepTable(family=name, cat=tuple(meta["cat"]), near=tuple(meta["near"]),
                                  num=tuple(meta["num"]), axis=meta["axis"], knots=knots, mode=meta["mode"],
                                  upper=meta["upper"], keys=keys, values=values, floors=floors)
        stats[name] = {k: meta[k] for k in ("rows", "sweeps", "borrowed") if k in meta}
    collectives = {fam: {_norm_key(tuple(k.split("|"))): CollectiveModel.from_dict(m) for k, m in models.items()}
                   for fam, models in manifest.get("collective_models", {}).items()}
    return Calibration(hardware=manifest["hardware"], roof=roof, tables=tables, collectives=collectives, stats=stats,
                       version=int(manifest["version"]), source=manifest.get("source", ""))
