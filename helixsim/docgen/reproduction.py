"""The paper reproduction's docs: the README's claims table, docs/reproducing.md and its figures.

One run of :func:`helixsim.reproduce.reproduce` under the three kernel models (calibrated,
default-efficiency roofline, textbook roofline; about 30 s) is shared by every block and figure
here (cached for the process, so ``helixsim docs --check`` pays it once). The figures' numbers
are the frontier points each image plots (from the calibrated run); the image itself is the one
:func:`helixsim.reproduce.reproduce` drew from those same results.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from . import figure, generator

_FRONTIER_COLUMNS = ("label", "batch", "n_gpus", "tokens_per_s_user", "tokens_per_s_gpu", "ttl_ms")


@lru_cache(maxsize=1)
def reproductions():
    """(reproductions by kernel model, folder holding the calibrated run's figures)."""
    from ..repro_docs import KERNEL_MODELS
    from ..reproduce import reproduce

    folder = tempfile.TemporaryDirectory(prefix="helixsim-repro-")
    reps = {name: reproduce(Path(folder.name) if name == "calibrated" else None, **kwargs)
            for name, kwargs, _, _ in KERNEL_MODELS}
    return reps, folder


@generator("reproduce-table")
def reproduce_table() -> str:
    from ..reproduce import claims_table

    return claims_table(reproductions()[0]["calibrated"])


@generator("reproducing")
def reproducing_page() -> str:
    from ..repro_docs import render

    return render(reproductions()[0])


def _numbers(stem: str) -> dict:
    """The frontier points of the calibrated study whose output files start with the image's name."""
    from ..sweep import output_name

    reps, _ = reproductions()
    for res in reps["calibrated"].results:
        if stem.startswith(output_name(res.spec, res.model)):
            out = {}
            for name, fr in sorted(res.frontiers.items()):
                cols = [c for c in fr.columns if c in _FRONTIER_COLUMNS or c.endswith("_ms")]
                out[name] = fr[cols].to_dict(orient="list")
            return {"study": output_name(res.spec, res.model), "frontiers": out}
    raise KeyError(f"no reproduction study draws {stem}.png")


def _copy_drawn(stem: str):
    def draw(numbers: dict, path: Path) -> None:
        shutil.copyfile(Path(reproductions()[1].name) / f"{stem}.png", path)
    return draw


def _register() -> None:
    from ..repro_docs import FIGURES

    for stem in FIGURES:
        figure(f"repro-{stem}", f"docs/figures/{stem}.png", _copy_drawn(stem))(lambda stem=stem: _numbers(stem))


_register()
