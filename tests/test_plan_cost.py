"""Cost you can defend (issue 15): GPUs in whole racks and nodes, break-even prices, by hand."""

from __future__ import annotations

import json

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


# ------------------------------------------------------------------ billed cost drives the choice
def test_cheapest_billed_row_is_chosen_not_the_most_tokens_per_gpu():
    """Three configurations for 100 users on B200 HGX (8-GPU nodes, hardware/b200-hgx.yaml), by hand:
    A: 8 GPUs, batch 100, 40 tok/s/user (500 tok/s/GPU): 1 instance, 1 node = 8 billed, 8 / (100 x 40) = 0.00200 GPU-s/token
    B: 2 GPUs, batch 34, 42 tok/s/user (714 tok/s/GPU): ceil(100/34) = 3 instances, 6 GPUs used, 1 node = 8 billed,
       8 / (100 x 42) = 0.001905 GPU-s/token
    C: 4 GPUs, batch 50, 45 tok/s/user (562.5 tok/s/GPU): 2 instances, 8 used, 1 node, 8 / (100 x 45) = 0.001778
    D: 1 GPU, batch 100, 39 tok/s/user: below the 40 tok/s/user floor.
    B has the most tokens/s/GPU, but C is the cheapest billed (and cheapest used) option: C is chosen."""
    import pandas as pd

    from helixsim.planning.selection import billed_gpu_s_per_token, select_billed

    table = pd.DataFrame({"label": ["A", "B", "C", "D"], "n_gpus": [8, 2, 4, 1], "batch": [100, 34, 50, 100],
                          "tokens_per_s_user": [40.0, 42.0, 45.0, 39.0], "feasible": [True] * 4})
    table["tokens_per_s_gpu"] = table["batch"] * table["tokens_per_s_user"] / table["n_gpus"]
    hw = load_hardware("b200-hgx")
    assert billed_gpu_s_per_token(table, hw, 100) == pytest.approx([8 / 4000, 8 / 4200, 8 / 4500, 1 / 3900 * 8])
    assert select_billed(table, 40.0, hw, 100)["label"] == "C"
    assert table.loc[table["tokens_per_s_user"] >= 40, "tokens_per_s_gpu"].idxmax() == 1  # B: the old choice


