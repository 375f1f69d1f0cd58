"""The recording's per-call shortcuts give the same bits as the plain formulas they replace (issue 14).

- ``domain.doublings_outside`` leaves out the terms of a column the query never leaves: against the plain sum
  of every column's two terms (``np.log2(np.maximum(ratio, 1))`` each, written out here), values and shape;
- ``uncertainty._weightings`` (through ``weighting_rows``, which leaves rows that are the time times one factor
  unwritten) against the four weightings of :func:`helixsim.uncertainty.weightings` written out cell by cell;
- ``shape_memo.spread`` (uniform rows formed from the spread prices, the others gathered) against
  ``np.take`` of the full stack;
- ``shape_memo.repeated_rows`` (a grid's rows grouped by their first column, each checked bit for bit against
  its group's first row) and a grid call priced on its distinct rows, prices and recorded weightings taken
  row by row, against the same call on its cells one by one (1-D arguments: no grid).
"""

from __future__ import annotations

import numpy as np

from helixsim.calibration import domain, shape_memo
from helixsim.call_weights import weighting_rows
from helixsim.uncertainty import _weightings


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and np.array_equal(np.ascontiguousarray(a).view(np.int64),
                                                 np.ascontiguousarray(b).view(np.int64))


def _plain_doublings(spans, query, axis):
    total = 0.0
    for col, value in query.items():
        if col not in spans:
            continue
        lo, hi = spans[col]
        q = np.maximum(np.asarray(value, float), 1e-300)
        total = total + np.log2(np.maximum(q / hi, 1.0))
        if col != axis:
            total = total + np.log2(np.maximum(lo / q, 1.0))
    return np.asarray(total, float)


@np.errstate(invalid="ignore")
def test_doublings_outside_equals_every_term_summed():
    rng = np.random.default_rng(14)
    spans = {"m": (1.0, 4096.0), "n": (128.0, 8192.0), "kv_len": (64.0, 131072.0)}
    inside_seen = outside_seen = 0
    for trial in range(600):
        n = int(rng.integers(1, 40))
        query = {}
        for col, (lo, hi) in spans.items():
            kind = trial % 5
            if kind == 0:     # inside the measured range everywhere (every term left out)
                v = rng.uniform(lo, hi, n)
            elif kind == 1:   # exactly on the bounds
                v = rng.choice([lo, hi], n)
            elif kind == 2:   # some above, some below
                v = rng.uniform(lo / 8, hi * 8, n)
            elif kind == 3:   # NaN, zero, inf among them
                v = rng.uniform(lo, hi, n)
                v[rng.integers(0, n)] = rng.choice([np.nan, 0.0, np.inf, -1.0])
            else:             # one column a scalar, another broadcast along a new axis
                v = rng.uniform(lo, hi * 2, n)[:, None] if col == "kv_len" else float(rng.uniform(lo, hi))
            query[col] = v
        query["unmeasured"] = rng.uniform(0, 1, n)   # a column without a span: not counted
        got = domain.doublings_outside(spans, query, "kv_len")
        want = _plain_doublings(spans, query, "kv_len")
        assert _same_bits(got, want), (trial, got, want)
        inside_seen += not want.any()
        outside_seen += bool(np.nan_to_num(want, nan=1.0).any())
    assert inside_seen > 50 and outside_seen > 50


def _plain_weightings(t, roof, d, w):
    law = ~roof & (d > 0)
    return np.stack(np.broadcast_arrays(t * roof, t * law, t * np.expm1(w * d), -t * np.expm1(-w * d)))


@np.errstate(invalid="ignore")
def test_weightings_equal_the_four_formulas_cell_by_cell():
    rng = np.random.default_rng(21)
    w = 0.3466
    uniform_rows = 0
    for trial in range(800):
        n = int(rng.integers(1, 30))
        t = rng.choice([rng.uniform(0, 5), 0.0, -0.0, np.nan, np.inf], n, p=[0.7, 0.1, 0.05, 0.1, 0.05]) \
            if trial % 3 == 0 else rng.uniform(0, 5, n)
        kind = trial % 6
        roof = (np.asarray(bool(rng.integers(0, 2))) if kind == 0 else np.full(n, bool(rng.integers(0, 2)))
                if kind in (1, 2) else rng.random(n) < 0.5)
        d = (np.zeros(n) if kind in (1, 3) else np.asarray(0.0) if kind == 0
             else rng.choice([0.0, -0.0, 0.5, 2.0, np.nan], n) if kind == 4 else rng.uniform(0, 3, n))
        d = np.where(roof, 0.0, d)
        got = _weightings(t, roof, d, w)
        assert _same_bits(got, _plain_weightings(t, roof, d, w)), trial
        stack, uniform = weighting_rows(t, roof, d, w)
        uniform_rows += sum(u is not None for u in uniform)
        for row, u, ref in zip(stack, uniform, _plain_weightings(t, roof, d, w)):
            if u is None:   # a row written out is the formula's
                assert _same_bits(row, ref)
    assert uniform_rows > 500


