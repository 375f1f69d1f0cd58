"""Regenerate the shipped calibration tables.

    python -m helixsim.calibration.build --data /work/shared/calibration --out hardware/calibration

For every system directory under ``--data`` (``gb200``, ``gb300``,
``b200_sxm``, ``h200_sxm``, ``h100_sxm``) the tables are fitted on all rows
against the peaks of the matching ``hardware/<name>.yaml`` and written to
``--out/<name>/``, together with ``--out/NOTICE`` (the data's licence notice).
The SGLang and vLLM kernels of a system (``<system>/sglang/``, ``<system>/vllm/``)
are fitted the same way into ``--out/<name>/sglang/`` and ``--out/<name>/vllm/``
(``--backends``; see :mod:`helixsim.backends`).
"""

from __future__ import annotations

from ..specs.registry import data_dir

import argparse
import time
from pathlib import Path

from ..specs.hardware import load_hardware_file
from .binary import regenerate as regenerate_binary
from .fit import SYSTEMS, fit_calibration, save_calibration

SOURCE_NOTICE = """\
The data files in this folder are derived from the performance tables in
aiconfigurator-core 0.12.0 (https://github.com/ai-dynamo/aiconfigurator),
Copyright (c) 2025-2026 NVIDIA CORPORATION & AFFILIATES, licensed under the
Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
"""

OUR_CHANGES = """\
helixsim: the tables in hardware/calibration/<hardware>/ are fitted from those
measurements (robust penalised piecewise-linear fits of the efficiency
against a roofline, or of the latency for collectives, at fixed knots; the
fitted latency at each knot is stored, the raw rows are not). The SGLang and vLLM
kernels are fitted the same way into <hardware>/sglang/ and <hardware>/vllm/. Regenerate with
    python -m helixsim.calibration.build --data <data root> --out hardware/calibration
"""


def notice_text(data_root: Path, previous: str = "") -> str:
    """The data's NOTICE (verbatim when present at ``data_root/NOTICE``) followed by helixsim's changes, and
    the notes other commands added after them in the ``previous`` NOTICE (prefill grids, raw rows kept):
    rebuilding the tables must not drop what those files owe the source."""
    source = data_root / "NOTICE"
    text = source.read_text(encoding="utf-8") if source.is_file() else SOURCE_NOTICE
    later = previous.split(OUR_CHANGES, 1)[1] if OUR_CHANGES in previous else ""
    return text.rstrip("\n") + "\n\n" + OUR_CHANGES + later


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.build", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="root of the measured tables (<system>/<family>.csv.gz)")
    ap.add_argument("--out", type=Path, required=True, help="output root, e.g. hardware/calibration")
    ap.add_argument("--hardware-dir", type=Path, default=None,
                    help="directory of the hardware YAML files (default: the repository's hardware/)")
    ap.add_argument("--systems", nargs="*", default=list(SYSTEMS), help="data system names (default: all)")
    ap.add_argument("--backends", nargs="*", default=["trtllm", "sglang", "vllm"],
                    help="serving frameworks to fit (trtllm: the top-level tables; default: all three)")
    args = ap.parse_args(argv)
    if args.hardware_dir is None:
        args.hardware_dir = data_dir("hardware")
    args.out.mkdir(parents=True, exist_ok=True)
    notice = args.out / "NOTICE"
    previous = notice.read_text(encoding="utf-8") if notice.is_file() else ""
    notice.write_text(notice_text(args.data, previous), encoding="utf-8")
    for system in args.systems:
        name = SYSTEMS[system]
        start = time.time()
        hw = load_hardware_file(args.hardware_dir / f"{name}.yaml")
        for backend in args.backends:
            if backend == "trtllm":   # the root: siblings may lend categories
                cal, target = fit_calibration(args.data, hw), args.out / name
            elif (args.data / system / backend).is_dir():
                cal, target = fit_calibration(args.data / system / backend, hw), args.out / name / backend
            else:
                continue
            save_calibration(cal, target)
            regenerate_binary(target)   # calibration.npz: the same tables, read fast (stored.py)
            size = sum(p.stat().st_size for p in target.rglob("*")
                       if p.is_file() and p.relative_to(target).parts[0] not in ("sglang", "vllm"))
            lent = "".join(f", {info['rows']} {fam} rows from {info['from']}"
                           for fam, st in cal.stats.items() if (info := st.get("borrowed")))
            print(f"{system:9s} {backend:6s} -> {target}  {len(cal.tables)} families, {size / 1e6:.2f} MB, "
                  f"{time.time() - start:.0f} s{lent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
