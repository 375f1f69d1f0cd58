"""The measured domain of a calibration, and how far a kernel query lies outside it.

A calibrated table covers, per kernel category (its exact keys: a dtype, a
kernel), the ranges of its sweep axis (tokens, GEMM ``m``, KV length,
message size) and of its interpolated columns (batch, heads, ``n``/``k``,
TP/EP widths, GPUs) that were measured. Inside those ranges a price is an
interpolation between measurements; outside, it is an extrapolation by the
family's stated law (``docs/calibration.md``, "Beyond the measured domain").

:func:`excursion_doublings` says, for the arguments of one kernel-model call
(``gemm_ms``, ``mla_attention_ms``, ...), how many doublings beyond the
measured domain the query lies (0 inside), summed over the columns that
leave it; the uncertainty model (:mod:`helixsim.uncertainty`) widens the
interval of extrapolated time with it. Below the smallest measured axis
value a kernel sits on its measured launch floor, which is not counted.

``python -m helixsim.calibration.domain`` prints the domain of every shipped
calibration (the table in ``docs/calibration.md``).
"""

from __future__ import annotations

import inspect
import math
from typing import Mapping

import numpy as np

from ..cost.kernels import RooflineKernels
from ..cost.rows import broadcast_shapes_of
from . import point
from .families import COLLECTIVE_ELEM_BYTES, FAMILIES

#: dtype label of a kernel-model call -> table categories (same maps as :mod:`.kernels`)
_GEMM = {"bf16": ("bfloat16",), "fp8": ("fp8", "fp8_block"), "fp4": ("nvfp4",)}
_MOE = {"bf16": ("bfloat16",), "fp8": ("fp8", "fp8_block"), "fp4": ("nvfp4", "w4a16_mxfp4", "w4a8_mxfp4_mxfp8")}
_KV = {"bf16": ("bfloat16",), "fp8": ("fp8",), "fp4": ("fp8",)}   # FP4 KV: priced from the FP8 kernel
#: An FP4 KV cache priced from the FP8 kernel carries the price over a factor 1 / 0.5625 in bytes:
#: counted as log2(1 / 0.5625) = 0.83 doublings outside the measured domain.
KV_SCALED_DOUBLINGS = {"fp4": float(np.log2(1.0 / 0.5625))}
_BMM = {"bf16": ("bfloat16",), "fp8": ("fp8",)}
_A2A = {"bf16": ("bfloat16",), "fp8": ("fp8",), "fp4": ("nvfp4", "fp4")}
_NCCL = {"all_gather": "all_gather", "reduce_scatter": "reduce_scatter", "all_to_all": "alltoall",
         "all_reduce": "all_reduce"}

_SIGNATURES = {name: inspect.signature(getattr(RooflineKernels, name))
               for name in ("gemm_ms", "bmm_ms", "gqa_attention_ms", "mla_attention_ms", "moe_ms", "collective_ms",
                            "moe_dispatch_ms", "moe_combine_ms", "memory_op_ms", "law_ms")}


_PARAMETERS = {name: ([p for p in sig.parameters][1:], {p.name: p.default for p in sig.parameters.values()
                                                          if p.default is not inspect.Parameter.empty})
               for name, sig in _SIGNATURES.items()}


_NAMES = {name: frozenset(names) for name, (names, _) in _PARAMETERS.items()}


def _arguments(method: str, args: tuple, kwargs: Mapping) -> dict:
    """The arguments of a call by name, defaults filled in (``inspect.Signature.bind`` without its cost)."""
    names, defaults = _PARAMETERS[method]
    if len(args) > len(names) or (kwargs and not kwargs.keys() <= _NAMES[method]):
        bound = _SIGNATURES[method].bind(None, *args, **kwargs)   # the same TypeError as the call itself
        bound.apply_defaults()
        return dict(bound.arguments)
    out = dict(defaults)
    out.update(zip(names, args))
    out.update(kwargs)
    return out


