"""helixsim.cost.rows: a strategy's term priced only on its own layout rows gives np.select's cells."""

import numpy as np

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
