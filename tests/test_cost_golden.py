"""Hand-computed roofline numbers that the cost model must reproduce exactly under --ideal."""

import dataclasses

import numpy as np
import pytest

from helixsim.api import simulate_point
from helixsim.layout import Layout
from helixsim.precision import Precision
from helixsim.specs.registry import load_model

GB200 = "gb200-nvl72"


def test_issue_golden_llama_helix_attention():
    """8 requests x 125,000 tokens x 256 B per layer / 8 TB/s x 126 layers = 4.032 ms.

    256 B = 2 (K and V) x ceil(8 KV heads / TPA 8) x 128 head dim x 1 B (FP8).
    """
    r = simulate_point("llama-3.1-405b", GB200, Layout("helix", kvp=8, tpa=8, tpf=64, ep=1), batch=8,
                       context=1_000_000, precision=Precision(kv_cache="fp8"), ideal=True)
    assert r.breakdown_ms["attention"] == pytest.approx(4.032, rel=1e-12)
    assert sum(r.breakdown_ms.values()) == pytest.approx(r.ttl_ms, rel=1e-12)


def test_llama_qkv_projection_by_hand():
    """Helix TPA = 8: each GPU reads W_QKV [16384, (16 + 2 x 1) x 128] in FP8 and moves the bf16
    activations in [8, 16384] and out [8, 2304]; 126 layers at 8 TB/s."""
    r = simulate_point("llama-3.1-405b", GB200, Layout("helix", kvp=8, tpa=8, tpf=64), batch=8,
                       context=1_000_000, precision=Precision(weights="fp8", kv_cache="fp8"), ideal=True)
    nbytes = 16384 * 2304 * 1 + (8 * 16384 + 8 * 2304) * 2
    assert r.breakdown_ms["qkv_proj"] == pytest.approx(126 * nbytes / 8e12 * 1e3, rel=1e-12)


# The paper's Figure 1 set-up (App. A): B = 8, Q = 128, K = 8, Hsz = 128, H = 16384, F = 65536, FP4, 8000 GB/s, S = 1M.
def fig1_model():
    llama = load_model("llama-3.1-405b")
    return dataclasses.replace(llama, name="fig1", num_layers=1,
                               ffn=dataclasses.replace(llama.ffn, dense_layers=1, intermediate_size=65536))


@pytest.mark.parametrize("tp,expected_us", [(1, 1024.0), (2, 512.0), (4, 256.0), (8, 128.0), (16, 128.0), (64, 128.0)])
def test_appendix_a_kv_read_plateaus_at_tp_equal_k(tp, expected_us):
    """T_KV = 8 x 2 x ceil(8/TP) x 128 x 1e6 x 0.5 B / 8000 GB/s: 1024 us at TP 1, 128 us for TP >= K = 8."""
    r = simulate_point(fig1_model(), GB200, Layout("tp", tpa=tp, tpf=tp), batch=8, context=1_000_000,
                       precision=Precision(weights="fp4", kv_cache="fp4"), ideal=True)
    assert r.breakdown_ms["attention"] * 1e3 == pytest.approx(expected_us, rel=1e-12)


def test_appendix_a_helix_tpa8_kvp8_is_16us():
    """TPA = 8, KVP = 8: 8 x 2 x 1 x 128 x 125,000 x 0.5 B / 8000 GB/s = 16 us."""
    r = simulate_point(fig1_model(), GB200, Layout("helix", kvp=8, tpa=8, tpf=64), batch=8, context=1_000_000,
                       precision=Precision(weights="fp4", kv_cache="fp4"), ideal=True)
    assert r.breakdown_ms["attention"] * 1e3 == pytest.approx(16.0, rel=1e-12)


@pytest.mark.parametrize("kvp,expected_us", [(1, 576.0), (8, 72.0), (64, 9.0)])
def test_blog_fig1_mla_fp8_latent_read_once(kvp, expected_us):
    """TensorRT-LLM Helix blog Figure 1 set-up: MLA, B = 8, FP8 KV, 8 TB/s, S = 1M.
    576 latent elements x 1 B x 8 x 1e6 / KVP / 8e12 B/s = 576 us / KVP per layer (61 layers of DeepSeek-R1).
    Memory-bound: 2 x 8 x 128 x 1088 x 1e6 / KVP FLOP at 5 PFLOP/s FP8 = 446 us / KVP < 576 us / KVP."""
    r = simulate_point("deepseek-r1", GB200, Layout("helix", kvp=kvp, tpa=1, tpf=kvp, ep=1), batch=8,
                       context=1_000_000, precision=Precision(weights="fp8", kv_cache="fp8"), ideal=True)
    assert r.breakdown_ms["attention"] / 61 * 1e3 == pytest.approx(expected_us, rel=1e-12)


