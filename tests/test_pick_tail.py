"""api._pick with a tail: a column that varies along the layout rows alone is repeated over the kept cells'
runs together with the tail's values in one np.repeat; the same array as picking the cells of the broadcast
grid and appending the tail."""

import numpy as np

from helixsim.api import Picked, _pick, _runs


def test_pick_with_tail_gives_the_picked_cells_then_the_tail():
    rng = np.random.default_rng(17)
    for trial in range(200):
        r, c = int(rng.integers(1, 30)), int(rng.integers(1, 6))
        keep = np.arange(c)[None, :] < rng.integers(0, c + 1, size=(r, 1))   # a prefix of each row kept
        rows = np.nonzero(keep)
        runs = _runs(rows[0], r)
        t = int(rng.integers(0, 8))
        picked = Picked(rows, np.ravel_multi_index(rows, (r, c)), runs,
                        np.concatenate([runs, np.ones(t, runs.dtype)]))
        kinds = [(rng.normal(size=(r, 1)), rng.normal(size=t)),                  # float rows, float tail
                 (rng.integers(0, 9, size=(r, 1)), rng.integers(0, 9, size=t)),  # int64 both
                 (rng.integers(0, 9, size=(r, 1)), rng.normal(size=t)),          # int rows, float tail
                 (rng.random((r, 1)) < 0.5, rng.random(t) < 0.5),                # bool
                 (np.broadcast_to(rng.normal(size=(r, 1)), (r, c)), rng.normal(size=t))]   # a broadcast view
        for value, tail in kinds:
            if np.issubdtype(value.dtype, np.floating):
                value = np.array(value)
                value.flat[::5] = np.nan
                value.flat[1::7] = -0.0
                value = np.broadcast_to(value[:, :1], (r, c)) if trial % 2 else value[:, :1]
            want = np.concatenate([np.broadcast_to(value, (r, c))[rows], tail])
            got = _pick(value, (r, c), picked, tail)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (trial, value.dtype, tail.dtype)
