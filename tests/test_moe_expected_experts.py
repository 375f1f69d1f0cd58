"""The roofline's MoE weight read counts the experts a batch touches (issue 15), checked by hand.

Qwen3-Coder-480B-A35B (models/hf/Qwen--Qwen3-Coder-480B-A35B-Instruct.config.json): hidden 6144,
moe_intermediate_size 2560, 160 experts, top-8. At TP 1, EP 1 and batch 8 the 8 tokens route to
8 distinct experts each, so one expert is missed by a token with probability 1 - 8/160 = 0.95 and by
all eight with 0.95^8 = 0.663420431 (0.95^2 = 0.9025, ^4 = 0.81450625, ^8 = 0.663420431). Expected
distinct experts read: 160 x (1 - 0.663420431) = 53.8527. Each SwiGLU expert is 3 x 6144 x 2560 =
47,185,920 weights, so FP8 (1 byte) reads 53.8527 x 47,185,920 = 2.5411e9 bytes per layer; one
token's top-8 alone would be 8 x 47,185,920 = 3.775e8 bytes, 6.7x too few.
"""

from __future__ import annotations

import pytest

from helixsim.api import kernels_for
from helixsim.cost import terms as t
from helixsim.specs.registry import load_hardware

H, F, E, K = 6144, 2560, 160, 8
EXPERT_WEIGHTS = 3 * H * F  # 47,185,920


def test_expected_experts_by_hand():
    assert EXPERT_WEIGHTS == 47_185_920
    assert t.expected_experts_touched(8, E, K) == pytest.approx(53.8527, abs=1e-4)
    assert t.expected_experts_touched(1, E, K) == pytest.approx(8.0)  # one token: exactly its top-k
    # per EP rank: at EP 1 the 64 pairs of 8 tokens give the same count; at EP 8 (20 local experts)
    # 8 pairs of 8 tokens touch 20 x (1 - 0.95^8) = 6.7316 local experts
    assert t.experts_read_per_rank(64, E, K, 1) == pytest.approx(53.8527, abs=1e-4)
    assert t.experts_read_per_rank(8, E, K, 8) == pytest.approx(20 * (1 - 0.663420431), abs=1e-6)


def test_roofline_moe_reads_the_touched_experts():
    """Ideal roofline (peaks only, no efficiencies or floors) on GB200: the routed-expert time is the
    bytes above over the HBM bandwidth (memory-bound: 2 x 64 pairs x 47.2 M FLOPs = 6.0 GFLOP is
    microseconds at PFLOP/s). Bytes: 2.5411e9 of weights + 64 pairs x (2 x 6144 + 3 x 2560) x 2 bytes
    of BF16 activations = 2,555,904."""
    km = kernels_for(load_hardware("gb200-nvl72"), ideal=True)
    total = km.moe_ms(8, H, F, K, E, 1, 1, "fp8", "bf16")
    router = km.gemm_ms(8, E, H, "bf16", "bf16")
    weights = 160 * (1 - 0.95 ** 8) * EXPERT_WEIGHTS * 1.0
    acts = 64 * (2 * H + 3 * F) * 2.0
    assert weights == pytest.approx(2.5411e9, rel=1e-4)
    expected_ms = (weights + acts) / (km.hbm_gbps * 1e9) * 1e3
    assert float(total - router) == pytest.approx(expected_ms, rel=1e-9)
    one_token_topk_ms = (8 * EXPERT_WEIGHTS + acts) / (km.hbm_gbps * 1e9) * 1e3
    assert float(total - router) > 6 * one_token_topk_ms
