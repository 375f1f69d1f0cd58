"""Hold the top out: how well the extrapolation laws carry decode attention beyond the data.

For every system, the decode-attention families are fitted on the measured
rows with a KV length of at most 32,768 tokens only, and the fitted tables
(with their extrapolation law above the last knot) predict the measured rows
at 65,536 and 131,072 tokens, one and two doublings beyond what they saw.
The errors say how far the law can be trusted, and their growth per doubling
sets how much the interval of an extrapolated price is widened
(:mod:`helixsim.uncertainty`).

    python -m helixsim.calibration.holdtop --data /work/shared/calibration

prints the table in ``docs/calibration.md`` ("Hold the top out").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from .families import FAMILIES
from .fit import SYSTEMS, fit_frames, read_family
from .roofline import RoofParams
from .validate import _TableModel, predict_rows

FAMILIES_HELD = ("mla_decode_attention", "gqa_decode_attention")
#: rows up to this KV length are fitted; longer ones are predicted
FIT_MAX_KV_LEN = 32768


def holdtop_rows(system_dir: Path, roof: RoofParams, hardware: str = "") -> pd.DataFrame:
    """The held-out top rows of every decode-attention family with ``measured_ms``, ``predicted_ms`` and
    ``doublings`` (log2 of the KV length over the largest fitted one)."""
    out = []
    for family in FAMILIES_HELD:
        df = read_family(system_dir, family)
        if df is None or not len(df):
            continue
        kv = FAMILIES[family].prepare(df, drop_invalid=False)["kv_len"].to_numpy(float)
        train, test = df[kv <= FIT_MAX_KV_LEN], df[kv > FIT_MAX_KV_LEN]
        if not len(test):
            continue
        cal = fit_frames({family: train}, roof, hardware)
        pred = predict_rows(family, test, _TableModel(cal))
        out.append(pd.DataFrame({"family": family, "measured_ms": test["latency_ms"].to_numpy(float),
                                 "predicted_ms": pred,
                                 "doublings": np.log2(kv[kv > FIT_MAX_KV_LEN] / FIT_MAX_KV_LEN)}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["family", "measured_ms", "predicted_ms", "doublings"])


def holdtop_report(data_root: Path, systems: list[str] | None = None) -> pd.DataFrame:
    """:func:`holdtop_rows` of every system under ``data_root``, with a ``system`` column."""
    from ..specs.registry import load_hardware

    frames = []
    for system in systems or list(SYSTEMS):
        if not (Path(data_root) / system).is_dir():
            continue
        hw = load_hardware(SYSTEMS[system])
        rows = holdtop_rows(Path(data_root) / system, RoofParams.from_hardware(hw), hw.name)
        frames.append(rows.assign(system=system))
    return pd.concat(frames, ignore_index=True)


def per_doubling_error(rows: pd.DataFrame, quantile: float = 0.8) -> float:
    """The ``quantile`` of |ln(measured / predicted)| / doublings: the law's error per doubling carried."""
    r = np.abs(np.log(rows["measured_ms"] / rows["predicted_ms"])) / rows["doublings"]
    r = r[np.isfinite(r)]
    return float(np.quantile(r, quantile))


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per system and family: rows, median and 90th-percentile APE, median signed error (predicted / measured - 1)."""
    def stats(g):
        ratio = g["predicted_ms"] / g["measured_ms"]
        ape = 100.0 * np.abs(ratio - 1.0)
        return pd.Series({"n": len(g), "median_ape": float(np.median(ape)), "p90_ape": float(np.percentile(ape, 90)),
                          "median_bias_pct": 100.0 * float(np.median(ratio) - 1.0)})

    return rows.groupby(["family", "system"], sort=False)[["predicted_ms", "measured_ms"]].apply(stats).reset_index()


def markdown(rows: pd.DataFrame) -> str:
    table = summary(rows)
    lines = ["| family | system | rows (64K, 131K) | median APE | p90 APE | median bias |", "|---|---|---:|---:|---:|---:|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.family} | {r.system} | {int(r.n)} | {r.median_ape:.1f} % | {r.p90_ape:.1f} % | "
                     f"{r.median_bias_pct:+.1f} % |")
    every = rows.assign(ape=100.0 * np.abs(rows["predicted_ms"] / rows["measured_ms"] - 1.0))
    lines.append("")
    lines.append(f"All {len(every)} held-out rows: median APE {every['ape'].median():.1f} %, "
                 f"p90 {np.percentile(every['ape'], 90):.1f} %; 80th percentile of |ln(measured / predicted)| per "
                 f"doubling carried: {per_doubling_error(rows):.4f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.holdtop", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="root of the calibration data (<system>/<family>.csv.gz)")
    ap.add_argument("--systems", nargs="*", default=None, help="data system names (default: all)")
    args = ap.parse_args(argv)
    print(markdown(holdtop_report(args.data, args.systems)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