def category_domain(table, cat: tuple) -> dict[str, tuple[float, float]]:
    """Measured ranges (lo, hi) of the axis and of every ``num`` column for one category of ``table``
    (found once per table and category: a sweep asks for them at every kernel call)."""
    cache = table.__dict__.setdefault("_domain_cache", {})
    if cat not in cache:
        cache[cat] = _category_domain(table, cat)
    return cache[cat]


def _category_domain(table, cat: tuple) -> dict[str, tuple[float, float]]:
    lo, hi = table.axis_range(cat)
    out = {table.axis: (lo, hi)}
    for col in table.num:
        vals = table.column_values(cat, col).astype(float)
        out[col] = (float(vals.min()), float(vals.max()))
    return out


def union_domain(table, cats) -> dict[str, tuple[float, float]]:
    """The ranges covered by any of ``cats`` (a query may be served by the fastest of them)."""
    spans: dict[str, tuple[float, float]] = {}
    for cat in cats:
        for col, (lo, hi) in category_domain(table, cat).items():
            a, b = spans.get(col, (lo, hi))
            spans[col] = (min(a, lo), max(b, hi))
    return spans


def doublings_outside(spans: Mapping[str, tuple[float, float]], query: Mapping[str, object], axis: str) -> np.ndarray:
    """Sum over columns of log2 of how far ``query`` lies beyond ``spans`` (above, or below for ``num`` columns)."""
    if point.ENABLED and all(np.size(v) == 1 for v in query.values()):   # one query (a single point)
        return _doublings_outside_one(spans, query, axis)
    total, shapes = 0.0, []
    for col, value in query.items():
        if col not in spans:
            continue
        lo, hi = spans[col]
        q = np.maximum(np.asarray(value, float), 1e-300)
        shapes.append(q.shape)
        # a term of a column the query never leaves is +0.0 in every cell, and adding it changes no bit of the
        # sum (the partial sums are never -0.0: each term is a log2 of at least one): not formed (_inside)
        if not _inside(q, hi, False):
            total = _plus(total, _log2_ratio_at_least_one(q, hi, False))
        if col != axis and not _inside(q, lo, True):
            total = _plus(total, _log2_ratio_at_least_one(q, lo, True))
    shape = broadcast_shapes_of(shapes)
    if np.shape(total) != shape:   # (terms left out: the sum on the shape every term gives it)
        return np.add(np.zeros(shape), total)
    return np.asarray(total, float)


def _inside(q: np.ndarray, bound: float, below: bool) -> bool:
    """True where :func:`_log2_ratio_at_least_one` of ``q`` (positive, NaN-free when True) is +0.0 in every
    cell: every ``q`` at most ``bound`` (at least it where ``below``), so each ratio at most one (division is
    monotone and rounds ``bound / bound`` to one). A NaN fails both reductions' tests."""
    if q.size == 0 or not (0.0 <= bound < np.inf):
        return False
    if below:
        return bool(np.minimum.reduce(q, axis=None) >= bound)
    return bound > 0.0 and bool(np.maximum.reduce(q, axis=None) <= bound)


def _log2_ratio_at_least_one(q: np.ndarray, bound: float, below: bool) -> np.ndarray:
    """``np.log2(np.maximum(q / bound, 1.0))`` (``bound / q`` where ``below``), each step in the first step's
    array (the same operations, one temporary instead of three: a sweep's attention queries span its grid)."""
    r = np.asarray(np.divide(bound, q) if below else np.divide(q, bound))   # (of 0-d queries numpy gives a scalar)
    np.maximum(r, 1.0, out=r)
    return np.log2(r, out=r)


def _plus(total, term: np.ndarray):
    """``total + term``, written into ``term`` (an array of our own) where it has the sum's shape."""
    if type(total) is float or total.shape == term.shape or term.shape == broadcast_shapes_of((total.shape, term.shape)):
        return np.add(total, term, out=term)
    return total + term


