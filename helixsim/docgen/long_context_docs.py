"""docs/long-context-models.md and its two figures: one run of :func:`helixsim.long_context.run_case`
over its models, systems and contexts (cached for the process; a few seconds of CPU)."""

from __future__ import annotations

import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from . import figure, generator


@lru_cache(maxsize=1)
def cases() -> tuple:
    from ..long_context import CONTEXTS, STUDIES, SYSTEMS, run_case

    return tuple(run_case(m, hw, ctx) for m in STUDIES for hw in SYSTEMS for ctx in CONTEXTS)


def _figure_path(model: str) -> Path:
    return Path("docs") / "figures" / f"long-context-{model}-frontiers.png"


@generator("long-context")
def long_context_page() -> str:
    from ..long_context import STUDIES, render_page

    return render_page(list(cases()), [_figure_path(m) for m in STUDIES], Path("docs"))


def _numbers(model: str) -> dict:
    """Each (system, context) panel's Helix and best-baseline frontier points."""
    from ..pareto import X_COL, Y_COL

    out = {}
    for case in cases():
        if case["model"] == model:
            out[f"{case['hardware']} {case['context']}"] = {
                name: case["frontiers"][name][[X_COL, Y_COL]].sort_values(X_COL).to_dict(orient="list")
                for name in ("Helix", "Best baseline")}
    return out


def _draw(model: str):
    def draw(numbers: dict, path: Path) -> None:  # the study's own plot of the cached cases
        from ..long_context import plot_model

        with tempfile.TemporaryDirectory(prefix="helixsim-lc-") as tmp:
            shutil.copyfile(plot_model(list(cases()), model, Path(tmp)), path)
    return draw


def _register() -> None:
    from ..long_context import STUDIES

    for model in STUDIES:
        figure(f"long-context-{model}", _figure_path(model).as_posix(), _draw(model))(lambda model=model: _numbers(model))


_register()
