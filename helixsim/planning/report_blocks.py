"""The plan report's building blocks (headings, paragraphs, tables, figures, bullets) and number formats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

STRATEGY_NAMES = {"helix": "Helix", "tp": "TP", "ep": "EP (DP attention)", "medha": "Medha",
                  "medha-ep": "Medha+EP (helixsim extension)"}


# ----------------------------------------------------------------------------------------------- blocks
@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # **bold** allowed


@dataclass
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""


@dataclass
class Figure:
    name: str  # file name of the PNG beside report.md
    png: bytes
    alt: str
    caption: str = ""


@dataclass
class Bullets:
    items: Sequence[str]


# ----------------------------------------------------------------------------------------------- formatting
def _n(x: Optional[float], digits: int = 3) -> str:
    """A number with ``digits`` significant digits and thousands separators; an em dash for None."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "\u2014"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:,.{digits}g}" if abs(x) >= 1 else f"{x:.{digits}g}"


def _usd(x: Optional[float]) -> str:
    return "\u2014" if x is None else f"${x:,.2f}"


def _ctx(c: int) -> str:
    if c >= 1_000_000 and c % 1_000_000 == 0:
        return f"{c // 1_000_000}M"
    if c >= 1000 and c % 1000 == 0:
        return f"{c // 1000}K"
    return f"{c:,}"


def _layout(strategy: str, label: str) -> str:
    return f"{strategy} {label}"

