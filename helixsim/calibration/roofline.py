"""Physical rooflines of the measured kernel families.

Every calibrated table stores an *efficiency*: the ratio of a family's
roofline time to the measured latency. The roofline here is deliberately
plain (bytes over HBM bandwidth against FLOPs over the dense tensor-core
peak, or bytes on the wire over NVLink bandwidth) so that the efficiency is
a smooth function of the shape that interpolates well and extrapolates
physically: held at the edge of the measured range, time then scales with
the roofline.

The constants are kept with the calibration (:class:`RoofParams`) rather
than read from the live hardware file, so a table always reproduces the
latencies it was fitted to even if a datasheet figure is later edited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from ..cost import terms as t
from .._lazy import pandas as pd  # imported on first use (helixsim._lazy)

from ..specs.hardware import HardwareSpec


@dataclass(frozen=True)
class RoofParams:
    """Peaks the efficiencies are relative to (per GPU)."""

    hbm_gbps: float
    bf16_tflops: float
    fp8_tflops: float
    fp4_tflops: float | None
    nvlink_gbps: float

    @classmethod
    def from_hardware(cls, hw: HardwareSpec) -> "RoofParams":
        d = hw.dense_tflops
        return cls(hbm_gbps=float(hw.hbm_bandwidth_gbps), bf16_tflops=float(d.bf16), fp8_tflops=float(d.fp8),
                   fp4_tflops=None if d.fp4 is None else float(d.fp4),
                   nvlink_gbps=float(hw.nvlink_bandwidth_gbps_per_direction))

    def to_dict(self) -> dict:
        return asdict(self)

    def tflops(self, math: str) -> float:
        """Dense peak of a math format; FP4 runs at the FP8 rate on GPUs without FP4 units."""
        if math == "fp4":
            return self.fp4_tflops if self.fp4_tflops is not None else self.fp8_tflops
        return {"bf16": self.bf16_tflops, "fp8": self.fp8_tflops}[math]


# data dtype label -> (weight bytes/element, activation bytes/element, math format)
GEMM_FORMATS: dict[str, tuple[float, float, str]] = {
    "bfloat16": (2.0, 2.0, "bf16"),
    "fp8": (1.0, 1.0, "fp8"),
    "fp8_block": (1.0 + 4.0 / 128.0 ** 2, 1.0, "fp8"),   # fp32 scale per 128x128 weight block
    "nvfp4": (0.5625, 0.5625, "fp4"),                      # FP8 scale per 16 values
    "w4a16_mxfp4": (0.53125, 2.0, "bf16"),                 # E8M0 scale per 32 values, bf16 activations
    "w4a8_mxfp4_mxfp8": (0.53125, 1.0, "fp8"),
    "int4_wo": (0.515625, 2.0, "bf16"),                    # int4 weight-only, bf16 scale per 128 values (SGLang/vLLM Marlin)
}
# storage format of a KV cache or communication payload -> bytes/element
ELEM_BYTES: dict[str, float] = {"bfloat16": 2.0, "half": 2.0, "float16": 2.0, "fp8": 1.0, "int8": 1.0,
                                "nvfp4": 0.5625, "fp4": 0.5625}


def _a(cols: Mapping, name: str) -> np.ndarray:
    return np.asarray(cols[name], dtype=float)


def _lookup(values, mapping: Mapping) -> np.ndarray:
    """Map a dtype label, or an array of them, through ``mapping``."""
    if isinstance(values, str):
        return np.asarray(mapping[values])
    arr = np.asarray(values, dtype=object)
    uniq = np.unique(arr.ravel())
    missing = [u for u in uniq if u not in mapping]
    if missing:
        raise KeyError(f"unknown dtype {missing[0]!r}")
    if len(uniq) == 1:
        return np.full(arr.shape, mapping[uniq[0]], dtype=object)
    return pd.Series(arr.ravel()).map(mapping).to_numpy().reshape(arr.shape)


#: GEMM_FORMATS by field (weight bytes, activation bytes, math format), each a label -> value map (formed once:
#: a calibrated table query reads them at every call)
_FORMAT_FIELDS = tuple({k: v[i] for k, v in GEMM_FORMATS.items()} for i in range(3))


def _fmt(values, index: int):
    return _lookup(values, _FORMAT_FIELDS[index])


def _roof(p: RoofParams, nbytes, flops, math) -> np.ndarray:
    """max(bytes / HBM bandwidth, FLOPs / peak) in ms; ``math`` may be an array of format names."""
    if isinstance(math, np.ndarray) and math.ndim == 0 and math.dtype.kind == "U":
        math = str(math)   # one format label (as :func:`_fmt` gives it for one dtype)
    peak = (np.asarray(p.tflops(math)) if isinstance(math, str)   # (one format: its own peak)
            else _lookup(math, {m: p.tflops(m) for m in ("bf16", "fp8", "fp4")})).astype(float)
    return t.roofline_ms(nbytes, flops, p.hbm_gbps, peak)


def gemm_roof(p: RoofParams, cols: Mapping) -> np.ndarray:
    """[m,k] x [k,n]: the weight once plus the activations in and out (bf16 out)."""
    m, n, k = _a(cols, "m"), _a(cols, "n"), _a(cols, "k")
    dt = cols["gemm_dtype"]
    wb = _fmt(dt, 0).astype(float)
    ab = _fmt(dt, 1).astype(float)
    math = _fmt(dt, 2)
    return _roof(p, k * n * wb + m * k * ab + m * n * 2.0, t.gemm_flops(m, n, k), math)


def bmm_roof(p: RoofParams, cols: Mapping) -> np.ndarray:
    """num_heads independent [tokens, bmm_k] x [bmm_k, bmm_n] products (MLA weight absorption)."""
    h, m, n, k = _a(cols, "num_heads"), _a(cols, "num_tokens"), _a(cols, "bmm_n"), _a(cols, "bmm_k")
    dt = cols["bmm_dtype"]
    wb = _fmt(dt, 0).astype(float)
    math = _fmt(dt, 2)
    return _roof(p, h * t.gemm_bytes(m, n, k, wb, 2.0), h * t.gemm_flops(m, n, k), math)


def mla_attention_roof(p: RoofParams, cols: Mapping) -> np.ndarray:
    """Absorbed MLA decode: the (lora + rope)-wide latent read once; QK over lora+rope, PV over lora; bf16 math."""
    b, h, s = _a(cols, "batch_size"), _a(cols, "num_heads"), _a(cols, "kv_len")
    lora, rope = _a(cols, "kv_lora_rank"), _a(cols, "qk_rope_head_dim")
    kvb = _lookup(cols["kv_cache_dtype"], ELEM_BYTES).astype(float)
    return _roof(p, t.kv_read_bytes(b, s, t.mla_kv_elements_per_token(lora, rope), kvb),
                 t.mla_attention_flops(b, h, lora, rope, s), "bf16")


def gqa_attention_roof(p: RoofParams, cols: Mapping) -> np.ndarray:
    """GQA decode: K and V of kv heads read once; 4 B Q Hsz S FLOPs; a sliding window caps S; bf16 math."""
    b, q, kvh, hd = _a(cols, "batch_size"), _a(cols, "num_heads"), _a(cols, "num_key_value_heads"), _a(cols, "head_dim")
    s, w = _a(cols, "kv_len"), _a(cols, "window_size")
    s = np.where(w > 0, np.minimum(s, np.where(w > 0, w, 1.0)), s)
    kvb = _lookup(cols["kv_cache_dtype"], ELEM_BYTES).astype(float)
    return _roof(p, t.kv_read_bytes(b, s, t.gqa_kv_elements_per_token(kvh, hd), kvb),
                 t.gqa_attention_flops(b, q, hd, s), "bf16")


def moe_roof(p: RoofParams, cols: Mapping) -> np.ndarray:
    """Routed experts on one GPU of a tp x ep grid, ``num_tokens`` entering the layer (all EP ranks).

    Balanced routing: tokens x topk / ep expert-token pairs here; only the
    local experts that receive a token are read (uniform-routing estimate).
    Gated (SwiGLU) experts have three H x F matrices, non-gated two.
    """
    tok, hid, inter = _a(cols, "num_tokens"), _a(cols, "hidden_size"), _a(cols, "inter_size")
    k, e = _a(cols, "topk"), _a(cols, "num_experts")
    tp, ep = _a(cols, "moe_tp_size"), _a(cols, "moe_ep_size")
    gated = np.asarray(cols["gated"], dtype=bool) if "gated" in cols else True
    mats = np.where(gated, 3.0, 2.0)
    local = np.maximum(e / ep, 1.0)
    pairs = tok * k / ep
    touched = local * (1.0 - (1.0 - 1.0 / local) ** pairs)
    touched = np.where(local <= 1.0, np.minimum(pairs, 1.0), touched)
    f = inter / tp
    dt = cols["moe_dtype"]
    wb = _fmt(dt, 0).astype(float)
    math = _fmt(dt, 2)
    nbytes = touched * mats * hid * f * wb + pairs * (2.0 * hid + mats * f) * 2.0
    return _roof(p, nbytes, 2.0 * pairs * mats * hid * f, math)


def moe_a2a_roof(p: RoofParams, cols: Mapping, dtype_col: str) -> np.ndarray:
    """Token dispatch/combine: tokens x topk hidden vectors, (ep-1)/ep of them leave the GPU, over NVLink."""
    tok, hid, k, ep = _a(cols, "num_tokens"), _a(cols, "hidden_size"), _a(cols, "topk"), _a(cols, "moe_ep_size")
    eb = _lookup(cols[dtype_col], ELEM_BYTES).astype(float)
    wire = t.all_to_all_bytes_on_wire(tok * k * hid * eb, np.maximum(ep, 1.0))
    return t.transfer_ms(np.maximum(wire, 1.0), p.nvlink_gbps)