def test_mla_tp_does_not_shard_the_latent_cache():
    """With MLA every TP rank reads the whole latent: attention stays at its single-GPU read time (blog)."""
    one = simulate_point("deepseek-r1", GB200, Layout("tp", tpa=1, tpf=1), 8, 1_000_000,
                         Precision(kv_cache="fp8"), ideal=True)
    eight = simulate_point("deepseek-r1", GB200, Layout("tp", tpa=8, tpf=8), 8, 1_000_000,
                           Precision(kv_cache="fp8"), ideal=True)
    assert eight.breakdown_ms["attention"] == pytest.approx(one.breakdown_ms["attention"], rel=1e-12)


def test_helix_all_to_all_without_hopb_by_hand():
    """Llama-405B, KVP 8, TPA 8, B 8: each GPU sends 7/8 x 8 x 16 heads x (128 x 2 B + 8 B) = 29,568 B
    per layer over 900 GB/s NVLink (ideal: no latency, all exposed without HOP-B)."""
    lay = Layout("helix", kvp=8, tpa=8, tpf=64, hopb=False)
    r = simulate_point("llama-3.1-405b", GB200, lay, 8, 1_000_000, Precision(kv_cache="fp8"), ideal=True)
    a2a_ms = 7 / 8 * 8 * 16 * (128 * 2 + 8) / 900e9 * 1e3
    # o_proj all-reduce over 64 GPUs of [8, 16384] bf16: two-shot 2 x 63/64 x 262,144 B
    ar_ms = 2 * 63 / 64 * 8 * 16384 * 2 / 900e9 * 1e3
    assert r.breakdown_ms["attn_comm"] == pytest.approx(126 * (a2a_ms + ar_ms), rel=1e-9)


def test_memory_kv_by_hand():
    """Llama-405B FP8 KV, helix KVP 8 TPA 8: per request 126 layers x 125,000 tokens x 256 B = 4.032 GB per GPU."""
    from helixsim.api import evaluate
    from helixsim.cost.kernels import RooflineKernels
    from helixsim.efficiency import IDEAL
    from helixsim.layout import LayoutArrays
    from helixsim.specs.registry import load_hardware

    hw = load_hardware(GB200)
    lay = LayoutArrays.from_layout(Layout("helix", kvp=8, tpa=8, tpf=64))
    rows = evaluate(load_model("llama-3.1-405b"), hw, lay, np.array([1, 3]), 1_000_000, Precision(kv_cache="fp8"),
                    kernels=RooflineKernels(hw, IDEAL))
    assert rows["kv_per_gpu_gb"].tolist() == pytest.approx([4.032, 3 * 4.032], rel=1e-12)


@pytest.mark.parametrize("model,kvp,batch", [("deepseek-r1", 8, 16), ("llama-3.1-405b", 4, 3), ("deepseek-r1", 64, 1)])
def test_step_all_to_all_volume_matches_closed_form(model, kvp, batch):
    """The step model's per-rank all-to-all buffer, through the (n-1)/n on-wire rule, equals the closed
    form that the functional reference's counted bytes are checked against (tests/test_reference_helix.py)."""
    from helixsim.cost import terms
    from helixsim.cost.kernels import RooflineKernels
    from helixsim.cost.step import partial_output_bytes, step_shapes
    from helixsim.efficiency import IDEAL
    from helixsim.layout import LayoutArrays
    from helixsim.specs.registry import load_hardware

    m = load_model(model)
    tpa = m.attention.num_kv_heads
    lay = LayoutArrays.from_layout(Layout("helix", kvp=kvp, tpa=tpa, tpf=kvp * tpa))
    k = RooflineKernels(load_hardware(GB200), IDEAL)
    s = step_shapes(m, lay, np.array([batch]))
    wire = terms.all_to_all_bytes_on_wire(partial_output_bytes(k, m, s, Precision()), kvp)
    expected = terms.helix_a2a_send_bytes(batch, m.attention.num_q_heads, tpa, kvp, m.value_width_per_head, 2.0)
    assert wire[0] == pytest.approx(float(expected), rel=1e-12)


