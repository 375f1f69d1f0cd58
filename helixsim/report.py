"""Render a :class:`helixsim.plan.PlanResult` as ``report.md`` and a self-contained ``report.html``.

The report is built once as a list of blocks (headings, paragraphs, tables,
figures) and written twice: Markdown (figures as PNG files beside it) and
HTML (figures embedded as base64 ``data:`` URIs, inline CSS, no scripts and
no external URLs, so the file can be mailed or opened offline). Every file is
written to a temporary name and renamed into place.
"""

from __future__ import annotations

from pathlib import Path

from .planning.report_blocks import STRATEGY_NAMES, Bullets, Figure, Heading, Para, Table  # noqa: F401
from .planning.report_content import build_blocks, recommendation_text  # noqa: F401
from .planning.report_figures import breakdown_figure, frontier_figure  # noqa: F401
from .planning.report_html import to_html
from .planning.report_markdown import to_markdown
from .outputs import atomic_write_bytes
from .plan import PlanResult
from .sweep import atomic_write_text, prepare_out_dir


# ----------------------------------------------------------------------------------------------- writing
def render(result: PlanResult) -> tuple[str, str, list[Figure]]:
    """(Markdown, HTML, figures) of a plan."""
    blocks = build_blocks(result)
    r = result.request
    title = f"helixsim plan: {result.model}, {r.users:,} users at {r.min_tokens_per_s_user:g} tok/s/user"
    return to_markdown(blocks), to_html(blocks, title), [b for b in blocks if isinstance(b, Figure)]


def write_report(result: PlanResult, out: str | Path) -> list[Path]:
    """Write ``report.md`` (with its PNGs beside it) and the self-contained ``report.html`` into ``out``."""
    out = prepare_out_dir(Path(out))
    md, page, figures = render(result)
    written = []
    for fig in figures:
        atomic_write_bytes(out / fig.name, fig.png)
        written.append(out / fig.name)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", page)
    return [out / "report.md", out / "report.html"] + written
