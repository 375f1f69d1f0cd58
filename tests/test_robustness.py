"""Robustness of a plan's verdict (helixsim/planning/robustness.py) and the what-if kernel model
(helixsim/cost/perturb.py). Expected values by hand on the textbook roofline."""

from __future__ import annotations

import numpy as np
import pytest

from helixsim.api import resolve_hardware, resolve_model
from helixsim.cost.kernels import RooflineKernels
from helixsim.cost.perturb import PerturbedKernels
from helixsim.efficiency import IDEAL
from helixsim.plan import plan
from helixsim.planning.inputs import default_precision
from helixsim.planning.robustness import family, reprice, verdict_text
from helixsim.planning.selection import select

GB200 = resolve_hardware("gb200-nvl72")


def test_perturbed_kernels_by_hand():
    """Ideal GB200 (8 TB/s, no floors): an FP8 [1, 8192] x [8192, 8192] GEMM moves 67,108,864 B of weight
    + (8,192 + 8,192) x 2 B of bf16 activations = 67,141,632 B: 8.392704 us; +5 us of fixed cost.
    MLA attention over 1,000 tokens of 576 FP8 bytes = 576,000 B: 0.072 us at 8 TB/s; at half the
    efficiency 0.144 us, plus the 5 us. An all-to-all gets +20 us, an all-reduce nothing."""
    base = RooflineKernels(GB200, IDEAL)
    k = PerturbedKernels(base, attention_efficiency=0.5, kernel_floor_us=5.0, a2a_latency_us=20.0)
    assert float(k.gemm_ms(1, 8192, 8192, "fp8")) * 1e3 == pytest.approx(8.392704 + 5.0, rel=1e-9)
    att = float(base.mla_attention_ms(1, 1, 512, 64, 1000, "fp8", "fp8"))
    assert att * 1e3 == pytest.approx(0.072, rel=1e-6)
    assert float(k.mla_attention_ms(1, 1, 512, 64, 1000, "fp8", "fp8")) * 1e3 == pytest.approx(0.144 + 5.0, rel=1e-6)
    a2a, ar = base.collective_ms("all_to_all", 8, 1e6), base.collective_ms("all_reduce", 8, 1e6)
    assert float(k.collective_ms("all_to_all", 8, 1e6)) == pytest.approx(float(a2a) + 0.020)
    assert float(k.collective_ms("all_reduce", 8, 1e6)) == pytest.approx(float(ar))
    assert float(k.collective_ms("all_to_all", 1, 1e6)) == 0.0  # no exchange on one GPU: nothing added
    assert k.elem_bytes("fp8") == base.elem_bytes("fp8")       # everything else is the base model's
    with pytest.raises(ValueError):
        PerturbedKernels(base, attention_efficiency=0.0)


def test_plan_states_its_verdict_and_what_flips_it():
    floor = 40.0
    r = plan("deepseek-r1", "b200-hgx", 100_000, 32, floor, max_batch=64, prices={"b200-hgx": 6.0},
             sensitivity=False)
    from helixsim.planning.robustness import robustness

    pool = r.winner.main_pool
    r.robustness = rb = robustness(pool.table, floor, resolve_model("deepseek-r1"), resolve_hardware("b200-hgx"),
                                   default_precision(resolve_hardware("b200-hgx")), hardware_name="b200-hgx",
                                   context=pool.context)
    assert rb is not None and rb.hardware == "b200-hgx" and rb.context == 100_000
    chosen = r.winner.main_pool.choice.config
    assert rb.verdict.startswith(("Helix" if chosen.strategy == "helix" else "baseline") + ": " + chosen.strategy)
    assert [f.parameter for f in rb.flips] == ["attention bandwidth efficiency", "per-kernel fixed cost",
                                               "all-to-all latency"]
    # Each reported flip value really flips the verdict when the configurations are priced again there.
    model, hw = resolve_model("deepseek-r1"), resolve_hardware("b200-hgx")
    from helixsim.api import kernels_for
    from helixsim.planning.robustness import PARAMETERS, candidate_rows

    from helixsim.api import evaluate
    from helixsim.layout import STRATEGIES, LayoutArrays

    rows = candidate_rows(r.winner.main_pool.table)
    prec = default_precision(hw)
    # unperturbed, the re-pricing gives the table's own step times
    same = reprice(rows, model, prec, kernels_for(hw))
    np.testing.assert_allclose(same["ttl_ms"].to_numpy(), rows["ttl_ms"].to_numpy(), rtol=1e-9)
    base = family(select(rows, floor))
    lay = LayoutArrays(strategy=rows["strategy"].map(STRATEGIES.index).to_numpy(),
                       **{c: rows[c].to_numpy() for c in ("kvp", "tpa", "dp", "tpf", "ep", "pp", "hopb")})
    checked = 0
    for param, flip in zip(PARAMETERS, rb.flips):
        if flip.value is None:
            continue
        # priced through the public evaluate() with the what-if kernels, the verdict has changed there
        priced = evaluate(model, hw, lay, rows["batch"].to_numpy(), rows["context"].to_numpy(), prec,
                          kernels=PerturbedKernels(kernels_for(hw), **{param.key: flip.value}))
        priced["label"] = rows["label"].to_numpy()
        row = select(priced, floor)
        assert family(row) != base and verdict_text(row) == flip.verdict_after
        checked += 1
    assert checked >= 1
    summary = r.recommendation()["robustness"]
    assert summary["verdict"] == rb.verdict and len(summary["flips"]) == 3
    from helixsim.planning.report_content import build_blocks
    from helixsim.planning.report_markdown import to_markdown

    text = to_markdown(build_blocks(r))
    assert "Robustness" in text and rb.verdict in text


def test_robustness_is_planned_with_sensitivity_only():
    r = plan("deepseek-r1", "b200-hgx", 100_000, 32, 40.0, max_batch=64, prices={"b200-hgx": 6.0}, sensitivity=False)
    assert r.robustness is None and r.recommendation()["robustness"] is None
    assert np.isfinite(r.per_hardware[0].cost_per_m_tokens)