def _doublings_outside_one(spans: Mapping[str, tuple[float, float]], query: Mapping[str, object], axis: str) -> np.ndarray:
    """:func:`doublings_outside` of one query (every value of size one), shaped as the vectorised result."""
    ndim = max((getattr(v, "ndim", 0) for col, v in query.items() if col in spans), default=0)
    return np.full((1,) * ndim, _doublings_float(spans, query, axis))


def _doublings_float(spans: Mapping[str, tuple[float, float]], query: Mapping[str, object], axis: str) -> float:
    """:func:`doublings_outside` of one query in floats: the same numbers (numpy's log2 of a float), without
    numpy's per-call cost on arrays of one element."""
    total = 0.0
    for col, value in query.items():
        span = spans.get(col)
        if span is None:
            continue
        lo, hi = span
        q = value if type(value) is float else point.scalar(value)
        q = q if not q < 1e-300 else 1e-300                 # np.maximum(q, 1e-300), a NaN kept
        # _log2_at_least_one of each ratio, written out (no call for a query inside the domain)
        r = q / hi
        above = float(np.log2(r)) if r > 1.0 or r != r else 0.0
        if col == axis:
            below = 0.0
        else:
            r = lo / q
            below = float(np.log2(r)) if r > 1.0 or r != r else 0.0
        total = total + above + below
    return total


def _log2_at_least_one(r: float) -> float:
    """np.log2(np.maximum(r, 1.0)) of a float (log2 of 1 is 0: no call for a query inside the domain)."""
    if r > 1.0 or r != r:
        return float(np.log2(r))
    return 0.0


def _cats(table, pick) -> list[tuple]:
    return [c for c in table.categories() if pick(c)] if table is not None else []


