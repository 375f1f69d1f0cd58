"""Tests for helixsim.plots on tiny synthetic data: files written, labelled axes, empty inputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from helixsim import plots  # noqa: E402
from helixsim.roofline import RooflineSetup, figure1_panels  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_written(paths: list[Path]) -> None:
    assert [p.suffix for p in paths] == [".png", ".svg"]
    png, svg = paths
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
    text = svg.read_text()
    assert "<svg" in text and svg.stat().st_size > 1000


def frontier(n: int, scale: float, name: str) -> pd.DataFrame:
    x = np.geomspace(5, 500, n) * scale
    y = 4000 / x * scale
    ms = 1000 / x
    return pd.DataFrame({
        "tokens_per_s_user": x, "tokens_per_s_gpu": y,
        "label": [f"{2 ** (i % 4)}x{8}x1=8x{2 ** (i % 3)} b{2 ** i}" for i in range(n)],
        "qkv_proj_ms": 0.1 * ms, "attention_ms": 0.5 * ms, "attn_comm_ms": 0.05 * ms,
        "o_proj_ms": 0.05 * ms, "ffn_ms": 0.25 * ms, "ffn_comm_ms": 0.05 * ms, "ttl_ms": ms,
        "strategy": name,
    })


@pytest.fixture
def captured(monkeypatch):
    """Keep the last saved figure's axes text for inspection."""
    seen: dict = {}
    original = plots._save

    def spy(fig, out_stem):
        seen["axes"] = [(a.get_xlabel(), a.get_ylabel(), a.get_title(), [t.get_text() for t in a.texts])
                        for a in fig.axes]
        seen["suptitle"] = fig._suptitle.get_text() if fig._suptitle else ""
        return original(fig, out_stem)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


def test_roofline(tmp_path, captured):
    setup = RooflineSetup.paper_fig1()
    paths = plots.plot_roofline(figure1_panels(setup), setup, tmp_path / "fig1" / "roofline")
    check_written(paths)
    assert len(captured["axes"]) == 3
    for xlabel, ylabel, title, _ in captured["axes"]:
        assert "(\u00b5s)" in ylabel and xlabel and title
    assert "roofline" in captured["suptitle"].lower()


def test_frontiers(tmp_path, captured):
    fr = {"Helix": frontier(20, 1.5, "helix"), "Best baseline": frontier(6, 1.0, "tp")}
    check_written(plots.plot_frontiers(fr, tmp_path / "pareto", "Llama 405B, 1M context"))
    xlabel, ylabel, title, texts = captured["axes"][0]
    assert "Tokens/s/user" in xlabel and "Tokens/s/GPU" in ylabel and "(tokens/s)" in ylabel
    assert title == "Llama 405B, 1M context"
    # At most 12 labels for the 20-point curve, all 6 for the baseline.
    assert len(texts) == 12 + 6
    assert "1x8x1=8x1 b1" in texts


def test_frontiers_normalised_and_unlabelled(tmp_path, captured):
    fr = {"Helix": frontier(5, 2.0, "helix").drop(columns="label"), "Best baseline": frontier(5, 1.0, "tp")}
    check_written(plots.plot_frontiers(fr, tmp_path / "norm", "t", label_points=False,
                                       normalize_to="Best baseline"))
    xlabel, ylabel, _, texts = captured["axes"][0]
    assert "normalised to Best baseline" in xlabel and not texts
    with pytest.raises(KeyError):
        plots.plot_frontiers(fr, tmp_path / "bad", "t", normalize_to="Medha")


def test_frontiers_empty(tmp_path, captured):
    empty = frontier(3, 1.0, "x").iloc[:0]
    check_written(plots.plot_frontiers({"Helix": empty}, tmp_path / "empty", "nothing fits"))
    assert plots.NO_POINT_TEXT in captured["axes"][0][3]
    check_written(plots.plot_frontiers({}, tmp_path / "none", "nothing"))


