"""With --mtp N > 0 the MTP module's weights and its layer's KV cache count in per-GPU memory.

Golden values are hand calculations from DeepSeek-R1's config.json (hidden 7168, q_lora_rank 1536, kv_lora_rank 512,
128 heads, qk_nope 128, qk_rope 64, v_head 128, 256 routed experts + 1 shared of width 2048, 61 main layers, one
MTP layer) and the serving frameworks' MTP modules (helixsim/cost/mtp.py docstring: one MLA + MoE decoder layer,
eh_proj [2H x H] and three RMSNorms in BF16, embedding and LM head shared with the main model).
"""

from __future__ import annotations

import numpy as np
import pytest

from helixsim.api import kernels_for, resolve_hardware
from helixsim.cost.memory import largest_batch, memory_per_gpu
from helixsim.layout import Layout, LayoutArrays
from helixsim.precision import Precision
from helixsim.specs.registry import load_model

H = 7168
MLA_PARAMS = (H * 1536                    # q_a
              + H * (512 + 64)            # kv_a (latent + rope key)
              + 1536 * 128 * (128 + 64)   # q_b
              + 512 * 128 * (128 + 128)   # kv_b
              + 128 * 128 * H               # wo
              + 1536 + 512)                 # q_a_layernorm, kv_a_layernorm (counted with the attention weights)
assert MLA_PARAMS == 187_107_328
EXPERT = 3 * H * 2048                     # one SwiGLU expert (gate, up, down)
W_UK = 512 * 128 * 128                    # TensorRT-LLM's k_b_proj_trans (one layer, all heads)
ROUTER = H * 256
LAYER_NORMS = 2 * H * 2                   # input / post-attention RMSNorm, BF16
EH_PROJ_AND_NORMS = (2 * H * H + 3 * H) * 2   # eh_proj + enorm, hnorm, shared_head.norm, BF16

# H200, TensorRT-LLM, DeepSeek's block-FP8 checkpoint (1 byte), TP 1: the whole layer on the GPU, W_UK copy in FP8
FP8_TP1_BYTES = MLA_PARAMS + W_UK + 256 * EXPERT + EXPERT + ROUTER + LAYER_NORMS + EH_PROJ_AND_NORMS
assert FP8_TP1_BYTES == 11_721_252_864    # 11.72 GB

# B200, TensorRT-LLM, NVIDIA's FP4 checkpoint: the MTP layer is excluded from quantisation (BF16, 2 bytes);
# DP attention over 8 GPUs with EP 8: attention and shared expert whole on each GPU, 32 routed experts each
FP4_DP8_BYTES = (MLA_PARAMS + W_UK + 32 * EXPERT + EXPERT + ROUTER) * 2 + LAYER_NORMS + EH_PROJ_AND_NORMS
assert FP4_DP8_BYTES == 3_506_907_136     # 3.51 GB

CONTEXT = 1024
MLA_KV_BYTES_FP8 = (512 + 64) * CONTEXT * 1   # one layer's latent + rope key per token, FP8 cache


def _mem(system, layout, prec, mtp):
    k = kernels_for(resolve_hardware(system))
    lay = LayoutArrays.from_layout(layout)
    return memory_per_gpu(k, load_model("deepseek-r1"), lay, np.array([8]), np.array([CONTEXT]), prec, mtp), lay


def _one(x):
    return float(np.ravel(x)[0])


@pytest.mark.parametrize("system, layout, prec, weights_bytes", [
    ("h200-hgx", Layout("tp", kvp=1, tpa=1, dp=1, tpf=1, ep=1, pp=1, hopb=False),
     Precision(weights="fp8", kv_cache="fp8"), FP8_TP1_BYTES),
    ("b200-hgx", Layout("ep", kvp=1, tpa=1, dp=8, tpf=1, ep=8, pp=1, hopb=False),
     Precision(weights="fp4", kv_cache="fp8", attention_weights="bf16", o_proj_weights="bf16"), FP4_DP8_BYTES),
])
def test_mtp_module_weights_and_kv(system, layout, prec, weights_bytes):
    without, _ = _mem(system, layout, prec, 0)
    with_mtp, _ = _mem(system, layout, prec, 3)
    assert _one(with_mtp.weights_bytes - without.weights_bytes) == pytest.approx(weights_bytes, rel=1e-12)
    assert _one(with_mtp.per_request_bytes - without.per_request_bytes) == pytest.approx(MLA_KV_BYTES_FP8, rel=1e-12)
    # the module is one, whatever the draft count (MTP Eagle / NextN reuse the checkpoint's single layer)
    one, _ = _mem(system, layout, prec, 1)
    assert _one(one.weights_bytes) == _one(with_mtp.weights_bytes)


