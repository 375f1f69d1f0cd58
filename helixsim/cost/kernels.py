"""Per-kernel time models: the seam between the step composition and the numbers.

:class:`RooflineKernels` prices every kernel a decode step runs as
``floor + max(bytes / (peak_bw x eff), FLOPs / (peak x eff))`` and every
collective as ``latency + bytes_on_wire / (link_bw x eff)``, using the
constants of :mod:`helixsim.efficiency`. A calibrated model (issue 4)
offers the same methods, so :mod:`helixsim.cost.step` never needs to know
which one it has. All methods are vectorised and return milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..efficiency import Efficiency
from ..precision import BYTES_PER_ELEMENT, BYTES_PER_ELEMENT_NO_SCALE
from ..specs.hardware import HardwareSpec
from . import terms as t

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p")
#: MXFP4: 4-bit E2M1 values with one 8-bit E8M0 scale per block of 32 (OCP Microscaling Formats spec v1.0)
MXFP4_BYTES_PER_ELEMENT = 0.5 + 1.0 / 32.0


@dataclass(frozen=True)
class RooflineKernels:
    """Roofline-times-efficiency kernel model of one GPU system."""

    hw: HardwareSpec
    eff: Efficiency

    # ----------------------------------------------------------- helpers
    def elem_bytes(self, dtype: str) -> float:
        return (BYTES_PER_ELEMENT_NO_SCALE if self.eff.ideal else BYTES_PER_ELEMENT)[dtype]

    def math_dtype(self, dtype: str) -> str:
        """Tensor-core format for a storage format: FP4 runs as FP8 where the GPU has no FP4 units."""
        if self.hw.dense_tflops.for_dtype(dtype) is None:
            return "fp8"
        return dtype

    @property
    def hbm_gbps(self) -> float:
        return self.hw.hbm_bandwidth_gbps * self.eff.hbm

    @property
    def floor_us(self) -> float:
        return self.eff.kernel_floor_us

    def _compute_peak(self, dtype: str, eff: float) -> float:
        return self.hw.dense_tflops.for_dtype(self.math_dtype(dtype)) * eff

    # ----------------------------------------------------------- compute kernels
    def memory_op_ms(self, nbytes: np.ndarray, n_kernels: float = 1.0) -> np.ndarray:
        """A bandwidth-only kernel (norms, residual adds, sampling)."""
        return n_kernels * self.floor_us * 1e-3 + t.transfer_ms(nbytes, self.hbm_gbps)

    def gemm_ms(self, m, n, k, weight_dtype: str, act_dtype: str = "bf16") -> np.ndarray:
        """One decode GEMM [m,k] x [k,n] with the weight in ``weight_dtype``."""
        nbytes = t.gemm_bytes(m, n, k, self.elem_bytes(weight_dtype), self.elem_bytes(act_dtype))
        flops = t.gemm_flops(m, n, k)
        time = t.roofline_ms(nbytes, flops, self.hbm_gbps,
                             self._compute_peak(weight_dtype, self.eff.gemm_compute), self.floor_us)
        return t.where_positive(t.as_float(m) * t.as_float(n) * t.as_float(k), time)

    def bmm_ms(self, batch, m, n, k, weight_dtype: str, act_dtype: str = "bf16") -> np.ndarray:
        """``batch`` independent GEMMs in one kernel (MLA's absorbed W_UK / W_UV per head)."""
        nbytes = t.as_float(batch) * t.gemm_bytes(m, n, k, self.elem_bytes(weight_dtype), self.elem_bytes(act_dtype))
        flops = t.as_float(batch) * t.gemm_flops(m, n, k)
        time = t.roofline_ms(nbytes, flops, self.hbm_gbps,
                             self._compute_peak(weight_dtype, self.eff.gemm_compute), self.floor_us)
        return t.where_positive(t.as_float(batch) * t.as_float(m), time)

    def _attention_ms(self, kv_bytes, flops, math_dtype: str) -> np.ndarray:
        time = t.roofline_ms(kv_bytes, flops, self.hbm_gbps,
                             self._compute_peak(math_dtype, self.eff.attention_compute), self.floor_us)
        return np.where(np.asarray(kv_bytes) > 0, time, 0.0)

    def gqa_attention_ms(self, batch, q_heads, kv_heads, head_dim: int, tokens,
                         kv_dtype: str, math_dtype: str, window: int = 0) -> np.ndarray:
        """GQA decode attention on one GPU: ``q_heads``/``kv_heads`` held here, ``tokens`` per request in
        its KV cache; a sliding-window layer (``window`` > 0) reads only the last ``window`` of them."""
        if window:
            tokens = np.minimum(tokens, window)
        kv = t.kv_read_bytes(batch, tokens, t.gqa_kv_elements_per_token(kv_heads, head_dim), self.elem_bytes(kv_dtype))
        flops = t.gqa_attention_flops(batch, q_heads, head_dim, tokens)
        return self._attention_ms(kv, flops, math_dtype)

    def mla_attention_ms(self, batch, q_heads, kv_lora_rank: int, qk_rope_head_dim: int, tokens,
                         kv_dtype: str, math_dtype: str) -> np.ndarray:
        """Absorbed MLA decode attention on one GPU: the 576-wide latent is read once for all heads."""
        elems = t.mla_kv_elements_per_token(kv_lora_rank, qk_rope_head_dim)
        kv = t.kv_read_bytes(batch, tokens, elems, self.elem_bytes(kv_dtype))
        flops = t.mla_attention_flops(batch, q_heads, kv_lora_rank, qk_rope_head_dim, tokens)
        return self._attention_ms(kv, flops, math_dtype)

    def moe_ms(self, tokens, hidden: int, inter: int, top_k: int, num_experts: int, tp, ep,
               weight_dtype: str, act_dtype: str = "bf16", fp4_format: str = "nvfp4",
               fp8_block_scales: bool = False) -> np.ndarray:
        """Routed experts of one MoE layer on the busiest GPU of a TPF x EP grid.

        ``fp8_block_scales``: FP8 experts with one FP32 scale per 128x128 block; the scales (4 / 16,384
        bytes per weight) are left out of the bytes here and matter only to which measured kernels
        price the layer (:meth:`helixsim.calibration.kernels.CalibratedKernels.fp8_block_only`).

        ``fp4_format``: the block-scaled format of FP4 experts; MXFP4 stores one E8M0 scale per 32
        values (OCP Microscaling Formats spec v1.0), 0.5 + 1/32 bytes per element instead of NVFP4's 0.5625.

        ``tokens`` enter the layer. Each EP rank owns E/EP experts; it serves
        tokens x k / EP expert-token pairs on average and max_rank_load() at the
        busiest rank. Only experts that receive a token are read (expected count
        :func:`~helixsim.cost.terms.experts_read_per_rank`, E (1 - (1 - k/E)^B) at EP 1); each is a
        SwiGLU of three H x F_e matrices split TPF ways (paper §2.2, Fig. 4).
        Two grouped GEMM kernels (gate-up, down) plus the router GEMM.
        """
        tokens = np.asarray(tokens, float)
        ep = np.asarray(ep, float)
        local_experts = num_experts / ep
        mean_pairs = tokens * top_k / ep
        pairs = np.minimum(t.max_rank_load(mean_pairs, ep), tokens * np.minimum(top_k, local_experts))
        touched = t.experts_read_per_rank(pairs, num_experts, top_k, ep)
        weights = touched * 3.0 * hidden * inter / np.asarray(tp, float)
        acts = pairs * (2.0 * hidden + 3.0 * inter / np.asarray(tp, float))
        wb = self.elem_bytes(weight_dtype)
        if weight_dtype == "fp4" and fp4_format == "mxfp4" and not self.eff.ideal:
            wb = MXFP4_BYTES_PER_ELEMENT
        nbytes = weights * wb + acts * self.elem_bytes(act_dtype)
        flops = 2.0 * pairs * 3.0 * hidden * inter / np.asarray(tp, float)
        experts = t.roofline_ms(nbytes, flops, self.hbm_gbps,
                                self._compute_peak(weight_dtype, self.eff.gemm_compute), 2.0 * self.floor_us)
        router = self.gemm_ms(tokens, num_experts, hidden, "bf16", act_dtype)
        return np.where(tokens > 0, experts + router, 0.0)

    def law_ms(self, time_ms, doublings=0.0) -> np.ndarray:
        """A time already priced by a fitted kernel law (:mod:`.attention_kinds`), passed through the kernel
        model so that recording and replaying models see it as one kernel call; ``doublings``: how far
        beyond the law's measured domain the query lies (0 inside)."""
        return np.asarray(time_ms, float)

    # ----------------------------------------------------------- communication
    def link(self, n) -> tuple[np.ndarray, np.ndarray]:
        """Per-GPU link bandwidth (GB/s) and extra latency (us) for a group of ``n`` GPUs.

        A group that fits the NVLink domain talks over NVLink; a larger one is
        bottlenecked by the scale-out NIC and pays its latency (a deliberately
        simple, conservative model).
        """
        inside = (n if type(n) is float else np.asarray(n)) <= self.hw.nvlink_domain_gpus
        bw = t.where(inside, self.hw.nvlink_bandwidth_gbps_per_direction * self.eff.nvlink,
                     self.hw.scale_out_bandwidth_gbps_per_direction * self.eff.scale_out)
        extra = t.where(inside, 0.0, self.hw.scale_out_latency_us if self.eff.collective_floors else 0.0)
        return bw, extra

    def collective_latency_us(self, op: str) -> float:
        if not self.eff.collective_floors:
            return 0.0
        lat = self.hw.collective_latency_us
        return {"all_reduce": lat.all_reduce, "all_gather": lat.all_gather, "reduce_scatter": lat.all_gather,
                "all_to_all": lat.all_to_all, "p2p": lat.p2p}[op]

    def collective_ms(self, op: str, n, message_bytes) -> np.ndarray:
        """One collective over ``n`` GPUs (zero when n == 1).

        message_bytes: all_reduce the reduced tensor; all_gather the gathered
        output; reduce_scatter its input; all_to_all the per-rank send buffer;
        p2p the message. all_reduce takes the faster of one-shot (one latency,
        (n-1) M per GPU) and two-shot (two latencies, 2 (n-1)/n M per GPU), as
        TensorRT-LLM's AUTO strategy does.
        """
        n = n if type(n) is float else np.asarray(n)   # (one query of the single-point path: in floats)
        m = t.as_float(message_bytes)
        bw, extra_us = self.link(n)
        alpha = (self.collective_latency_us(op) + extra_us) * 1e-3
        if op == "all_reduce":
            one = alpha + t.transfer_ms(t.one_shot_all_reduce_bytes(m, n), bw)
            two = 2 * alpha + t.transfer_ms(t.all_reduce_bytes_on_wire(m, n), bw)
            time = t.minimum(one, two)
        elif op in ("all_gather", "reduce_scatter"):
            time = alpha + t.transfer_ms(t.all_gather_bytes_on_wire(m, n), bw)
        elif op == "all_to_all":
            time = alpha + t.transfer_ms(t.all_to_all_bytes_on_wire(m, n), bw)
        elif op == "p2p":
            time = alpha + t.transfer_ms(m, bw)
        else:
            raise ValueError(f"unknown collective {op}")
        return t.where((n > 1) & (m > 0), time, 0.0)

    def moe_dispatch_ms(self, tokens_per_rank, hidden: int, top_k: int, ep, dtype: str = "bf16",
                        num_experts: int = 0) -> np.ndarray:
        """Expert-parallel token dispatch: each rank sends its tokens' top-k copies (DeepEP-style all-to-all).
        ``num_experts`` (0: not given) picks a measured kernel's rows where the tables hold several."""
        send = t.as_float(tokens_per_rank) * top_k * hidden * self.elem_bytes(dtype)
        return self.collective_ms("all_to_all", ep, send)

    def moe_combine_ms(self, tokens_per_rank, hidden: int, top_k: int, ep, dtype: str = "bf16",
                       num_experts: int = 0) -> np.ndarray:
        """Expert-parallel combine: the expert outputs travel back to their tokens' ranks."""
        return self.moe_dispatch_ms(tokens_per_rank, hidden, top_k, ep, dtype)
