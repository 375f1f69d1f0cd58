"""The measured kernel families: how each data table becomes a :class:`~.table.SweepTable`.

Per family: which columns must match exactly (``cat``), which pick the
nearest measured value (``near``), which are interpolated (``num``), the
sweep axis and its knots, whether the stored value is an efficiency against
a roofline or a plain latency, and how to extrapolate above the last knot.
The column names are those of the calibration data (see
``/work/shared/calibration/README.md`` at build time), plus a few derived
ones made by :meth:`FamilySpec.prepare`:

- ``kv_len`` (attention) = ``step + isl``: the KV length the decode step reads.
- ``bmm_k``, ``bmm_n`` (mla_bmm): the absorbed products' inner and output widths.
- ``gated`` (moe): False for the ``*_nongated`` kernels (two matrices per expert).
- ``moe_ep_size`` (moe_alltoall): renamed from ``ep_size``.
- ``_ms``: the latency in milliseconds (``moe_alltoall`` records microseconds
  in its ``latency_ms`` column: its values equal ``transmit_us``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from .._lazy import pandas as pd  # imported on first use (helixsim._lazy)

from . import roofline as rf

POW2 = lambda lo, hi: [2.0 ** i for i in range(lo, hi + 1)]  # noqa: E731


@dataclass(frozen=True)
class FamilySpec:
    name: str
    cat: tuple[str, ...]
    near: tuple[str, ...]
    num: tuple[str, ...]
    axis: str
    knots: tuple[float, ...]
    mode: str                       # "efficiency" | "latency_ms"
    upper: str                      # "hold" | "linear"
    lam: float
    lam_cross: float = 0.0
    extend: int = 0                 # knots kept beyond a sweep's own data (useful with a cross penalty)
    cross_dims: Optional[tuple[str, ...]] = None   # num columns the cross penalty runs along (None: all)
    monotone: bool = True           # latency non-decreasing along the axis (earlier knots lowered to later ones)
    monotone_in: tuple[str, ...] = ()   # num columns along which latency must not decrease either (raised)
    full_span: bool = False         # store every knot of every sweep (extrapolated by the table's rules)
    tie: Optional[str] = None       # a cat column whose sweeps are fitted jointly, pulled together (lam_tie)
    lam_tie: float = 0.0
    unit_to_ms: float = 1.0
    roof: Optional[Callable[[rf.RoofParams, Mapping], np.ndarray]] = None
    derive: Optional[Callable[[pd.DataFrame], pd.DataFrame]] = None

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.cat + self.near + self.num

    def prepare(self, df: pd.DataFrame, drop_invalid: bool = True) -> pd.DataFrame:
        """Derived columns plus ``_ms`` (latency in ms); for fitting, rows with a non-positive latency are dropped."""
        out = df.copy()
        if self.derive is not None:
            out = self.derive(out)
        if "latency_ms" in out:
            out["_ms"] = out["latency_ms"].astype(float) * self.unit_to_ms
        if not drop_invalid:
            return out.reset_index(drop=True)
        return out[(out["_ms"] > 0) & (out[self.axis] > 0)].reset_index(drop=True)

    def knots_for(self, axis_values: np.ndarray) -> np.ndarray:
        """The configured knots inside the measured range, plus its two ends."""
        lo, hi = float(np.min(axis_values)), float(np.max(axis_values))
        if not self.knots:   # every measured value is a knot
            return np.unique(np.asarray(axis_values, float))
        ks = {k for k in self.knots if lo < k < hi} | {lo, hi}
        return np.array(sorted(ks))


def _attention_len(df: pd.DataFrame) -> pd.DataFrame:
    if "step" in df:
        isl = df["isl"] if "isl" in df else 1
        df["kv_len"] = df["step"] + isl
    return df


def _mla_attention(df: pd.DataFrame) -> pd.DataFrame:
    df = _attention_len(df)
    df["kv_lora_rank"] = 512.0
    df["qk_rope_head_dim"] = 64.0
    return df


MLA_BMM_SHAPES = {"mla_gen_pre": (128.0, 512.0), "mla_gen_post": (512.0, 128.0)}  # (k, n) per head


def _mla_bmm(df: pd.DataFrame) -> pd.DataFrame:
    df["bmm_k"] = df["op_name"].map(lambda o: MLA_BMM_SHAPES[o][0])
    df["bmm_n"] = df["op_name"].map(lambda o: MLA_BMM_SHAPES[o][1])
    return df


def _moe(df: pd.DataFrame) -> pd.DataFrame:
    df["gated"] = ~df["kernel_source"].astype(str).str.contains("nongated")
    return df


def _moe_a2a(df: pd.DataFrame) -> pd.DataFrame:
    df = df.rename(columns={"ep_size": "moe_ep_size"})
    if "comm_dtype" in df:  # vLLM's table records its (BF16) activation payload as "default"
        df["comm_dtype"] = df["comm_dtype"].replace("default", "bfloat16")
    return df


FAMILIES: dict[str, FamilySpec] = {f.name: f for f in [
    FamilySpec("gemm", cat=("gemm_dtype",), near=(), num=("n", "k"), axis="m",
               knots=tuple(POW2(0, 15)), mode="efficiency", upper="hold", lam=0.01, lam_cross=0.01, extend=1,
               roof=rf.gemm_roof),
    FamilySpec("mla_bmm", cat=("op_name", "bmm_dtype"), near=(), num=("num_heads",), axis="num_tokens",
               knots=(), mode="efficiency", upper="hold", lam=0.001, lam_cross=0.05, extend=1, tie="bmm_dtype",
               lam_tie=10.0,
               roof=rf.bmm_roof, derive=_mla_bmm),
    FamilySpec("mla_decode_attention", cat=("kv_cache_dtype",), near=(), num=("num_heads", "batch_size"),
               axis="kv_len", knots=tuple(POW2(0, 17)), mode="efficiency", upper="linear", lam=0.1,
               lam_cross=0.01, cross_dims=("batch_size",), extend=1, monotone_in=("batch_size",), full_span=True,
               roof=rf.mla_attention_roof,
               derive=_mla_attention),
    FamilySpec("gqa_decode_attention", cat=("kernel_source", "kv_cache_dtype", "window_size"), near=("head_dim",),
               num=("batch_size", "num_heads", "num_key_value_heads"), axis="kv_len",
               knots=(2, 32, 128) + tuple(POW2(8, 17)), mode="efficiency", upper="linear", lam=0.1,
               lam_cross=0.03, cross_dims=("batch_size",), extend=1, monotone_in=("batch_size",), full_span=True,
               roof=rf.gqa_attention_roof,
               derive=_attention_len),
    FamilySpec("moe", cat=("moe_dtype", "kernel_source", "distribution"),
               near=("hidden_size", "inter_size", "topk", "num_experts"), num=("moe_tp_size", "moe_ep_size"),
               axis="num_tokens", knots=(1, 4, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384), mode="efficiency",
               upper="hold", lam=0.03,
               lam_cross=0.01, extend=1, roof=rf.moe_roof, derive=_moe),
    FamilySpec("allreduce_custom", cat=("kernel_source", "allreduce_dtype"), near=(), num=("num_gpus",),
               axis="message_size", knots=tuple(POW2(0, 30)), mode="latency_ms", upper="linear", lam=0.01,
               monotone_in=("num_gpus",)),
    FamilySpec("nccl", cat=("op_name", "nccl_dtype"), near=(), num=("num_gpus",), axis="message_size",
               knots=tuple(POW2(0, 30)), mode="latency_ms", upper="linear", lam=0.01, monotone_in=("num_gpus",)),
    FamilySpec("moe_alltoall", cat=("comm_backend", "phase", "comm_dtype"),
               near=("hidden_size", "topk", "num_experts"), num=("moe_ep_size",), axis="num_tokens",
               knots=tuple(POW2(0, 16)), mode="efficiency", upper="hold", lam=0.03, unit_to_ms=1e-3,
               roof=lambda p, c: rf.moe_a2a_roof(p, c, "comm_dtype"), derive=_moe_a2a),
    FamilySpec("moe_alltoall_nvlink", cat=("op_name", "kernel_source", "moe_dtype"),
               near=("hidden_size", "topk", "num_experts"), num=("moe_ep_size",), axis="num_tokens",
               knots=tuple(POW2(0, 16)), mode="efficiency", upper="hold", lam=0.03,
               roof=lambda p, c: rf.moe_a2a_roof(p, c, "moe_dtype")),
]}

# wire bytes per GPU of a message of M bytes over n GPUs, per collective (nccl op names and all_reduce)
WIRE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "all_reduce": lambda m, n: 2.0 * (n - 1.0) / n * m,
    "all_gather": lambda m, n: (n - 1.0) / n * m,
    "reduce_scatter": lambda m, n: (n - 1.0) / n * m,
    "alltoall": lambda m, n: (n - 1.0) / n * m,
}
COLLECTIVE_ELEM_BYTES = {"half": 2.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0, "fp8": 1.0}


def collective_op(family: str, cat: Sequence) -> str:
    """The collective a (family, cat) group measures."""
    return "all_reduce" if family == "allreduce_custom" else str(cat[0])


def collective_dtype(family: str, cat: Sequence) -> str:
    return str(cat[1])
