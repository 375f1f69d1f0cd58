"""The vectorised table query's shortcuts give the same bits as the plain computation they replace (issue 14).

Reference (written out here from the module docstrings of :mod:`helixsim.calibration.table` and
:mod:`helixsim.calibration.extrapolate`, as the code spelt them before the shortcuts):

- :meth:`SweepTable.predict` of every query on its own (no grouping), the roofline at the knots formed at
  every (query, knot) pair spelt out (``np.tile``/``np.repeat``), each sweep's knot values through
  ``knot_values`` with the roofline tiled per corner, log2 of every knot latency, and the roofline above the
  last knot in two calls;
- the decode-attention envelope of :func:`predict_family`: every query priced at its own head count and at
  every measured head count below it (GQA: KV heads lowered with the query heads, by powers of two, down to
  one KV head), query by query, the slowest kept head count by head count in increasing order.

The shortcuts (the roofline broadcast between queries and knots, the stored values read directly for sweeps
measured at every knot, the knot latencies formed only from the lowest knot any query reads (such sweeps),
log2 only of the knot latencies a query reads, the envelope lowered once per
distinct configuration and each distinct (configuration, axis value) priced once) must reproduce these bit
for bit, on the shipped calibrations of two systems, over queries drawn with many repeats (so that grouping
matters) inside and beyond the measured ranges.
"""

from __future__ import annotations

import numpy as np
import pytest

from helixsim.api import kernels_for
from helixsim.calibration import extrapolate
from helixsim.calibration.families import FAMILIES, MLA_BMM_SHAPES
from helixsim.calibration.shape_memo import query_groups
from helixsim.calibration.table import _norm_key
from helixsim.specs.registry import load_hardware


def _filled_knot_values(table, sid, roof_k):
    """``table.knot_values`` with every sweep's span filled by the rules (none read as stored)."""
    full = table._full
    table._full = np.zeros_like(full)
    try:
        return table.knot_values(sid, roof_k)
    finally:
        table._full = full


def _plain_knot_latencies(table, group, near, num, roof_fn):
    """knot latencies of every query, the roofline at each (query, knot) pair spelt out."""
    m = len(num[0]) if num else len(near[0])
    num_q = np.column_stack([np.log2(np.asarray(a, float)) for a in num]) if table.num else np.zeros((m, 0))
    k = len(table.knots)
    t_knots = np.full((m, k), np.nan)
    combo = table._nearest_combo(group, [np.asarray(a, float) for a in near], m)
    for c in np.unique(combo):
        sel = np.nonzero(combo == c)[0]
        if table.mode == "efficiency":
            roof_k = np.asarray(roof_fn(np.tile(table.knots, len(sel)), np.repeat(sel, k)), float).reshape(len(sel), k)
        else:
            roof_k = np.ones((len(sel), k))
        sids, wts = table._corners(group.subs[c], num_q[sel])
        acc = np.zeros((len(sel), k))
        for col in range(sids.shape[1]):   # corner by corner, each sweep's values through knot_values
            ok = sids[:, col] >= 0
            if ok.any():
                acc[ok] += wts[ok, col][:, None] * _filled_knot_values(table, sids[ok, col], roof_k[ok])
        t_knots[sel] = roof_k * 2.0 ** (acc / wts.sum(axis=1, keepdims=True))
    return np.minimum.accumulate(t_knots[:, ::-1], axis=1)[:, ::-1]


def _plain_predict(table, cat, cols, const, roof):
    """:meth:`SweepTable.predict` of every query on its own (module docstring of :mod:`.table`, steps 1-5)."""
    spec = FAMILIES[table.family]
    x = np.asarray(cols[spec.axis], float)
    n = len(x)
    group = table._group(tuple(cat))

    def roof_fn(xs, pts):
        return spec.roof(roof, {**const, **{k: v[pts] for k, v in cols.items()}, spec.axis: xs})

    near = [cols[k] if k in cols else np.full(n, np.nan) for k in spec.near]
    t_knots = _plain_knot_latencies(table, group, near, [cols[k] for k in spec.num], roof_fn)
    k = len(table.knots)
    lx, xk, lt = np.log2(np.maximum(x, 1e-300)), np.log2(table.knots), np.log2(t_knots)
    rows = np.arange(n)
    if k > 1:
        j = np.clip(np.searchsorted(xk, lx, side="right") - 1, 0, k - 2)
        f = np.clip((lx - xk[j]) / (xk[j + 1] - xk[j]), 0.0, 1.0)
        out = 2.0 ** (lt[rows, j] * (1.0 - f) + lt[rows, j + 1] * f)
    else:
        out = t_knots[:, 0].copy()
    pts = np.nonzero(x > table.knots[-1])[0]
    if len(pts):
        if table.mode == "efficiency":
            roof_x, roof_last = roof_fn(x[pts], pts), roof_fn(np.full(len(pts), table.knots[-1]), pts)
        else:
            roof_x = roof_last = np.ones(len(pts))
        out[pts] = table._extend(t_knots[pts], x[pts], roof_x, roof_last)
    floor = table.floors.get(_norm_key(tuple(cat)))
    return out if floor is None else np.maximum(out, floor)


