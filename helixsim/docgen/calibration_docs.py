"""The calibration tables of docs/calibration.md, from what ships beside each calibration.

``calibration-domain``: the measured range of every kernel family's columns per system (union over
the kernel categories), from the shipped calibrations themselves (:func:`helixsim.calibration.domain.
domain_markdown`, the table ``python -m helixsim.calibration.domain`` prints).

``calibration-holdout`` (median) and ``calibration-holdout-tails`` (mean / 90th percentile): the
held-out kernel error per family and system, from the ``holdout.json``
that ``python -m helixsim.calibration.validate --data <calibration data> --write-summary`` stores beside
each calibration (the measured data is not shipped, so the figures are read back, not recomputed;
rerunning that command and then ``helixsim docs`` refreshes both).
"""

from __future__ import annotations

import json

from . import generator


def _systems() -> dict[str, str]:
    from ..calibration.fit import SYSTEMS

    return dict(SYSTEMS)


@generator("calibration-domain")
def calibration_domain() -> str:
    from ..calibration.domain import domain_markdown
    from ..calibration.fit import builtin_calibration_path, load_calibration

    cals = {}
    for name in _systems().values():
        path = builtin_calibration_path(name)
        if path is not None:
            cals[name] = load_calibration(path)
    return domain_markdown(cals)


def shipped_holdouts() -> dict[str, dict]:
    """Per system, the held-out kernel error per family stored beside its calibration (``holdout.json``;
    TensorRT-LLM's kernels), for the systems that ship one."""
    from ..calibration.stored import builtin_calibration_path

    reports = {}
    for name in _systems().values():
        path = builtin_calibration_path(name)
        if path is not None and (path / "holdout.json").is_file():
            reports[name] = json.loads((path / "holdout.json").read_text(encoding="utf-8"))["families"]
    return reports


def _holdout_table(cell) -> str:
    """One row per family, one column per system, each cell ``cell(figures)`` or – where unmeasured."""
    reports = shipped_holdouts()
    families = sorted({f for rep in reports.values() for f in rep})
    lines = ["| family | " + " | ".join(reports) + " |", "|---|" + "---:|" * len(reports)]
    for fam in families:
        lines.append(f"| {fam} | " + " | ".join(cell(rep[fam]) if fam in rep else "–" for rep in reports.values())
                     + " |")
    return "\n".join(lines)


@generator("calibration-holdout")
def calibration_holdout() -> str:
    return _holdout_table(lambda st: f"{st['median_ape']:.2f} (n={st['n']})")


@generator("calibration-holdout-tails")
def calibration_holdout_tails() -> str:
    return _holdout_table(lambda st: f"{st['mean_ape']:.2f} / {st['p90_ape']:.1f}")


@generator("calibration-holdtop")
def calibration_holdtop() -> str:
    """The hold-the-top-out table, from ``hardware/calibration/holdtop.json`` (``python -m
    helixsim.calibration.holdtop --data <calibration data> --write-summary`` writes it)."""
    from ..calibration.holdtop import SUMMARY_FILE, markdown
    from ..specs.registry import data_dir

    path = data_dir("hardware") / "calibration" / SUMMARY_FILE
    return markdown(json.loads(path.read_text(encoding="utf-8")))