def test_plan_recommends_the_cheapest_billed_option_searched():
    """The planner's pick on a rack system (72-GPU GB200 NVL72 racks) against brute force over its own
    search table: every feasible row at the floor priced by hand in whole racks."""
    import math

    from helixsim.plan import plan

    users, floor, price = 100, 30.0, 4.0
    r = plan("qwen3-32b", "gb200-nvl72", 32_768, users, floor, max_gpus_per_instance=16, max_batch=64,
             prices={"gb200-nvl72": price}, sensitivity=False)
    hp = r.per_hardware[0]
    table = hp.main_pool.table
    ok = table[table["feasible"] & (table["tokens_per_s_user"] >= floor)]

    def billed(row):  # instances of <= 16 GPUs pack floor(72 / n) to a rack
        inst = math.ceil(users / row["batch"])
        return math.ceil(inst / (72 // row["n_gpus"])) * 72

    costs = [price * billed(row) / (users * row["tokens_per_s_user"] * 3600) * 1e6 for _, row in ok.iterrows()]
    assert hp.cost_per_m_tokens == pytest.approx(min(costs), rel=1e-12)
    assert hp.billed_gpus % 72 == 0 and hp.billed_gpus >= hp.total_gpus
    ps = r.recommendation()["price_sensitivity"]  # one system: +-20 % of its cost, no runner-up
    assert ps["cost_per_m_tokens_at_price_plus_20pct"] == pytest.approx(1.2 * hp.cost_per_m_tokens)
    assert ps["runner_up"] is None


def test_price_range_over_which_the_ranking_holds():
    """Winner $5.32/M at $4.54/GPU-hour, runner-up $6.80/M: cost is proportional to price, so the winner
    stays the cheapest up to 4.54 x 6.80 / 5.32 = $5.803/GPU-hour."""
    from types import SimpleNamespace

    from helixsim.planning.results import price_sensitivity_summary

    w = SimpleNamespace(hardware="a", price_per_gpu_hour=4.54, cost_per_m_tokens=5.32)
    b = SimpleNamespace(hardware="b", price_per_gpu_hour=5.90, cost_per_m_tokens=6.80)
    fake = SimpleNamespace(winner=w, per_hardware=[w, b])
    ps = price_sensitivity_summary(fake)
    assert ps["stays_cheapest_up_to_price_per_gpu_hour"] == pytest.approx(5.8031, abs=1e-4)
    assert ps["runner_up_break_even_price_per_gpu_hour"] == pytest.approx(5.90 * 5.32 / 6.80)
    assert ps["cost_per_m_tokens_at_price_minus_20pct"] == pytest.approx(4.256)


# ------------------------------------------------------------------ what the CLI says about cost inputs
PLAN = ["plan", "--model", "qwen3-32b", "--context", "32k", "--users", "64", "--min-tokens-per-s-user", "30",
        "--max-batch", "32", "--no-sensitivity"]


def _cli(capsys, argv):
    from test_fuzz_inputs import cli

    return cli(capsys, argv)


def test_no_price_is_a_message_not_a_refusal(tmp_path, capsys):
    prices = tmp_path / "p.yaml"
    prices.write_text("usd_per_gpu_hour:\n  b200-hgx: 5\n")
    code, out, err = _cli(capsys, PLAN + ["--hardware", "b200-hgx", "--hardware", "h200-hgx", "--price", prices,
                                          "--json"])
    assert code == 0, err
    data = json.loads(out)
    h200 = next(h for h in data["per_hardware"] if h["hardware"] == "h200-hgx")
    assert h200["meets_floor"] and h200["cost_per_m_tokens"] is None and h200["total_gpus"] > 0
    assert data["hardware"] == "b200-hgx"  # the priced system is ranked; the unpriced one is listed
    assert "no price for h200-hgx" in err and any("no price for h200-hgx" in w for w in data["warnings"])


def test_repeated_hardware_is_planned_once(capsys):
    code, out, err = _cli(capsys, PLAN + ["--hardware", "b200-hgx", "--hardware", "b200-hgx", "--json"])
    assert code == 0, err
    assert [h["hardware"] for h in json.loads(out)["per_hardware"]] == ["b200-hgx"]


def test_instance_wider_than_the_nvlink_domain_is_warned(capsys):
    code, out, err = _cli(capsys, PLAN + ["--hardware", "b200-hgx", "--max-gpus-per-instance", "16", "--json"])
    assert code == 0, err
    assert "--max-gpus-per-instance 16 exceeds b200-hgx's NVLink domain of 8 GPUs" in err
    assert any("NVLink domain" in w for w in json.loads(out)["warnings"])


def test_a_cap_nothing_fits_under_is_refused(capsys):
    """DeepSeek-R1's FP4 weights alone are ~340 GB (671 B parameters x 0.5 byte): no single 180 GB B200
    holds them, so one GPU per instance is an impossible budget: exit 2, one line naming the flag."""
    from test_fuzz_inputs import assert_error

    argv = ["plan", "--model", "deepseek-r1", "--hardware", "b200-hgx", "--context", "8k", "--users", "8",
            "--min-tokens-per-s-user", "10", "--max-gpus-per-instance", "1", "--no-sensitivity"]
    assert_error(_cli(capsys, argv), "--max-gpus-per-instance")


def test_context_mix_labels_fleet_and_pool_figures(tmp_path, capsys):
    spec = tmp_path / "mix.yaml"
    spec.write_text("model: qwen3-32b\nhardware: [b200-hgx]\nusers: 64\nmin_tokens_per_s_user: 30\n"
                    "max_batch: 32\nsensitivity: false\ncontext_mix:\n  - {context: 8192, weight: 3}\n"
                    "  - {context: 32768, weight: 1}\n")
    code, out, err = _cli(capsys, ["plan", "--plan", spec])
    assert code == 0, err
    assert "tokens/s/GPU over the fleet" in out and "in the largest pool" in out and "tok/s/GPU (fleet)" in out