def test_helix_shards_the_mtp_kv_like_the_others():
    prec = Precision(weights="fp8", kv_cache="fp8")
    helix = Layout("helix", kvp=4, tpa=1, dp=1, tpf=4, ep=1, pp=1, hopb=False)
    without, _ = _mem("h200-hgx", helix, prec, 0)
    with_mtp, _ = _mem("h200-hgx", helix, prec, 2)
    # KVP 4 splits the 1,024 cached tokens four ways: 256 tokens x 576 bytes on each GPU
    assert _one(with_mtp.per_request_bytes - without.per_request_bytes) == pytest.approx(MLA_KV_BYTES_FP8 / 4)


def test_the_fit_sees_the_mtp_module():
    prec = Precision(weights="fp8", kv_cache="fp8")
    layout = Layout("tp", kvp=1, tpa=8, dp=1, tpf=8, ep=1, pp=1, hopb=False)
    without, lay = _mem("h200-hgx", layout, prec, 0)
    with_mtp, _ = _mem("h200-hgx", layout, prec, 3)
    room = _one(without.weights_bytes) + without.reserve_bytes + 10 * _one(without.per_request_bytes)
    assert int(np.ravel(largest_batch(without, lay, room))[0]) == 10
    assert int(np.ravel(largest_batch(with_mtp, lay, room))[0]) < 10


def test_point_reports_the_mtp_memory():
    from helixsim.api import simulate_point

    kw = dict(model="deepseek-r1", hardware="h200-hgx", batch=8, context=CONTEXT,
              layout=Layout("tp", kvp=1, tpa=8, dp=1, tpf=8, ep=1, pp=1, hopb=False),
              precision=Precision(weights="fp8", kv_cache="fp8"))
    base, mtp = simulate_point(**kw), simulate_point(**kw, mtp=3)
    # TP 8: q_a and kv_a (with their norms) whole on every GPU, q_b, kv_b, wo, the W_UK copy, the shared and the
    # routed experts (tpf 8) / 8; router, layer norms, eh_proj whole; + 8 requests' MTP-layer KV
    q_a_kv_a = H * 1536 + 1536 + H * (512 + 64) + 512
    per_gpu = (q_a_kv_a + (MLA_PARAMS - q_a_kv_a + W_UK + 256 * EXPERT + EXPERT) / 8 + ROUTER + LAYER_NORMS
               + EH_PROJ_AND_NORMS + 8 * MLA_KV_BYTES_FP8)
    assert per_gpu == 1_664_622_592   # 1.66 GB
    assert (mtp.memory_per_gpu_gb - base.memory_per_gpu_gb) * 1e9 == pytest.approx(per_gpu, rel=1e-9)


def test_a_sweep_plans_mtp_rows_on_their_own_capacity():
    """The largest batch of each layout's MTP rows is the largest that fits with the module, and it fits."""
    from helixsim.search import SearchSpace, search

    hw = resolve_hardware("h200-hgx")
    space = SearchSpace(strategies=("tp",), max_gpus=8, min_gpus=8, max_batch=1 << 15, contexts=(8192,),
                        hopb=(False,), mtp=(0, 3))
    table = search(load_model("deepseek-r1"), hw, space, Precision(weights="fp8", kv_cache="fp8"))
    top = table[table["feasible"]].groupby(["tpa", "tpf", "ep", "mtp"])["batch"].max().unstack("mtp")
    assert len(top) and (top[3] < top[0]).all()           # the module costs every layout some requests
    for _, row in table[table["mtp"] == 3].groupby(["tpa", "tpf", "ep"]).head(1).iterrows():
        edge = table[(table["mtp"] == 3) & (table["tpa"] == row["tpa"]) & (table["tpf"] == row["tpf"])
                     & (table["ep"] == row["ep"])]
        assert edge["batch"].max() == edge["max_batch"].iloc[0]   # the capacity edge is priced ...
        assert edge.loc[edge["batch"].idxmax(), "feasible"]      # ... and fits
