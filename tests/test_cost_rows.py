"""helixsim.cost.rows: a strategy's term priced only on its own layout rows gives np.select's cells."""

import numpy as np
import pytest

from helixsim.cost.rows import MIN_ROWS, rows_where, select_rows


def _variants(x, y, seen):
    def one(r):
        seen.append(np.size(r.pick(x)))
        return r.pick(x) * 2.0 + r.pick(y)

    def two(r):
        seen.append(np.size(r.pick(x)))
        return r.pick(x) - r.pick(y) / 3.0

    return one, two


def test_select_rows_matches_np_select_and_prices_only_chosen_rows():
    rng = np.random.default_rng(7)
    n = 500
    strategy = rng.integers(0, 3, size=(n, 1))
    x = rng.random((n, 1))
    y = rng.random((1, 6))          # a context axis the rows broadcast over
    seen = []
    one, two = _variants(x, y, seen)
    got = select_rows([strategy == 0, strategy == 1], [one, two], lambda r: r.pick(x) + 1.0)
    want = np.select([strategy == 0, strategy == 1], [x * 2.0 + y, x - y / 3.0], x + 1.0)
    assert got.shape == want.shape and got.tobytes() == want.tobytes()
    # each variant saw only its own rows (the masks hold about a third each)
    assert seen == [int((strategy == 0).sum()), int((strategy == 1).sum())]


def test_select_rows_first_mask_wins_and_stacked_replays_keep_their_axis():
    n = 300
    strategy = np.arange(n)[:, None] % 3
    overlap = strategy <= 1                       # overlaps the second mask: the first holding mask wins
    stacked = np.arange(4 * n, dtype=float).reshape(4, n, 1)
    got = select_rows([overlap, strategy == 1], [lambda r: r.pick(stacked), lambda r: -r.pick(stacked)],
                      lambda r: 0.5 * r.pick(stacked))
    want = np.select([overlap, strategy == 1], [stacked, -stacked], 0.5 * stacked)
    assert got.shape == (4, n, 1) and got.tobytes() == want.tobytes()


def test_small_or_whole_masks_price_every_row():
    assert rows_where(np.ones((MIN_ROWS * 2, 1), bool)).rows is None          # all rows: no split
    assert rows_where(np.zeros((MIN_ROWS * 2, 1), bool)) is None              # none: not priced at all
    few = np.zeros(MIN_ROWS * 2, bool)
    few[:3] = True
    assert rows_where(few).rows is None                                        # too few to split off
    assert rows_where(np.array(True)).rows is None                             # one point: every variant
    assert rows_where(np.array([False])).rows is None


def test_patched_rows_give_the_bits_of_whole_array_arithmetic():
    """The exposed combine kept as (per-layout base, context-varying patch on some rows): the step's sums
    and products on it give the bits of the same operations on the whole (layouts, contexts) array."""
    from helixsim.cost.rows import PatchedRows, Rows, put_rows

    rng = np.random.default_rng(3)
    n, c = 200, 5
    rows = np.flatnonzero(rng.random(n) < 0.2)
    base = rng.random((4, n, 1))                        # a stacked replay in front of the layout axis
    patch = rng.random((4, len(rows), c))
    oar, f = rng.random((4, n, 1)), rng.random((n, 1))
    whole = put_rows(base, patch, rows, -2, n)
    want = f * (61 * whole + 3 * whole + 61 * oar)
    p = PatchedRows(base, patch, Rows(rows, -2, n))
    got = f * (61 * p + 3 * PatchedRows(base, patch, Rows(rows.copy(), -2, n)) + 61 * oar)
    assert np.shape(got) == want.shape
    assert np.asarray(got, float).tobytes() == want.tobytes()


def test_patched_rows_over_a_whole_base_leave_the_original_untouched():
    """Attention under HOP-B: the base already spans the contexts; the patch goes into the step's own
    result array, never into the priced attention it started from."""
    from helixsim.cost.rows import PatchedRows, Rows, put_rows

    rng = np.random.default_rng(5)
    n, c = 150, 4
    rows = np.arange(0, n, 7)
    base, patch, f = rng.random((n, c)), rng.random((len(rows), c)), rng.random((n, 1))
    kept = base.copy()
    want = f * (61 * put_rows(base, patch, rows, -2, n))
    got = np.asarray(f * (61 * PatchedRows(base, patch, Rows(rows, -2, n))), float)
    assert got.tobytes() == want.tobytes()
    assert base.tobytes() == kept.tobytes()
    assert np.asarray(PatchedRows(base, patch, Rows(rows, -2, n)), float).tobytes() == put_rows(
        base, patch, rows, -2, n).tobytes()
    assert base.tobytes() == kept.tobytes()


def test_patched_rows_arithmetic_in_place_spends_the_operand_and_spares_the_others():
    """A product of a PatchedRows made by arithmetic is written into that object's own arrays: the other
    operand keeps its bits, and the spent object fails if used again (never silently gives numbers)."""
    import pytest

    from helixsim.cost.rows import PatchedRows, Rows, put_rows

    rng = np.random.default_rng(7)
    n, c = 120, 3
    rows = np.arange(1, n, 5)
    base, patch, f = rng.random((n, c)), rng.random((len(rows), c)), rng.random((n, 1))
    kept_f = f.copy()
    once = 61 * PatchedRows(base, patch, Rows(rows, -2, n))
    twice = f * once
    assert np.asarray(twice, float).tobytes() == (f * (61 * put_rows(base, patch, rows, -2, n))).tobytes()
    assert f.tobytes() == kept_f.tobytes()
    with pytest.raises((AttributeError, TypeError)):
        once + 1.0