def excursion_doublings(k, method: str, args: tuple, kwargs: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(roofline, doublings) of one call ``k.<method>(*args, **kwargs)`` of a calibrated kernel model.

    ``roofline``: True where the calibration has no table for the query (the wrapped roofline prices
    it: a format without data, a helper kernel, p2p, a group beyond the NVLink domain). ``doublings``:
    how far the query lies beyond the measured domain of the tables that price it, 0 inside.
    """
    return _excursion(k, method, _arguments(method, args, kwargs), False)


def excursion_one(k, method: str, args: tuple, kwargs: Mapping) -> tuple[bool, float]:
    """:func:`excursion_doublings` of a call whose arguments each hold one value (a single point), as a bool
    and a float: the same numbers without numpy's per-call cost on arrays of one element."""
    return _excursion(k, method, _arguments(method, args, kwargs), True)


def _nanmin(values: list[float]) -> float:
    """np.minimum.reduce of floats (a NaN wins)."""
    return math.nan if any(v != v for v in values) else min(values)


#: a union of categories not yet formed (None: formed, no category)
_UNSEEN = object()
#: the methods a calibration table may price (any other: the roofline's, no excursion)
_TABLED = frozenset({"law_ms", "gemm_ms", "bmm_ms", "mla_attention_ms", "gqa_attention_ms", "moe_ms", "collective_ms",
                     "moe_dispatch_ms", "moe_combine_ms"})


def _excursion(k, method: str, a: Mapping, one: bool):
    """:func:`excursion_doublings` of the call's arguments ``a`` by name; ``one``: in floats."""
    no_table = (True, 0.0) if one else (np.asarray(True), np.asarray(0.0))
    if method not in _TABLED:   # memory_op_ms and anything else: the roofline's
        return no_table
    tables = k.calibration.tables
    _array = (lambda v: v if type(v) is float else point.scalar(v)) if one else (lambda v: np.asarray(v, float))

    def over(family: str, pick, query: Mapping[str, object]):
        table = tables.get(family)
        if table is None:
            return None
        # the categories a call may use depend on its formats alone: their union found once per table
        cache = table.__dict__.get("_union_cache")
        if cache is None:
            cache = table.__dict__["_union_cache"] = {}
        key = (method, a.get("weight_dtype"), a.get("kv_dtype"), a.get("dtype"), a.get("op"))
        spans = cache.get(key, _UNSEEN)
        if spans is _UNSEEN:
            cats = _cats(table, pick)
            spans = cache[key] = union_domain(table, cats) if cats else None
        if spans is None:
            return None
        axis = FAMILIES[family].axis
        return _doublings_float(spans, query, axis) if one else doublings_outside(spans, query, axis)

    def fastest(found: list):
        # priced by the fastest candidate: inside if any candidate covers the query
        found = [f for f in found if f is not None]
        if not found:
            return no_table
        if one:
            return False, found[0] if len(found) == 1 else _nanmin(found)
        if len(found) == 1:   # one candidate: its own doublings (what the reduction over one gives)
            return np.asarray(False), np.asarray(found[0])
        return np.asarray(False), np.minimum.reduce(np.broadcast_arrays(*found))

    if method == "law_ms":   # a fitted law (DSA indexer, gated delta-net) states its own excursion
        return (False, _array(a["doublings"])) if one else (np.asarray(False), np.asarray(a["doublings"], float))
    if method == "gemm_ms":
        dts = _GEMM.get(a["weight_dtype"], ())
        return fastest([over("gemm", lambda c: c[0] in dts, {"m": a["m"], "n": a["n"], "k": a["k"]})])
    if method == "bmm_ms":
        dts = _BMM.get(a["weight_dtype"], ())
        return fastest([over("mla_bmm", lambda c: c[1] in dts, {"num_heads": a["batch"], "num_tokens": a["m"]})])
    if method in ("mla_attention_ms", "gqa_attention_ms"):
        dts = _KV.get(a["kv_dtype"], ())
        if method == "mla_attention_ms":
            roof, d = fastest([over("mla_decode_attention", lambda c: c[0] in dts,
                                    {"batch_size": a["batch"], "num_heads": a["q_heads"], "kv_len": a["tokens"]})])
        else:
            roof, d = fastest([over("gqa_decode_attention", lambda c: c[1] in dts and c[2] == "0",
                                    {"batch_size": a["batch"], "num_heads": a["q_heads"],
                                     "num_key_value_heads": a["kv_heads"], "kv_len": a["tokens"]})])
        return roof, d + KV_SCALED_DOUBLINGS.get(a["kv_dtype"], 0.0)
    if method == "moe_ms":
        dts = _MOE.get(a["weight_dtype"], ())
        return fastest([over("moe", lambda c: c[0] in dts and "nongated" not in c[1],
                             {"num_tokens": a["tokens"], "moe_tp_size": a["tp"], "moe_ep_size": a["ep"]})])
    if method == "collective_ms":
        op = a["op"]
        n = _array(a["n"])
        nbytes = _array(a["message_bytes"])
        nccl_op = _NCCL.get(op)
        spans = []
        for family, pick in (("nccl", lambda c: c[0] == nccl_op),
                             ("allreduce_custom", lambda c: op == "all_reduce")):
            table = tables.get(family)
            if table is None:
                continue
            # the measured ranges and element sizes of an op's categories, found once
            cache = table.__dict__.setdefault("_union_cache", {})
            found = cache.get(("collective", op))
            if found is None:
                found = cache[("collective", op)] = [(category_domain(table, cat), COLLECTIVE_ELEM_BYTES.get(str(cat[1]), 2.0))
                                                     for cat in _cats(table, pick)]
            for domain, eb in found:
                query = {"num_gpus": n, "message_size": nbytes / eb}
                spans.append(_doublings_float(domain, query, "message_size") if one else
                             doublings_outside(domain, query, "message_size"))
        roof, d = fastest(spans)
        return (roof or n > k.hw.nvlink_domain_gpus) if one else roof | (n > k.hw.nvlink_domain_gpus), d
    if method in ("moe_dispatch_ms", "moe_combine_ms"):
        phase = "dispatch" if method == "moe_dispatch_ms" else "combine"
        dts = _A2A.get(a["dtype"], ())
        query = {"num_tokens": a["tokens_per_rank"], "moe_ep_size": a["ep"]}
        roof, d = fastest([over("moe_alltoall_nvlink", lambda c: c[2] in dts, query),
                           over("moe_alltoall", lambda c: c[1] == phase and c[2] in dts, query)])
        ll = getattr(k, "deepep_ll", None)   # a framework's own DeepEP low-latency table (helixsim.backends)
        by_experts = ll.curves.get((int(a["hidden"]), int(a["top_k"]))) if ll is not None else None
        if by_experts is not None:   # measured in tokens per rank only; beyond its largest count: doublings
            top = by_experts.get(int(a["num_experts"]), by_experts[0])[0][-1]
            tok = _array(a["tokens_per_rank"])
            if one:
                roof, d = False, _log2_at_least_one(tok / top)
            else:
                roof, d = np.zeros(np.shape(tok), bool), np.log2(np.maximum(tok / top, 1.0))
        ep = _array(a["ep"])
        return (roof or ep > k.hw.nvlink_domain_gpus) if one else roof | (ep > k.hw.nvlink_domain_gpus), d
    return no_table   # memory_op_ms and anything else: the roofline's


# ---------------------------------------------------------------- documentation

def domain_rows(cal) -> list[dict]:
    """One row per family and category of a calibration: the measured range of each column."""
    rows = []
    for family, table in sorted(cal.tables.items()):
        for cat in table.categories():
            spans = category_domain(table, cat)
            rows.append({"family": family, "category": "/".join(cat),
                         **{col: spans[col] for col in (table.axis,) + tuple(table.num)}})
    return rows


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def domain_markdown(systems: Mapping[str, object]) -> str:
    """Markdown table of the measured ranges per family (union over categories) and system."""
    lines = ["| family | column | " + " | ".join(systems) + " |", "|---|---|" + "---:|" * len(systems)]
    families = sorted({f for cal in systems.values() for f in cal.tables})
    for family in families:
        spec = FAMILIES[family]
        for col in (spec.axis,) + tuple(spec.num):
            cells = []
            for cal in systems.values():
                table = cal.tables.get(family)
                if table is None:
                    cells.append("–")
                    continue
                lo, hi = union_domain(table, table.categories())[col]
                cells.append(f"{_fmt(lo)}-{_fmt(hi)}")
            lines.append(f"| {family} | {col} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


DOMAIN_FILE = "domain.json"


def domain_document(cal) -> dict:
    """The measured domain of a calibration as stored beside it (``<calibration>/domain.json``)."""
    families: dict[str, dict] = {}
    for row in domain_rows(cal):
        cols = {k: [float(v[0]), float(v[1])] for k, v in row.items() if k not in ("family", "category")}
        families.setdefault(row["family"], {})[row["category"]] = cols
    return {"what": "measured range [lo, hi] of the sweep axis and of every interpolated column, per kernel "
                    "family and category; outside it a price is extrapolated (docs/calibration.md)",
            "command": "python -m helixsim.calibration.domain --write", "hardware": cal.hardware,
            "families": families}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from .fit import SYSTEMS, builtin_calibration_path, load_calibration

    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.domain",
                                 description="Print the measured domain of the shipped calibrations")
    ap.add_argument("--write", action="store_true", help="also store it as hardware/calibration/<name>/domain.json")
    args = ap.parse_args(argv)
    cals = {}
    for system, name in SYSTEMS.items():
        path = builtin_calibration_path(name)
        if path is not None:
            cals[name] = load_calibration(path)
            if args.write:
                (path / DOMAIN_FILE).write_text(json.dumps(domain_document(cals[name]), indent=1) + "\n",
                                                encoding="utf-8")
    print(domain_markdown(cals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
