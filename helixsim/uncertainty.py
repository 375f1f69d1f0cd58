"""How sure a predicted step time is: an 80 % interval, the extrapolated share, the kernel model per op.

Every kernel call of a decode step is priced by one of three things: a
calibrated table *inside* the measured domain (an interpolation between
kernel measurements), a calibrated table *outside* it (the family's stated
extrapolation law, :mod:`helixsim.calibration.domain`), or the roofline
(no measured family: norms, p2p, formats without data, ``--calibration
none``). :func:`step_provenance` prices the step once while recording which,
per call, and then re-adds the recorded call times per breakdown op with
weights (a replay of the same composition), so each op's time splits into
those three parts.

The interval rule (``docs/calibration.md``, "How sure is a number"):

- time priced by a calibrated table carries the spread of the end-to-end
  residuals of the calibrated model, ``r = measured / predicted`` on the
  measured serving runs: ``[T e^q10, T e^q90]`` with q10, q90 the 10th and
  90th percentiles of ``ln r`` (these runs are inside the kernel domain, so
  the in-domain kernel errors are part of that spread);
- time priced by the roofline carries the residual spread of the roofline
  model (``--calibration none``) on the same runs;
- extrapolated calibrated time is widened further, call by call, by
  ``e^(w d) - 1`` above and ``1 - e^(-w d)`` below, d being the doublings
  beyond the measured domain and w the 80th percentile of
  ``|ln(measured / predicted)| / doublings`` of the hold-the-top-out check
  (decode attention fitted on KV lengths up to 32K, scored on the measured
  64K-131K rows): the error of a law grows with the distance it is carried;
- the widenings add (errors of one step's kernels are not assumed to cancel);
  the interval always contains the point prediction.

A textbook (``--ideal``) model is a bound, not a prediction: its interval is
the point itself.

The constants live in ``hardware/calibration/interval.json``; regenerate with
``python -m helixsim.uncertainty --data /work/shared/calibration --e2e validation/silicon_decode_dev.csv``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .calibration import point
from .cost.step import BREAKDOWN_KEYS, decode_step
from .cost.rows import full_one
from .call_weights import times_factor, weighting_rows

#: kernel-model methods whose calls are recorded (every priced kernel of a step)
KERNEL_METHODS = ("gemm_ms", "bmm_ms", "gqa_attention_ms", "mla_attention_ms", "moe_ms", "collective_ms",
                  "moe_dispatch_ms", "moe_combine_ms", "memory_op_ms", "law_ms")
INTERVAL_FILE = "interval.json"
#: interval coverage the rule aims at (10th to 90th percentile)
COVERAGE = 0.8


@dataclass(frozen=True)
class IntervalRule:
    """Constants of the interval rule (module docstring)."""

    calibrated_q: tuple[float, float]      # 10th, 90th percentile of ln(measured / predicted), calibrated model
    roofline_q: tuple[float, float]        # same, uncalibrated roofline
    per_doubling: float                    # ln-error per doubling beyond the measured domain (80th percentile)

    def to_dict(self) -> dict:
        return {"calibrated_ln_ratio_q10_q90": list(self.calibrated_q), "roofline_ln_ratio_q10_q90": list(self.roofline_q),
                "extrapolation_ln_error_per_doubling": self.per_doubling}

    @classmethod
    def from_dict(cls, d: dict) -> "IntervalRule":
        return cls(tuple(d["calibrated_ln_ratio_q10_q90"]), tuple(d["roofline_ln_ratio_q10_q90"]),
                   float(d["extrapolation_ln_error_per_doubling"]))


def _interval_path() -> Path:
    from .specs.registry import data_dir

    return data_dir("hardware") / "calibration" / INTERVAL_FILE


@lru_cache(maxsize=1)
def shipped_rule() -> IntervalRule:
    """The rule of ``hardware/calibration/interval.json`` (a zero-width rule only while that file is being
    generated for the first time: the residuals it is made from do not depend on the interval)."""
    path = _interval_path()
    if not path.is_file():
        return IntervalRule((0.0, 0.0), (0.0, 0.0), 0.0)
    return IntervalRule.from_dict(json.loads(path.read_text(encoding="utf-8"))["rule"])


# ---------------------------------------------------------------- recording the step

class _Recorder:
    """Wraps a calibrated kernel model; each priced call's time is kept weighted four ways (:func:`_weightings`:
    its roofline mask and excursion, ``w`` the rule's error per doubling), stacked on a leading axis."""

    def __init__(self, k, w: float):
        self._k, self._w = k, w
        self.weighted: list[np.ndarray] = []

    def _weighted(self, name: str, args: tuple, kwargs: dict, t: np.ndarray, rows: bool = False):
        """:func:`_weightings` of a call (``rows``: :func:`weighting_rows`, for a wrapper that spreads them)."""
        from .calibration.domain import excursion_doublings

        roof, d = excursion_doublings(self._k, name, args, kwargs)
        roof = np.asarray(roof, bool)
        return (weighting_rows if rows else _weightings)(t, roof, np.where(roof, 0.0, d), self._w)

    def __getattr__(self, name):
        attr = getattr(self._k, name)
        if name not in KERNEL_METHODS:
            return attr
        from .calibration.shape_memo import RECORDED, RECORDING

        def call(*args, **kwargs):
            # a method that prices each distinct shape once weights each once too (the same elementwise
            # arithmetic on the shape's own arguments and price) and spreads them over the call's cells
            state = self._k.__dict__
            state[RECORDING] = (name, lambda a, kw, t_at: self._weighted(name, a, kw, np.asarray(t_at, float), True))
            try:
                t = np.asarray(attr(*args, **kwargs), float)
            finally:
                state.pop(RECORDING, None)
            weighted = state.pop(RECORDED, None)
            self.weighted.append(self._weighted(name, args, kwargs, t) if weighted is None else weighted)
            return t

        return call


