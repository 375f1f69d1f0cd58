"""Robustness of a plan's verdict: does it hold across the interval, and what would flip it?

The verdict is the family of the configuration chosen for the winning system's
main pool: Helix, or a baseline (tp, ep, medha, medha-ep). Two checks:

* **The band.** Where the search table carries TTL intervals
  (``ttl_ms_lo``/``ttl_ms_hi``), the choice is made again with every
  configuration at the fast end of its interval and again at the slow end
  (:func:`helixsim.pareto.table_at_end`).
* **What flips it.** Three physical parameters are moved one at a time
  (:class:`helixsim.cost.perturb.PerturbedKernels`): decode-attention
  bandwidth efficiency (a multiple of what the kernel model achieves), a fixed
  cost added to every compute kernel, and a latency added to every
  all-to-all. Each is scanned outwards over a fixed grid until the verdict
  changes, then bisected; the flip value is the smallest change found.

To stay fast the re-pricing covers every batch of the layouts that lie on a
strategy's Pareto frontier in the table (a layout far from every frontier is
assumed to stay off it under a moderate change); the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd

from ..api import kernels_for
from ..cost.mtp import accepted_tokens_per_step, draft_ms
from ..cost.perturb import PerturbedKernels
from ..cost.step import BREAKDOWN_KEYS, decode_step
from ..layout import STRATEGIES, LayoutArrays
from ..pareto import frontier, table_at_end
from ..specs.registry import load_efficiency
from .selection import select as _select

WIDTH_COLUMNS = ("kvp", "tpa", "dp", "tpf", "ep", "pp")
BISECT_STEPS = 4


@dataclass(frozen=True)
class Parameter:
    """One knob: its name, how it is applied, the grid scanned and its modelled value. Added fixed costs
    are ranked against a reference: the default per-kernel floor, the hardware file's all-to-all latency."""

    name: str
    key: str                   # PerturbedKernels keyword
    unit: str                  # "x" (multiplicative) or "us" (added)
    grid: tuple[float, ...]    # values tried outwards from the modelled one, nearest first
    neutral: float             # the modelled value (1 for a factor, 0 for an addition)


PARAMETERS = (
    Parameter("attention bandwidth efficiency", "attention_efficiency", "x",
              (1.25, 0.8, 1.5, 2 / 3, 2.0, 0.5, 3.0, 1 / 3, 4.0, 0.25), 1.0),
    Parameter("per-kernel fixed cost", "kernel_floor_us", "us", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0), 0.0),
    Parameter("all-to-all latency", "a2a_latency_us", "us", (2.0, 5.0, 10.0, 20.0, 50.0, 100.0), 0.0),
)


@dataclass(frozen=True)
class Flip:
    parameter: str
    unit: str
    value: Optional[float]         # the parameter's value where the verdict changes; None: not within the grid
    reference: float               # what the value is relative to (1x, or the modelled fixed cost in us)
    verdict_after: Optional[str]   # e.g. "baseline: ep 1x1x8=8x8 b64"
    change: float                  # |ln| of the relative change needed (inf when it does not flip)

    def describe(self) -> str:
        if self.value is None:
            return f"{self.parameter}: no flip within the scanned range"
        if self.unit == "x":
            return f"{self.parameter} x{self.value:.2f} of the modelled value"
        return f"{self.parameter} +{self.value:.1f} us (reference value {self.reference:.1f} us)"


@dataclass
class Robustness:
    hardware: str
    context: int
    verdict: str                              # "Helix: helix 64x1x1=64x1 b8" or "baseline: ..."
    band: dict = field(default_factory=dict)  # {"fast": verdict, "slow": verdict} where intervals exist
    holds_across_band: Optional[bool] = None  # None: the table carries no interval
    flips: list[Flip] = field(default_factory=list)
    note: str = ""

    def nearest(self, k: int = 2) -> list[Flip]:
        """The (up to) ``k`` parameters that flip the verdict with the smallest change."""
        return [f for f in sorted(self.flips, key=lambda f: f.change) if f.value is not None][:k]

    def summary(self) -> dict:
        return {"hardware": self.hardware, "context": self.context, "verdict": self.verdict,
                "band": self.band, "holds_across_band": self.holds_across_band,
                "flips": [{"parameter": f.parameter, "unit": f.unit, "value": f.value, "reference": f.reference,
                           "verdict_after": f.verdict_after} for f in self.flips],
                "nearest": [f.parameter for f in self.nearest()], "note": self.note}


def family(row: Optional[pd.Series]) -> Optional[str]:
    if row is None:
        return None
    return "Helix" if row["strategy"] == "helix" else "baseline"


def verdict_text(row: Optional[pd.Series]) -> str:
    if row is None:
        return "no layout meets the floor"
    return f"{family(row)}: {row['strategy']} {row.get('label', '')}".rstrip()


def candidate_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Every feasible row of the layouts that lie on some strategy's Pareto frontier."""
    feasible = table[table["feasible"].to_numpy(bool)]
    if feasible.empty:
        return feasible
    front = frontier(feasible, by="strategy")
    keys = ["strategy", *WIDTH_COLUMNS, "hopb", "context"]
    layouts = front[keys].drop_duplicates()
    return feasible.merge(layouts, on=keys, how="inner")


