"""The serving-validation table of docs/prefill.md: one run of

    helixsim validate --e2e validation/silicon_serving_dev.csv

abridged to the overall, tier and TTFT rows (about 20 s)."""

from __future__ import annotations

from . import ROOT, generator


@generator("serving-validation")
def serving_validation() -> str:
    from ..cli import _error_table
    from ..validation import validate_e2e

    summary = validate_e2e(ROOT / "validation" / "silicon_serving_dev.csv").summary
    abridged = {key: summary[key] for key in ("overall", "by_tier", "ttft") if key in summary}
    return "```\n" + _error_table(abridged) + "\n```"
