"""Properties the decode-step model must satisfy for any valid configuration (hypothesis)."""

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from helixsim.api import evaluate
from helixsim.cost import terms
from helixsim.cost.kernels import RooflineKernels
from helixsim.efficiency import IDEAL
from helixsim.layout import Layout, LayoutArrays, valid_mask
from helixsim.precision import Precision
from helixsim.specs.registry import load_efficiency, load_hardware, load_model

MODELS = ["deepseek-r1", "llama-3.1-405b", "gpt-oss-120b", "qwen3-235b-a22b"]
P2 = [1, 2, 4, 8]


@st.composite
def configs(draw):
    model = load_model(draw(st.sampled_from(MODELS)))
    strategy = draw(st.sampled_from(["helix", "tp", "ep", "medha"]))
    kvp, tpa, dp, tpf, ep, pp = (draw(st.sampled_from(P2)) for _ in range(6))
    if strategy == "helix":
        dp = 1
        tpa = min(tpa, model.attention.num_kv_heads)
        n = kvp * tpa
        ep = min(ep, n)
        tpf = n // ep
    elif strategy == "tp":
        kvp = dp = 1
        ep = min(ep, tpa)
        tpf = tpa // ep
    elif strategy == "ep":
        kvp = 1
        n = dp * tpa
        ep = min(ep, n)
        tpf = n // ep
    else:
        dp = 1
        tpf = tpa
        ep = min(ep, kvp)
    if not model.ffn.moe:
        tpf, ep = tpf * ep, 1
    layout = Layout(strategy, kvp=kvp, tpa=tpa, dp=dp, tpf=tpf, ep=ep, pp=min(pp, 2), hopb=draw(st.booleans()))
    arrays = LayoutArrays.from_layout(layout)
    if not valid_mask(arrays, model)[0]:
        layout = Layout("tp", tpa=1, tpf=1)
    batch = draw(st.integers(1, 512))
    context = draw(st.integers(1, 2_000_000))
    return model, layout, batch, context


def run(model, hw, layout, batch, context, ideal=False, eff=None):
    k = RooflineKernels(hw, IDEAL if ideal else (eff or load_efficiency(hw.name)))
    return evaluate(model, hw, LayoutArrays.from_layout(layout), batch, context, Precision(), kernels=k).iloc[0]


GB200 = load_hardware("gb200-nvl72")


@settings(max_examples=60, deadline=None)
@given(configs(), st.floats(1.01, 4.0), st.booleans())
def test_more_bandwidth_or_flops_never_slower(cfg, factor, ideal):
    model, layout, batch, context = cfg
    base = run(model, GB200, layout, batch, context, ideal)
    faster_hbm = dataclasses.replace(GB200, hbm_bandwidth_gbps=GB200.hbm_bandwidth_gbps * factor)
    more_flops = dataclasses.replace(GB200, dense_tflops=dataclasses.replace(
        GB200.dense_tflops, **{d: getattr(GB200.dense_tflops, d) * factor for d in ("fp4", "fp8", "bf16")}))
    faster_link = dataclasses.replace(GB200, nvlink_bandwidth_gbps_per_direction=GB200.nvlink_bandwidth_gbps_per_direction * factor)
    for hw in (faster_hbm, more_flops, faster_link):
        assert run(model, hw, layout, batch, context, ideal)["ttl_ms"] <= base["ttl_ms"] * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(configs(), st.floats(0.0, 0.9))
def test_lower_latency_floors_never_slower(cfg, shrink):
    model, layout, batch, context = cfg
    eff = load_efficiency(GB200.name)
    lat = GB200.collective_latency_us
    low = dataclasses.replace(GB200, collective_latency_us=dataclasses.replace(
        lat, **{f: getattr(lat, f) * shrink for f in ("all_reduce", "all_gather", "all_to_all", "p2p")}))
    low_eff = dataclasses.replace(eff, kernel_floor_us=eff.kernel_floor_us * shrink)
    base = run(model, GB200, layout, batch, context)["ttl_ms"]
    assert run(model, low, layout, batch, context, eff=low_eff)["ttl_ms"] <= base * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(configs(), st.integers(1, 64), st.integers(1, 100_000), st.booleans())
