"""Token counts as people write them: ``1M``, ``256k``, ``128Ki``, ``1.5M``, ``131072``.

Decimal suffixes are powers of 1000 (``k``/``K`` 10^3, ``M`` 10^6, ``G`` 10^9), binary ones
powers of 1024 (``Ki`` 2^10, ``Mi`` 2^20, ``Gi`` 2^30), as in IEC 80000-13. The result must be
a whole number of tokens (``1.5k`` is 1500; ``1.0001k`` is refused).
"""

from __future__ import annotations

import re
from fractions import Fraction

import click

from .errors import SpecError

SUFFIXES = {"": 1, "k": 10 ** 3, "K": 10 ** 3, "M": 10 ** 6, "m": 10 ** 6, "G": 10 ** 9, "g": 10 ** 9,
            "Ki": 2 ** 10, "ki": 2 ** 10, "Mi": 2 ** 20, "mi": 2 ** 20, "Gi": 2 ** 30, "gi": 2 ** 30}
_TOKENS = re.compile(r"^\s*(?P<num>[0-9]+(\.[0-9]+)?)\s*(?P<suffix>[kKmMgG]i?)?\s*$")
#: Largest token count parsed (the spec files' general limit, helixsim.specs._schema.MAX_MAGNITUDE);
#: plan bounds its contexts lower (2^40), as its YAML does.
MAX_TOKENS = 10 ** 15


def parse_tokens(text, source: str = "command line", field: str = "--context") -> int:
    """A whole token count from ``text`` (an int, or a string with an optional suffix); SpecError if not."""
    if isinstance(text, bool):
        raise SpecError(source, field, f"expected a token count such as 131072, 128k or 1M, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        match = _TOKENS.match(str(text))
        if not match:
            shown = str(text) if len(str(text)) <= 40 else str(text)[:40] + "..."
            raise SpecError(source, field, f"expected a token count such as 131072, 128k, 128Ki or 1M, got '{shown}'")
        exact = Fraction(match.group("num")) * SUFFIXES[match.group("suffix") or ""]
        if exact.denominator != 1:
            raise SpecError(source, field, f"'{text}' is not a whole number of tokens")
        value = int(exact)
    if value < 1:
        raise SpecError(source, field, f"must be >= 1 token, got {value}")
    if value > MAX_TOKENS:
        raise SpecError(source, field, f"must be <= {MAX_TOKENS:g} tokens, got {str(text)[:40]}")
    return value


class TokenCount(click.ParamType):
    """A click option type for token counts (``--context 1M``)."""

    name = "tokens"

    def convert(self, value, param, ctx):
        flag = f"--{param.name.replace('_', '-')}" if param is not None else "--context"
        try:
            return parse_tokens(value, "command line", flag)
        except SpecError as err:
            self.fail(err.problem, param, ctx)


TOKENS = TokenCount()
