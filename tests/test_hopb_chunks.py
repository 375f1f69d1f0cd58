"""HOP-B's chunk model in the decode step (helixsim/cost/step.py, helixsim/hopb_study.py).

Each HOP-B chunk is one request (paper §2.1.3, Fig. 3): its attention is priced as an
attention kernel at batch 1 and its all-to-all as a collective of one request's partial
outputs, each paying its own fixed cost. Expected values are hand calculations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helixsim.api import kernels_for, simulate_point
from helixsim.hopb_study import hopb_chunks
from helixsim.layout import Layout
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware

GB200 = "gb200-nvl72"


def test_ideal_hopb_hides_all_but_one_chunk_by_hand():
    """Llama-405B, KVP 8, TPA 8, B 8, FP8 KV, textbook roofline (no fixed costs).

    A request's attention per layer reads 125,000 tokens x 256 B = 32 MB: 4 us at 8 TB/s; its
    all-to-all sends 7/8 x 16 heads x (128 x 2 B + 8 B) = 3,696 B: 4.1 ns at 900 GB/s. Attention
    is longer, so the pipeline is 8 c + m: only one request's all-to-all stays exposed, against
    eight without HOP-B (test_cost_golden.test_helix_all_to_all_without_hopb_by_hand).
    """
    prec = Precision(kv_cache="fp8")
    on = simulate_point("llama-3.1-405b", GB200, Layout("helix", kvp=8, tpa=8, tpf=64, hopb=True), 8, 1_000_000,
                        prec, ideal=True)
    off = simulate_point("llama-3.1-405b", GB200, Layout("helix", kvp=8, tpa=8, tpf=64, hopb=False), 8, 1_000_000,
                         prec, ideal=True)
    a2a_one_ms = 7 / 8 * 16 * (128 * 2 + 8) / 900e9 * 1e3
    ar_ms = 2 * 63 / 64 * 8 * 16384 * 2 / 900e9 * 1e3  # o_proj all-reduce, as in test_cost_golden
    assert on.breakdown_ms["attn_comm"] == pytest.approx(126 * (a2a_one_ms + ar_ms), rel=1e-9)
    assert on.breakdown_ms["attention"] == pytest.approx(off.breakdown_ms["attention"], rel=1e-12)
    assert on.breakdown_ms["attention"] == pytest.approx(126 * 8 * 32e6 / 8e12 * 1e3, rel=1e-3)


def test_calibrated_chunks_are_priced_as_kernels_of_their_size():
    """DeepSeek-R1, Helix 64 x 1, batch 8, FP8 KV on calibrated GB200: the attention chunk is the
    calibrated MLA kernel at batch 1 over ceil(10^6 / 64) = 15,625 tokens and 128 heads; the
    all-to-all chunk is the calibrated all-to-all over 64 GPUs of one request's partial outputs,
    128 heads x (512 x 2 B + 8 B) = 132,096 B. Both include their kernel's or collective's fixed cost,
    so eight chunks cost more than the batched kernels."""
    hw = load_hardware(GB200)
    k = kernels_for(hw)
    prec = Precision(weights="fp4", kv_cache="fp8")
    row = pd.DataFrame({"kvp": [64], "tpa": [1], "dp": [1], "tpf": [64], "ep": [1], "pp": [1], "batch": [8],
                        "context": [1_000_000], "ttl_ms": [10.0]})
    got = hopb_chunks(row, "deepseek-r1", hw, prec).iloc[0]
    c = float(k.mla_attention_ms(1, 128, 512, 64, 15_625, "fp8", prec.attention_math_dtype))
    m = float(k.collective_ms("all_to_all", 64, 132_096))
    assert got["attention_chunk_us"] == pytest.approx(c * 1e3, rel=1e-12)
    assert got["a2a_chunk_us"] == pytest.approx(m * 1e3, rel=1e-12)
    assert got["pipelined_us"] == pytest.approx((c + 7 * max(c, m) + m) * 1e3, rel=1e-12)
    batched = float(k.mla_attention_ms(8, 128, 512, 64, 15_625, "fp8", prec.attention_math_dtype))
    assert 8 * c > batched  # the batch-1 kernels pay their fixed cost eight times


@pytest.mark.parametrize("model,tpa", [("deepseek-r1", 1), ("llama-3.1-405b", 8)])
def test_hopb_never_slower_than_lockstep(model, tpa):
    """HOP-B is used only where it shortens the step (calibrated kernels, GB200): a grid of
    kvp x batch x context, priced in one vectorised pass per switch."""
    from helixsim.api import evaluate, resolve_model
    from helixsim.layout import STRATEGIES, LayoutArrays

    kvp, batch, ctx = (g.ravel() for g in np.meshgrid([2, 8, 64], [1, 2, 5, 16, 64], [20_000, 1_000_000, 3_000_000]))
    hw, m = load_hardware(GB200), resolve_model(model)
    prec = Precision(weights="fp4", kv_cache="fp8")

    def ttl(hopb: bool) -> np.ndarray:
        n = len(kvp)
        lay = LayoutArrays(strategy=np.full(n, STRATEGIES.index("helix")), kvp=kvp, tpa=np.full(n, tpa),
                           dp=np.ones(n, int), tpf=kvp * tpa, ep=np.ones(n, int), pp=np.ones(n, int),
                           hopb=np.full(n, hopb))
        return evaluate(m, hw, lay, batch, ctx, prec, kernels=kernels_for(hw))["ttl_ms"].to_numpy()

    assert np.all(ttl(True) <= ttl(False) * (1 + 1e-12))


def test_medha_is_the_papers_and_medha_ep_is_labelled_apart():
    from helixsim.errors import SpecError

    with pytest.raises(SpecError, match="medha runs the FFN on one TP group without expert parallelism"):
        simulate_point("deepseek-r1", GB200, Layout("medha", kvp=8, tpa=1, tpf=1, ep=8), 1, 1_000_000)
    r = simulate_point("deepseek-r1", GB200, Layout("medha-ep", kvp=8, tpa=1, tpf=1, ep=8), 1, 1_000_000)
    assert r.strategy == "medha-ep" and np.isfinite(r.ttl_ms)


def test_readme_block_is_replaced_between_its_markers():
    from helixsim.repro_docs import README_BEGIN, README_END, update_readme

    text = f"intro\n{README_BEGIN}\nold | table\n{README_END}\noutro\n"
    assert update_readme(text, "| new |") == f"intro\n{README_BEGIN}\n| new |\n{README_END}\noutro\n"
    with pytest.raises(ValueError, match="no"):
        update_readme("no markers here", "| new |")
