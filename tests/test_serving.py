"""Serving model: KV hand-off by hand, TPOT under prefill interference, TTFT and tier validation sections."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helixsim.cost.kernels import RooflineKernels
from helixsim.efficiency import IDEAL
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.backends import BACKENDS
from helixsim.serving import (SCHEDULERS, absorbed_decode_ms, aggregated_tpot_ms, kv_cache_bytes, kv_transfer_ms,
                              launch_setting_wait_iterations, mixed_pass_extra_ms, scheduler_for,
                              scheduler_wait_iterations, ttft_ms)
from helixsim.specs.registry import load_hardware, load_model
from helixsim.validation import validate_e2e

SERVING = Path(__file__).resolve().parent.parent / "validation" / "silicon_serving_dev.csv"
R1 = load_model("deepseek-r1")
FP8 = Precision(weights="fp8", kv_cache="fp8")


def test_kv_cache_bytes_by_hand():
    """DeepSeek-R1: 61 layers x 576 latent elements x 1 B (FP8) per token; 1M tokens = 35.136 GB."""
    assert float(kv_cache_bytes(R1, 1_000_000, 1.0)[0]) == pytest.approx(61 * 576 * 1e6)


@pytest.mark.parametrize("same_domain, gbps_field", [(True, "nvlink_bandwidth_gbps_per_direction"),
                                                     (False, "scale_out_bandwidth_gbps_per_direction")])
def test_kv_transfer_by_hand(same_domain, gbps_field):
    """Decode layout helix kvp 8 (tpa 1): each decode GPU receives 1/8 of the latent cache,
    35.136 GB / 8 = 4.392 GB; 64 prefill GPUs each send 0.549 GB, so the receivers set the pace.
    At 900 GB/s (NVLink 5, per direction) 4.880 ms; at 50 GB/s (ConnectX-7) 87.84 ms; plus the
    p2p latency (and the scale-out latency across racks) of the hardware YAML."""
    hw = load_hardware("gb200-nvl72")
    k = RooflineKernels(hw, IDEAL)
    lay = LayoutArrays.from_layout(Layout("helix", kvp=8, tpa=1, tpf=8, ep=1))
    ms = float(kv_transfer_ms(k, R1, lay, 64, 1_000_000, FP8, same_domain)[0])
    wire = {True: 4.880, False: 87.84}[same_domain]
    latency = hw.collective_latency_us.p2p + (0.0 if same_domain else hw.scale_out_latency_us)
    assert getattr(hw, gbps_field) == {True: 900, False: 50}[same_domain]
    assert ms == pytest.approx(wire + latency * 1e-3, rel=1e-6)


def test_kv_transfer_tp_duplication_reaches_every_rank():
    """MLA's latent is whole on every TPA rank: a tp-8 decode instance receives the full cache on each GPU."""
    k = RooflineKernels(load_hardware("gb200-nvl72"), IDEAL)
    tp8 = LayoutArrays.from_layout(Layout("tp", tpa=8, tpf=8))
    helix = LayoutArrays.from_layout(Layout("helix", kvp=8, tpa=1, tpf=8))
    a = kv_transfer_ms(k, R1, tp8, 64, 100_000, FP8, True)
    b = kv_transfer_ms(k, R1, helix, 64, 100_000, FP8, True)
    assert float(a[0]) > 7.0 * float(b[0])


def test_aggregated_tpot_by_hand():
    """10 ms decode step, 100 ms prefill, 5 requests, 101 output tokens: the other 4 prefills
    spread over 100 decode iterations add 4 ms."""
    assert float(aggregated_tpot_ms(10.0, 100.0, 5, 101)) == pytest.approx(14.0)
    assert float(aggregated_tpot_ms(10.0, 100.0, 1, 101)) == pytest.approx(10.0)   # alone: no interference
    assert float(ttft_ms(100.0, 14.0, 3.0)) == pytest.approx(100.0 + 7.0 + 3.0)


def test_mixed_pass_absorbs_the_decode_gemms_by_hand():
    """Hand calculation: 10 ms decode step of which 4 ms is attention, one 100 ms prefill chunk,
    5 requests, 101 output tokens. Mixed batches (TensorRT-LLM, vLLM): each of the other 4 prefills
    replaces one decode iteration and adds only the 4 ms attention to its pass, so it costs
    100 - (10 - 4) = 94 ms beyond the regular iterations: TPOT = 10 + 4 x 94 / 100 = 13.76 ms.
    Separate batches (SGLang): the prefill runs alone, 10 + 4 x 100 / 100 = 14 ms."""
    mixed = absorbed_decode_ms(10.0, 4.0, True)
    assert float(mixed) == pytest.approx(6.0)
    assert float(absorbed_decode_ms(10.0, 4.0, False)) == 0.0
    assert float(aggregated_tpot_ms(10.0, 100.0, 5, 101, 1, mixed)) == pytest.approx(13.76)
    assert float(aggregated_tpot_ms(10.0, 100.0, 5, 101, 1, 0.0)) == pytest.approx(14.0)
    # two chunks absorb two decode steps; never below the decode step itself
    assert float(aggregated_tpot_ms(10.0, 100.0, 5, 101, 2, mixed)) == pytest.approx(10.0 + 4 * 88 / 100)
    assert float(aggregated_tpot_ms(10.0, 5.0, 5, 101, 1, mixed)) == pytest.approx(10.0)