def test_broadcast_shapes_of_is_numpys():
    """rows.broadcast_shapes_of gives np.broadcast_shapes' shape, and its ValueError where shapes clash."""
    from helixsim.cost.rows import broadcast_shapes_of

    for shapes in ([], [()], [(1, 1), (5, 1, 1), (1,)], [(0,), (1,)], [(3, 1), (1, 4)], [(5, 1, 1), (5, 1, 1)]):
        assert broadcast_shapes_of(shapes) == np.broadcast_shapes(*shapes)
    with pytest.raises(ValueError):
        broadcast_shapes_of([(2,), (3,)])


def test_full_one_is_numpys_full():
    """rows.full_one fills as np.full does (the value cast to the dtype, NaN and -0.0 kept)."""
    from helixsim.cost.rows import full_one

    for shape, value, dtype in (((1, 1), 2.5, float), ((), float("nan"), float), ((1,), -0.0, float),
                                ((1, 1, 1), 7, np.int64), ((1,), 2.7, np.int64)):
        got, want = full_one(shape, value, dtype), np.full(shape, value, dtype=dtype)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want))


def test_set_rows_writes_the_cells_of_plain_index_assignment():
    """rows.set_rows (a slice where the rows run without a gap, one-dimensional assignments per leading index
    where the trailing axes are length 1, else the general indexing) gives the array of
    ``out[(Ellipsis, rows) + (slice(None),) * (-axis - 1)] = part``, bit for bit, NaN and -0.0 included."""
    from helixsim.cost.rows import set_rows

    rng = np.random.default_rng(11)
    for trial in range(400):
        lead = tuple(int(d) for d in rng.integers(1, 4, size=rng.integers(0, 3)))
        trail = tuple(int(d) for d in rng.choice([1, 1, 3], size=rng.integers(0, 3)))
        n = int(rng.integers(1, 40))
        kind = trial % 4
        if kind == 0:      # a run without a gap
            start = int(rng.integers(0, n))
            rows = np.arange(start, int(rng.integers(start, n)) + 1)
        elif kind == 1:    # scattered (a gap somewhere whenever two or more)
            rows = np.flatnonzero(rng.random(n) < 0.4)
        elif kind == 2:    # every row but one
            rows = np.delete(np.arange(n), int(rng.integers(0, n)))
        else:
            rows = np.arange(0)
        axis = -1 - len(trail)
        part = rng.normal(size=lead + (len(rows),) + trail)
        part.flat[::7] = np.nan
        part.flat[3::11] = -0.0
        one_row = part[(Ellipsis, slice(0, 1)) + (slice(None),) * len(trail)]
        for value in (part, one_row if len(rows) else part, np.asarray(-0.0), np.asarray([np.nan]),
                      np.arange(len(rows)).reshape((len(rows),) + (1,) * len(trail))):
            out = rng.normal(size=lead + (n,) + trail)
            want = out.copy()
            want[(Ellipsis, rows) + (slice(None),) * (-axis - 1)] = value
            set_rows(out, value, rows, axis)
            assert out.tobytes() == want.tobytes(), (trial, lead, n, trail, rows, np.shape(value))


def test_select_rows_gives_np_selects_bits_for_any_masks():
    """select_rows writes each option's value at its cells (no zero array per option, no np.select): over
    per-layout masks in blocks and scattered, masks holding every row, none or fewer than MIN_ROWS, a mask that
    is not per-layout, stacked replays in front, a context axis behind, scalar and integer values, NaN and
    -0.0, the array (shape, type, bits) is np.select's of every variant priced on every row."""
    from helixsim.cost.rows import Rows

    rng = np.random.default_rng(13)
    for trial in range(120):
        n = int(rng.choice([MIN_ROWS // 2, 3 * MIN_ROWS, 500]))
        shape = (n, 1) if trial % 3 else (n,)
        strategy = rng.integers(0, 4, size=shape)
        if trial % 2:
            strategy = np.sort(strategy, axis=0)           # each strategy's rows without a gap
        masks = [strategy == 0, strategy <= 1 if trial % 5 == 0 else strategy == 1]
        if trial % 7 == 0:
            masks[1] = np.zeros(shape, bool)
            masks[1].flat[:3] = True                       # a few rows: priced on every row
        if trial % 11 == 0:
            masks[0] = np.ones(shape, bool)                # every row: the others take none
        if trial % 13 == 0 and len(shape) == 2:
            masks[0] = masks[0] & (rng.random((n, 5)) < 0.5)   # not a per-layout mask
        x = rng.normal(size=(4,) + shape) if trial % 4 == 0 else rng.normal(size=shape)
        x.flat[::9] = np.nan
        x.flat[5::13] = -0.0
        ctx = rng.normal(size=(1,) * (x.ndim - 1) + (5,)) if len(shape) == 2 else 1.0
        variants = [lambda r: r.pick(x) * ctx, lambda r: (r.pick(x) > 0).astype(np.int64)]
        default = (lambda r: 0.0) if trial % 3 == 0 else (lambda r: -r.pick(x))
        got = select_rows(masks, variants, default)
        every = Rows()
        want = np.select(masks, [np.asarray(v(every), float) for v in variants], np.asarray(default(every), float))
        assert got.shape == want.shape and got.dtype == want.dtype, trial
        assert got.tobytes() == want.tobytes(), trial