def test_breakdown(tmp_path, captured):
    check_written(plots.plot_breakdown(frontier(7, 1.0, "helix"), tmp_path / "bd", "per-op latency"))
    xlabel, ylabel, title, _ = captured["axes"][0]
    assert "(ms)" in ylabel and title == "per-op latency"
    check_written(plots.plot_breakdown(pd.DataFrame(), tmp_path / "bd_empty", "empty"))
    assert plots.NO_POINT_TEXT in captured["axes"][0][3]


def test_predicted_vs_measured(tmp_path, captured):
    rng = np.random.default_rng(1)
    m = np.geomspace(0.01, 10, 30)
    p = m * rng.uniform(0.85, 1.15, m.size)
    groups = ["gemm"] * 10 + ["attention"] * 10 + ["all-reduce"] * 10
    check_written(plots.plot_predicted_vs_measured(m, p, tmp_path / "pvm", "kernels on H100", groups=groups))
    xlabel, ylabel, _, texts = captured["axes"][0]
    assert "(ms)" in xlabel and "(ms)" in ylabel and "n = 30" in texts[0]
    check_written(plots.plot_predicted_vs_measured([], [], tmp_path / "pvm_empty", "none"))
    with pytest.raises(ValueError):
        plots.plot_predicted_vs_measured([1, 2], [1], tmp_path / "x", "bad")


def test_interval_band_moves_each_point_along_its_ray():
    """Two points: (x, y) = (100, 40) at ttl 10 ms and (50, 80) at ttl 20 ms, intervals
    [8, 12.5] and [16, 25] ms. Fast ends: 1000/8 = 125 with y = 40 x 10/8 = 50, and
    1000/16 = 62.5 with y = 80 x 20/16 = 100; slow ends: 80 with y = 32, 40 with y = 64.
    Both ends keep both points on their frontier; the outline runs along the fast end by
    increasing x and back along the slow end."""
    d = pd.DataFrame({"tokens_per_s_user": [100.0, 50.0], "tokens_per_s_gpu": [40.0, 80.0],
                      "ttl_ms": [10.0, 20.0], "ttl_ms_lo": [8.0, 16.0], "ttl_ms_hi": [12.5, 25.0]})
    bx, by = plots.interval_band(d)
    np.testing.assert_allclose(bx, [62.5, 125.0, 80.0, 40.0])
    np.testing.assert_allclose(by, [100.0, 50.0, 32.0, 64.0])
    assert plots.interval_band(d.drop(columns="ttl_ms_lo")) is None


def test_frontiers_draw_bands_and_ring_extrapolated_points(tmp_path, monkeypatch):
    seen = {}
    original = plots._save

    def spy(fig, out_stem):
        ax = fig.axes[0]
        seen["patches"] = len(ax.patches)
        seen["rings"] = [len(c.get_offsets()) for c in ax.collections]
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        return original(fig, out_stem)

    monkeypatch.setattr(plots, "_save", spy)
    helix = frontier(4, 1.5, "helix").assign(extrapolated_fraction=[0.0, 0.4, 0.6, 0.9])
    base = frontier(3, 1.0, "tp").assign(extrapolated_fraction=0.0)
    for d in (helix, base):
        d["ttl_ms_lo"], d["ttl_ms_hi"] = 0.9 * d["ttl_ms"], 1.2 * d["ttl_ms"]
    check_written(plots.plot_frontiers({"Helix": helix, "Best baseline": base}, tmp_path / "band", "t"))
    assert seen["patches"] == 2            # one band per frontier
    plots.plot_frontiers({"Helix": helix, "Best baseline": base}, tmp_path / "one", "t", bands=["Helix"])
    assert seen["patches"] == 1
    assert seen["rings"] == [2]            # the two Helix points above 50 % extrapolated
    assert any("outside measured kernels" in t for t in seen["legend"])
