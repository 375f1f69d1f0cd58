"""The held-out error of the shipped prefill-attention grids (docs/prefill.md), per system and framework,
read from the manifests ``python -m helixsim.calibration.prefill`` writes."""

from __future__ import annotations

from . import generator

FRAMEWORKS = (("TensorRT-LLM", ""), ("SGLang", "sglang"), ("vLLM", "vllm"))


@generator("prefill-holdout")
def prefill_holdout() -> str:
    from ..calibration.prefill import FAMILIES, SYSTEMS, load
    from ..specs.registry import data_dir

    root = data_dir("hardware") / "calibration"
    lines = ["| system | framework | " + " | ".join(FAMILIES) + " |", "|---|---|" + "---|" * len(FAMILIES)]
    for name in SYSTEMS.values():
        for label, sub in FRAMEWORKS:
            cal = load(root / name / sub)
            if cal is None:
                continue
            cells = []
            for fam in FAMILIES:
                h = cal.holdout.get(fam)
                cells.append(f"{h['all']['median_ape']:.1f} % / {h['isl_ge_1024']['median_ape']:.1f} %" if h
                             else "TensorRT-LLM's grid")
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
