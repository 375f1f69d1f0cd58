"""``helixsim reproduce``: run the paper's studies and set the paper's claims beside the simulated values.

The paper's numbers are what the simulator is checked against; nothing here
is tuned to them (see README, "Reproducing the paper").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .pareto import batch_gain, fixed_y_x_loss, interactivity_gain, throughput_gain
from .search import frontiers
from .sweep import SweepResult, load_sweep, run_sweep, write_sweep_outputs

#: Helix paper v1 (arXiv 2507.07120) §3.2-3.3 and abstract.
PAPER_CLAIMS = {
    "deepseek-r1": {"interactivity_gain": 1.5, "throughput_gain": 32.0, "batch_gain": 32.0, "hopb_off_loss": 0.01},
    "llama-3.1-405b": {"interactivity_gain": 1.13, "throughput_gain": 4.0, "batch_gain": 4.0, "hopb_off_loss": 0.12},
}
STUDIES = {"deepseek-r1": "paper-fig5-deepseek-r1-1m", "llama-3.1-405b": "paper-fig6-llama-405b-1m"}
HOPB_STUDY = "paper-fig7-hopb"


@dataclass
class Reproduction:
    metrics: dict[str, dict[str, float]]
    results: list[SweepResult]
    paths: list[Path]


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _gains(helix, base) -> dict[str, float | None]:
    return {"interactivity_gain": _clean(interactivity_gain(helix, base)),
            "throughput_gain": _clean(throughput_gain(helix, base)),
            "batch_gain": _clean(batch_gain(helix, base))}


def reproduce(out: Path | None = None, calibration=None, ideal: bool | None = None) -> Reproduction:
    """Run Figures 5, 6 and 7 and compute the gains the paper reports."""
    metrics: dict[str, dict[str, float]] = {}
    results, paths = [], []
    for model, study in STUDIES.items():
        spec, path = load_sweep(study)
        (res,) = run_sweep(spec, str(path), calibration=calibration, ideal=ideal)
        helix = res.frontiers["Helix"]
        metrics[model] = _gains(helix, res.frontiers["Best baseline"])
        # The paper's DeepSeek-R1 baseline may not include Medha (§3.2: Medha published no MoE
        # results); report the gains against TP/EP(+PP) alone as well.
        no_medha = frontiers(res.table, {"x": ["tp", "ep"]})["x"]
        metrics[model]["without_medha"] = _gains(helix, no_medha)
        results.append(res)
        if out is not None:
            paths += write_sweep_outputs(res, out, path)
    spec, path = load_sweep(HOPB_STUDY)
    for res in run_sweep(spec, str(path), calibration=calibration, ideal=ideal):
        metrics[res.model]["hopb_off_loss"] = _clean(fixed_y_x_loss(res.frontiers["Helix"], res.frontiers["Helix HOP-B off"]))
        results.append(res)
        if out is not None:
            paths += write_sweep_outputs(res, out, path)
    return Reproduction(metrics, results, paths)


def claims_table(rep: Reproduction) -> str:
    """Markdown table: paper claim vs simulated value."""
    names = {"interactivity_gain": "max tokens/s/user, Helix / best baseline",
             "throughput_gain": "tokens/s/GPU at equal or better tokens/s/user",
             "batch_gain": "batch at equal or better tokens/s/user",
             "hopb_off_loss": "tokens/s/user lost with HOP-B off"}
    lines = ["| model | metric | paper | helixsim | helixsim, baseline without Medha |", "|---|---|---|---|---|"]
    for model, claims in PAPER_CLAIMS.items():
        for key, claim in claims.items():
            fmt = (lambda v: f"{100 * v:.1f} %") if key == "hopb_off_loss" else (lambda v: f"{v:.2f}x")
            show = (lambda v: "n/a" if v is None else fmt(v))
            value = rep.metrics[model].get(key)
            other = rep.metrics[model]["without_medha"].get(key, value)
            lines.append(f"| {model} | {names[key]} | {fmt(claim)} | {show(value)} | {show(other)} |")
    return "\n".join(lines)