def _plain_envelope(table, cat, cols, const, roof):
    """The decode-attention envelope of :func:`predict_family`, query by query (every lowered query priced)."""
    spec = FAMILIES[table.family]
    column = extrapolate.NON_DECREASING_IN[spec.name]
    with_col = extrapolate.WITH.get(spec.name)
    out = _plain_predict(table, cat, cols, const, roof)
    q = cols[column]
    for h in np.sort(table.column_values(cat, column).astype(float)):
        ok = q > h
        if with_col is not None:
            split = np.log2(q / h)
            ok &= (cols[with_col] * h / q >= 1.0 - 1e-9) & (np.abs(split - np.round(split)) < 1e-9)
        idx = np.nonzero(ok)[0]
        if len(idx):
            sub = {k: v[idx] for k, v in cols.items()}
            sub[column] = np.full(len(idx), h)
            if with_col is not None:
                sub[with_col] = cols[with_col][idx] * h / q[idx]
            out[idx] = np.fmax(out[idx], _plain_predict(table, cat, sub, const, roof))
    return out


def _draw(rng, values, n, spread):
    """n draws from a few values around the measured ones (repeats, so that grouping matters)."""
    pool = np.unique(np.asarray(values, float))
    pool = np.concatenate([pool, pool * spread, np.maximum(pool / spread, 1.0)])
    return rng.choice(rng.choice(pool, min(len(pool), 6), replace=False), n)


def _queries(rng, table, cat, n):
    spec = FAMILIES[table.family]
    keys = table.key_columns()
    rows = np.asarray(table._cat_rows[_norm_key(tuple(cat))])
    cols = {}
    for c in spec.near + spec.num:
        cols[c] = _draw(rng, keys[c][rows].astype(float), n, 1.5 if c in spec.num else 1.0)
    axis = np.exp2(rng.uniform(np.log2(table.knots[0]) - 1, np.log2(table.knots[-1]) + 3, 8)).round()
    cols[spec.axis] = rng.choice(np.maximum(axis, 1.0), n)
    if spec.name == "gqa_decode_attention":   # KV heads a power-of-two split of the query heads
        cols["num_key_value_heads"] = np.maximum(cols["num_heads"] / rng.choice([1.0, 2.0, 8.0], n), 1.0)
    if spec.name == "mla_bmm":   # the product's widths (columns of the query the roofline reads)
        cols["bmm_k"], cols["bmm_n"] = (np.full(n, v) for v in MLA_BMM_SHAPES[cat[0]])
    return cols


def _const(family, cat):
    return {"gemm": lambda: {"gemm_dtype": cat[0]},
            "mla_bmm": lambda: {"bmm_dtype": cat[1]},
            "mla_decode_attention": lambda: {"kv_cache_dtype": cat[0], "kv_lora_rank": 512.0,
                                             "qk_rope_head_dim": 64.0},
            "gqa_decode_attention": lambda: {"kv_cache_dtype": cat[1], "window_size": float(cat[2])},
            "moe": lambda: {"moe_dtype": cat[0], "gated": True},
            "moe_alltoall": lambda: {"comm_dtype": cat[2]},
            "moe_alltoall_nvlink": lambda: {"moe_dtype": cat[2]}}.get(family, dict)()


def _cases():
    for system in ("gb200-nvl72", "h200-hgx"):
        k = kernels_for(load_hardware(system))
        for family, table in sorted(k.calibration.tables.items()):
            for cat in table.categories()[:3]:
                yield system, k, family, table, cat


