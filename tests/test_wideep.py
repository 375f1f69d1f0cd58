"""Two-batch overlap (wide EP): the hand-checked composition and the point switch."""

import numpy as np
import pytest

from helixsim.api import simulate_point
from helixsim.cost.wideep import two_batch_overlap_step
from helixsim.layout import Layout
from helixsim.precision import Precision


def test_two_batch_overlap_by_hand():
    keys = ("qkv_proj", "attention", "attn_comm", "o_proj", "ffn", "ffn_comm", "lm_head", "pp_comm", "overhead", "mtp")
    full = {k: np.array([1.0]) for k in keys}
    half = {k: np.array([0.0]) for k in keys}
    half["qkv_proj"], half["ffn"] = np.array([2.0]), np.array([4.0])      # C = 6 ms over the layers
    half["attn_comm"], half["ffn_comm"] = np.array([2.0]), np.array([6.0])  # M = 8 ms
    out = two_batch_overlap_step(full, half, num_layers=2, applies=np.array([True]))
    # max(2C, 2M) + min(C, M) / L = 16 + 3 = 19; compute 2C = 12; exposed communication 7, split 2:6
    assert out["qkv_proj"][0] == 4.0 and out["ffn"][0] == 8.0
    assert out["attn_comm"][0] == pytest.approx(7 * 2 / 8) and out["ffn_comm"][0] == pytest.approx(7 * 6 / 8)
    assert out["lm_head"][0] == 1.0 and out["overhead"][0] == 1.0          # once, on the whole batch
    same = two_batch_overlap_step(full, half, num_layers=2, applies=np.array([False]))
    assert all(same[k][0] == 1.0 for k in keys)


def test_point_two_batch_overlap_only_changes_ep():
    prec = Precision(weights="fp8", kv_cache="fp8")
    lay = Layout("ep", tpa=1, dp=8, tpf=1, ep=8)
    on = simulate_point("deepseek-r1", "b200-hgx", lay, batch=512, context=4096, precision=prec, two_batch_overlap=True)
    off = simulate_point("deepseek-r1", "b200-hgx", lay, batch=512, context=4096, precision=prec)
    assert on.two_batch_overlap and on.ttl_ms != off.ttl_ms
    # compute is priced at half the batch twice: never cheaper than the whole batch once
    assert on.breakdown_ms["ffn"] >= off.breakdown_ms["ffn"] * 0.999
    tp = Layout("tp", tpa=8, tpf=8)
    assert simulate_point("deepseek-r1", "b200-hgx", tp, batch=64, context=4096, precision=prec,
                          two_batch_overlap=True).ttl_ms == \
        simulate_point("deepseek-r1", "b200-hgx", tp, batch=64, context=4096, precision=prec).ttl_ms


