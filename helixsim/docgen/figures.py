"""The README's and docs' remaining figures, drawn from the numbers beside them.

* ``docs/figures/paper-fig1-roofline.png`` and ``blog-fig1-roofline.png``: the three DRAM-read
  panels of the paper's Figure 1 and of the blog's setting (``helixsim roofline [--preset blog]``),
  numbers from :func:`helixsim.roofline.figure1_panels`.
* ``docs/figures/e2e-validation.png``: predicted against measured decode TPOT of the 211 serving
  runs (``helixsim validate --e2e validation/silicon_decode_dev.csv --out ...``), numbers from the
  same cached run as the README's validation table.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import figure


def _setup(preset: str):
    from ..roofline import RooflineSetup

    return RooflineSetup.paper_fig1() if preset == "paper" else RooflineSetup.blog_fig1()


def _roofline_numbers(preset: str) -> dict:
    from ..roofline import figure1_panels

    return {name: frame.to_dict(orient="list") for name, frame in figure1_panels(_setup(preset)).items()}


def _draw_from(plot):
    """A draw function: ``plot(numbers, stem)`` writes ``stem.png`` (and .svg) in a scratch folder,
    the PNG is copied to the image path."""
    def draw(numbers: dict, path: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="helixsim-fig-") as tmp:
            plot(numbers, Path(tmp) / "figure")
            shutil.copyfile(Path(tmp) / "figure.png", path)
    return draw


def _plot_roofline(preset: str):
    def plot(numbers: dict, stem: Path) -> None:
        import pandas as pd

        from ..plots import plot_roofline

        plot_roofline({name: pd.DataFrame(cols) for name, cols in numbers.items()}, _setup(preset), stem)
    return plot


for _preset in ("paper", "blog"):
    figure(f"{_preset}-fig1-roofline", f"docs/figures/{_preset}-fig1-roofline.png",
           _draw_from(_plot_roofline(_preset)))(lambda preset=_preset: _roofline_numbers(preset))


@figure("e2e-validation", "docs/figures/e2e-validation.png", _draw_from(lambda numbers, stem: _plot_e2e(numbers, stem)))
def e2e_validation_numbers() -> dict:
    from .validation_docs import DECODE, e2e

    rows = e2e(DECODE).rows
    ok = rows["predicted_tpot_ms"].notna()
    group = "model" if "model" in rows else "system"
    return {"measured_tpot_ms": rows.loc[ok, "measured_tpot_ms"].tolist(),
            "predicted_tpot_ms": rows.loc[ok, "predicted_tpot_ms"].tolist(),
            "group": rows.loc[ok, group].astype(str).tolist()}


def _plot_e2e(numbers: dict, stem: Path) -> None:
    import pandas as pd

    from ..plots import plot_predicted_vs_measured

    plot_predicted_vs_measured(pd.Series(numbers["measured_tpot_ms"]), pd.Series(numbers["predicted_tpot_ms"]),
                               stem, "Decode time per output token", groups=pd.Series(numbers["group"]))