@pytest.mark.parametrize("n", [5, 40, 300])
def test_table_queries_equal_the_plain_computation_bit_for_bit(n):
    rng = np.random.default_rng(1400 + n)
    seen = set()
    for system, k, family, table, cat in _cases():
        spec = FAMILIES[family]
        cols = _queries(rng, table, cat, n)
        const = _const(family, cat)
        # some columns of one value, as a query's scalar arguments come (zero-stride views)
        spread = {c: (np.broadcast_to(v[0], v.shape) if c != spec.axis and rng.random() < 0.5 else v)
                  for c, v in cols.items()}
        cols = {c: np.array(v) for c, v in spread.items()}
        got = extrapolate.predict_family(table, spec, cat, spread, const, k._p, group=query_groups)
        want = (_plain_envelope if family in extrapolate.NON_DECREASING_IN else _plain_predict)(
            table, cat, cols, const, k._p)
        assert got.tobytes() == want.tobytes(), (system, family, cat, np.nonzero(got != want)[0][:5])
        seen.add(family)
    # every kind of table took part: efficiency and latency, with and without near columns, both envelopes
    assert {"gemm", "moe", "nccl", "mla_decode_attention", "gqa_decode_attention", "moe_alltoall"} <= seen


def test_the_comparison_catches_a_perturbed_shortcut(monkeypatch):
    """The comparison is sharp: an axis value mapped one ulp off in the envelope's (configuration, axis value)
    grouping, or a sweep not measured at every knot read as stored, changes some query's bits."""
    rng = np.random.default_rng(7)
    k = kernels_for(load_hardware("gb200-nvl72"))

    def mismatch(family):
        table = k.calibration.tables[family]
        cat = table.categories()[0]
        cols = _queries(rng, table, cat, 300)
        const = _const(family, cat)
        want = (_plain_envelope if family in extrapolate.NON_DECREASING_IN else _plain_predict)(
            table, cat, cols, const, k._p)
        got = extrapolate.predict_family(table, FAMILIES[family], cat, cols, const, k._p, group=query_groups)
        return got.tobytes() != want.tobytes()

    assert not mismatch("mla_decode_attention") and not mismatch("moe_alltoall_nvlink")
    with monkeypatch.context() as m:
        codes = extrapolate.distinct_codes
        m.setattr(extrapolate, "distinct_codes", lambda v: (lambda c, u: (c, np.nextafter(u, np.inf)))(*codes(v))
                  if v.dtype.kind == "f" else codes(v))
        assert mismatch("mla_decode_attention")
    with monkeypatch.context() as m:
        table = k.calibration.tables["moe_alltoall_nvlink"]
        m.setattr(table, "_full", np.ones_like(table._full))
        assert mismatch("moe_alltoall_nvlink")


def _plain_collective(k, family, cat, n, nbytes):
    """One measured collective at n GPUs as CommKernels._collective_candidate spelt it: the curves at every
    measured count, np.take_along_axis between them, the fitted model's continuation computed everywhere."""
    from helixsim.calibration.families import COLLECTIVE_ELEM_BYTES, collective_dtype
    from helixsim.calibration.kernels_comm import NCCL_OPS_INV

    table = k._table(family)
    counts = np.sort(table.column_values(cat, "num_gpus").astype(float))
    elems = nbytes / COLLECTIVE_ELEM_BYTES[collective_dtype(family, cat)]
    curves = np.stack([k._query(family, cat, {"num_gpus": np.full(elems.shape, c), "message_size": elems})
                       for c in counts])
    curves = np.maximum.accumulate(curves, axis=0)
    lc, ln = np.log2(counts), np.log2(np.clip(n, counts[0], counts[-1]))
    if len(counts) > 1:
        i = np.clip(np.searchsorted(lc, ln, side="right") - 1, 0, len(counts) - 2)
        f = (ln - lc[i]) / (lc[i + 1] - lc[i])
        inside = (np.take_along_axis(curves, i[None], 0)[0] * (1.0 - f)
                  + np.take_along_axis(curves, (i + 1)[None], 0)[0] * f)
    else:
        inside = curves[0]
    n_hi = counts[-1]
    model = k.calibration.collectives.get(family, {}).get(cat)
    if model is not None:
        extra = np.maximum(model.time_ms(n, nbytes) - model.time_ms(n_hi, nbytes), 0.0)
    else:
        op = NCCL_OPS_INV.get(cat[0], "all_reduce")
        extra = np.maximum(k.fallback.collective_ms(op, n, nbytes) - k.fallback.collective_ms(op, n_hi, nbytes), 0.0)
    return np.where(n > n_hi, curves[-1] + extra, inside)


