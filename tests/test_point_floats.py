"""Pieces of the single-point fast path that work in Python floats or skip repeated work give what the array
code gives, bit for bit (references: numpy's own functions on arrays), and keep refusing bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from helixsim.api import resolve_hardware, resolve_model
from helixsim.calibration import point
from helixsim.calibration.kernels import _load_cached
from helixsim.calibration.stored import builtin_calibration_path
from helixsim.cost import terms as t
from helixsim.cost.kernels import RooflineKernels
from helixsim.cost.rows import select_rows
from helixsim.errors import SpecError
from helixsim.layout import Layout, check_layout
from helixsim.specs.registry import load_efficiency

VALUES = (0.0, -0.0, 1.0, 3.5, 1e-300, 7e12, math.inf, math.nan)


def _same(a, b) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and a.tobytes() == b.tobytes() or (np.isnan(a).all() and np.isnan(b).all())


def test_float_helpers_equal_numpy_on_floats():
    for a, b in itertools.product(VALUES, repeat=2):
        assert _same(t.maximum(a, b), np.maximum(np.asarray(a), np.asarray(b))), (a, b)
        assert _same(t.where_positive(a, b), np.where(np.asarray(a) > 0, np.asarray(b), 0.0)), (a, b)
    assert t.as_float(2.5) == 2.5 and t.as_float(np.arange(3)).dtype == float


@pytest.mark.parametrize("hardware", ["gb200-nvl72", "h200-hgx"])
def test_roofline_gemm_in_floats_equals_the_array_code(hardware):
    hw = resolve_hardware(hardware)
    k = RooflineKernels(hw, load_efficiency(hw.name))
    for (m, n, kk), dtype in itertools.product([(1, 7168, 2048), (37, 24576, 1536), (1024, 129280, 7168),
                                                (0, 64, 64), (3, 5, 7)], ["bf16", "fp8", "fp4"]):
        arrays = k.gemm_ms(np.array([m]), np.array([[n]]), np.array([kk]), dtype)
        one = point.fallback_one(k.gemm_ms, (np.array([m]), np.array([[n]]), np.array([kk])), dtype)
        assert one.shape == arrays.shape == (1, 1) and one.tobytes() == arrays.tobytes(), (m, n, kk, dtype)
        b_arrays = k.bmm_ms(np.array([16]), np.array([m]), n, kk, dtype if dtype != "fp4" else "bf16")
        b_one = point.fallback_one(k.bmm_ms, (np.array([16]), np.array([m]), n, kk), dtype if dtype != "fp4" else "bf16")
        assert b_one.shape == b_arrays.shape and b_one.tobytes() == b_arrays.tobytes(), (m, n, kk, dtype)


def test_select_rows_of_one_layout_equals_np_select():
    # masks of one element (a single point, the stacked replay of shape (5, 1) in front) and values of many
    stacked = np.arange(10.0).reshape(5, 2)[:, :1]
    for masks in itertools.product([np.array([True]), np.array([False]), np.bool_(True), np.array(False)], repeat=2):
        variants = [lambda r: stacked + 1.0, lambda r: np.array([2.0])]
        got = select_rows(list(masks), variants, lambda r: 0.0)
        want = np.select([np.asarray(m) for m in masks], [stacked + 1.0, np.array([2.0])], 0.0)
        assert got.shape == want.shape and got.dtype == want.dtype and got.tobytes() == want.tobytes()
        assert got.flags.writeable


def test_a_layout_found_valid_is_still_checked_for_its_field_types():
    model = resolve_model("deepseek-r1")
    good = Layout("helix", kvp=8, tpf=1, ep=8)
    assert check_layout(good, model) is good
    assert check_layout(good, model) is good   # the second time from the memo
    with pytest.raises(SpecError, match="--tpa"):   # True == 1 and hash(True) == hash(1): not the same key
        check_layout(Layout("helix", kvp=8, tpa=True, tpf=1, ep=8), model)
    with pytest.raises(SpecError, match="--kvp"):
        check_layout(Layout("helix", kvp=8.0, tpf=1, ep=8), model)
    with pytest.raises(SpecError, match="--tpf"):   # an invalid layout is never kept
        check_layout(Layout("helix", kvp=8, tpf=2, ep=8), model)


def test_a_relative_calibration_path_follows_the_working_directory(tmp_path, monkeypatch):
    path = builtin_calibration_path("gb200-nvl72")
    monkeypatch.chdir(path.parent)
    first = _load_cached(path.name)
    assert _load_cached(path.name) is first and _load_cached(path) is first
    monkeypatch.chdir(tmp_path)   # the same relative name elsewhere names no calibration
    with pytest.raises(OSError):
        _load_cached(path.name)