def test_dp_attention_lm_head_is_local_to_each_dp_rank():
    """Attention DP (ep, dp = 8, tpa = 1), 64 requests: each rank computes its own 8 requests' logits
    over the whole vocabulary, with nothing to gather: bf16 W [7168, 129280] (1,853,358,080 B) plus
    activations in [8, 7168] and out [8, 129280] x 2 B = 1,855,541,248 B at 8 TB/s = 0.231943 ms
    (2 x 8 x 7168 x 129280 FLOP take 5.9 us at 2.5 PFLOP/s: memory-bound)."""
    r = simulate_point("deepseek-r1", GB200, Layout("ep", kvp=1, tpa=1, dp=8, tpf=1, ep=8), batch=64,
                       context=4096, precision=Precision(weights="fp8", kv_cache="fp8"), ideal=True)
    assert r.breakdown_ms["lm_head"] == pytest.approx(1_855_541_248 / 8e12 * 1e3, rel=1e-9)


def test_mla_down_projections_run_as_one_fused_gemm():
    """q_a [7168 -> 1536] and kv_a [7168 -> 512 + 64] are one [7168 -> 2112] GEMM (TensorRT-LLM fused_a,
    SGLang/vLLM fused_qkv_a_proj): under the roofline with a per-kernel floor, the MLA input side of a
    batch-1 step costs three kernel floors per layer (fused down-projection, q_b, W_UK), not four,
    plus their roofline time (about 2.6 us at this batch, well under the 1 % tolerance)."""
    from helixsim.cost.kernels import RooflineKernels
    from helixsim.cost.step import qkv_proj_ms, step_shapes
    from helixsim.efficiency import IDEAL
    from helixsim.layout import LayoutArrays
    from helixsim.specs.registry import load_hardware

    floor_ms = 1.0   # a floor far above any of these kernels' roofline time
    k = RooflineKernels(load_hardware(GB200), dataclasses.replace(IDEAL, kernel_floor_us=floor_ms * 1e3))
    model = load_model("deepseek-r1")
    s = step_shapes(model, LayoutArrays.from_layout(Layout("tp", tpa=8, tpf=8)), np.array([1]))
    assert qkv_proj_ms(k, model, s, Precision(weights="fp8"))[0] == pytest.approx(3 * floor_ms, rel=0.01)


@pytest.mark.parametrize("layout,split", [(Layout("ep", kvp=1, tpa=1, dp=8, tpf=1, ep=8), 1),
                                          (Layout("ep", kvp=1, tpa=2, dp=4, tpf=1, ep=8), 2),
                                          (Layout("tp", tpa=8, tpf=8), 8)])
def test_embedding_and_lm_head_memory_follow_where_the_lm_head_runs(layout, split):
    """Untied embedding + LM head, bf16: 2 x vocab x 7168 x 2 B per GPU, divided by the GPUs that share
    one LM head: a DP-attention group's tpa (1 or 2 here), all 8 GPUs under TP. Measured as the
    difference between DeepSeek-R1 and the same model with a one-token vocabulary."""
    from helixsim.api import evaluate, kernels_for
    from helixsim.layout import LayoutArrays
    from helixsim.specs.registry import load_hardware

    full = load_model("deepseek-r1")
    tiny = dataclasses.replace(full, name="v1", vocab_size=1)
    hw = load_hardware(GB200)

    def weights_gb(model):
        res = evaluate(model, hw, LayoutArrays.from_layout(layout), np.array([8]), np.array([4096]),
                       Precision(weights="fp8", kv_cache="fp8"), kernels=kernels_for(hw, True, None))
        return float(res["weights_per_gpu_gb"].iloc[0])

    expected = 2 * (129280 - 1) * 7168 * 2 / split
    assert (weights_gb(full) - weights_gb(tiny)) * 1e9 == pytest.approx(expected, rel=1e-9)
