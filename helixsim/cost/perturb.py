"""A kernel model with one physical parameter moved: what-if pricing for robustness checks.

:class:`PerturbedKernels` wraps any kernel model (roofline or calibrated) and
changes one of three things the decode step is most sensitive to, leaving
every other price as the wrapped model gives it:

* ``attention_efficiency``: decode attention runs at that multiple of the
  bandwidth (and FLOP rate) it achieves in the wrapped model, so its time is
  divided by it;
* ``kernel_floor_us``: that many microseconds are added to every compute
  kernel launch (GEMM, batched GEMM, attention, each MoE call, memory-bound
  helpers per kernel);
* ``a2a_latency_us``: that many microseconds are added to every all-to-all
  (the Helix exchange, each HOP-B chunk, MoE dispatch and combine).

Methods take and return what :class:`helixsim.cost.kernels.RooflineKernels`
does; anything not overridden is the wrapped model's.
"""

from __future__ import annotations

import numpy as np


class PerturbedKernels:
    """``base`` with attention efficiency scaled and fixed costs added (see module docstring)."""

    def __init__(self, base, attention_efficiency: float = 1.0, kernel_floor_us: float = 0.0,
                 a2a_latency_us: float = 0.0) -> None:
        if not attention_efficiency > 0:
            raise ValueError(f"attention_efficiency must be > 0, got {attention_efficiency!r}")
        self.base = base
        self.attention_efficiency = float(attention_efficiency)
        self.kernel_floor_ms = float(kernel_floor_us) * 1e-3
        self.a2a_latency_ms = float(a2a_latency_us) * 1e-3

    def __getattr__(self, name: str):
        if name in ("base", "attention_efficiency", "kernel_floor_ms", "a2a_latency_ms"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def _floor(self, t, n: float = 1.0) -> np.ndarray:
        """Add the extra fixed cost to kernels that run (time > 0), never below zero."""
        t = np.asarray(t, float)
        return np.where(t > 0, np.maximum(t + n * self.kernel_floor_ms, 0.0), t)

    def gemm_ms(self, *args, **kwargs) -> np.ndarray:
        return self._floor(self.base.gemm_ms(*args, **kwargs))

    def bmm_ms(self, *args, **kwargs) -> np.ndarray:
        return self._floor(self.base.bmm_ms(*args, **kwargs))

    def moe_ms(self, *args, **kwargs) -> np.ndarray:
        return self._floor(self.base.moe_ms(*args, **kwargs), n=3.0)  # gate-up, down, router

    def memory_op_ms(self, nbytes, n_kernels: float = 1.0) -> np.ndarray:
        return self._floor(self.base.memory_op_ms(nbytes, n_kernels), n=n_kernels)

    def gqa_attention_ms(self, *args, **kwargs) -> np.ndarray:
        return self._floor(np.asarray(self.base.gqa_attention_ms(*args, **kwargs), float) / self.attention_efficiency)

    def mla_attention_ms(self, *args, **kwargs) -> np.ndarray:
        return self._floor(np.asarray(self.base.mla_attention_ms(*args, **kwargs), float) / self.attention_efficiency)

    def _a2a(self, t) -> np.ndarray:
        t = np.asarray(t, float)
        return np.where(t > 0, np.maximum(t + self.a2a_latency_ms, 0.0), t)

    def collective_ms(self, op: str, n, message_bytes) -> np.ndarray:
        t = self.base.collective_ms(op, n, message_bytes)
        return self._a2a(t) if op == "all_to_all" else t

    def moe_dispatch_ms(self, *args, **kwargs) -> np.ndarray:
        return self._a2a(self.base.moe_dispatch_ms(*args, **kwargs))

    def moe_combine_ms(self, *args, **kwargs) -> np.ndarray:
        return self._a2a(self.base.moe_combine_ms(*args, **kwargs))