def test_decode_tokens_cost_the_mixed_pass_by_hand():
    """Hand calculation: a 1,000-token prefill of 100 ms costs 0.1 ms per token; in a mixed pass the
    5 decode tokens add 0.5 ms of GEMM work, so the 10 ms step (4 ms attention) absorbs 10 - 4 - 0.5
    = 5.5 ms; the other 4 requests add 4 ms x 4/5 attention + 4 x 0.1 ms tokens = 3.6 ms to a pass."""
    assert float(absorbed_decode_ms(10.0, 4.0, True, 5, 0.1)) == pytest.approx(5.5)
    assert float(absorbed_decode_ms(10.0, 4.0, True, 100, 0.1)) == 0.0     # compute-bound decode: nothing
    assert float(mixed_pass_extra_ms(4.0, 5, 1, True, 0.1)) == pytest.approx(3.6)


def test_ttft_with_overlap_scheduler_by_hand():
    """Hand calculation, same case: an overlap scheduler makes the request wait half the pass in flight
    plus the one already prepared (1.5 x 13.76 = 20.64 ms); its own pass carries the other 4 requests'
    decode attention (4 ms x 4/5 = 3.2 ms): TTFT = 100 + 20.64 + 3.2 = 123.84 ms."""
    wait = scheduler_wait_iterations(True)
    assert float(wait) == 1.5 and float(scheduler_wait_iterations(False)) == 0.5
    extra = mixed_pass_extra_ms(4.0, 5, 1, True)
    assert float(extra) == pytest.approx(3.2)
    assert float(mixed_pass_extra_ms(4.0, 5, 1, False)) == 0.0
    assert float(mixed_pass_extra_ms(4.0, 1, 1, True)) == 0.0        # alone: nothing else decodes
    assert float(ttft_ms(100.0, 13.76, 0.0, wait, extra)) == pytest.approx(123.84)


def test_launch_settings_by_hand():
    """SGLang streams when the output length is a multiple of --stream-interval: at 10 the first token
    waits 9 decode iterations; polling every 10 iterations waits 4.5 more on average. TensorRT-LLM
    returns the context token at once (NVIDIA/TensorRT-LLM#5836). Defaults (1, 1) add nothing."""
    assert float(launch_setting_wait_iterations(10, 10, False)) == pytest.approx(13.5)
    assert float(launch_setting_wait_iterations(10, 1, True)) == 0.0
    assert float(launch_setting_wait_iterations(1, 1, False)) == 0.0


def test_every_framework_has_a_sourced_scheduler():
    assert set(SCHEDULERS) == set(BACKENDS)
    assert all(len(s.source) > 40 for s in SCHEDULERS.values())
    assert scheduler_for("sglang").mixed_batches is False
    assert scheduler_for(None) is SCHEDULERS["trtllm"]


def test_serving_file_sections(tmp_path):
    """TTFT over the stated filter, TPOT by tier, and decode-only TPOT kept beside the aggregated one."""
    full = pd.read_csv(SERVING)
    pick = pd.concat([full[full["tier"] == t].head(6) for t in sorted(full["tier"].unique())]
                     + [full[(full["concurrency"] <= 4) & full["measured_ttft_ms"].notna()].head(6)])
    path = tmp_path / "serving_subset.csv"
    pick.reset_index(drop=True).to_csv(path, index=False)
    res = validate_e2e(path)
    s, rows = res.summary, res.rows
    assert set(s["by_tier"]) == set(full["tier"].unique()) | {"C+D"}
    assert s["ttft"]["filter"] == "rows with measured_ttft_ms and concurrency <= 4"
    expect = ((rows["concurrency"] <= 4) & rows["measured_ttft_ms"].notna() & rows["predicted_ttft_ms"].notna()).sum()
    assert s["ttft"]["n"] == expect > 0
    agg = rows["mode"] == "agg"
    ok = rows["predicted_tpot_ms"].notna()
    # prefill interference only ever adds time, and only to aggregated rows
    assert (rows.loc[ok & agg, "predicted_tpot_ms"] >= rows.loc[ok & agg, "predicted_decode_tpot_ms"]).all()
    assert np.allclose(rows.loc[ok & ~agg, "predicted_tpot_ms"], rows.loc[ok & ~agg, "predicted_decode_tpot_ms"])
    assert (rows.loc[ok, "predicted_ttft_ms"] > rows.loc[ok, "predicted_prefill_ms"]).all()
    assert 0.0 <= s["ttft"]["under_predicted_share"] <= 1.0
    assert set(s["ttft"]["by_backend"]) <= set(rows["backend"].dropna())
