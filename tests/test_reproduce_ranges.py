"""Ranges of the reproduction's gains (helixsim/reproduce.py): hand-worked on tiny tables."""

from __future__ import annotations

import pandas as pd
import pytest

from helixsim.pareto import table_at_end
from helixsim.reproduce import comparison_metrics, with_ranges


def test_table_at_end_moves_ttl_and_both_rates():
    t = pd.DataFrame({"ttl_ms": [10.0], "ttl_ms_lo": [8.0], "ttl_ms_hi": [12.5],
                      "tokens_per_s_user": [100.0], "tokens_per_s_gpu": [40.0], "batch": [4]})
    lo, hi = table_at_end(t, "lo").iloc[0], table_at_end(t, "hi").iloc[0]
    assert (lo["ttl_ms"], lo["tokens_per_s_user"], lo["tokens_per_s_gpu"]) == pytest.approx((8.0, 125.0, 50.0))
    assert (hi["ttl_ms"], hi["tokens_per_s_user"], hi["tokens_per_s_gpu"]) == pytest.approx((12.5, 80.0, 32.0))
    assert hi["batch"] == 4


def test_ranges_span_central_and_both_ends_nested_too():
    central = {"interactivity_gain": 1.2, "hopb_off_loss": None, "without_medha": {"batch_gain": 16.0},
               "hopb_off_loss_at": "x"}
    ends = [{"interactivity_gain": 1.3, "without_medha": {"batch_gain": 8.0}},
            {"interactivity_gain": 1.25, "without_medha": {"batch_gain": 16.0}}]
    got = with_ranges(central, ends)
    assert got["interactivity_gain_range"] == [1.2, 1.3]
    assert got["without_medha"]["batch_gain_range"] == [8.0, 16.0]
    assert "hopb_off_loss_range" not in got and "hopb_off_loss_at_range" not in got


def test_interactivity_gain_at_each_end_by_hand():
    """Helix fastest point ttl 5 ms in [4, 7]; baseline fastest ttl 6 ms in [5.5, 6.5].
    Central 6/5 = 1.2; all at the fast end 5.5/4 = 1.375; all at the slow end 6.5/7 = 0.929."""
    t = pd.DataFrame({"strategy": ["helix", "tp"], "ttl_ms": [5.0, 6.0], "ttl_ms_lo": [4.0, 5.5],
                      "ttl_ms_hi": [7.0, 6.5], "batch": [1, 1], "n_gpus": [8, 8], "feasible": [True, True]})
    t["tokens_per_s_user"] = 1000.0 / t["ttl_ms"]
    t["tokens_per_s_gpu"] = t["tokens_per_s_user"] * t["batch"] / t["n_gpus"]
    ends = [comparison_metrics(table_at_end(t, e)) for e in ("lo", "hi")]
    got = with_ranges(comparison_metrics(t), ends)
    assert got["interactivity_gain"] == pytest.approx(1.2)
    assert got["interactivity_gain_range"] == pytest.approx([6.5 / 7.0, 5.5 / 4.0])
