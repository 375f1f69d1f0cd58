"""How sure a predicted time to first token (TTFT) is: an 80 % interval with the serving stack's request path.

helixsim prices the GPU work that precedes the first token (the prefill passes, the scheduler's wait
for a running iteration, the KV hand-off of a disaggregated run). A measured TTFT also holds the
request's path through the serving stack (HTTP front end, tokenisation, scheduling queues between
processes, detokenising and streaming the first token), which no kernel measurement covers. On the
measured runs where queueing is small (:data:`helixsim.serving_validation.TTFT_FILTER`) every
prediction is below the measurement, by a roughly constant amount per framework (tens to hundreds
of milliseconds whatever the prompt length: ``docs/prefill.md``).

The point prediction is left as the priced GPU work (nothing is fitted to those runs). Its interval is:

- the kernel spread of the calibrated model, multiplicative, as on a decode step:
  ``[T e^q10, T e^q90]`` with the decode rule's q10, q90 (:mod:`helixsim.uncertainty`);
- prefill attention carried beyond the measured prompt lengths is widened per doubling by the
  same law as decode attention (``e^(w d) - 1`` above, ``1 - e^(-w d)`` below);
- the request path, additive and per framework: the 10th and 90th percentiles of
  ``measured - predicted`` (ms) over that framework's measured runs, the upper one added above,
  a negative lower one added below.

The widenings add (they are not assumed to cancel); the interval always contains the point. At a
1M-token prompt the request path is one or two per cent of the TTFT; at 1K tokens it is most of it.

The constants live in ``hardware/calibration/ttft_interval.json``; regenerate with
``python -m helixsim.ttft_interval --e2e validation/silicon_serving_dev.csv``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

RULE_FILE = "ttft_interval.json"


@dataclass(frozen=True)
class RequestPathRule:
    """Per framework: (10th, 90th percentile) of measured - predicted TTFT (ms) and the runs they come from."""

    quantiles_ms: dict          # backend -> (q10_ms, q90_ms)
    runs: dict                  # backend -> number of measured runs
    pooled_ms: tuple            # all frameworks together, for a framework without runs

    def for_backend(self, backend: str) -> tuple[float, float]:
        return tuple(self.quantiles_ms.get(backend, self.pooled_ms))

    def to_dict(self) -> dict:
        return {"request_path_ms_q10_q90": {b: list(q) for b, q in sorted(self.quantiles_ms.items())},
                "runs": dict(sorted(self.runs.items())), "pooled_ms_q10_q90": list(self.pooled_ms)}

    @classmethod
    def from_dict(cls, d: dict) -> "RequestPathRule":
        return cls({b: tuple(float(x) for x in q) for b, q in d["request_path_ms_q10_q90"].items()},
                   {b: int(n) for b, n in d["runs"].items()}, tuple(float(x) for x in d["pooled_ms_q10_q90"]))


def _rule_path() -> Path:
    from .specs.registry import data_dir

    return data_dir("hardware") / "calibration" / RULE_FILE


@lru_cache(maxsize=1)
def shipped_request_path_rule() -> RequestPathRule:
    """The rule of ``hardware/calibration/ttft_interval.json`` (zero width only while that file is being
    generated for the first time: the residuals it is made from do not depend on it)."""
    path = _rule_path()
    if not path.is_file():
        return RequestPathRule({}, {}, (0.0, 0.0))
    return RequestPathRule.from_dict(json.loads(path.read_text(encoding="utf-8"))["rule"])


def request_path_quantiles(measured_ms, predicted_ms) -> tuple[float, float]:
    """10th and 90th percentile of measured - predicted TTFT (ms) over finite rows."""
    r = np.asarray(measured_ms, float) - np.asarray(predicted_ms, float)
    r = r[np.isfinite(r)]
    return float(np.quantile(r, 0.1)), float(np.quantile(r, 0.9))


def attention_doublings(isl, max_measured_isl) -> np.ndarray:
    """Doublings of the prompt beyond the longest measured prefill-attention length (0 inside it)."""
    isl = np.asarray(isl, float)
    top = np.asarray(max_measured_isl, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log2(isl / top)
    return np.where(np.isfinite(d) & (d > 0), d, 0.0)


def prefill_attention_top_isl(k, pcal, model, prec) -> float:
    """The longest prompt the prefill-attention grid that prices ``model`` was measured at (inf without a grid:
    then the attention is a roofline, not a law carried beyond data)."""
    from .cost.prefill import ATTENTION_FAMILY, attention_dims

    if pcal is None or k.eff.ideal:
        return float("inf")
    found = pcal.grid(ATTENTION_FAMILY[model.attention.is_mla], prec.attention_math_dtype, prec.kv_cache,
                      attention_dims(model)[2])
    return float("inf") if found is None else found[1].max_isl


def ttft_interval_ms(ttft_ms, attention_extrapolated_ms, doublings, backend: str, ideal: bool = False,
                     path_rule: RequestPathRule | None = None, kernel_rule=None) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the 80 % TTFT interval (module docstring); ``attention_extrapolated_ms`` is the part of the
    TTFT that is prefill attention priced beyond the measured lengths, ``doublings`` how far beyond."""
    from .uncertainty import shipped_rule

    t = np.asarray(ttft_ms, float)
    if ideal:   # a textbook bound, not a prediction
        return t.copy(), t.copy()
    kernel_rule = kernel_rule or shipped_rule()
    path_rule = path_rule or shipped_request_path_rule()
    c10, c90 = kernel_rule.calibrated_q
    w = kernel_rule.per_doubling
    ext, d = np.asarray(attention_extrapolated_ms, float), np.asarray(doublings, float)
    q10, q90 = path_rule.for_backend(backend)
    hi = t * np.exp(c90) + ext * np.expm1(w * d) + max(q90, 0.0)
    lo = t * np.exp(c10) + ext * np.expm1(-w * d) + min(q10, 0.0)
    return np.clip(lo, 0.0, t), np.maximum(hi, t)


