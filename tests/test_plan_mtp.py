"""MTP speculative decoding as a plan dimension (--mtp / plan YAML ``mtp``)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helixsim.api import kernels_for, resolve_hardware, resolve_model, simulate_point
from helixsim.layout import Layout
from helixsim.plan import plan
from helixsim.planning.inputs import default_precision, load_plan_file
from helixsim.planning.robustness import reprice


@pytest.fixture(scope="module")
def planned():
    return plan("deepseek-r1", "b200-hgx", 8192, users=1000, min_tokens_per_s_user=150, sensitivity=False,
                mtp=(0, 3))


def test_plan_searches_mtp_and_states_the_acceptance(planned):
    rec = planned.recommendation()
    # DeepSeek-R1's per-position acceptance from TensorRT-LLM tech blog 1's acceptance lengths 1.92, 2.58, 2.82:
    # 1 + a1 + a1 a2 + a1 a2 a3 with a1 = 0.92, a1 a2 = 0.66, a1 a2 a3 = 0.24 -> 2.82 tokens per step
    assert rec["mtp"]["draft_tokens_searched"] == [0, 3]
    assert rec["mtp"]["accepted_tokens_per_step"]["3"] == pytest.approx(2.82, abs=1e-3)
    assert "TensorRT-LLM" in rec["mtp"]["acceptance_source"]
    # at 150 tokens/s/user on 8x B200 no layout reaches the floor without MTP (one step must take < 6.7 ms)
    assert rec["meets_floor"]
    c = planned.winner.main_pool.choice.config
    assert c.mtp == 3 and c.label.endswith("mtp3")
    pt = simulate_point("deepseek-r1", "b200-hgx", Layout(c.strategy, **{k: v for k, v in c.layout.items()}),
                        batch=c.batch, context=8192, precision=default_precision(resolve_hardware("b200-hgx")), mtp=3)
    assert c.tokens_per_s_user == pytest.approx(pt.tokens_per_s_user, rel=1e-9)   # the point path agrees


def test_plan_without_mtp_cannot_reach_that_floor():
    res = plan("deepseek-r1", "b200-hgx", 8192, users=1000, min_tokens_per_s_user=150, sensitivity=False)
    assert not res.per_hardware[0].meets_floor and res.recommendation()["mtp"] is None


def test_robustness_reprice_keeps_mtp_rows(planned):
    table = planned.winner.main_pool.table
    rows = table[(table["mtp"] == 3) & table["feasible"]].head(50)
    hw = resolve_hardware("b200-hgx")
    again = reprice(rows, resolve_model("deepseek-r1"), default_precision(hw), kernels_for(hw))
    np.testing.assert_allclose(again["tokens_per_s_user"].to_numpy(), rows["tokens_per_s_user"].to_numpy(), rtol=1e-9)


def test_plan_mtp_bad_input(tmp_path):
    from helixsim.errors import SpecError

    p = tmp_path / "p.yaml"
    p.write_text("model: deepseek-r1\nhardware: [b200-hgx]\ncontext: 8192\nusers: 10\nmin_tokens_per_s_user: 50\n"
                 "mtp: [0, -1]\n")
    with pytest.raises(SpecError, match=r"mtp\[1\]"):
        load_plan_file(p)
    run = subprocess.run([sys.executable, "-m", "helixsim.cli", "plan", "--model", "deepseek-r1", "--hardware",
                          "b200-hgx", "--context", "8192", "--users", "10", "--min-tokens-per-s-user", "50",
                          "--mtp", "0,three"], capture_output=True, text=True)
    assert run.returncode == 2 and "--mtp" in run.stderr and "Traceback" not in run.stderr
