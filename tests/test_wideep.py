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




def _tbo_sweep(tmp_path):
    from helixsim.sweep import load_sweep

    path = tmp_path / "tbo.yaml"
    path.write_text("name: tbo\ndescription: TBO and MTP as sweep keys\nmodels: [deepseek-r1]\nhardware: b200-hgx\n"
                    "contexts: [4096]\nstrategies: [ep, tp]\nmax_gpus: 8\nmax_batch: 256\nmtp: [0, 3]\n"
                    "two_batch_overlap: [false, true]\nprecision: {weights: fp8, kv_cache: fp8}\n")
    return load_sweep(str(path))


def test_sweep_keys_two_batch_overlap_and_mtp(tmp_path):
    from helixsim.api import resolve_hardware, resolve_model
    from helixsim.search import frontiers, search

    spec, path = _tbo_sweep(tmp_path)
    assert spec.mtp == (0, 3) and spec.two_batch_overlap == (False, True)
    table = search(resolve_model("deepseek-r1"), resolve_hardware("b200-hgx"), spec.space(), spec.precision.build(str(path)))
    tbo = table[table["two_batch_overlap"]]
    assert len(tbo) and set(tbo["strategy"].astype(str)) == {"ep"}          # only ep layouts overlap
    assert tbo["label"].astype(str).str.endswith("tbo").all()
    # a sweep row is the point of the same configuration with the switch on
    row = tbo[(tbo["mtp"] == 3) & (tbo["batch"] == 64)].iloc[0]
    lay = Layout("ep", kvp=int(row.kvp), tpa=int(row.tpa), dp=int(row.dp), tpf=int(row.tpf), ep=int(row.ep))
    pt = simulate_point("deepseek-r1", "b200-hgx", lay, batch=64, context=4096, mtp=3, two_batch_overlap=True,
                        precision=Precision(weights="fp8", kv_cache="fp8"))
    assert row.ttl_ms == pytest.approx(pt.ttl_ms, rel=1e-9)
    fr = frontiers(table)
    assert len(fr["Best baseline no TBO"]) and len(fr["Best baseline no MTP"])
    # the frontier over more configurations reaches at least as far as the one without the switch
    assert fr["Best baseline"]["tokens_per_s_gpu"].max() >= fr["Best baseline no TBO"]["tokens_per_s_gpu"].max()
    assert fr["Best baseline"]["tokens_per_s_user"].max() >= fr["Best baseline no MTP"]["tokens_per_s_user"].max()


def test_sweep_refuses_bad_two_batch_overlap(tmp_path):
    from helixsim.errors import SpecError
    from helixsim.sweep import load_sweep

    path = tmp_path / "bad.yaml"
    path.write_text("name: b\ndescription: b\nmodels: [deepseek-r1]\nhardware: b200-hgx\ncontexts: [4096]\n"
                    "two_batch_overlap: [yes please]\n")
    with pytest.raises(SpecError, match="two_batch_overlap"):
        load_sweep(str(path))
    path.write_text("name: b\ndescription: b\nmodels: [deepseek-r1]\nhardware: b200-hgx\ncontexts: [4096]\nmtp: [-1]\n")
    with pytest.raises(SpecError, match=r"mtp\[0\]"):
        load_sweep(str(path))
