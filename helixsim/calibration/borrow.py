"""Kernel measurements a system lacks, borrowed from a sibling system as efficiencies.

The GB300 tables hold no NVLink MoE all-to-all (``moe_alltoall_nvlink``: only
DeepEP at EP 4 was measured) and no min-latency NVFP4 MoE kernel, the one
TensorRT-LLM runs for small decode batches on Blackwell. Without them a GB300
MoE step is priced with the throughput kernel and with an all-to-all
extrapolated from 4 to 32 GPUs, both far slower than on GB200. GB200 NVL72 has
both, and the two racks share what sets these kernels' speed: the same NVLink 5
switch fabric (72 GPUs, 900 GB/s per GPU each way) and 8 TB/s of HBM3e per GPU
(hardware/gb200-nvl72.yaml, hardware/gb300-nvl72.yaml).

The borrowed rows keep the sibling's *efficiency*, not its latency: each row's
latency is multiplied by (own roofline / sibling roofline) for that row's shape,
so a compute-bound shape gets faster with GB300's higher FP4 peak and a memory-
or link-bound one stays put. Only categories (a family's ``cat`` values, e.g.
one kernel and dtype) absent from the system's own data are borrowed; measured
ones are never replaced.

How good the transfer is can be measured where both systems have data:
:func:`transfer_error` fits the sibling's rows of the categories the two share,
moves them to the other system and scores them against its own measurements
(``python -m helixsim.calibration.borrow --data <root>``; docs/calibration.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .families import FAMILIES, FamilySpec
from .roofline import RoofParams

#: hardware -> (sibling hardware, families whose missing categories are borrowed from it)
SIBLINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gb300-nvl72": ("gb200-nvl72", ("moe", "moe_alltoall_nvlink")),
}


def category_of(spec: FamilySpec, df: pd.DataFrame) -> pd.Series:
    """Each row's category: its ``cat`` values as a tuple of strings."""
    data = spec.prepare(df, drop_invalid=False)
    return data[list(spec.cat)].astype(str).apply(tuple, axis=1)


def moved_latency(spec: FamilySpec, df: pd.DataFrame, source: RoofParams, target: RoofParams) -> np.ndarray:
    """``latency_ms`` of each row moved from the source system to the target at equal efficiency."""
    lat = df["latency_ms"].to_numpy(float)
    if spec.mode != "efficiency":
        return lat
    data = spec.prepare(df, drop_invalid=False)
    return lat * np.asarray(spec.roof(target, data), float) / np.asarray(spec.roof(source, data), float)


def borrow_frame(spec: FamilySpec, own: pd.DataFrame | None, sibling: pd.DataFrame,
                 own_roof: RoofParams, sibling_roof: RoofParams) -> pd.DataFrame:
    """The sibling's rows in categories ``own`` lacks, with latencies moved to the own system."""
    have = set(category_of(spec, own)) if own is not None and len(own) else set()
    keep = ~category_of(spec, sibling).isin(have).to_numpy()
    out = sibling.loc[keep].copy()
    out["latency_ms"] = moved_latency(spec, out, sibling_roof, own_roof)
    return out


def add_borrowed(frames: Mapping[str, pd.DataFrame], hardware: str, own_roof: RoofParams,
                 sibling_frames: Mapping[str, pd.DataFrame], sibling_roof: RoofParams
                 ) -> tuple[dict[str, pd.DataFrame], dict[str, dict]]:
    """``frames`` plus the borrowed rows of ``hardware``'s sibling; and what was borrowed, per family."""
    out, info = dict(frames), {}
    if hardware not in SIBLINGS:
        return out, info
    sibling, families = SIBLINGS[hardware]
    for name in families:
        if name not in sibling_frames:
            continue
        spec = FAMILIES[name]
        extra = borrow_frame(spec, frames.get(name), sibling_frames[name], own_roof, sibling_roof)
        if not len(extra):
            continue
        out[name] = pd.concat([frames[name], extra], ignore_index=True) if name in frames else extra
        info[name] = {"from": sibling, "rows": int(len(extra)),
                      "categories": sorted("|".join(c) for c in set(category_of(spec, extra)))}
    return out, info


def transfer_error(family: str, source: pd.DataFrame, target: pd.DataFrame, source_roof: RoofParams,
                   target_roof: RoofParams) -> dict:
    """APE of target measurements predicted from the source system's rows of the same categories.

    The source rows of the categories both systems measured are moved to the
    target at equal efficiency and fitted; the fitted table then predicts every
    target row of those categories. This is the error the borrowing makes
    where it can be checked.
    """
    from .fit import Calibration, fit_table
    from .validate import _TableModel, ape_stats, predict_rows

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
    from ..specs.registry import load_hardware
    from .fit import SYSTEMS, read_frames

    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.borrow",
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
