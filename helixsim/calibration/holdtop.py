"""Hold the top out: how well the extrapolation laws carry kernels beyond the data.

For every system, each family of :data:`HELD` is fitted on the measured rows
up to a value of its axis only (decode attention: a KV length of 32,768
tokens; GEMM: m = 8,192; MoE: 4,096 tokens), and the fitted tables (with
their extrapolation law above the last knot) predict the measured rows above
it (attention: 65,536 and 131,072 tokens, one and two doublings beyond).
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

#: family -> (axis column, largest value fitted): rows above it are predicted. Decode attention up to
#: 32K tokens (predicting 64K and 131K); GEMMs up to m = 8,192 (16K, 32K); MoE up to 4,096 tokens (16K).
HELD: dict[str, tuple[str, float]] = {"mla_decode_attention": ("kv_len", 32768.0),
                                      "gqa_decode_attention": ("kv_len", 32768.0),
                                      "gemm": ("m", 8192.0), "moe": ("num_tokens", 4096.0)}
#: the families whose held-out top sets the interval's per-doubling widening (decode attention: the law
#: that long contexts depend on)
ATTENTION = ("mla_decode_attention", "gqa_decode_attention")


def holdtop_rows(system_dir: Path, roof: RoofParams, hardware: str = "",
                 families: tuple[str, ...] = ATTENTION) -> pd.DataFrame:
    """The held-out top rows of ``families`` (see :data:`HELD`) with ``measured_ms``, ``predicted_ms`` and
    ``doublings`` (log2 of the axis value over the largest fitted one)."""
    out = []
    for family in families:
        df = read_family(system_dir, family)
        if df is None or not len(df):
            continue
        column, fit_max = HELD[family]
        x = FAMILIES[family].prepare(df, drop_invalid=False)[column].to_numpy(float)
        train, test = df[x <= fit_max], df[x > fit_max]
        if not len(test):
            continue
        cal = fit_frames({family: train}, roof, hardware)
        unit = FAMILIES[family].unit_to_ms
        pred = predict_rows(family, test, _TableModel(cal)) * unit
        out.append(pd.DataFrame({"family": family, "measured_ms": test["latency_ms"].to_numpy(float) * unit,
                                 "predicted_ms": pred, "doublings": np.log2(x[x > fit_max] / fit_max)}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["family", "measured_ms", "predicted_ms", "doublings"])


def holdtop_report(data_root: Path, systems: list[str] | None = None,
                   families: tuple[str, ...] = ATTENTION) -> pd.DataFrame:
    """:func:`holdtop_rows` of every system under ``data_root``, with a ``system`` column."""
    from ..specs.registry import load_hardware

    frames = []
    for system in systems or list(SYSTEMS):
        if not (Path(data_root) / system).is_dir():
            continue
        hw = load_hardware(SYSTEMS[system])
        rows = holdtop_rows(Path(data_root) / system, RoofParams.from_hardware(hw), hw.name, families)
        frames.append(rows.assign(system=system))
    return pd.concat(frames, ignore_index=True)


def per_doubling_error(rows: pd.DataFrame, quantile: float = 0.8) -> float:
    """The ``quantile`` of |ln(measured / predicted)| / doublings over the decode-attention rows: the
    attention law's error per doubling carried."""
    rows = rows[rows["family"].isin(ATTENTION)]
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


def summary_document(rows: pd.DataFrame) -> dict:
    """The figures of the hold-top check as stored beside the calibrations (``holdtop.json``), so the docs
    can show them without the measured data."""
    table = summary(rows)
    every = rows[rows["family"].isin(ATTENTION)]
    ape = 100.0 * np.abs(every["predicted_ms"] / every["measured_ms"] - 1.0)
    return {"what": "hold the top out: each family fitted up to a value of its axis, APE (percent) of the measured "
                    "rows above it (docs/calibration.md)",
            "command": "python -m helixsim.calibration.holdtop --data <calibration data> --write-summary",
            "rows": [{"family": r.family, "column": HELD[r.family][0], "fit_max": HELD[r.family][1],
                      "system": r.system, "n": int(r.n), "median_ape": float(r.median_ape),
                      "p90_ape": float(r.p90_ape), "median_bias_pct": float(r.median_bias_pct)}
                     for r in table.itertuples(index=False)],
            "attention": {"n": int(len(every)), "median_ape": float(ape.median()),
                          "p90_ape": float(np.percentile(ape, 90)), "per_doubling": per_doubling_error(rows)}}


def markdown(doc: dict) -> str:
    """The docs' table of a :func:`summary_document`."""
    lines = ["| family | fitted up to | system | rows predicted | median APE | p90 APE | median bias |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        lines.append(f"| {r['family']} | {r['column']} {r['fit_max']:,.0f} | {r['system']} | {r['n']} | "
                     f"{r['median_ape']:.1f} % | {r['p90_ape']:.1f} % | {r['median_bias_pct']:+.1f} % |")
    a = doc["attention"]
    lines.append("")
    lines.append(f"All {a['n']} held-out decode-attention rows: median APE {a['median_ape']:.1f} %, "
                 f"p90 {a['p90_ape']:.1f} %; 80th percentile of |ln(measured / predicted)| per "
                 f"doubling carried: {a['per_doubling']:.4f}.")
    return "\n".join(lines)


#: where ``--write-summary`` stores the figures (beside the per-system calibrations)
SUMMARY_FILE = "holdtop.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.holdtop", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="root of the calibration data (<system>/<family>.csv.gz)")
    ap.add_argument("--systems", nargs="*", default=None, help="data system names (default: all)")
    ap.add_argument("--families", nargs="*", default=list(HELD), choices=list(HELD),
                    help="families to check (default: all of them)")
    ap.add_argument("--write-summary", action="store_true",
                    help=f"store the figures as hardware/calibration/{SUMMARY_FILE} (shown by helixsim docs)")
    args = ap.parse_args(argv)
    doc = summary_document(holdtop_report(args.data, args.systems, tuple(args.families)))
    if args.write_summary:
        import json

        from ..specs.registry import data_dir

        (data_dir("hardware") / "calibration" / SUMMARY_FILE).write_text(json.dumps(doc, indent=1) + "\n",
                                                                         encoding="utf-8")
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