def test_collectives_equal_the_plain_computation_bit_for_bit():
    """The collective's counts read once per table, the curves picked per message by index and the continuation
    beyond the largest measured count formed only where a count lies beyond it: the same bits, in 1-D and 2-D
    calls, with counts inside, between and beyond the measured ones."""
    rng = np.random.default_rng(1414)
    for system in ("gb200-nvl72", "h200-hgx"):
        k = kernels_for(load_hardware(system))
        for family, cat in [(f, c) for op in ("all_reduce", "all_gather") for f, c in k._collective_kernels(op)]:
            if k._table(family) is None or not k._table(family).has(cat):
                continue
            for shape, top in [((40,), 8.0), ((40,), 200.0), ((6, 7), 200.0)]:
                n = rng.choice([2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 72.0, top], shape)
                nbytes = rng.choice(np.exp2(rng.uniform(4, 34, 9)).round(), shape)
                got = k._collective_candidate(family, cat, n, nbytes)
                want = _plain_collective(k, family, cat, n, nbytes)
                assert got.shape == want.shape and got.tobytes() == want.tobytes(), (system, family, cat, shape)


def test_running_minimum_from_the_last_knot_equals_numpys_accumulation():
    """Knot latencies made non-decreasing column by column (many queries) equal numpy's accumulation along
    each row, bit for bit, with ties, NaN and infinities."""
    from helixsim.calibration.table import _running_min_from_last

    rng = np.random.default_rng(14)
    for m in (1, 5, 257, 1000):
        for k in (1, 2, 18):
            t = rng.choice([0.5, 1.0, 2.0, 3.0, np.inf, np.nan], (m, k)) * rng.choice([1.0, 1.0 + 2 ** -52], (m, k))
            want = np.minimum.accumulate(t[:, ::-1], axis=1)[:, ::-1]
            got = _running_min_from_last(t)
            assert got.shape == want.shape and np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


def test_nearest_configuration_of_one_value_spread_equals_every_query_s_own():
    """A ``near`` configuration of one value spread over the queries (zero-stride, as a MoE call passes the model's
    shape) finds its nearest measured combination once: the same coverage as every query finding its own."""
    rng = np.random.default_rng(41)
    checked = 0
    for system, k, family, table, cat in _cases():
        spec = FAMILIES[family]
        if not spec.near:
            continue
        for n in (3, 100):
            cols = _queries(rng, table, cat, n)
            one = [np.broadcast_to(cols[c][0], (n,)) for c in spec.near]
            num = [cols[c] for c in spec.num]
            want = table.num_covered(cat, [np.array(v) for v in one], num)
            assert table.num_covered(cat, one, num).tobytes() == want.tobytes(), (system, family, cat)
            checked += 1
    assert checked > 10


def test_invalid_queries_are_nan_and_leave_the_others_as_they_are():
    """Queries with a zero, negative, infinite or NaN size are NaN (the caller falls back to the roofline); the
    others are priced as on their own, whether the invalid value comes in an array or as one value."""
    k = kernels_for(load_hardware("gb200-nvl72"))
    m = np.array([1.0, 64.0, 0.0, 512.0, -3.0, np.inf, np.nan, 4096.0])
    const = {"gemm_dtype": "nvfp4"}
    got = k._query("gemm", ("nvfp4",), {"m": m, "n": 7168.0, "k": 2048.0}, const)
    ok = np.isfinite(m) & (m > 0)
    alone = k._query("gemm", ("nvfp4",), {"m": m[ok], "n": 7168.0, "k": 2048.0}, const)
    assert np.isnan(got[~ok]).all() and got[ok].tobytes() == alone.tobytes() and np.isfinite(alone).all()
    for bad in (0.0, -1.0, np.nan, np.inf):
        assert np.isnan(k._query("gemm", ("nvfp4",), {"m": m[ok], "n": bad, "k": 2048.0}, const)).all()
    assert k._query("gemm", ("nvfp4",), {"m": m[:0], "n": 7168.0, "k": 2048.0}, const).shape == (0,)
