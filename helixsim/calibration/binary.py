"""Regenerate (or check) the binary copies ``calibration.npz`` of calibrations.

    python -m helixsim.calibration.binary [--check] [FOLDER ...]

Every folder holding a ``calibration.json`` under each FOLDER (default: the shipped
``hardware/calibration/``, the SGLang and vLLM tables included) is read from its CSVs
and written to ``calibration.npz`` beside them (:mod:`helixsim.calibration.stored`).
``--check`` writes nothing and exits 1 when a copy is missing or no longer matches
its CSVs (a stale copy is never used, only slower to replace).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .checks import read_manifest
from .fit import load_calibration
from .stored import BINARY, load_binary, save_binary, source_digests


def calibration_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (``root`` included) with a ``calibration.json``."""
    return sorted(p.parent for p in Path(root).rglob("calibration.json"))


def regenerate(folder: Path) -> Path:
    """Write ``folder/calibration.npz`` from the readable calibration of ``folder``."""
    manifest = read_manifest(folder)
    return save_binary(load_calibration(folder), folder, source_digests(folder, manifest))


def is_fresh(folder: Path) -> bool:
    """True when ``folder/calibration.npz`` exists and matches the readable files."""
    return load_binary(folder, read_manifest(folder)) is not None


def main(argv: list[str] | None = None) -> int:
    from ..specs.registry import data_dir

    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.binary", description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="*", type=Path, help="folders to search (default: the shipped calibrations)")
    ap.add_argument("--check", action="store_true", help="only report missing or stale copies (exit 1 if any)")
    args = ap.parse_args(argv)
    folders = [f for root in (args.roots or [data_dir("hardware") / "calibration"]) for f in calibration_folders(root)]
    stale = []
    for folder in folders:
        if args.check:
            if not is_fresh(folder):
                stale.append(folder)
                print(f"stale or missing: {folder / BINARY}")
            continue
        out = regenerate(folder)
        print(f"{out}  {out.stat().st_size / 1e3:.0f} kB")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
