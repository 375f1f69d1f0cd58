"""The sweep's per-shape shortcuts give the same bits as the plain computations they replace (issue 14).

- ``shape_memo._sorted_codes`` against ``np.unique(return_inverse=True)`` (numpy's own), signed zeros,
  infinities and NaN included;
- ``corners.corners`` (all interpolation corners at once) against the corners formed one at a time, in
  ``itertools.product`` order, as the table did before (written out here from the module docstring of
  :mod:`helixsim.calibration.table`, steps 3: multilinear in log2, missing corners dropped, none left: nearest);
- a recorded step's four interval weightings formed once per distinct kernel shape inside the pricing wrapper
  against the same step recorded cell by cell (a recorder that asks the wrapper for nothing).
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np

from helixsim.api import kernels_for
from helixsim.calibration import shape_memo
from helixsim.calibration.corners import corners
from helixsim.layout import LayoutArrays
from helixsim.precision import Precision
from helixsim.search import SearchSpace, enumerate_layouts
from helixsim.specs.registry import load_hardware, load_model
from helixsim.calibration.domain import excursion_doublings
from helixsim.cost.step import decode_step
from helixsim.uncertainty import (KERNEL_METHODS, _provenance, _replay, _weightings, shipped_rule,
                                  step_provenance)


def test_sorted_codes_are_numpys_unique():
    rng = np.random.default_rng(14)
    pool = np.array([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, 1e-300, 5e-324])
    for trial in range(400):
        n = int(rng.integers(1, 200))
        a = [rng.choice(pool, n), rng.normal(size=n), rng.integers(-4, 4, n),
             np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 3, n).astype(float))][trial % 4]
        uniq, codes = np.unique(a, return_inverse=True)
        got_codes, got_uniq = shape_memo._sorted_codes(a)
        assert np.array_equal(got_codes, codes.ravel())
        assert np.array_equal(got_uniq.view(np.int64), uniq.view(np.int64)) if a.dtype.kind == "f" else \
            np.array_equal(got_uniq, uniq)


def _corners_one_at_a_time(sub, q):
    m, d = q.shape
    lo, fr, single = [], [], []
    for j in range(d):
        u = sub.luniq[j]
        qj = np.minimum(np.maximum(q[:, j], u[0]), u[-1])
        if len(u) == 1:
            lo.append(np.zeros(m, dtype=int)); fr.append(np.zeros(m)); single.append(True)
            continue
        i = np.minimum(np.maximum(np.searchsorted(u, qj, side="right") - 1, 0), len(u) - 2)
        lo.append(i); fr.append((qj - u[i]) / (u[i + 1] - u[i])); single.append(False)
    sids, wts = [], []
    for bits in itertools.product((0, 1), repeat=d):
        if any(b and s for b, s in zip(bits, single)):
            continue
        w = None
        for j, b in enumerate(bits):
            w = (fr[j] if b else 1.0 - fr[j]) if w is None else w * (fr[j] if b else 1.0 - fr[j])
        sid = sub.dense[tuple(lo[j] + b for j, b in enumerate(bits))]
        ok = (sid >= 0) & (w > 1e-12)
        sids.append(np.where(ok, sid, -1)); wts.append(np.where(ok, w, 0.0))
    return np.column_stack(sids), np.column_stack(wts)


def test_corners_at_once_equal_corners_one_at_a_time():
    rng = np.random.default_rng(7)
    for d in (1, 2, 3):
        luniq = [np.sort(rng.choice(np.arange(8.0), size=int(rng.integers(1, 5)), replace=False)) for _ in range(d)]
        dense = np.arange(np.prod([len(u) for u in luniq])).reshape([len(u) for u in luniq])
        dense[rng.random(dense.shape) < 0.3] = -1          # unmeasured sweeps
        dense.flat[0] = 0                                  # at least one measured
        ids = dense[dense >= 0]
        coords = np.array([[luniq[j][k[j]] for j in range(d)] for k in zip(*np.nonzero(dense >= 0))])
        sub = SimpleNamespace(luniq=luniq, dense=dense, ids=ids, coords=coords)
        q = rng.uniform(-1.0, 9.0, size=(50, d))
        sids, wts = corners(sub, q)
        ref_sids, ref_wts = _corners_one_at_a_time(sub, q)
        has = ref_wts.sum(axis=1) > 1e-9                     # rows with a measured corner (else: nearest sweep)
        assert np.array_equal(sids[has], ref_sids[has]) and np.array_equal(wts[has], ref_wts[has])
        assert np.all(wts[~has].sum(axis=1) == 1.0) and np.all(np.isin(sids[~has, 0], ids))


class _PlainRecorder:
    """Records every call's weightings cell by cell (excursion and weightings on the call's own arguments), as
    uncertainty._Recorder did before the wrapper weighed each shape once; it asks the wrapper for nothing."""

    def __init__(self, k, w):
        self._k, self._w, self.weighted = k, w, []

    def __getattr__(self, name):
        attr = getattr(self._k, name)
        if name not in KERNEL_METHODS:
            return attr

        def call(*args, **kwargs):
            t = np.asarray(attr(*args, **kwargs), float)
            roof, d = excursion_doublings(self._k, name, args, kwargs)
            roof = np.asarray(roof, bool)
            self.weighted.append(_weightings(t, roof, np.where(roof, 0.0, d), self._w))
            return t

        return call


def test_weightings_per_shape_equal_weightings_per_cell():
    model, hw = load_model("deepseek-r1"), load_hardware("gb200-nvl72")
    prec = Precision(weights="fp4", kv_cache="fp4")
    lay = enumerate_layouts(model, hw, SearchSpace(max_gpus=16, pp=(1, 2), hopb=(True, False)))
    col = LayoutArrays(*(getattr(lay, f)[:, None] for f in LayoutArrays.__dataclass_fields__))
    batch = np.resize(np.array([1, 8, 64]), len(lay.kvp))[:, None]
    context = np.array([[65_536, 1_000_000, 4_000_000]])
    parts, prov = step_provenance(kernels_for(hw), model, col, batch, context, prec)
    k = kernels_for(hw)
    rec = _PlainRecorder(k, shipped_rule().per_doubling)
    plain_parts = decode_step(rec, model, col, batch, context, prec)
    plain = _provenance(k, plain_parts, _replay(k, rec.weighted, model, col, batch, context, prec))
    for a, b in ((parts, plain_parts), (prov.roofline_ms, plain.roofline_ms), (prov.law_ms, plain.law_ms),
                 (prov.widen_hi_ms, plain.widen_hi_ms), (prov.widen_lo_ms, plain.widen_lo_ms)):
        for op in a:
            x, y = np.broadcast_arrays(np.asarray(a[op], float), np.asarray(b[op], float))
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), op
    assert any(np.any(np.asarray(v) > 0) for v in prov.law_ms.values())   # extrapolated time was weighted


def test_labels_formed_once_per_grid_row_are_the_per_configuration_labels():
    """A chunk's point labels are formed once per grid row (and capacity-edge row) and spread over its kept cells:
    the same labels, codes and categories as labelling every kept configuration on its own; a grid row without
    a kept cell adds no category."""
    from helixsim.search import _labelled_rows, layout_labels

    lay = enumerate_layouts(load_model("deepseek-r1"), load_hardware("gb200-nvl72"), SearchSpace(max_gpus=8))
    li, gb = np.array([0, 0, 1, 2, 2, 3]), np.array([1, 2, 1, 1, 4, 2])
    fits = np.array([[1, 1], [1, 0], [0, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)   # row 2 keeps no cell
    kept = np.nonzero(fits)[0]
    edge_l, edge_b = np.array([1, 3]), np.array([3, 5])
    for el, eb in ((edge_l, edge_b), (edge_l[:0], edge_b[:0])):
        which, batch, spread = _labelled_rows(li, gb, fits, kept, el, eb)
        got = layout_labels(lay, which, batch, spread)
        want = layout_labels(lay, np.concatenate([li[kept], el]), np.concatenate([gb[kept], eb]))
        assert list(got.categories) == list(want.categories)
        assert np.array_equal(got.codes, want.codes)
    unused = str(layout_labels(lay, li[2:3], gb[2:3]).categories[0])   # row 2's label: no configuration has it
    assert unused not in set(got.categories) and unused not in set(want.categories)


def test_layout_candidates_found_on_the_mask_own_cells_are_numpys_nonzero():
    """search._nonzero_broadcast (the GPU-budget mask's cells spread over the axes it is broadcast along) against
    np.nonzero of the broadcast mask: the same indices in the same order, whatever axes are broadcast."""
    from helixsim.search import _nonzero_broadcast

    rng = np.random.default_rng(14)
    for _ in range(2000):
        shape = tuple(int(n) for n in rng.integers(1, 4, int(rng.integers(1, 6))))
        mask = rng.random(tuple(1 if rng.random() < 0.4 else n for n in shape)) < rng.random()
        want, got = np.nonzero(np.broadcast_to(mask, shape)), _nonzero_broadcast(mask, shape)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_distinct_integers_are_numpys_unique():
    """shape_memo.distinct_codes on whole numbers (the presence table, indexed by the values themselves where
    they are non-negative and dense, else shifted by the smallest) against np.unique(return_inverse=True)."""
    rng = np.random.default_rng(14)
    for trial in range(1500):
        n, lo, span = int(rng.integers(33, 300)), int(rng.integers(-50, 200)), int(rng.integers(1, 400))
        a = rng.integers(lo, lo + span, n)
        a = [a, a.astype(float), np.where(rng.random(n) < 0.3, -0.0, a.astype(float))][trial % 3]
        uniq, codes = np.unique(a, return_inverse=True)
        got_codes, got_uniq = shape_memo.distinct_codes(a)
        assert got_uniq.dtype == uniq.dtype and np.array_equal(got_uniq, uniq)
        assert np.array_equal(got_codes, codes.reshape(a.shape))
