"""Cost you can defend (issue 15): GPUs in whole racks and nodes, break-even prices, by hand."""

from __future__ import annotations

import pytest

from helixsim.planning.costing import billed_gpus, break_even_price, cost_per_million_tokens, units_needed
from helixsim.specs.registry import load_hardware


def test_a_64_gpu_instance_rents_a_whole_72_gpu_rack():
    """GB200 NVL72: 72 GPUs per rack (hardware/gb200-nvl72.yaml). One 64-GPU instance per rack, so 10
    instances take 10 racks = 720 GPUs for 640 used."""
    hw = load_hardware("gb200-nvl72")
    units = units_needed(hw, 64, 10)
    assert units == 10 and billed_gpus(units, 72) == 720


def test_8_gpu_instances_fill_racks_nine_at_a_time():
    """86 instances of 8 GPUs on 72-GPU racks: 9 per rack, ceil(86 / 9) = 10 racks, 720 GPUs
    for 688 used (the README plan example)."""
    hw = load_hardware("gb200-nvl72")
    assert units_needed(hw, 8, 86) == 10
    assert billed_gpus(10, 72) == 720


def test_break_even_price_by_hand():
    """System B costs $21.71/M tokens at $5.90/GPU-hour, A costs $16.85; cost is proportional to price,
    so B matches A at 5.90 x 16.85 / 21.71 = $4.579/GPU-hour."""
    assert break_even_price(5.90, 21.71, 16.85) == pytest.approx(5.90 * 16.85 / 21.71)
    assert break_even_price(5.90, 21.71, 16.85) == pytest.approx(4.5792, abs=1e-4)
    # and at that price the costs are equal, by the cost formula itself
    p = break_even_price(5.90, cost_per_million_tokens(5.90, 720, 1024, 50.0), cost_per_million_tokens(4.54, 688, 1024, 50.3))
    assert cost_per_million_tokens(p, 720, 1024, 50.0) == pytest.approx(cost_per_million_tokens(4.54, 688, 1024, 50.3))
