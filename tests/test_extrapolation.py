"""Calibrated decode attention beyond and across the measured domain: the physical properties it must keep."""

import numpy as np
import pytest

from helixsim.api import kernels_for, simulate_point
from helixsim.layout import Layout
from helixsim.precision import Precision
from helixsim.specs.registry import load_hardware

SYSTEMS = ("gb200-nvl72", "b200-hgx", "h200-hgx")
TOKENS = np.unique(np.geomspace(1, 10_000_000, 60).astype(int)).astype(float)   # up to 10M cached tokens


def _mla(k, batch, heads, tokens, kv="fp8"):
    return k.mla_attention_ms(batch, heads, 512, 64, tokens, kv, "bf16")


def _gqa(k, batch, q, kv_heads, tokens, kv="fp8"):
    return k.gqa_attention_ms(batch, q, kv_heads, 128, tokens, kv, "bf16")


@pytest.mark.parametrize("system", SYSTEMS)
def test_non_decreasing_in_tokens_batch_and_heads(system):
    k = kernels_for(load_hardware(system))
    batches, heads = (1, 2, 4, 8, 16, 32, 64, 128, 256), (1, 2, 4, 8, 16, 32, 64, 128)
    b, h, s = np.meshgrid(np.array(batches, float), np.array(heads, float), TOKENS, indexing="ij")
    for kv in ("fp8", "bf16", "fp4"):
        t = _mla(k, b, h, s, kv)
        assert np.all(np.diff(t, axis=2) >= -1e-12), "MLA: more cached tokens never cost less"
        assert np.all(np.diff(t, axis=0) >= -1e-12), "MLA: a larger batch never costs less"
        assert np.all(np.diff(t, axis=1) >= -1e-12), "MLA: more heads per GPU never cost less"
        # GQA with Llama-3.1-70B's group of 8 query heads per KV head, split by TP (both shrink together)
        g = _gqa(k, b[:, :4], 8 * h[:, :4], h[:, :4], s[:, :4], kv)
        assert np.all(np.diff(g, axis=2) >= -1e-12), "GQA: tokens"
        assert np.all(np.diff(g, axis=0) >= -1e-12), "GQA: batch"
        assert np.all(np.diff(g, axis=1) >= -1e-12), "GQA: heads per GPU"


@pytest.mark.parametrize("system", SYSTEMS)
def test_linear_in_tokens_beyond_the_measured_range(system):
    """Beyond 131,072 tokens time grows about linearly in tokens (a straight line per measured head count; the
    slowest of them where the head envelope switches line), continuous at the edge."""
    k = kernels_for(load_hardware(system))
    s = np.array([131072.0, 262144.0, 524288.0, 1048576.0, 10_000_000.0])
    for t in (_mla(k, 8, 32, s), _mla(k, 64, 128, s), _gqa(k, 8, 8, 1, s), _gqa(k, 32, 64, 8, s)):
        slope = np.diff(t) / np.diff(s)
        assert slope == pytest.approx(np.full(len(slope), slope[-1]), rel=0.02)
        assert slope[0] > 0
    edge = _mla(k, 8, 32, np.array([131072.0, 131073.0]))
    assert edge[1] == pytest.approx(edge[0], rel=1e-4)   # no jump at the edge


def test_deepseek_tp_1m_more_heads_per_gpu_is_not_faster():
    """The case of issue 10: DeepSeek-R1 under TP at 1M tokens, batch 8: 58 ms of attention at 32 heads per GPU
    (TP 4) against 44 ms at 64 (TP 2) before; now 64 heads per GPU cost at least what 32 do."""
    prec = Precision(weights="fp4")
    att = {tp: simulate_point("deepseek-r1", "gb200-nvl72", Layout("tp", tpa=tp, tpf=tp), batch=8, context=1_000_000,
                              precision=prec).breakdown_ms["attention"] for tp in (1, 2, 4, 8)}
    assert att[1] >= att[2] >= att[4] >= att[8]


def test_fp4_kv_is_the_fp8_kernel_scaled_by_bytes():
    """Bandwidth-bound MLA (8 heads per GPU, batch 32): FP4 takes 0.5625 / 1 of the FP8 time (bytes per element
    with the FP4 block scales against FP8); with many heads the BF16 math (as measured) bounds the gain."""
    k = kernels_for(load_hardware("gb200-nvl72"))
    s = np.array([65536.0, 1_000_000.0])
    assert _mla(k, 32, 8, s, "fp4") == pytest.approx(0.5625 * _mla(k, 32, 8, s, "fp8"), rel=1e-9)
    fp4, fp8 = _mla(k, 32, 128, s, "fp4"), _mla(k, 32, 128, s, "fp8")
    assert np.all((fp4 > 0.5625 * fp8 * 1.01) & (fp4 <= fp8))