def test_spread_equals_take_of_the_whole_stack():
    rng = np.random.default_rng(3)
    w = 0.3466
    for trial in range(300):
        u = int(rng.integers(1, 50))
        t = rng.uniform(0, 4, u)
        roof = np.full(u, trial % 3 == 0) if trial % 2 else rng.random(u) < 0.3
        d = np.zeros(u) if trial % 4 < 2 else np.where(roof, 0.0, rng.uniform(0, 2, u))
        full = _weightings(t, roof, d, w)
        stack, uniform = weighting_rows(t, roof, d, w)
        inverse = rng.integers(0, u, int(rng.integers(1, 400)))
        got = shape_memo.spread(stack, uniform, inverse, t.take(inverse))
        assert _same_bits(got, np.take(full, inverse, axis=-1)), trial


def _grid(rng, n_rows: int, columns: int, groups: int):
    """Layout-like rows (batch, heads, KV tokens per context) drawn from a few distinct rows."""
    batch = rng.choice([1, 8, 64, 512], groups)
    heads = rng.choice([16, 64, 128], groups)
    kvp = rng.choice([1, 2, 4, 8], groups)
    contexts = rng.choice([65_536, 300_000, 2_000_000], columns)
    which = rng.integers(0, groups, n_rows)
    tokens = -(-contexts[None, :] // kvp[:, None])
    return batch[which][:, None], heads[which][:, None], tokens[which]


def _valid_rows(found, arrays) -> bool:
    first, inverse = found
    return bool(np.all(np.diff(first) > 0)) and all(np.array_equal(a[first][inverse], a) for a in arrays)


def test_repeated_rows_are_each_rows_first_and_checked_bit_for_bit():
    rng = np.random.default_rng(5)
    found_some = refused = 0
    for trial in range(80):
        n, columns = int(rng.integers(64, 400)), int(rng.integers(8, 13))
        batch, heads, tokens = _grid(rng, n, columns, int(rng.integers(8, 30)))
        m = len(np.unique(np.hstack([batch, heads, tokens]), axis=0))
        found = shape_memo.repeated_rows((batch, heads, tokens, "fp8"), {})
        assert (found is not None) == (2 * m <= n and m * columns >= 64)
        if found is not None:
            found_some += 1
            assert _valid_rows(found, (batch, heads, tokens)) and len(found[0]) == m
            # rows alike in their first column but not beyond it are not taken for repeats
            odd = tokens.copy()
            odd[int(rng.integers(1, n)), -1] += 1
            again = shape_memo.repeated_rows((batch, heads, odd, "fp8"), {})
            assert again is None or _valid_rows(again, (batch, heads, odd))
            refused += again is None
    assert found_some > 40 and refused > 20


def test_grid_priced_on_its_distinct_rows_equals_each_cell_priced():
    from helixsim.api import kernels_for
    from helixsim.specs.registry import load_hardware
    from helixsim.uncertainty import _Recorder, shipped_rule

    hw = load_hardware("gb200-nvl72")
    rng = np.random.default_rng(9)
    w = shipped_rule().per_doubling
    for trial in range(3):
        batch, heads, tokens = _grid(rng, 300, 12, 24)
        args = (batch, heads, 512, 64, tokens, "fp4", "bf16")
        assert shape_memo.repeated_rows(args, {}) is not None
        rec = _Recorder(kernels_for(hw), w)
        got = rec.mla_attention_ms(*args)
        flat = [np.broadcast_to(a, tokens.shape).ravel() if isinstance(a, np.ndarray) else a for a in args]
        plain = _Recorder(kernels_for(hw), w)   # (1-D arguments: no grid, each cell's shape priced)
        want = plain.mla_attention_ms(*flat).reshape(tokens.shape)
        assert _same_bits(got, want)
        assert _same_bits(rec.weighted[0], plain.weighted[0].reshape((4,) + tokens.shape))
        assert rec.weighted[0][2].any()   # (the recorded widenings are not all zero: beyond the measured KV)


def _table_codes(flat):
    """The presence table of ``shape_memo._distinct_integers`` written out for whole numbers (no shortcut for
    an array of one value): (codes, distinct values), or None where it does not apply."""
    lo, hi = flat.min(), flat.max()
    if not (hi - lo <= 4 * flat.size and abs(lo) <= 2 ** 52 and abs(hi) <= 2 ** 52):
        return None
    offset, lo = (flat, 0) if lo >= 0 and hi <= 4 * flat.size else (flat - lo, lo)
    whole = offset.astype(np.intp)
    if offset.dtype.kind == "f" and not (whole == offset).all():
        return None
    seen = np.zeros(int(whole.max()) + 1, dtype=bool)
    seen[whole] = True
    present = seen.nonzero()[0]
    slot = np.zeros(len(seen), dtype=np.intp)
    slot[present] = np.arange(len(present))
    return slot[whole], present + lo


def test_one_valued_arrays_code_as_the_presence_table_does():
    rng = np.random.default_rng(11)
    for trial in range(400):
        n = int(rng.integers(33, 200))
        value = rng.choice([0.0, -0.0, 7.0, 2.5, -3.0, 1e9, -1e9, 5e15, float(rng.integers(0, 4 * n))])
        a = np.full(n, value) if trial % 2 else np.full(n, int(value), dtype=np.int64)
        got, want = shape_memo._distinct_integers(a), _table_codes(a)
        assert (got is None) == (want is None), (trial, value)
        if got is not None:
            assert np.array_equal(got[0], want[0]) and got[0].dtype == want[0].dtype
            assert got[1].dtype == want[1].dtype and _same_bits(got[1].astype(float), want[1].astype(float))


def test_query_groups_are_the_distinct_rows_in_order():
    rng = np.random.default_rng(13)
    for trial in range(300):
        n = int(rng.integers(17, 600))
        columns = [rng.choice(rng.uniform(0, 100, int(rng.integers(1, 6))).round(), n) if rng.random() < 0.6
                   else np.full(n, float(rng.integers(0, 9))) for _ in range(int(rng.integers(1, 4)))]
        first, inverse = shape_memo.query_groups(columns, n)
        _, want_first, want_inverse = np.unique(np.column_stack(columns), axis=0, return_index=True,
                                                return_inverse=True)
        assert np.array_equal(first, want_first) and np.array_equal(inverse, want_inverse.ravel())


def test_memo_keeps_every_price_whatever_order_keys_come_in():
    rng = np.random.default_rng(17)
    for trial in range(100):
        memo, kept = shape_memo.ShapeMemo(2), {}
        for call in range(5):
            keys = rng.choice(10_000, int(rng.integers(1, 300)), replace=False).astype(np.int64)
            keys = keys[~np.isin(keys, list(kept))]
            if trial % 2:
                keys = np.sort(keys)   # (in order: added without a sort)
            prices = rng.uniform(0, 1, len(keys))
            memo.add(keys, prices)
            kept.update(zip(keys.tolist(), prices.tolist()))
            assert np.all(np.diff(memo.keys) > 0)
            probe = np.array(list(kept), dtype=np.int64)
            found, got = memo.lookup(probe)
            assert found.all() and np.array_equal(got, [kept[k] for k in probe.tolist()])


def test_memo_column_ids_are_ids_in_order_of_first_sight():
    rng = np.random.default_rng(19)
    for trial in range(100):
        memo, seen = shape_memo.ShapeMemo(3), {}
        for call in range(6):
            values = rng.choice(np.arange(0.0, 60.0), int(rng.integers(1, 20)), replace=False)
            if call % 2:
                values = np.sort(values)
            ids = memo.column_ids(1, values)
            for v in values.tolist():   # each value's id: how many distinct values came before it, in order
                seen.setdefault(v, len(seen))
            assert np.array_equal(ids, [seen[v] for v in values.tolist()])
            assert np.all(np.diff(memo.known[1]) > 0)
            assert np.array_equal(memo.ids[1][np.searchsorted(memo.known[1], values)], ids)


def test_memoised_prices_equal_the_method_unmemoised():
    """Shapes priced by a memo's first call (all new), a call finding some (partly new) and one finding all, against
    the kernel method itself on every cell (its undecorated function: no coding, no memo)."""
    from helixsim.api import kernels_for
    from helixsim.specs.registry import load_hardware

    hw = load_hardware("gb200-nvl72")
    rng = np.random.default_rng(23)
    k, plain = kernels_for(hw), kernels_for(hw)
    raw = type(k).gemm_ms.__wrapped__
    pool = np.arange(1, 3000)
    for call, size in enumerate((400, 500, 500)):
        m = rng.choice(pool[: 800 * (call + 1)], size)
        n = rng.choice([2048, 7168, 18432], size)
        got = k.gemm_ms(m, n, 7168, "fp4")
        assert _same_bits(got, raw(plain, m.astype(float), n.astype(float), 7168, "fp4")), call
