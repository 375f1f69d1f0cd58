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
