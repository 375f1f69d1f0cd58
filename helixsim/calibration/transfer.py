"""How well one system's kernel efficiencies predict another's measurements.

:mod:`helixsim.calibration.borrow` fills a system's missing kernel categories from a
sibling at equal efficiency. Where both systems measured a category the transfer can
be scored: :func:`transfer_error` moves the source system's rows to the target, fits
them, and compares the fitted table with the target's own measurements
(``python -m helixsim.calibration.transfer --data <root>``; docs/calibration.md).
It sits above borrow, fit and validate, which do not import it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..specs.registry import load_hardware
from .borrow import category_of, moved_latency
from .families import FAMILIES
from .fit import SYSTEMS, Calibration, fit_table, read_frames
from .roofline import RoofParams
from .validate import _TableModel, ape_stats, predict_rows


def transfer_error(family: str, source: pd.DataFrame, target: pd.DataFrame, source_roof: RoofParams,
                   target_roof: RoofParams) -> dict:
    """APE of target measurements predicted from the source system's rows of the same categories.

    The source rows of the categories both systems measured are moved to the
    target at equal efficiency and fitted; the fitted table then predicts every
    target row of those categories. This is the error the borrowing makes
    where it can be checked.
    """
    spec = FAMILIES[family]
    shared = set(category_of(spec, source)) & set(category_of(spec, target))
    src = source[category_of(spec, source).isin(shared).to_numpy()].copy()
    tgt = target[category_of(spec, target).isin(shared).to_numpy()]
    if not len(src) or not len(tgt):
        return {"n": 0, "median_ape": float("nan"), "mean_ape": float("nan"), "p90_ape": float("nan")}
    src["latency_ms"] = moved_latency(spec, src, source_roof, target_roof)
    cal = Calibration(hardware="transfer", roof=target_roof, tables={family: fit_table(spec, src, target_roof)})
    return ape_stats(predict_rows(family, tgt, _TableModel(cal)), tgt["latency_ms"].to_numpy(float))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.transfer",
                                 description="how well one system's efficiencies predict another's measurements")
    ap.add_argument("--data", type=Path, required=True, help="root of the calibration data (<system>/<family>.csv.gz)")
    ap.add_argument("--pairs", nargs="*", default=["gb200:gb300", "gb300:gb200"],
                    help="source:target data system pairs (default: gb200:gb300 gb300:gb200)")
    args = ap.parse_args(argv)
    print(f"{'source -> target':<20} {'family':<22} {'n':>6} {'median %':>9} {'mean %':>9} {'p90 %':>9}")
    for pair in args.pairs:
        a, b = pair.split(":")
        fa, fb = read_frames(args.data / a), read_frames(args.data / b)
        ra, rb = (RoofParams.from_hardware(load_hardware(SYSTEMS[s])) for s in (a, b))
        for family in sorted(set(fa) & set(fb)):
            if FAMILIES[family].mode != "efficiency":
                continue
            st = transfer_error(family, fa[family], fb[family], ra, rb)
            if st["n"]:
                print(f"{a + ' -> ' + b:<20} {family:<22} {st['n']:>6} {st['median_ape']:>9.1f} "
                      f"{st['mean_ape']:>9.1f} {st['p90_ape']:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