def ttft_rows(rows):
    """The measured runs the rule is made from and scored on (:data:`helixsim.serving_validation.TTFT_FILTER`)."""
    from .serving_validation import ttft_mask

    return rows[ttft_mask(rows)]


def rule_from_rows(rows) -> RequestPathRule:
    """The request-path quantiles of measured runs (rows as :func:`helixsim.validation.validate_e2e` gives them)."""
    sel = ttft_rows(rows)
    q = {b: request_path_quantiles(g["measured_ttft_ms"], g["predicted_ttft_ms"]) for b, g in sel.groupby("backend")}
    return RequestPathRule(q, {b: int(len(g)) for b, g in sel.groupby("backend")},
                           request_path_quantiles(sel["measured_ttft_ms"], sel["predicted_ttft_ms"]))


def ttft_interval_stats(rows, folds: int = 5) -> dict:
    """Share of the TTFT runs inside the predicted interval (``interval_coverage``) and, as the request-path
    term comes from these very runs, cross-validated (``interval_coverage_cv``): runs split into ``folds`` by
    a hash of their row, each fold's request-path term recomputed from the other folds (it is additive, so
    it is swapped exactly)."""
    import zlib

    from .uncertainty import coverage

    if "predicted_ttft_ms_lo" not in rows or not len(rows):
        return {}
    meas = rows["measured_ttft_ms"].to_numpy(float)
    lo, hi = rows["predicted_ttft_ms_lo"].to_numpy(float), rows["predicted_ttft_ms_hi"].to_numpy(float)
    out = {"interval_coverage": coverage(meas, lo, hi)}
    if len(rows) < folds or "backend" not in rows:
        return out
    shipped = shipped_request_path_rule()
    fold = np.array([zlib.crc32(str(i).encode()) % folds for i in rows.index])
    backend = rows["backend"].astype(str).to_numpy()
    cv_lo, cv_hi = lo.copy(), hi.copy()
    for f in range(folds):
        rule = rule_from_rows(rows[fold != f])
        for b in np.unique(backend[fold == f]):
            m = (fold == f) & (backend == b)
            (s10, s90), (q10, q90) = shipped.for_backend(b), rule.for_backend(b)
            cv_hi[m] = np.maximum(hi[m] - max(s90, 0.0) + max(q90, 0.0), rows["predicted_ttft_ms"].to_numpy(float)[m])
            cv_lo[m] = np.clip(lo[m] - min(s10, 0.0) + min(q10, 0.0), 0.0, rows["predicted_ttft_ms"].to_numpy(float)[m])
    out["interval_coverage_cv"] = coverage(meas, cv_lo, cv_hi)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helixsim.ttft_interval",
                                 description="Regenerate hardware/calibration/ttft_interval.json (request-path term "
                                             "of the TTFT interval)")
    ap.add_argument("--e2e", type=Path, required=True, help="measured serving runs with TTFT "
                                                               "(validation/silicon_serving_dev.csv)")
    ap.add_argument("--out", type=Path, default=None, help="default: the shipped hardware/calibration/ttft_interval.json")
    args = ap.parse_args(argv)
    from .serving_validation import TTFT_FILTER
    from .validation import validate_e2e

    rule = rule_from_rows(validate_e2e(args.e2e).rows)
    doc = {"what": "request-path term of the 80 % TTFT interval, per serving framework (helixsim/ttft_interval.py)",
           "command": "python -m helixsim.ttft_interval --e2e validation/silicon_serving_dev.csv",
           "filter": TTFT_FILTER,
           "rule": json.loads(json.dumps(rule.to_dict(), default=float),
                              parse_float=lambda s: round(float(s), 3))}
    from .uncertainty import write_rule_document

    return write_rule_document(doc, args.out or _rule_path())


if __name__ == "__main__":
    from .uncertainty import run_rule_command

    raise SystemExit(run_rule_command(main))
