"""Memory per GPU on a sweep's grid gives the same bits as the plain computation (issue 14).

``helixsim.cost.memory.stage_kv_bytes_per_request`` prices one request's KV bytes on a stage once per distinct
(KVP width, pp[, tpa]) of a layouts-column x contexts-row grid and spreads them to the rows. Reference: the
plain ``stage x kv_bytes_per_request`` on the whole grid, and ``memory_per_gpu`` (every field, and
``largest_batch``) on the grid's cells flattened to one axis, where no shortcut applies. Models: MLA
(DeepSeek-R1), MLA with DSA index keys (DeepSeek-V3.2), GQA with sliding-window layers (gpt-oss-120b), GQA
(Llama-3.1-70B) and linear attention (Qwen3.5, the plain path), with pipeline stages 1, 2 and 4 and layouts
in shuffled order.
"""

from __future__ import annotations

import numpy as np
import pytest

from helixsim.api import kernels_for
from helixsim.cost import memory as mem_mod
from helixsim.cost import terms as t
from helixsim.cost.memory import kv_bytes_per_request, largest_batch, memory_per_gpu, stage_kv_bytes_per_request
from helixsim.layout import LayoutArrays
from helixsim.precision import Precision
from helixsim.search import SearchSpace, enumerate_layouts
from helixsim.specs.registry import load_hardware, load_model

FP8 = Precision(weights="fp8", kv_cache="fp8")
CONTEXTS = np.array([[1, 7, 1000, 4096, 131_073, 1_000_000]], dtype=np.int64)
MODELS = ("deepseek-r1", "deepseek-v3.2", "gpt-oss-120b", "llama-3.1-70b", "qwen3.5-397b-a17b")


def _grid(model_name: str):
    hw = load_hardware("gb200-nvl72")
    model = load_model(model_name)
    lay = enumerate_layouts(model, hw, SearchSpace(pp=(1, 2, 4)))
    order = np.random.default_rng(14).permutation(len(lay.kvp))
    col = LayoutArrays(*(getattr(lay, f)[order][:, None] for f in LayoutArrays.__dataclass_fields__))
    assert len(col.kvp) > 64 and len(np.unique(col.pp)) == 3 and len(np.unique(col.kvp)) > 2
    return hw, model, col, kernels_for(hw)


def _same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got.view(np.int64) if got.dtype == float else got,
                          want.view(np.int64) if want.dtype == float else want)


@pytest.mark.parametrize("model_name", MODELS)
def test_stage_kv_per_width_is_the_plain_product(model_name):
    hw, model, col, k = _grid(model_name)
    stage = t.cdiv(model.num_layers, col.pp) / model.num_layers
    got = stage_kv_bytes_per_request(k, model, col, CONTEXTS, FP8, stage)
    _same(got, stage * kv_bytes_per_request(k, model, col, CONTEXTS, FP8))
    assert got.shape == (len(col.kvp), CONTEXTS.size)


@pytest.mark.parametrize("model_name", MODELS)
def test_memory_on_the_grid_is_memory_cell_by_cell(model_name):
    hw, model, col, k = _grid(model_name)
    batch = np.random.default_rng(3).integers(1, 300, (len(col.kvp), 1))
    shape = (len(col.kvp), CONTEXTS.size)
    grid = memory_per_gpu(k, model, col, batch, CONTEXTS, FP8)
    flat_lay = LayoutArrays(*(np.broadcast_to(getattr(col, f), shape).ravel() for f in LayoutArrays.__dataclass_fields__))
    flat = memory_per_gpu(k, model, flat_lay, np.broadcast_to(batch, shape).ravel(),
                          np.broadcast_to(CONTEXTS, shape).ravel(), FP8)
    for field in ("kv_bytes", "activation_bytes", "per_request_bytes", "total_bytes"):
        _same(np.broadcast_to(getattr(grid, field), shape).ravel(), getattr(flat, field))
    _same(np.broadcast_to(grid.weights_bytes, shape).ravel(), flat.weights_bytes)
    _same(np.broadcast_to(largest_batch(grid, col, hw.hbm_capacity_bytes), shape).ravel(),
          largest_batch(flat, flat_lay, hw.hbm_capacity_bytes))


def test_shortcut_is_taken_on_the_grid(monkeypatch):
    """The grid above runs the per-width branch (KV bytes priced on the distinct keys' rows only)."""
    hw, model, col, k = _grid("deepseek-r1")
    seen = []
    plain = mem_mod.kv_bytes_per_request
    monkeypatch.setattr(mem_mod, "kv_bytes_per_request", lambda k, m, a, c, p: seen.append(a.kvp.shape) or plain(k, m, a, c, p))
    memory_per_gpu(k, model, col, np.ones((1, CONTEXTS.size), np.int64), CONTEXTS, FP8)
    keys = {(int(v), int(p)) for v, p in zip(col.kvp[:, 0], col.pp[:, 0])}
    assert seen == [(len(keys), 1)]