class _Replay:
    """Returns, call by call, the recorded call times times a weight (same order as the recording)."""

    def __init__(self, k, values: list[np.ndarray]):
        self._k = k
        self._values = iter(values)

    def __getattr__(self, name):
        if name in KERNEL_METHODS:
            return lambda *args, **kwargs: next(self._values)
        return getattr(self._k, name)


def compact(a: np.ndarray) -> np.ndarray:
    """``a`` without its broadcast axes (length 1 where a view repeats one value): the same elements,
    so arithmetic on it gives each cell the value it would have given on the whole array."""
    a = np.asarray(a)
    if a.size <= 1 or not any(st == 0 and n > 1 for st, n in zip(a.strides, a.shape)):
        return a
    return a[tuple(slice(0, 1) if st == 0 and n > 1 else slice(None) for st, n in zip(a.strides, a.shape))]


def ordered_sum(values) -> np.ndarray:
    """``sum(values)``, left to right from 0, with the same value in every cell, but each partial sum kept
    on the shape of the terms so far (compact: see :func:`compact`) and grown in place, not re-allocated.
    A term that is zero in every cell is not added (``0 + v`` is never -0.0, so adding +-0.0 to a partial sum
    changes no bit of it): most provenance terms (time by the roofline, by a law) are zero for most ops."""
    # (an array of one element is its own compact form)
    values = [v if type(v) is np.ndarray and v.size == 1 else compact(v) for v in values]
    if all(v.size == 1 for v in values):   # one point: the same additions in floats
        return _ordered_sum_one(values)
    return _ordered_sum_arrays(values)


def _ordered_sum_arrays(values: list[np.ndarray]) -> np.ndarray:
    """:func:`ordered_sum` of compact arrays."""
    acc = zero = None
    for v in values:
        if not (v.size and v.flat[0] != 0) and not v.any():   # (a first cell not zero answers without a pass)
            zero = v if zero is None else zero
            continue
        if acc is None:
            acc = 0 + v
        elif acc.shape == np.broadcast_shapes(acc.shape, v.shape) and acc.dtype == np.result_type(acc, v):
            np.add(acc, v, out=acc)
        else:
            acc = acc + v
    if acc is None:
        return np.asarray(0 if zero is None else 0 + zero)
    return np.asarray(acc)


def _ordered_sum_one(values: list[np.ndarray]) -> np.ndarray:
    """:func:`ordered_sum` of one-element arrays: the same additions, left to right from 0, in Python numbers
    (IEEE additions, as numpy's), on the shape the array version gives."""
    acc = None
    added, zeros = [], []
    for v in values:
        x = v.item()
        if not x:   # (a NaN is added: it is not zero)
            zeros.append(v)
            continue
        acc = 0 + x if acc is None else acc + x
        added.append(v)
    kept = added or zeros[:1]
    ndim = max((v.ndim for v in kept), default=0)
    dtype = np.result_type(0 + kept[0], *kept[1:]) if kept else np.asarray(0).dtype
    return full_one((1,) * ndim, 0 if acc is None else acc, dtype)