def test_larger_batch_or_context_never_faster(cfg, extra_batch, extra_context, ideal):
    model, layout, batch, context = cfg
    base = run(model, GB200, layout, batch, context, ideal)["ttl_ms"]
    assert run(model, GB200, layout, batch + extra_batch, context, ideal)["ttl_ms"] >= base * (1 - 1e-12)
    assert run(model, GB200, layout, batch, context + extra_context, ideal)["ttl_ms"] >= base * (1 - 1e-12)


@settings(max_examples=60, deadline=None)
@given(configs())
def test_breakdown_sums_to_ttl(cfg):
    model, layout, batch, context = cfg
    row = run(model, GB200, layout, batch, context)
    parts = [c for c in row.index if c.endswith("_ms") and c != "ttl_ms"]
    assert np.isclose(sum(row[c] for c in parts), row["ttl_ms"], rtol=1e-12)
    assert all(row[c] >= 0 for c in parts)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4096), st.sampled_from([1, 2, 4, 8, 16, 32]), st.integers(1, 10_000_000), st.sampled_from([0.5625, 1.0, 2.0]))
def test_kv_read_halves_when_kvp_doubles(batch, kvp, context, kv_bytes):
    """At a context divisible by 2 x KVP the per-GPU KV read is exactly half (paper App. A: S / KVP)."""
    context = context * 2 * kvp
    one = terms.kv_read_bytes(batch, terms.kv_tokens_per_gpu(context, kvp), 576, kv_bytes)
    two = terms.kv_read_bytes(batch, terms.kv_tokens_per_gpu(context, 2 * kvp), 576, kv_bytes)
    assert two == one / 2


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 256), st.sampled_from([2, 4, 8, 16, 32, 64]), st.integers(1, 4_000_000))
def test_helix_kvp_doubling_halves_attention_when_memory_bound(batch, kvp, context):
    """Llama-405B GQA attention is bandwidth-bound (intensity 16 FLOP/B): the ideal attention time halves."""
    model = load_model("llama-3.1-405b")
    context = context * 2 * kvp
    a = run(model, GB200, Layout("helix", kvp=kvp // 2, tpa=8, tpf=8 * (kvp // 2)), batch, context, True)
    b = run(model, GB200, Layout("helix", kvp=kvp, tpa=8, tpf=8 * kvp), batch, context, True)
    assert np.isclose(b["attention_ms"], a["attention_ms"] / 2, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 1024), st.sampled_from([2, 4, 8, 16, 32, 64]), st.integers(1, 10_000_000), st.integers(1, 10_000_000))
def test_all_to_all_volume_independent_of_context(batch, kvp, s1, s2):
    """The Helix all-to-all moves partial outputs and statistics only: no S in its volume (paper §2.1.2)."""
    model = load_model("deepseek-r1")
    lay = Layout("helix", kvp=kvp, tpa=1, tpf=kvp, hopb=False)
    k = RooflineKernels(GB200, IDEAL)
    rows = [evaluate(model, GB200, LayoutArrays.from_layout(lay), batch, s, Precision(), kernels=k).iloc[0] for s in (s1, s2)]
    assert rows[0]["attn_comm_ms"] == rows[1]["attn_comm_ms"]


@settings(max_examples=40, deadline=None)
@given(configs())
def test_memory_feasibility_flips_at_largest_batch(cfg):
    model, layout, _, context = cfg
    row = run(model, GB200, layout, 1, context)
    max_b = int(row["max_batch"])
    if max_b >= 1:
        assert run(model, GB200, layout, max_b, context)["feasible"]
    assert not run(model, GB200, layout, max_b + layout.dp, context)["feasible"]
