"""The README's calibration-and-validation table and docs/fidelity.md, from the shipped data.

Both serving-run tables (``validation/silicon_decode_dev.csv``, 211 decode runs, and
``validation/silicon_serving_dev.csv``, 838 runs with prefill) are predicted once per process
(cached) and shared with docs/prefill.md's serving-validation block. The kernel row reads the
held-out error the calibration build shipped (``hardware/calibration/<system>/holdout.json``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from . import ROOT, generator

DECODE = Path("validation") / "silicon_decode_dev.csv"
SERVING = Path("validation") / "silicon_serving_dev.csv"


@lru_cache(maxsize=None)
def e2e(relative: Path, calibration: str | None = None):
    """``helixsim validate --e2e ROOT/relative [--calibration ...]`` (cached for the process)."""
    from ..validation import validate_e2e

    return validate_e2e(ROOT / relative, calibration=calibration)


def holdout_range() -> tuple[float, float]:
    """Smallest and largest held-out median error (%) over every family and system shipped (TensorRT-LLM kernels)."""
    from .calibration_docs import shipped_holdouts

    medians = [st["median_ape"] for families in shipped_holdouts().values() for st in families.values() if st.get("n")]
    return min(medians), max(medians)


@generator("validation-table")
def validation_table() -> str:
    lo, hi = holdout_range()
    d = e2e(DECODE).summary
    s = e2e(SERVING).summary
    none = e2e(DECODE, "none").summary["overall"]
    o = d["overall"]
    cd = s["by_tier"].get("C+D", {})
    rows = [
        "| check | command | result |", "|---|---|---|",
        f"| kernels, held-out fifth of the measured rows | `python -m helixsim.calibration.validate --data DIR` | "
        f"median error {lo:.1f}-{hi:.1f} % per family and system ([docs/calibration.md](docs/calibration.md)) |",
        f"| decode TPOT of {o['n']} measured serving runs, each priced with its own framework's kernels | "
        f"`helixsim validate --e2e {DECODE.as_posix()}` | median {o['median_ape']:.1f} %, mean {o['mean_ape']:.1f} %, "
        f"p90 {o['p90_ape']:.1f} %, {100 * o['interval_coverage']:.1f} % inside the 80 % interval (`--json`: "
        "`interval_coverage`); by framework (TensorRT-LLM / SGLang / vLLM), system and model in "
        "[docs/fidelity.md](docs/fidelity.md) |",
        f"| TPOT of {s['overall']['n']} serving runs incl. prefill interference (tiers C, D) | "
        f"`helixsim validate --e2e {SERVING.as_posix()}` | TPOT median {s['overall']['median_ape']:.1f} %, tiers C+D "
        f"{cd.get('median_ape', float('nan')):.1f} %; TPOT by tier and TTFT (concurrency <= 4) by framework and model: "
        "generated tables in [docs/prefill.md](docs/prefill.md) (TTFT under-predicted; why, there) |",
        f"| same {o['n']} decode runs, uncalibrated roofline | `... --calibration none` | median {none['median_ape']:.1f} % |",
    ]
    return "\n".join(rows)


@generator("fidelity")
def fidelity_page() -> str:
    from ..fidelity import page

    return page(DECODE, lambda path: e2e(Path(path)))


@generator("e2e-decode-table")
def e2e_decode_table() -> str:
    """docs/calibration.md's end-to-end table: today's calibrated and roofline figures on the decode runs,
    with the calibrated medians per model and per system."""
    d = e2e(DECODE).summary
    none = e2e(DECODE, "none").summary["overall"]
    o = d["overall"]
    rows = ["| kernel model | median APE | mean | p90 |", "|---|---:|---:|---:|",
            f"| calibrated, each run with its framework's kernels (default) | **{o['median_ape']:.1f} %** | "
            f"{o['mean_ape']:.1f} % | {o['p90_ape']:.1f} % |",
            f"| roofline, default efficiencies (`--calibration none`) | {none['median_ape']:.1f} % | "
            f"{none['mean_ape']:.1f} % | {none['p90_ape']:.1f} % |", ""]

    def medians(group: dict) -> str:
        return ", ".join(f"{k} {v['median_ape']:.1f} % ({v['n']} runs)" for k, v in sorted(group.items()))

    rows.append(f"Calibrated median, per model: {medians(d['by_model'])}; per system: {medians(d['by_system'])}.")
    return "\n".join(rows)
