"""User-facing errors: one line, naming the file and the field.

Every problem with user input (a YAML file, a flag, a layout that cannot
exist, a batch that does not fit) is raised as :class:`SpecError`; the CLI
prints ``error: <message>`` and exits with status 2.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class SpecError(ValueError):
    """Bad input. ``str(err)`` is a single line naming the source and field."""

    def __init__(self, source: str, field: str, problem: str):
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{_cut(source)}: {_cut(field)}" if field else _cut(source)
        super().__init__(f"{where}: {_cut(problem, 700)}".replace("\n", " "))  # room for a list of choices


def _cut(text, limit: int = 200) -> str:
    """Echoed user text stays short: a 3 MB name must not become a 3 MB error line."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def closest(word: str, choices: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` suffix for the closest known choice, or ``""``."""
    match = difflib.get_close_matches(str(word)[:100], list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
