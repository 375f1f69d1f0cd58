"""The long-context study's verdicts and the shipped study sweeps."""

import math

from helixsim.long_context import PAYS, conclusions, pays
from helixsim.sweep import load_sweep


def _case(model, hw, ctx, gi, gt):
    return {"model": model, "hardware": hw, "context": ctx, "interactivity_gain": gi, "throughput_gain": gt}


def test_pays_needs_a_five_percent_margin_on_either_metric():
    assert PAYS == 1.05
    assert not pays(_case("m", "h", 1, 1.04, 1.049))
    assert pays(_case("m", "h", 1, 1.05, 0.5))
    assert pays(_case("m", "h", 1, 0.9, 1.42))
    assert not pays(_case("m", "h", 1, 0.9, math.nan))


def test_conclusions_name_the_contexts_where_helix_falls_behind():
    cases = [_case(m, hw, c, gi, 2.0) for m in ("deepseek-v3.2", "qwen3.5-397b-a17b") for hw in ("gb200-nvl72", "gb300-nvl72")
             for c, gi in ((131_072, 0.92), (1_000_000, 1.08), (4_000_000, 1.2))]
    line = conclusions(cases)[0]
    assert "deepseek-v3.2 on gb200-nvl72" in line
    assert "top tokens/s/user at 1,000,000, 4,000,000 tokens, not at 131,072 (0.92x)" in line


def test_study_sweeps_load():
    for name, model in (("dsv32-1m", "deepseek-v3.2"), ("qwen35-1m", "qwen3.5-397b-a17b")):
        spec, _ = load_sweep(name)
        assert spec.models == (model,) and spec.contexts == (1_000_000,) and spec.max_gpus == 72