def weightings(t, roof, law, d, w: float) -> tuple:
    """One call's time ``t`` weighted four ways: priced by the roofline (``roof``), by an extrapolation law
    (``law``: not the roofline and beyond the measured domain), and its widenings up and down by
    ``e^(w d) - 1`` and ``1 - e^(-w d)`` (module docstring; ``d``: doublings beyond the measured domain, 0
    where ``roof``). Arrays or floats: the vectorised path and the single point share these formulas."""
    return t * roof, t * law, t * _expm1(w * d), -t * _expm1(-w * d)


def _expm1(x):
    """``np.expm1(x)``; of a Python float zero (a call inside the measured domain), that zero itself (expm1 of
    +-0 is +-0) without numpy's per-call cost."""
    return x if type(x) is float and x == 0.0 else np.expm1(x)


def _weightings(t: np.ndarray, roof: np.ndarray, d: np.ndarray, w: float) -> np.ndarray:
    """:func:`weightings` of one recorded call, stacked on a leading axis of four."""
    out, uniform = weighting_rows(t, roof, d, w)
    for row, factor in zip(out, uniform):
        if factor is not None:
            times_factor(t, factor, row)
    return out


def _clip_to(x: np.ndarray, top: np.ndarray) -> np.ndarray:
    """``np.minimum(np.maximum(x, 0.0), top)``, the second step in place where it can be (no second array)."""
    low = np.maximum(x, 0.0)
    if isinstance(low, np.ndarray) and low.shape == np.broadcast_shapes(low.shape, np.shape(top)) and low.dtype == np.result_type(low, top):
        return np.minimum(low, top, out=low)
    return np.minimum(low, top)


def _weighting(stacked: np.ndarray, i: int, ndim: int) -> np.ndarray:
    """Weighting ``i`` of an op's stacked replay (an op no recorded call reached has one, shared)."""
    if stacked.ndim <= ndim:
        return stacked
    return stacked[min(i, stacked.shape[0] - 1)]


def _replay(k, values, model, layouts, batch, context, prec, q_len=1) -> dict[str, np.ndarray]:
    return decode_step(_Replay(k, values), model, layouts, batch, context, prec, q_len=q_len)


@dataclass
class StepProvenance:
    """Per breakdown op (arrays like the step's): time priced by the roofline, by an extrapolation law,
    and the interval widenings of the extrapolated time."""

    roofline_ms: dict[str, np.ndarray]
    law_ms: dict[str, np.ndarray]
    widen_hi_ms: dict[str, np.ndarray]
    widen_lo_ms: dict[str, np.ndarray]
    kernel_model: Mapping[str, str]


def model_name(k) -> str:
    """``ideal``, ``roofline`` or ``calibration:<name>`` for a kernel model."""
    cal = getattr(k, "calibration", None)
    if cal is not None:   # a serving framework's own tables (helixsim.backends) name it
        return f"calibration:{cal.hardware}" + (f":{k.backend}" if getattr(k, "backend", None) else "")
    return "ideal" if getattr(getattr(k, "eff", None), "ideal", False) else "roofline"


def step_provenance(k, model, layouts, batch, context, prec, rule: IntervalRule | None = None, q_len=1):
    """(parts, provenance): the step's per-op times and where they came from (module docstring);
    ``q_len``: tokens per request (1 + MTP draft tokens, :func:`helixsim.cost.step.decode_step`)."""
    rule = rule or shipped_rule()
    if getattr(k, "calibration", None) is None:
        parts = decode_step(k, model, layouts, batch, context, prec, q_len=q_len)
        zero = {op: np.zeros_like(v) for op, v in parts.items()}
        name = model_name(k)
        return parts, StepProvenance(roofline_ms=dict(parts), law_ms=zero, widen_hi_ms=zero, widen_lo_ms=zero,
                                     kernel_model={op: name for op in parts})
    w = rule.per_doubling
    if point.ENABLED and all(np.size(v) == 1 for v in (batch, context, q_len, layouts.kvp)):
        # one configuration: the step and its four weightings composed in one pass (uncertainty_point)
        from .uncertainty_point import stacked_provenance

        return stacked_provenance(k, w, model, layouts, batch, context, prec, q_len)
    rec = _Recorder(k, w)
    parts = decode_step(rec, model, layouts, batch, context, prec, q_len=q_len)
    # the four weightings of every recorded call (roofline, law, widen up, widen down) replayed in one pass,
    # stacked on a leading axis: the same elementwise arithmetic as four replays, a quarter of the calls
    out = _replay(k, rec.weighted, model, layouts, batch, context, prec, q_len)
    return parts, _provenance(k, parts, out)


