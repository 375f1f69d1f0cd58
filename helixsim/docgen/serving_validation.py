"""The serving-validation tables of docs/prefill.md: one run of

    helixsim validate --e2e validation/silicon_serving_dev.csv

abridged to the overall, tier and TTFT rows, then the TTFT rows by framework and model, and the
TTFT the SGLang rows would have under InferenceMAX's published SGLang launch settings (about 20 s)."""

from __future__ import annotations

from functools import lru_cache

from . import ROOT, generator

#: InferenceMAX's SGLang DeepSeek-R1 launch scripts (dsr1_fp4_b200_docker.sh: --stream-interval 10,
#: --scheduler-recv-interval 10 below concurrency 16; the H200 scripts: --stream-interval 10)
INFERENCEMAX_SGLANG = {"stream_interval": 10, "recv_interval": 10}


def _result():
    """The serving file's run, shared with the README's validation table (cached there)."""
    from .validation_docs import SERVING, e2e

    return e2e(SERVING)


@generator("serving-validation")
def serving_validation() -> str:
    from ..cli import _error_table

    from ..validation import ape_stats

    res = _result()
    summary, rows = res.summary, res.rows
    abridged = {key: summary[key] for key in ("overall", "by_tier", "ttft") if key in summary}
    # the same rows without the prefill-interference term (the decode step alone)
    ape = 100.0 * (rows["predicted_decode_tpot_ms"] - rows["measured_tpot_ms"]).abs() / rows["measured_tpot_ms"]
    tier = rows["tier"].astype(str)
    alone = {f"decode-only: tier {t[0]}": ape_stats(ape[(tier == t) & ape.notna()]) for t in sorted(tier.unique())
             if t[:2] in ("B_", "C_", "D_")}
    alone["decode-only: tiers C+D"] = ape_stats(ape[tier.str[:2].isin(["C_", "D_"]) & ape.notna()])
    return "```\n" + _error_table(abridged) + "\n" + "\n".join(_error_table(alone).splitlines()[1:]) + "\n```"


@generator("serving-ttft")
def serving_ttft() -> str:
    """TTFT (concurrency <= 4) by framework and by model, and the SGLang launch-settings sensitivity."""
    import numpy as np

    from ..cli import _error_table
    from ..serving_validation import ttft_mask, ttft_with_launch_settings
    from ..validation import ape_stats

    res = _result()
    t, rows = res.summary["ttft"], res.rows
    table = {f"TTFT, {k}": v for k, v in t.get("by_backend", {}).items()}
    table.update({f"TTFT, {k}": v for k, v in t["by_model"].items()})
    sel = ttft_mask(rows)
    alt = ttft_with_launch_settings(rows, "sglang", **INFERENCEMAX_SGLANG)
    ape = 100.0 * np.abs(alt - rows["measured_ttft_ms"]) / rows["measured_ttft_ms"]
    table["TTFT, sglang at 10/10"] = ape_stats(ape[sel & (rows["backend"] == "sglang")])
    table["TTFT, all, sglang at 10/10"] = ape_stats(ape[sel])
    under = 100.0 * t["under_predicted_share"]
    residual = (rows["measured_ttft_ms"] - rows["predicted_ttft_ms"])[sel]
    by = residual.groupby(rows.loc[sel, "backend"]).median()
    parts = ", ".join(f"{k} {v:.0f} ms" for k, v in by.items())
    from ..ttft_interval import shipped_request_path_rule

    q = shipped_request_path_rule().quantiles_ms
    terms = ", ".join(f"{k} +{max(v[1], 0.0):.0f} ms" for k, v in sorted(q.items()))
    return ("```\n" + _error_table(table) + "\n```\n\n"
            f"Predicted below the measured TTFT on {under:.0f} % of these rows; median residual "
            f"(measured - predicted) by framework: {parts}. The 80 % TTFT interval's request-path term "
            f"(90th percentile of that residual) is {terms}; the interval holds "
            f"{100 * t['interval_coverage']:.0f} % of these runs ({100 * t['interval_coverage_cv']:.0f} % "
            "cross-validated over five folds).")
