"""The Helix paper's Figure 1: a DRAM-read roofline of one decode layer.

Bhatia et al., "Helix Parallelism", arXiv 2507.07120, Appendix A ("Roofline
analysis") gives two per-layer read times, which Figure 1 plots against the
TP width, the KV length S and the KV-parallel width KVP:

* KV-cache read  T_KV = B x 2 x ceil(K/TPA) x Hsz x (S/KVP) x bytes_param / MemBW
* weight read    T_W  = [2 H (Q/TPA) Hsz + 2 H ceil(K/TPA) Hsz + 3 H F / TPF] x bytes_param / MemBW

Only DRAM reads are counted: no compute, no TP/KVP communication (Figure 1
caption).  Everything here is a pure, vectorised numpy function; times are
microseconds (``_us``), bandwidth GB/s (1e9 B/s).

MLA (the TensorRT-LLM Helix blog's roofline example) reads one shared latent
of kv_lora_rank + rope = 576 elements per token per layer, once: pass
``kv_heads=1, head_dim=576, kv_factor=1``.  The factor 2 of the paper's
formula counts separate K and V tensors, which absorbed MLA kernels do not
have (helixsim's decision, reference notes §9 item 2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import pandas as pd

from .cost.terms import cdiv, kv_read_bytes, mla_kv_elements_per_token, transfer_ms
from .specs.hardware import HardwareSpec
from .specs.model import ModelSpec

ArrayLike = np.ndarray | float | int

__all__ = [
    "kv_read_time_us",
    "weight_read_time_us",
    "RooflineSetup",
    "figure1_panels",
    "PANEL_X",
]

#: x column of each Figure 1 panel.
PANEL_X: dict[str, str] = {"vs_tp": "tp", "vs_context": "context", "vs_kvp": "kvp"}


def kv_read_time_us(batch: ArrayLike, kv_heads: ArrayLike, head_dim: ArrayLike, context: ArrayLike,
                    tpa: ArrayLike, kvp: ArrayLike, bytes_param: ArrayLike, mem_bw_gbps: ArrayLike,
                    kv_factor: ArrayLike = 2) -> np.ndarray:
    """KV-cache DRAM read time of one layer on one GPU, microseconds (paper App. A).

    T_KV = B x kv_factor x ceil(K/TPA) x Hsz x (S/KVP) x bytes_param / MemBW.

    ``kv_factor`` is 2 for GQA/MHA (K and V read separately, as the paper
    assumes) and 1 for MLA's shared latent (``kv_heads=1``, ``head_dim=576``).
    With TPA > K each GPU still reads one whole KV head, so the time
    plateaus once TP exceeds K (Figure 1, left).  S/KVP is exact division as
    in the paper's formula (Figure 1 treats S as continuous).
    """
    heads = cdiv(np.asarray(kv_heads), np.asarray(tpa))
    elements = np.asarray(kv_factor, float) * heads * np.asarray(head_dim, float)  # per token per layer
    tokens = np.asarray(context, float) / np.asarray(kvp, float)
    nbytes = kv_read_bytes(batch, tokens, elements, 1.0) * np.asarray(bytes_param, float)
    return transfer_ms(nbytes, mem_bw_gbps) * 1e3


def weight_read_time_us(hidden: ArrayLike, q_heads: ArrayLike, kv_heads: ArrayLike, head_dim: ArrayLike,
                        ffn: ArrayLike, tpa: ArrayLike, tpf: ArrayLike, bytes_param: ArrayLike,
                        mem_bw_gbps: ArrayLike) -> np.ndarray:
    """Weight DRAM read time of one layer on one GPU, microseconds (paper App. A, SwiGLU FFN).

    T_W = [2 H (Q/TPA) Hsz  +  2 H ceil(K/TPA) Hsz  +  3 H F / TPF] x bytes_param / MemBW

    The first term is W_Q and W_O (each H x Q Hsz / TPA), the second W_K and
    W_V (KV heads are duplicated once TPA > K), the third the three SwiGLU
    matrices.  As in the paper, W_O is sharded by TPA here (the Helix dataflow
    shards it over all N GPUs; see the reference notes §3.1 caveat).
    """
    h = np.asarray(hidden, float)
    hsz = np.asarray(head_dim, float)
    tpa = np.asarray(tpa)
    q_o = 2.0 * h * (np.asarray(q_heads, float) / tpa) * hsz
    k_v = 2.0 * h * cdiv(np.asarray(kv_heads), tpa) * hsz
    mlp = 3.0 * h * np.asarray(ffn, float) / np.asarray(tpf, float)
    nbytes = (q_o + k_v + mlp) * np.asarray(bytes_param, float)
    return transfer_ms(nbytes, mem_bw_gbps) * 1e3


@dataclass(frozen=True)
class RooflineSetup:
    """One Figure 1 configuration: shapes, precision, memory bandwidth and the KV length.

    ``head_dim`` is the Hsz of the KV term.  ``weight_head_dim`` is the Hsz of
    the weight term; ``None`` means the same (the paper uses one Hsz).
    :meth:`from_model` sets it for MLA, whose cached latent (576) is not a
    projection width.
    """

    batch: int
    q_heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    ffn: int
    bytes_param: float
    mem_bw_gbps: float
    context: float
    kv_factor: int = 2
    label: str = ""
    weight_head_dim: Optional[float] = None

    # ------------------------------------------------------------ constructors
    @classmethod
    def paper_fig1(cls) -> "RooflineSetup":
        """Paper Figure 1 / App. A: B=8, Q=128, K=8, Hsz=128, H=Q x Hsz=16384, F=65536, FP4, 8000 GB/s, S=1e6.

        "1M" is taken as 10^6 (the reference notes' §3.8 table); use
        ``dataclasses.replace(setup, context=2**20)`` for the other reading.
        """
        return cls(batch=8, q_heads=128, kv_heads=8, head_dim=128, hidden=16384, ffn=65536,
                   bytes_param=0.5, mem_bw_gbps=8000.0, context=1e6, kv_factor=2,
                   label="Helix paper Fig. 1: dense GQA, Q=128 K=8 Hsz=128 F=65536, FP4, B=8")

    @classmethod
    def blog_fig1(cls) -> "RooflineSetup":
        """TensorRT-LLM Helix blog roofline: B=8, MLA (K=1, 576-wide latent read once), Q=128, F=65536, FP8.

        The blog does not state H; DeepSeek-R1's d_model 7168 is used here
        (helixsim's assumption).  Hsz = 576 is the blog's QK head size and
        is used, as stated, in both App. A terms.
        """
        return cls(batch=8, q_heads=128, kv_heads=1, head_dim=576, hidden=7168, ffn=65536,
                   bytes_param=1.0, mem_bw_gbps=8000.0, context=1e6, kv_factor=1,
                   label="TRT-LLM Helix blog: MLA Q=128 K=1 latent 576, F=65536, FP8, B=8 (H=7168 assumed)")

    @classmethod
    def from_model(cls, model: ModelSpec, hw: HardwareSpec, batch: int, context: float,
                   bytes_param: float) -> "RooflineSetup":
        """Figure 1 setup for any model on any system (one byte width for weights and KV, as the paper).

        * KV term: GQA reads K and V (``kv_factor=2``); MLA reads the
          kv_lora_rank + rope latent once (``kv_heads=1``, ``kv_factor=1``).
        * Weight term: the effective Hsz is chosen so that
          2 H (Q + K) Hsz equals the model's attention parameter count
          (:meth:`ModelSpec.attention_params`); for a bias-free GQA model this
          is the true head size, for MLA it stands in for the low-rank
          q_a/q_b/kv_a/kv_b/o projections.
        * F: the dense SwiGLU width; for an MoE model, the width its MoE
          layers touch per token, (top-k + shared experts) x expert width
          (a lower bound once B tokens route to different experts).
        """
        a = model.attention
        if a.is_mla:
            kv_heads, head_dim, kv_factor = 1, mla_kv_elements_per_token(a.kv_lora_rank, a.qk_rope_head_dim), 1
        else:
            kv_heads, head_dim, kv_factor = a.num_kv_heads, a.head_dim, 2
        attn_params = sum(model.attention_params().values())
        weight_hsz = attn_params / (2.0 * model.hidden_size * (a.num_q_heads + kv_heads))
        m = model.ffn.moe
        if m is None:
            ffn = model.ffn.intermediate_size or 0
        else:
            ffn = m.experts_per_token * m.expert_intermediate_size + m.shared_width
        return cls(batch=batch, q_heads=a.num_q_heads, kv_heads=kv_heads, head_dim=head_dim,
                   hidden=model.hidden_size, ffn=int(ffn), bytes_param=bytes_param,
                   mem_bw_gbps=hw.hbm_bandwidth_gbps, context=context, kv_factor=kv_factor,
                   label=f"{model.name} on {hw.name}, B={batch}, {bytes_param:g} B/param",
                   weight_head_dim=weight_hsz)

    # ------------------------------------------------------------ evaluation
    def with_context(self, context: float) -> "RooflineSetup":
        return replace(self, context=context)

    def times_us(self, tpa: ArrayLike, tpf: ArrayLike, kvp: ArrayLike,
                 context: Optional[ArrayLike] = None) -> tuple[np.ndarray, np.ndarray]:
        """(KV read, weight read) in microseconds for layouts given as arrays."""
        s = self.context if context is None else context
        kv = kv_read_time_us(self.batch, self.kv_heads, self.head_dim, s, tpa, kvp,
                             self.bytes_param, self.mem_bw_gbps, self.kv_factor)
        hsz = self.head_dim if self.weight_head_dim is None else self.weight_head_dim
        w = weight_read_time_us(self.hidden, self.q_heads, self.kv_heads, hsz, self.ffn, tpa, tpf,
                                self.bytes_param, self.mem_bw_gbps)
        kv, w = np.broadcast_arrays(kv, w)
        return kv.astype(float), w.astype(float)


def _panel(x_name: str, x: np.ndarray, tpa, tpf, kvp, kv: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    n = len(x)
    return pd.DataFrame({
        x_name: x,
        "tpa": np.broadcast_to(tpa, n).astype(int),
        "tpf": np.broadcast_to(tpf, n).astype(int),
        "kvp": np.broadcast_to(kvp, n).astype(int),
        "kv_read_us": np.broadcast_to(kv, n).astype(float),
        "weight_read_us": np.broadcast_to(w, n).astype(float),
        "total_us": np.broadcast_to(kv + w, n).astype(float),
    })


def figure1_panels(spec: RooflineSetup, max_width: int = 64,
                   contexts: Optional[np.ndarray] = None,
                   context_layout: Optional[tuple[int, int, int]] = None) -> dict[str, pd.DataFrame]:
    """The three panels of the paper's Figure 1 as DataFrames (one row per x value).

    * ``"vs_tp"``: classic TP of width 1, 2, 4, ... ``max_width``: TPF = TP,
      KVP = 1, and attention sharded TP ways too (``tpa`` column = TP).  Past
      TP = K each GPU holds ceil(K/TP) = 1 duplicated KV head, so the KV read
      plateaus (left panel) exactly as with TPA = min(TP, K); the query heads
      (W_Q, W_O: Q/TP) keep splitting, which is what the reference notes'
      §3.8 table assumes (14.9 us at TP = 16, 3.9 us at TP = 64).
    * ``"vs_context"``: S = 2^14 ... 2^22 at a fixed layout (middle panel;
      KV read linear in S).  Default layout TPA = TPF = min(K, max_width),
      KVP = 1, i.e. the widest TP that does not duplicate KV heads;
      ``context_layout=(tpa, tpf, kvp)`` overrides it.
    * ``"vs_kvp"``: KVP = 1, 2, 4, ... ``max_width`` at TPA = min(K, max_width),
      TPF = TPA x KVP (right panel, Helix: KV read falls as 1/KVP).

    Columns: the x variable (``tp``, ``context`` or ``kvp``), ``tpa``,
    ``tpf``, ``kvp``, ``kv_read_us``, ``weight_read_us``, ``total_us``.
    """
    widths = 2 ** np.arange(int(np.log2(max_width)) + 1)
    k_cap = min(spec.kv_heads, max_width)

    tp = widths
    kv, w = spec.times_us(tp, tp, 1)
    vs_tp = _panel("tp", tp, tp, tp, 1, kv, w)

    s = 2.0 ** np.arange(14, 23) if contexts is None else np.asarray(contexts, float)
    c_tpa, c_tpf, c_kvp = context_layout or (k_cap, k_cap, 1)
    kv, w = spec.times_us(c_tpa, c_tpf, c_kvp, context=s)
    vs_context = _panel("context", s, c_tpa, c_tpf, c_kvp, kv, w)

    kvp = widths
    kv, w = spec.times_us(k_cap, k_cap * kvp, kvp)
    vs_kvp = _panel("kvp", kvp, k_cap, k_cap * kvp, kvp, kv, w)

    return {"vs_tp": vs_tp, "vs_context": vs_context, "vs_kvp": vs_kvp}
