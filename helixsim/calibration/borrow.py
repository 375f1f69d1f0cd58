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
:func:`helixsim.calibration.transfer.transfer_error` fits the sibling's rows of the
categories the two share, moves them to the other system and scores them against its
own measurements (``python -m helixsim.calibration.transfer --data <root>``;
docs/calibration.md). This module imports only families and roofline, so fit can
import it without a circle.
"""

from __future__ import annotations

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
