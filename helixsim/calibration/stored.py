"""A system's calibration in memory (:class:`Calibration`) and its binary copy, ``calibration.npz``.

The human-readable form of a calibration is ``calibration.json`` plus one CSV per
family and category (:func:`helixsim.calibration.fit.save_calibration`). Reading it
parses about 80 CSVs with pandas and recomputes every table's roofline at its knots:
over a second, most of a cold ``helixsim point``. ``calibration.npz`` beside it holds
the same calibration as loaded (the sweep keys, the ``log2`` knot values, floors,
collective models, roofline constants) in a few numpy arrays, read in milliseconds
without pandas or scipy.

It can never be used stale: it records the SHA-256 of ``calibration.json`` and of
every table file it was made from, and :func:`load_binary` gives ``None`` (the caller
then reads the CSVs) unless every one still matches. ``save_calibration`` writes it,
and ``python -m helixsim.calibration.binary`` regenerates it for every shipped
calibration; ``tests/test_calibration_binary.py`` checks that it loads to the same
tables, and the same prices, as the CSVs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..cost.terms import as_float, maximum
from .families import WIRE
from .roofline import RoofParams
from .table import SweepTable, _norm_key

FORMAT = "helixsim-calibration"
VERSION = 1
SOURCE = ("Fitted from the measured kernel tables of aiconfigurator-core 0.12.0 "
          "(https://github.com/ai-dynamo/aiconfigurator), Copyright (c) 2025-2026 NVIDIA CORPORATION & AFFILIATES, "
          "Apache License 2.0; see hardware/calibration/NOTICE.")

#: the binary copy's file name, beside ``calibration.json``
BINARY = "calibration.npz"
BINARY_FORMAT = "helixsim-calibration-binary"
BINARY_VERSION = 1


@dataclass(frozen=True)
class CollectiveModel:
    """t(n, M) = alpha + alpha_per_log2n x log2(n) + wire(op, n, M) / bandwidth, fitted to one measured group."""

    op: str
    alpha_ms: float
    alpha_per_log2n_ms: float
    ms_per_byte: float
    elem_bytes: float
    n_min: int
    n_max: int

    def time_ms(self, n, nbytes) -> np.ndarray:
        # (floats stay floats: the single-point path prices one query without numpy's per-call cost)
        n = maximum(as_float(n), 1.0)
        return (self.alpha_ms + self.alpha_per_log2n_ms * np.log2(n)
                + WIRE[self.op](as_float(nbytes), n) * self.ms_per_byte)

    def to_dict(self) -> dict:
        bw = 1.0 / (self.ms_per_byte * 1e6) if self.ms_per_byte > 0 else None
        return {"op": self.op, "alpha_us": round(self.alpha_ms * 1e3, 4),
                "alpha_per_log2n_us": round(self.alpha_per_log2n_ms * 1e3, 4),
                "bandwidth_gbps": None if bw is None else round(bw, 3), "elem_bytes": self.elem_bytes,
                "n_min": self.n_min, "n_max": self.n_max}

    @classmethod
    def from_dict(cls, d: Mapping) -> "CollectiveModel":
        bw = d.get("bandwidth_gbps")
        return cls(op=d["op"], alpha_ms=d["alpha_us"] * 1e-3, alpha_per_log2n_ms=d["alpha_per_log2n_us"] * 1e-3,
                   ms_per_byte=0.0 if not bw else 1.0 / (bw * 1e6), elem_bytes=float(d["elem_bytes"]),
                   n_min=int(d["n_min"]), n_max=int(d["n_max"]))


@dataclass
class Calibration:
    """Everything the calibrated kernel model needs for one system."""

    hardware: str
    roof: RoofParams
    tables: dict[str, SweepTable]
    collectives: dict[str, dict[tuple, CollectiveModel]] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)
    version: int = VERSION
    source: str = SOURCE


# ---------------------------------------------------------------- fingerprint of the readable form

def source_digests(folder: Path, manifest: Mapping) -> dict[str, str]:
    """SHA-256 of ``calibration.json`` and of every table file the manifest lists (relative path -> hex)."""
    names = ["calibration.json"] + sorted(f for meta in manifest.get("families", {}).values()
                                          for f in meta.get("files", {}))
    return {name: hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest() for name in names}


# ---------------------------------------------------------------- write / read

def save_binary(cal: Calibration, folder: Path, digests: Mapping[str, str]) -> Path:
    """Write ``cal`` (as loaded from the readable files of ``folder``, whose ``digests`` it records)
    to ``folder/calibration.npz``."""
    arrays: dict[str, np.ndarray] = {}
    tables = {}
    for name, table in sorted(cal.tables.items()):
        cols = table.key_columns()
        for i, col in enumerate(table.cat + table.near + table.num):
            values = cols[col]
            # categorical columns hold strings; numpy stores them as fixed-width unicode
            arrays[f"{name}.key{i}"] = values.astype(str) if col in table.cat else np.asarray(values, float)
        arrays[f"{name}.values"] = np.asarray(table.values, float)
        arrays[f"{name}.knots"] = np.asarray(table.knots, float)
        tables[name] = {"cat": list(table.cat), "near": list(table.near), "num": list(table.num),
                        "axis": table.axis, "mode": table.mode, "upper": table.upper,
                        "floors": [[list(k), float(f)] for k, f in table.floors.items()]}
    header = {
        "format": BINARY_FORMAT, "binary_version": BINARY_VERSION, "sources": dict(digests),
        "hardware": cal.hardware, "version": cal.version, "source": cal.source, "roofline": cal.roof.to_dict(),
        "stats": cal.stats, "tables": tables,
        # floats as repr strings would also do; the dataclass fields are exact through JSON's float repr
        "collectives": {fam: [[list(k), m.__dict__] for k, m in models.items()]
                        for fam, models in sorted(cal.collectives.items())},
    }
    arrays["header"] = np.asarray(json.dumps(header, sort_keys=True))
    out = Path(folder) / BINARY
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    tmp.replace(out)
    return out


def load_binary(folder: Path, manifest: Mapping) -> Calibration | None:
    """The calibration in ``folder/calibration.npz``, or None when there is none, it is unreadable,
    or any of the readable files it was made from (``manifest`` lists them) has changed since."""
    path = Path(folder) / BINARY
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            if header.get("format") != BINARY_FORMAT or header.get("binary_version") != BINARY_VERSION:
                return None
            if header["sources"] != source_digests(folder, manifest):
                return None
            arrays = {key: data[key] for key in data.files if key != "header"}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    tables = {}
    for name, meta in header["tables"].items():
        cat, near, num = tuple(meta["cat"]), tuple(meta["near"]), tuple(meta["num"])
        keys = {}
        for i, col in enumerate(cat + near + num):
            values = arrays[f"{name}.key{i}"]
            # categorical values as Python str, exactly as the CSV loader's frame holds them
            keys[col] = values.astype(object) if col in cat else values
        tables[name] = SweepTable(family=name, cat=cat, near=near, num=num, axis=meta["axis"],
                                  knots=arrays[f"{name}.knots"], mode=meta["mode"], upper=meta["upper"], keys=keys,
                                  values=arrays[f"{name}.values"],
                                  floors={_norm_key(tuple(k)): float(f) for k, f in meta["floors"]})
    collectives = {fam: {_norm_key(tuple(k)): CollectiveModel(**m) for k, m in models}
                   for fam, models in header["collectives"].items()}
    return Calibration(hardware=header["hardware"], roof=RoofParams(**header["roofline"]), tables=tables,
                       collectives=collectives, stats=header["stats"], version=int(header["version"]),
                       source=header["source"])


_BUILTIN_FOUND: dict[str, Path] = {}


def builtin_calibration_path(hardware_name: str) -> Path | None:
    """The shipped calibration of a built-in hardware name (``hardware/calibration/<name>/``), or None (one
    found is kept for the process: every single point asks for it)."""
    found = _BUILTIN_FOUND.get(hardware_name)
    if found is not None:
        return found
    from ..specs.registry import data_dir

    root = data_dir("hardware") / "calibration" / hardware_name
    if not (root / "calibration.json").is_file():
        return None
    _BUILTIN_FOUND[hardware_name] = root
    return root