def reprice(rows: pd.DataFrame, model, precision, kernels) -> pd.DataFrame:
    """The same configurations' step priced with ``kernels``: ttl_ms, tokens/s/user and tokens/s/GPU
    replaced (memory, hence feasibility, does not depend on kernel times; other columns are kept)."""
    codes = rows["strategy"].map({s: i for i, s in enumerate(STRATEGIES)}).to_numpy(np.int64)
    lay = LayoutArrays(strategy=codes, **{c: rows[c].to_numpy(np.int64) for c in WIDTH_COLUMNS},
                       hopb=rows["hopb"].to_numpy(bool))
    batch = rows["batch"].to_numpy(np.int64)
    ctx = rows["context"].to_numpy(np.int64)
    drafts = rows["mtp"].to_numpy(np.int64) if "mtp" in rows else np.zeros(len(rows), np.int64)
    parts = decode_step(kernels, model, lay, batch, ctx, precision, q_len=1 + drafts)
    parts["mtp"] = draft_ms(kernels, model, lay, batch, ctx, precision, drafts)   # MTP rows stay MTP rows
    ttl = sum(parts[key] for key in BREAKDOWN_KEYS)
    out = rows.copy()
    out["ttl_ms"] = ttl
    out["tokens_per_s_user"] = 1000.0 * accepted_tokens_per_step(drafts) / ttl
    out["tokens_per_s_gpu"] = batch * out["tokens_per_s_user"] / rows["n_gpus"].to_numpy(float)
    return out


def _scan(param: Parameter, base_family: Optional[str], family_at: Callable[[float], tuple], ref: float) -> Flip:
    """Walk the grid outwards; at the first value that changes the family, bisect towards the modelled value.

    ``change`` ranks parameters of different units: |ln factor| for a factor,
    ln(1 + added / ref) for an added fixed cost of modelled size ``ref``."""
    last_ok = {True: param.neutral, False: param.neutral}   # per side of the modelled value
    for value in param.grid:
        side = value > param.neutral
        fam, row = family_at(value)
        if fam == base_family:
            last_ok[side] = value
            continue
        ok = last_ok[side]
        bad, bad_row = value, row
        for _ in range(BISECT_STEPS):
            mid = math.sqrt(ok * bad) if param.unit == "x" else (ok + bad) / 2
            f_mid, r_mid = family_at(mid)
            if f_mid == base_family:
                ok = mid
            else:
                bad, bad_row = mid, r_mid
        change = abs(math.log(bad)) if param.unit == "x" else math.log1p(bad / ref)
        return Flip(param.name, param.unit, bad, ref, verdict_text(bad_row), change)
    return Flip(param.name, param.unit, None, ref, None, math.inf)


def robustness(table: pd.DataFrame, floor: float, model, hw, precision, calibration=None,
               hardware_name: str = "", context: int = 0, pick=None) -> Robustness:
    """The verdict for one pool (its search ``table`` and interactivity ``floor``) and what moves it.
    ``pick(table, floor)`` chooses a row (default :func:`select`; the planner passes its billed-cost choice)."""
    select = pick or _select
    chosen = select(table, floor)
    base = family(chosen)
    result = Robustness(hardware=hardware_name, context=context, verdict=verdict_text(chosen),
                        note="re-priced over every batch of the layouts on some strategy's frontier")
    if {"ttl_ms_lo", "ttl_ms_hi"} <= set(table.columns):
        ends = {name: select(table_at_end(table, end), floor) for name, end in (("fast", "lo"), ("slow", "hi"))}
        result.band = {name: verdict_text(row) for name, row in ends.items()}
        result.holds_across_band = all(family(row) == base for row in ends.values())
    rows = candidate_rows(table)
    if rows.empty or chosen is None:
        return result
    k = kernels_for(hw, False, calibration)
    eff = load_efficiency(hw.name)
    refs = {"attention_efficiency": 1.0, "kernel_floor_us": max(eff.kernel_floor_us, 1.0),
            "a2a_latency_us": max(hw.collective_latency_us.all_to_all, 1.0)}
    for param in PARAMETERS:
        def family_at(value: float, param=param) -> tuple:
            priced = reprice(rows, model, precision, PerturbedKernels(k, **{param.key: value}))
            row = select(priced, floor)
            return family(row), row

        flip = _scan(param, base, family_at, refs[param.key])
        result.flips.append(flip)
    return result


def report_blocks(rb: Robustness, blocks) -> list:
    """The plan report's "Robustness" section (``blocks``: the report's block classes module)."""
    if rb.holds_across_band is None:
        band = "The search table carries no TTL interval, so the band was not checked."
    else:
        band = (f"Across the 80 % band the verdict {'holds' if rb.holds_across_band else 'does not hold'}: "
                f"with every configuration at the fast end of its interval the choice is {rb.band['fast']}; "
                f"at the slow end, {rb.band['slow']}.")
    near = rb.nearest()
    flip = ("No parameter flips it within the scanned ranges." if not near else
            "What would flip it: " + "; or ".join(f.describe() for f in near) + ".")
    rows = [[f.parameter, "x1 (as modelled)" if f.unit == "x" else f"+0 us (reference {f.reference:.1f} us)",
             "\u2014" if f.value is None else (f"x{f.value:.2f}" if f.unit == "x" else f"+{f.value:.1f} us"),
             f.verdict_after or "unchanged over the scanned range"] for f in rb.flips]
    return [blocks.Heading("Robustness"),
            blocks.Para(f"Verdict on {rb.hardware} at context {rb.context:,}: {rb.verdict}. {band} {flip}"),
            blocks.Table(["parameter", "modelled", "verdict flips at", "verdict after"], rows),
            blocks.Para(f"One parameter moved at a time ({rb.note}); attention efficiency scanned from x0.25 to "
                        "x4, fixed costs from +1 to +50 us per kernel and +2 to +100 us per all-to-all.")]
