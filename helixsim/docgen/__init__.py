"""Docs that cannot drift: every generated part of README.md and docs/ comes from a registered function.

A Markdown file marks a generated part with a pair of comments::

    <!-- generated:plan-example -->
    (whatever the generator ``plan-example`` returns; rewritten by ``helixsim docs``)
    <!-- /generated:plan-example -->

and a generator is a function registered under that name in any module of this package
(every module here is imported when the registry is first used, so adding a module is enough)::

    from helixsim.docgen import generator

    @generator("plan-example")
    def plan_example() -> str:
        return "...Markdown computed by the code..."

A figure is registered with :func:`figure`: a function returning the numbers behind the image
(a JSON-serialisable dict) and a drawing function that renders an image from those numbers
only. ``helixsim docs`` writes the numbers beside the image (``<image>.json``) and redraws the
image; ``helixsim docs --check`` (and ``tests/test_docs_generated.py``) recomputes every block
and every figure's numbers and fails on any difference, so images are compared by the numbers
behind them, never by pixels. Keep generators cheap (seconds): the check runs in the test suite.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import SpecError
from ..safe_io import read_input_text


def find_root() -> Path:
    """The repository whose README.md and docs/ are generated.

    In a source checkout that is the folder above the package; an installed wheel has no docs
    beside it, so the working directory is used when it is a checkout (as when the tests or
    ``helixsim docs`` run from the repository root against an installed copy).
    """
    beside = Path(__file__).resolve().parent.parent.parent
    for candidate in (beside, Path.cwd()):
        if (candidate / "README.md").is_file() and (candidate / "docs").is_dir():
            return candidate
    return beside


#: Repository root (see :func:`find_root`).
ROOT = find_root()
BLOCK = re.compile(r"<!-- generated:(?P<name>[A-Za-z0-9_.-]+) -->\n(?P<body>.*?)<!-- /generated:(?P=name) -->", re.S)
OPEN = re.compile(r"<!-- generated:([A-Za-z0-9_.-]+) -->")
#: Significant digits kept for every float in a figure's numbers (what the check compares).
DIGITS = 6


@dataclass(frozen=True)
class Figure:
    path: str                                        # relative to the repository root, e.g. docs/plan-report.png
    numbers: Callable[[], dict]                      # the data behind the image (cheap to recompute)
    draw: Callable[[dict, Path], None]               # renders the image from the numbers alone


GENERATORS: dict[str, Callable[[], str]] = {}
FIGURES: dict[str, Figure] = {}
_loaded = False


def generator(name: str):
    """Register ``fn() -> str`` as the text of every ``<!-- generated:name -->`` block."""
    def register(fn):
        if name in GENERATORS:
            raise ValueError(f"docs generator '{name}' registered twice")
        GENERATORS[name] = fn
        return fn
    return register


def figure(name: str, path: str, draw: Callable[[dict, Path], None]):
    """Register ``fn() -> dict`` as the numbers of the image at ``path`` (drawn by ``draw``)."""
    def register(fn):
        if name in FIGURES:
            raise ValueError(f"docs figure '{name}' registered twice")
        FIGURES[name] = Figure(path, fn, draw)
        return fn
    return register


def load_all() -> None:
    """Import every module of this package, so each registers its generators."""
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown file under docs/ (a README.md that is not a regular file is
    returned too, so that reading it names it)."""
    readme = root / "README.md"
    files = [readme] if readme.exists() or readme.is_symlink() else []
    return files + [f for f in sorted((root / "docs").rglob("*.md")) if f.is_file()]


def rounded(value):
    """``value`` with floats cut to :data:`DIGITS` significant digits (so the check ignores the last bits)."""
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.{DIGITS}g}")
    if isinstance(value, dict):
        return {str(k): rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def render_file(text: str, source: str, cache: dict[str, str]) -> str:
    """``text`` with every generated block refilled (generators run once per name, via ``cache``)."""
    opened = OPEN.findall(text)
    blocks = BLOCK.findall(text)
    if len(opened) != len(blocks):
        raise SpecError(source, "", "a '<!-- generated:NAME -->' block has no matching '<!-- /generated:NAME -->'")

    def fill(match: re.Match) -> str:
        name = match.group("name")
        if name not in GENERATORS:
            raise SpecError(source, f"generated:{name}", f"no docs generator of that name; known: {', '.join(sorted(GENERATORS))}")
        if name not in cache:
            cache[name] = GENERATORS[name]().rstrip("\n") + "\n"
        return f"<!-- generated:{name} -->\n{cache[name]}<!-- /generated:{name} -->"

    return BLOCK.sub(fill, text)


def figure_numbers(fig: Figure) -> dict:
    return rounded(json.loads(json.dumps(fig.numbers())))


def regenerate(root: Path = ROOT, check: bool = False, names: tuple[str, ...] = ()) -> list[str]:
    """Refill every generated block and redraw every figure (or, with ``check``, only compare).

    Returns what differs (``check``) or what was rewritten, as ``path: block`` strings.
    ``names`` limits figures to those names (blocks are always all refilled: they are cheap).
    """
    load_all()
    changed, cache = [], {}
    for path in doc_files(root):
        old = read_input_text(path, str(path))
        new = render_file(old, str(path.relative_to(root)), cache)
        if new != old:
            differing = [m.group("name") for m in BLOCK.finditer(old)
                         if m.group(0) not in new]
            changed += [f"{path.relative_to(root)}: {n}" for n in differing] or [str(path.relative_to(root))]
            if not check:
                path.write_text(new, encoding="utf-8")
    for name, fig in sorted(FIGURES.items()):
        if names and name not in names:
            continue
        image = root / fig.path
        stored = image.with_suffix(".json")
        if root != ROOT and not image.parent.is_dir():
            continue  # another tree (helixsim docs --root) without the image's folder has no such figure
        numbers = figure_numbers(fig)
        old = json.loads(stored.read_text(encoding="utf-8")) if stored.is_file() else None
        if old != numbers or not image.is_file():
            changed.append(f"{fig.path}: figure {name}")
            if not check:
                stored.write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n", encoding="utf-8")
                fig.draw(numbers, image)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m helixsim.docgen [--check]``."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m helixsim.docgen", description="regenerate README.md and docs/")
    ap.add_argument("--check", action="store_true", help="only report what differs (exit 1 if anything does)")
    ap.add_argument("--root", type=Path, default=None, help="repository root [default: this checkout]")
    args = ap.parse_args(argv)
    root = args.root or ROOT
    if not root.is_dir():
        raise SpecError("--root", "", f"'{root}' is not a folder")
    readme = root / "README.md"
    if not (readme.exists() or readme.is_symlink()):
        if args.root is None:
            print("error: no README.md beside the package: run from a source checkout", file=sys.stderr)
            return 2
        raise SpecError("--root", "", f"no README.md in '{root}'")
    changed = regenerate(root, check=args.check)
    for line in changed:
        print(("differs: " if args.check else "rewrote: ") + line)
    return 1 if (args.check and changed) else 0
