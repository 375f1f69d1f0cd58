"""Two-batch overlap (wide EP): the hand-checked composition and the point switch."""

import numpy as np
import pytest

from helixsim.api import simulate_point
from helixsim.cost.wideep import two_batch_overlap_step
from helixsim.layout import Layout
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware, load_model


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


# ------------------------------------------------------------------ redundant slots, dispatch payload, EPLB
def test_expert_slots_let_ep_48_serve_256_experts():
    from helixsim.cost.memory import ffn_weight_bytes
    from helixsim.cost.wideep import expert_slots
    from helixsim.errors import SpecError
    from helixsim.layout import LayoutArrays, check_layout

    # 256 experts on 48 ranks: ceil(256 / 48) = 6 slots per rank, 288 in all (32 redundant, as SGLang's
    # --ep-num-redundant-experts 32); 32 ranks divide 256: no redundant slot
    assert expert_slots(256, 48) == 288 and expert_slots(256, 72) == 288 and expert_slots(256, 32) == 256
    model = load_model("deepseek-r1")
    lay = check_layout(Layout("ep", tpa=1, dp=48, tpf=1, ep=48), model)
    with pytest.raises(SpecError, match="--ep"):
        check_layout(Layout("ep", tpa=1, dp=512, tpf=1, ep=512), model)     # more ranks than experts
    routed = ffn_weight_bytes(model, LayoutArrays.from_layout(lay), expert_bytes=1.0, dense_bytes=0.0)
    # by hand: 58 MoE layers x 6 slots x 3 x 7168 x 2048 (DeepSeek-V3 config: hidden 7168,
    # moe_intermediate_size 2048, 61 layers of which the first 3 dense)
    assert float(np.ravel(routed)[0]) == 58 * 6 * 3 * 7168 * 2048


def test_redundant_slot_read_and_dispatch_payload():
    from helixsim.api import kernels_for
    from helixsim.cost.wideep import dispatch_payload_dtype, redundant_slot_read_ms

    model = load_model("deepseek-r1")
    gb200, h200 = load_hardware("gb200-nvl72"), load_hardware("h200-hgx")
    k = kernels_for(gb200)
    fp4 = Precision(weights="fp4", kv_cache="fp8")
    # one rank holds 6 slots where 256 / 48 = 5.33 experts would do: 2/3 of an expert's FP4 weights more,
    # at 0.5625 B per element (4-bit values + an FP8 scale per 16)
    extra = redundant_slot_read_ms(k, model, np.array([1, 1]), np.array([48, 32]), fp4)
    assert extra[0] == pytest.approx(float(k.memory_op_ms(np.array(2 / 3 * 3 * 7168 * 2048 * 0.5625))), rel=1e-9)
    assert extra[1] == 0.0
    # DeepEP: FP8 dispatch, BF16 combine; NVFP4 dispatch for FP4 experts on Blackwell; Hopper runs FP4 weight-only
    assert dispatch_payload_dtype(gb200, fp4) == "fp4"
    assert dispatch_payload_dtype(gb200, Precision(weights="fp8", kv_cache="fp8")) == "fp8"
    assert dispatch_payload_dtype(h200, Precision(weights="fp4", kv_cache="fp8")) == "bf16"
    assert dispatch_payload_dtype(gb200, Precision(weights="bf16", kv_cache="bf16")) == "bf16"


def test_wide_ep_moe_kernel_and_eplb_against_measured_rows():
    """TensorRT-LLM's wide-EP MoE kernel (wideep_moe) prices an EP 32 layer; with EPLB routing it is faster.
    Golden values: the measured rows of wideep_moe.csv.gz (gb200, nvfp4, 256 experts, EP 32, 2,048 tokens):
    0.1336 ms under power law 1.01 and 0.0892 ms after EPLB (aiconfigurator-core 0.12.0 tables)."""
    from helixsim.api import kernels_for

    k = kernels_for(load_hardware("gb200-nvl72"))
    shape = {"num_tokens": 2048, "hidden_size": 7168, "inter_size": 2048, "topk": 8, "num_experts": 256,
             "moe_tp_size": 1, "moe_ep_size": 32}
    fixed = {"moe_dtype": "nvfp4", "gated": True}
    skew = float(k._query("moe", ("nvfp4", "wideep_compute_cutlass", "power_law_1.01"), shape, fixed))
    eplb = float(k._query("moe", ("nvfp4", "wideep_compute_cutlass", "power_law_1.01_eplb"), shape, fixed))
    # the EPLB rows are noisy (0.096, 0.089, 0.117 ms at 1,536, 2,048, 3,072 tokens): the smooth fit may sit 20 % off
    assert skew == pytest.approx(0.1336, rel=0.08) and eplb == pytest.approx(0.0892, rel=0.2)
    before = float(k.moe_ms(2048, 7168, 2048, 8, 256, 1, 32, "fp4"))
    fp8 = float(k.moe_ms(2048, 7168, 2048, 8, 256, 1, 32, "fp8"))
    k.moe_distribution = "power_law_1.01_eplb"
    assert float(k.moe_ms(2048, 7168, 2048, 8, 256, 1, 32, "fp4")) < before
    # FP8 experts have no EPLB measurement on GB200: they keep power law 1.01 (not the balanced rows)
    assert float(k.moe_ms(2048, 7168, 2048, 8, 256, 1, 32, "fp8")) == fp8


def test_point_eplb_routes_the_wide_ep_moe_as_balanced():
    """--eplb prices TensorRT-LLM's wide-EP MoE with its measured after-EPLB rows: a DeepSeek-R1 EP 32 step at
    64 requests per GPU spends less in the MoE, the rest of the step unchanged, and the JSON says so."""
    import json
    import subprocess
    import sys

    lay = Layout("ep", tpa=1, dp=32, tpf=1, ep=32)
    prec = Precision(weights="fp4", kv_cache="fp8")
    off = simulate_point("deepseek-r1", "gb200-nvl72", lay, batch=2048, context=4096, precision=prec)
    on = simulate_point("deepseek-r1", "gb200-nvl72", lay, batch=2048, context=4096, precision=prec, eplb=True)
    assert on.eplb and not off.eplb
    assert on.breakdown_ms["ffn"] < off.breakdown_ms["ffn"]
    assert on.breakdown_ms["attention"] == off.breakdown_ms["attention"]
    run = subprocess.run([sys.executable, "-m", "helixsim.cli", "point", "--model", "deepseek-r1", "--hardware",
                          "gb200-nvl72", "--strategy", "ep", "--dp", "32", "--tpa", "1", "--batch", "2048",
                          "--context", "4096", "--weights", "fp4", "--kv-cache", "fp8", "--eplb", "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0 and json.loads(run.stdout)["eplb"] is True


def test_rebuilding_the_tables_keeps_the_notice_paragraphs_of_other_commands(tmp_path):
    """python -m helixsim.calibration.build rewrites NOTICE; the notes other commands appended (prefill grids,
    raw rows kept, the wide-EP kernel) stay, and a fresh folder gets the source notice and helixsim's changes."""
    from pathlib import Path

    from helixsim.calibration.build import OUR_CHANGES, notice_text

    shipped = (Path(__file__).resolve().parents[1] / "hardware" / "calibration" / "NOTICE").read_text()
    data = tmp_path / "data"
    data.mkdir()
    (data / "NOTICE").write_text(shipped.split(OUR_CHANGES)[0])   # the source's own notice
    assert notice_text(data, shipped) == shipped
    fresh = notice_text(data)
    assert fresh.endswith(OUR_CHANGES) and "issue 12" not in fresh
