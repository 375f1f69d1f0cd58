"""A sweep's point labels built without pandas' category check are the labels pandas builds with it (issue 14).

``search.layout_labels`` forms each distinct label once and hands its categories to pandas unchecked
(``search._distinct_categories``: distinct and never missing by construction). The plain computation it
replaces: one label per configuration, spelled ``[tp* ]KVPxTPxDP=TPFxEP [ppN] bB`` as the blog and
:func:`helixsim.layout.layout_label` do, and ``pd.Categorical`` of those strings (pandas sorts and checks the
categories itself). Same categories in the same order, same Index dtype, same codes and code dtype, same
categorical dtype; and every category is distinct, as the shortcut assumes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helixsim.layout import STRATEGIES, layout_label
from helixsim.search import SearchSpace, _distinct_categories, enumerate_layouts, layout_labels
from helixsim.specs.registry import load_hardware, load_model


@pytest.fixture(scope="module")
def layouts():
    space = SearchSpace(max_gpus=64, pp=(1, 2, 4), hopb=(True, False))
    return enumerate_layouts(load_model("deepseek-r1"), load_hardware("gb200-nvl72"), space)


def plain_labels(lay, index, batch) -> pd.Categorical:
    """One string per configuration, written out from layout_labels' docstring, categorised by pandas."""
    out = []
    for i, b in zip(np.asarray(index).tolist(), np.asarray(batch).tolist()):
        w = [int(getattr(lay, f)[i]) for f in ("kvp", "tpa", "dp", "tpf", "ep", "pp")]
        helix_tp = STRATEGIES[int(lay.strategy[i])] == "helix" and w[0] == 1
        out.append(("tp* " if helix_tp else "") + layout_label(*w) + f" b{b}")
    return pd.Categorical(pd.Index(out))


def assert_same(got: pd.Categorical, want: pd.Categorical):
    assert got.dtype == want.dtype and got.categories.dtype == want.categories.dtype
    assert got.categories.equals(want.categories) and list(got.categories) == list(want.categories)
    assert got.codes.dtype == want.codes.dtype and np.array_equal(got.codes, want.codes)
    assert got.categories.is_unique and not got.categories.hasnans


def test_unchecked_labels_are_pandas_checked_labels(layouts):
    """Random sets of (layout, batch) rows, spread over random cells: batches whose digits sort unlike their
    values (9 after 10, 1000 after 100), Helix layouts with HOP-B on and off (one label), ``tp*`` layouts."""
    rng = np.random.default_rng(14)
    n = len(layouts.strategy)
    helix = layouts.strategy == STRATEGIES.index("helix")
    assert (helix & (layouts.kvp == 1)).any() and (helix & (layouts.kvp > 1)).any()
    for trial in range(60):
        rows = int(rng.integers(1, 400))
        index = rng.integers(0, n, rows)
        batch = rng.choice(np.array([1, 2, 9, 10, 11, 99, 100, 128, 1000, 1024, 4096]), rows) if trial % 2 \
            else rng.integers(1, 5000, rows)
        assert_same(layout_labels(layouts, index, batch), plain_labels(layouts, index, batch))
        spread = np.concatenate([np.arange(rows), rng.integers(0, rows, int(rng.integers(0, 300)))])
        rng.shuffle(spread)
        assert_same(layout_labels(layouts, index, batch, spread), plain_labels(layouts, index[spread], batch[spread]))


def test_unchecked_dtype_is_the_checked_dtype():
    """The dtype formed unchecked equals the one pandas checks (unordered, same categories); it is the
    construction's distinctness that makes the check redundant, which the comparison above covers."""
    cats = pd.Index(["1x1x1=1x1 b10", "1x1x1=1x1 b9", "tp* 1x2x1=2x1 b1"])
    got = _distinct_categories(cats)
    want = pd.Categorical.from_codes([0, 1, 2], categories=cats).dtype
    assert got == want and got.ordered is False and got.categories.dtype == want.categories.dtype
    with pytest.raises(ValueError):   # what the shortcut skips: pandas refuses repeated categories
        pd.CategoricalDtype(pd.Index(["a b1", "a b1"]))