def _provenance(k, parts: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> StepProvenance:
    """The provenance of a step's per-op times ``parts`` from the replay ``out`` of its four weightings
    (stacked on a leading axis)."""
    # np.minimum(np.maximum(..)) is np.clip without its per-call overhead (same values, NaN included); on
    # each op's own shape (an op that does not vary with the context is clipped once per layout and batch)
    clipped = {op: _clip_to(compact(out[op]), compact(parts[op])) for op in parts}
    roof, law, hi, lo = ({op: _weighting(v, i, np.ndim(parts[op])) for op, v in clipped.items()} for i in range(4))
    return provenance_of(k, parts, roof, law, hi, lo)


def provenance_of(k, parts: dict[str, np.ndarray], roof: dict, law: dict, hi: dict, lo: dict) -> StepProvenance:
    """The provenance of a step's per-op times ``parts`` from each op's clipped time priced by the roofline, by
    a law, and widenings up and down (:func:`_provenance`), the fixed per-step overhead taken out."""
    zero_overhead = k.eff.step_overhead_us * 1e-3
    # the fixed per-step overhead is a constant of the efficiency file, not a calibrated kernel
    # (np.maximum(x, 0.0) is np.clip(x, 0.0, None) without its per-call overhead: the same values, NaN kept)
    law["overhead"] = np.maximum(law["overhead"] - zero_overhead, 0.0)
    for d in (hi, lo):
        d["overhead"] = np.maximum(d["overhead"] - zero_overhead, 0.0)
    return StepProvenance(roof, law, hi, lo, _OpModels(parts, roof, model_name(k)))


class _OpModels(Mapping):
    """Per breakdown op, the kernel model that priced most of its time (the roofline where it priced more than
    half), found on first use: a sweep's table does not carry it, so a sweep never pays for it."""

    def __init__(self, parts: dict[str, np.ndarray], roof: dict[str, np.ndarray], name: str) -> None:
        self._inputs = (dict(parts), dict(roof), name)   # as they are now (the caller adds its own terms after)
        self._labels: dict[str, str] | None = None

    def _found(self) -> dict[str, str]:
        if self._labels is None:
            parts, roof, name = self._inputs
            self._labels = {}
            for op in parts:
                part = np.asarray(parts[op])
                if part.size == 1 and np.size(roof[op]) == 1:   # one point: the sums of one element are the element
                    total = float(part.item())
                    share = float(np.asarray(roof[op]).item()) / total if total > 0 else 0.0
                else:
                    total = float(np.sum(part))
                    share = float(np.sum(np.broadcast_to(roof[op], part.shape))) / total if total > 0 else 0.0
                self._labels[op] = "roofline" if share > 0.5 else name
            self._inputs = None
        return self._labels

    def __getitem__(self, op: str) -> str:
        return self._found()[op]

    def __iter__(self):
        return iter(self._found())

    def __len__(self) -> int:
        return len(self._found())


def interval_columns(ttl: np.ndarray, prov: StepProvenance, kernel_model_name: str,
                     rule: IntervalRule | None = None) -> dict[str, np.ndarray]:
    """``ttl_ms_lo``, ``ttl_ms_hi`` and ``extrapolated_fraction`` for step times ``ttl`` (module docstring)."""
    return interval_from_sums(ttl, interval_sums(prov, kernel_model_name), kernel_model_name, rule)


def interval_sums(prov: StepProvenance, kernel_model_name: str) -> dict[str, np.ndarray]:
    """The step's time priced by the roofline, by an extrapolation law, and its widenings up and down, each
    summed over the breakdown ops (the widenings only where the interval uses them: not for ``ideal``)."""
    sums = {"roofline": ordered_sum(prov.roofline_ms[op] for op in BREAKDOWN_KEYS),
            "law": ordered_sum(prov.law_ms[op] for op in BREAKDOWN_KEYS)}
    if kernel_model_name != "ideal":
        sums["widen_hi"] = ordered_sum(prov.widen_hi_ms[op] for op in BREAKDOWN_KEYS)
        sums["widen_lo"] = ordered_sum(prov.widen_lo_ms[op] for op in BREAKDOWN_KEYS)
    return sums


def interval_from_sums(ttl: np.ndarray, sums: Mapping[str, np.ndarray], kernel_model_name: str,
                       rule: IntervalRule | None = None) -> dict[str, np.ndarray]:
    """:func:`interval_columns` from the step's :func:`interval_sums` (elementwise: the cells of a sweep kept
    after picking give each the same numbers as the whole grid)."""
    rule = rule or shipped_rule()
    ttl = np.asarray(ttl, float)
    roof = np.minimum(sums["roofline"], ttl)
    cal = np.maximum(ttl - roof, 0.0)
    if kernel_model_name == "ideal":
        lo = hi = ttl
    else:
        (c10, c90), (r10, r90) = rule.calibrated_q, rule.roofline_q
        hi = cal * np.exp(c90) + roof * np.exp(r90) + sums["widen_hi"]
        lo = cal * np.exp(c10) + roof * np.exp(r10) - sums["widen_lo"]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(ttl > 0, np.clip((roof + sums["law"]) / ttl, 0.0, 1.0), 0.0)
    return {"ttl_ms_lo": np.minimum(np.maximum(lo, 0.0), ttl), "ttl_ms_hi": np.maximum(hi, ttl),
            "extrapolated_fraction": frac}


# ---------------------------------------------------------------- coverage and the constants

def coverage(measured: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float | None:
    """Share of measured values inside [lo, hi] (finite rows only)."""
    measured, lo, hi = (np.asarray(a, float) for a in (measured, lo, hi))
    ok = np.isfinite(measured) & np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return None
    return float(np.mean((measured[ok] >= lo[ok]) & (measured[ok] <= hi[ok])))


def ln_ratio_quantiles(measured: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """10th and 90th percentile of ln(measured / predicted) over finite rows."""
    r = np.log(np.asarray(measured, float) / np.asarray(predicted, float))
    r = r[np.isfinite(r)]
    return float(np.quantile(r, 0.1)), float(np.quantile(r, 0.9))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helixsim.uncertainty",
                                 description="Regenerate hardware/calibration/interval.json (the interval rule)")
    ap.add_argument("--data", type=Path, required=True, help="root of the calibration data (hold-the-top-out check)")
    ap.add_argument("--e2e", type=Path, required=True, help="measured serving runs (validation/silicon_decode_dev.csv)")
    ap.add_argument("--out", type=Path, default=None, help="default: the shipped hardware/calibration/interval.json")
    args = ap.parse_args(argv)
    from .calibration.holdtop import holdtop_report, per_doubling_error
    from .validation import validate_e2e

    top = holdtop_report(args.data)
    w = per_doubling_error(top)
    qs = {}
    for name, calibration in (("calibrated", None), ("roofline", "none")):
        rows = validate_e2e(args.e2e, calibration=calibration).rows
        qs[name] = ln_ratio_quantiles(rows["measured_tpot_ms"], rows["predicted_tpot_ms"])
    rule = IntervalRule(qs["calibrated"], qs["roofline"], w)
    doc = {"what": "constants of the 80 % interval on every prediction (helixsim/uncertainty.py)",
           "command": "python -m helixsim.uncertainty --data <calibration data> --e2e validation/silicon_decode_dev.csv",
           "rule": {k: (np.round(v, 5).tolist() if isinstance(v, list) else round(v, 5))
                    for k, v in rule.to_dict().items()}}
    return write_rule_document(doc, args.out or _interval_path())


def write_rule_document(doc: dict, out: Path) -> int:
    """Write a regenerated rule file (JSON, as shipped; renamed into place, never half-written) and echo it;
    the exit status of its command."""
    from .errors import SpecError
    from .outputs import atomic_write_bytes

    text = json.dumps(doc, indent=1)
    try:
        atomic_write_bytes(out, (text + "\n").encode("utf-8"))
    except OSError as err:
        raise SpecError(str(out), "--out", f"cannot write: {err.strerror or err}") from None
    print(text)
    return 0


def run_rule_command(main_fn, argv: list[str] | None = None) -> int:
    """A rule-regenerating ``main``: bad input (a missing or malformed file, an unwritable --out) is one
    line on stderr and exit status 2, not a traceback."""
    import sys

    from .errors import SpecError

    try:
        return main_fn(argv)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
    except OSError as err:
        print(f"error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(run_rule_command(main))
