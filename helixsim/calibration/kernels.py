"""Calibrated kernel model: measured efficiencies on top of the roofline.

:class:`CalibratedKernels` offers the methods of
:class:`helixsim.cost.kernels.RooflineKernels`, priced from a system's
:class:`~.fit.Calibration` (fitted from real-silicon kernel measurements)
wherever the calibration covers the dtype and kernel family, and by the
roofline object it wraps everywhere else (memory-bound helper kernels, p2p,
FP4 on Hopper, groups larger than the NVLink domain, formats without data).

Per family the time is ``roofline x 1 / efficiency`` with the efficiency
interpolated in log space over the measured shapes (see
:mod:`helixsim.calibration.table`), never below the family's fastest
measured latency. Choices made where the data offer several kernels:

- GEMM ``fp8`` takes the faster of the per-tensor and the block-scaled FP8
  kernels (on GB200 the per-tensor one is twice as slow at small m),
  ``fp4`` the NVFP4 table, ``bf16`` the BF16 table. The measured kernels fix
  their own activation format, so ``act_dtype`` is not used.
- attention: the measured kernels compute in BF16, so ``math_dtype`` is not
  used; a sliding-window layer takes the kernel measured with its window where there is one;
  an FP4 KV cache is priced from the FP8 kernel scaled by bytes. Above the longest
  measured KV length (131,072) time grows linearly in tokens with the
  per-token slope of the last measured doubling.
- MoE: the fastest measured gated kernel for the weight format (FP8: per-tensor
  or block-scaled; a block-scaled checkpoint on Hopper only the block-scaled kernels), among those measured at the asked TP x EP width for the
  nearest measured shape when any is (a width held at a measured edge keeps
  that edge's efficiency, which is optimistic for narrow TP splits), routed with
  ``moe_distribution`` (default ``power_law_1.01``, mildly skewed routing; ``power_law_1.01_eplb``
  after expert load balancing, measured for TensorRT-LLM's wide-EP kernel, the others keeping 1.01),
  plus the router GEMM [tokens, hidden] x [hidden, experts] in BF16. MXFP4 experts (gpt-oss,
  ``fp4_format`` of the model) take only the MXFP4 kernels and NVFP4 experts only the NVFP4 ones where the
  system measured any (:func:`moe_candidates`; before, DeepSeek-R1 at MoE TP 64 was priced by an MXFP4
  kernel measured for gpt-oss's shapes), and only those the
  framework runs where it names them (:data:`helixsim.backends.DEFAULTS`). A TP split of an MXFP4 kernel
  measured for the shape at TP 1 only is priced as the measured EP split of the same width (the same expected
  expert bytes per GPU), not by holding the TP-1 efficiency on t-times thinner GEMMs: on the tables that
  measure both (vLLM's and SGLang's MXFP4 kernels on B200/GB200) the EP split is within 2-19 % (median)
  of the measured TP split up to TP 8 where holding the edge is 20-53 % too fast; on Hopper's Triton
  kernels the EP split is 23-49 % too slow and holding the edge 13-40 % too fast (tests/test_mxfp4_moe.py).
- all_reduce (:mod:`.kernels_comm`): the faster of the TensorRT-LLM custom kernels and NCCL; other
  collectives: NCCL. Payloads are priced with the 2-byte tables.
  Beyond the largest measured GPU count the measured curve at that count is
  continued with the fitted ``alpha(n) + wire(n, M) / bandwidth`` model.
- MoE dispatch/combine: the fastest measured all-to-all (NVLink one- or
  two-sided where measured, else DeepEP normal / low-latency) among those
  measured up to the requested tokens per rank (else the fastest one,
  extrapolated at its last efficiency), continued beyond the measured EP
  sizes with NCCL all-to-all's fitted model. ``moe_alltoall``'s
  ``latency_ms`` column holds microseconds (it equals ``transmit_us``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..cost.kernels import RooflineKernels
from . import roofline as rf
from .extrapolate import predict_family
from . import point as _point
from .families import FAMILIES
from .shape_memo import query_groups, shape_size, unique_args
from .kernels_comm import A2A_DTYPES, NCCL_OPS, NCCL_OPS_INV, CommKernels  # noqa: F401  (re-exported)
from .stored import Calibration

GEMM_DTYPES = {"bf16": ("bfloat16",), "fp8": ("fp8", "fp8_block"), "fp4": ("nvfp4",)}
# FP4 experts: NVFP4 on Blackwell; MXFP4 weight-only (w4a16) or with MXFP8 activations where measured (gpt-oss on Hopper)
MOE_DTYPES = {"bf16": ("bfloat16",), "fp8": ("fp8", "fp8_block"), "fp4": ("nvfp4", "w4a16_mxfp4", "w4a8_mxfp4_mxfp8")}
#: measured MoE formats an MXFP4 checkpoint runs: MXFP4 weights with BF16 or MXFP8 activations (TensorRT-LLM
#: examples/models/core/gpt_oss/README.md, "MoE Support Matrix": BF16 activations on Hopper, MXFP8 on Blackwell)
MOE_MXFP4_DTYPES = ("w4a16_mxfp4", "w4a8_mxfp4_mxfp8")
#: NVFP4 experts (NVIDIA's FP4 checkpoints: E4M3 scale per 16 weights) by the NVFP4 kernels
MOE_NVFP4_DTYPES = ("nvfp4",)
#: block-scaled FP8 experts (DeepSeek's checkpoints: FP32 scale per 128x128 weights) by the block-scale kernels
#: where TensorRT-LLM runs them so on Hopper (:meth:`CalibratedKernels.fp8_block_only`)
MOE_FP8_BLOCK_DTYPES = ("fp8_block",)
BMM_DTYPES = {"bf16": ("bfloat16",), "fp8": ("fp8",)}
# An FP4 KV cache has no measured kernel: it is priced from the measured FP8 kernel at equal efficiency
# against the roofline of FP4's bytes (0.5625 B per element with its block scales), i.e. the FP8 time
# scaled by bytes where the kernel is bandwidth-bound (docs/calibration.md, "Beyond the measured domain").
KV_DTYPES = {"bf16": ("bfloat16",), "fp8": ("fp8",), "fp4": ("fp8",)}
KV_ROOF_DTYPE = {"fp4": "nvfp4"}   # KV format whose bytes the roofline counts, where not the table's own


def moe_candidates(categories: Sequence[tuple], weight_dtype: str, fp4_format: str = "nvfp4",
                   prefer: Sequence[str] = (), fp8_block_only: bool = False) -> list[tuple]:
    """The measured gated MoE kernels (``(moe_dtype, kernel_source, distribution)``) that may price experts
    stored in ``weight_dtype``: MXFP4 experts only by the MXFP4 kernels, NVFP4 only by the NVFP4 ones and,
    with ``fp8_block_only``, FP8 experts only by the block-scaled FP8 kernels (each where the tables hold
    one); where the serving framework names the kernels it runs for the format (``prefer``,
    :data:`helixsim.backends.DEFAULTS`) and the tables hold one of them, only those."""
    own_format = ()
    if weight_dtype == "fp4":   # each block-scaled FP4 format by its own kernels; any FP4 kernel only without them
        own_format = MOE_MXFP4_DTYPES if fp4_format == "mxfp4" else MOE_NVFP4_DTYPES
    elif weight_dtype == "fp8" and fp8_block_only:
        own_format = MOE_FP8_BLOCK_DTYPES
    if own_format:
        dtypes = own_format if any(c[0] in own_format and "nongated" not in c[1] for c in categories) \
            else MOE_DTYPES[weight_dtype]
    else:
        dtypes = MOE_DTYPES.get(weight_dtype, ())
    cats = [c for c in categories if c[0] in dtypes and "nongated" not in c[1]]
    own = [c for c in cats if c[1] in prefer]
    return own or cats



class CalibratedKernels(CommKernels):
    """Kernel model priced from measured efficiencies, falling back to ``fallback`` where there are none."""

    def __init__(self, fallback: RooflineKernels, calibration: Calibration,
                 moe_distribution: str = "power_law_1.01",
                 kernel_sources: Mapping[str, Sequence[str]] | None = None) -> None:
        self.fallback = fallback
        self.calibration = calibration
        self.moe_distribution = moe_distribution
        # family -> measured kernel_source values the serving framework runs, in order of preference
        # (helixsim.backends); a family not named uses every measured kernel as described above
        self.kernel_sources = dict(kernel_sources or {})
        self._p = calibration.roof
        self._memo: dict = {}   # priced kernel shapes, per method and fixed arguments (see unique_args)

    # ------------------------------------------------------------ delegated
    @property
    def hw(self):
        return self.fallback.hw

    @property
    def eff(self):
        return self.fallback.eff

    def elem_bytes(self, dtype: str) -> float:
        return self.fallback.elem_bytes(dtype)

    def math_dtype(self, dtype: str) -> str:
        return self.fallback.math_dtype(dtype)

    def memory_op_ms(self, nbytes, n_kernels: float = 1.0) -> np.ndarray:
        """No measured family: the roofline's bandwidth model."""
        return self.fallback.memory_op_ms(nbytes, n_kernels)

    def __getattr__(self, name: str):
        # anything else the step model may use (link, hbm_gbps, ...) is the roofline's
        if name in ("fallback", "calibration", "_p", "moe_distribution", "kernel_sources", "_memo"):
            raise AttributeError(name)
        return getattr(self.fallback, name)

    # ------------------------------------------------------------ helpers
    def _table(self, family: str):
        return self.calibration.tables.get(family)

    def _first_cat(self, family: str, candidates: Sequence[tuple]) -> tuple | None:
        table = self._table(family)
        if table is None:
            return None
        for cat in candidates:
            if table.has(cat):
                return cat
        return None

    def _query(self, family: str, cat: tuple, cols: Mapping[str, object], const: Mapping[str, object] | None = None,
               shape: tuple | None = None) -> np.ndarray:
        """Calibrated latency (ms), broadcast over ``cols``; NaN where not covered or not positive."""
        table = self._table(family)
        spec = FAMILIES[family]
        if _point.ENABLED and all(np.size(v) == 1 for v in cols.values()):   # one query: calibration.point
            one = np.broadcast_shapes(*(np.shape(v) for v in cols.values())) if shape is None else shape
            if shape_size(one) == 1:
                return np.full(one, _point.query_one(table, spec, cat, cols, const, self._p))
        names = list(cols)
        arrays = [np.asarray(cols[c], float) for c in names]
        shape = np.broadcast_shapes(*(a.shape for a in arrays)) if shape is None else shape
        size = shape_size(shape)
        if table is None or not table.has(cat):
            return np.full(shape, np.nan)
        # one flat column per argument; an argument of one value as a zero-stride view of it (not copied:
        # the table query groups and checks it once)
        flat = {c: (a.ravel() if a.shape == shape else np.broadcast_to(a.reshape(()), (size,)) if a.size == 1
                    else np.broadcast_to(a, shape).ravel()) for c, a in zip(names, arrays)}
        if size == 0:
            return np.full(shape, np.nan)
        valid = None
        for c in spec.num + (spec.axis,):
            v = flat[c]
            one = v.strides == (0,) and size > 1   # one value spread: valid or not at once
            if one:
                v = v[:1]
            if np.minimum.reduce(v) > 0 and np.maximum.reduce(v) < np.inf:   # all finite and positive (NaN fails)
                continue
            if one:
                return np.full(shape, np.nan)
            ok = np.isfinite(v) & (v > 0)
            valid = ok if valid is None else valid & ok
        if valid is None or valid.all():   # every query valid: all of them, as they are
            return predict_family(table, spec, cat, flat, dict(const or {}), self._p,
                                  group=query_groups).reshape(shape)
        out = np.full(size, np.nan)
        idx = np.nonzero(valid)[0]
        if len(idx) == 0:
            return out.reshape(shape)
        sub = {c: v[idx] for c, v in flat.items()}
        out[idx] = predict_family(table, spec, cat, sub, dict(const or {}), self._p, group=query_groups)
        return out.reshape(shape)

    _merge = staticmethod(_point.merge_calibrated)

    # ------------------------------------------------------------ compute kernels
    @unique_args
    def gemm_ms(self, m, n, k, weight_dtype: str, act_dtype: str = "bf16") -> np.ndarray:
        one = _point.ENABLED and np.size(m) == np.size(n) == np.size(k) == 1   # one point
        fb = (_point.fallback_one(self.fallback.gemm_ms, (m, n, k), weight_dtype, act_dtype) if one
              else self.fallback.gemm_ms(m, n, k, weight_dtype, act_dtype))
        table = self._table("gemm")
        cats = [(d,) for d in GEMM_DTYPES.get(weight_dtype, ()) if table is not None and table.has((d,))]
        if not cats:
            return fb
        if one:
            return _point.gemm_one(self, table, cats, fb, m, n, k)
        t = np.full(np.shape(fb), np.nan)
        for cat in cats:   # FP8: the faster of the per-tensor and the block-scaled kernels
            t = np.fmin(t, self._query("gemm", cat, {"m": m, "n": n, "k": k}, {"gemm_dtype": cat[0]},
                                       shape=np.shape(fb)))
        return np.where(fb > 0, self._merge(t, fb), 0.0)

    @unique_args
    def bmm_ms(self, batch, m, n, k, weight_dtype: str, act_dtype: str = "bf16") -> np.ndarray:
        """MLA absorption bmm: the q x W_UK table where k <= n (128 -> 512), else attn x W_UV (512 -> 128)."""
        one = _point.ENABLED and np.size(batch) == np.size(m) == np.size(n) == np.size(k) == 1   # one point
        fb = (_point.fallback_one(self.fallback.bmm_ms, (batch, m, n, k), weight_dtype, act_dtype) if one
              else self.fallback.bmm_ms(batch, m, n, k, weight_dtype, act_dtype))
        dts = BMM_DTYPES.get(weight_dtype, ())
        if one:
            return _point.bmm_one(self, fb, dts, batch, m, n, k)
        shape = np.shape(fb)
        results = {}
        for op in ("mla_gen_pre", "mla_gen_post"):
            cat = self._first_cat("mla_bmm", [(op, d) for d in dts])
            results[op] = (np.full(shape, np.nan) if cat is None else
                           self._query("mla_bmm", cat, {"num_heads": batch, "num_tokens": m, "bmm_n": n, "bmm_k": k},
                                       {"bmm_dtype": cat[1]}, shape=shape))
        pre = np.broadcast_to(np.asarray(k) <= np.asarray(n), shape)
        t = np.where(pre, results["mla_gen_pre"], results["mla_gen_post"])
        return np.where(fb > 0, self._merge(t, fb), 0.0)

    @unique_args
    def gqa_attention_ms(self, batch, q_heads, kv_heads, head_dim: int, tokens, kv_dtype: str,
                         math_dtype: str, window: int = 0) -> np.ndarray:
        """A sliding-window layer (``window`` > 0) takes the kernel measured with that window at the request's
        whole KV length where the framework's table holds one (a windowed kernel is not the full-attention
        kernel over ``window`` tokens: FlashAttention-3 on Hopper takes 15-17 us for a 128-token window at
        4K-8K tokens, where it takes 10-11 us over 127 tokens), else the full-attention kernel over the window."""
        fb = self.fallback.gqa_attention_ms(batch, q_heads, kv_heads, head_dim, tokens, kv_dtype, math_dtype,
                                            window=window)
        table = self._table("gqa_decode_attention")
        if table is None:
            return fb
        kv_cats = [c for c in table.categories() if c[1] in KV_DTYPES.get(kv_dtype, ())]
        windowed = [c for c in kv_cats if window and c[2] == str(int(window))]
        cats = windowed or [c for c in kv_cats if c[2] == "0"]
        if not cats:
            return fb
        exact = [c for c in cats if head_dim in table.column_values(c, "head_dim")]
        pool = exact or cats
        prefer = self.kernel_sources.get("gqa_decode_attention", ("torch_flow",))
        cat = next((c for p in prefer for c in pool if c[0] == p), pool[0])
        kv_len = tokens if windowed or not window else np.minimum(tokens, window)
        t = self._query("gqa_decode_attention", cat,
                        {"batch_size": batch, "num_heads": q_heads, "num_key_value_heads": kv_heads,
                         "kv_len": kv_len, "head_dim": head_dim},
                        {"kv_cache_dtype": KV_ROOF_DTYPE.get(kv_dtype, cat[1]),
                         "window_size": float(window) if windowed else 0.0},
                        shape=np.shape(fb))
        return np.where(fb > 0, self._merge(t, fb), 0.0)

    @unique_args
    def mla_attention_ms(self, batch, q_heads, kv_lora_rank: int, qk_rope_head_dim: int, tokens,
                         kv_dtype: str, math_dtype: str) -> np.ndarray:
        fb = self.fallback.mla_attention_ms(batch, q_heads, kv_lora_rank, qk_rope_head_dim, tokens, kv_dtype, math_dtype)
        cat = self._first_cat("mla_decode_attention", [(d,) for d in KV_DTYPES.get(kv_dtype, ())])
        if cat is None:
            return fb
        t = self._query("mla_decode_attention", cat, {"batch_size": batch, "num_heads": q_heads, "kv_len": tokens},
                        {"kv_cache_dtype": KV_ROOF_DTYPE.get(kv_dtype, cat[0]), "kv_lora_rank": float(kv_lora_rank),
                         "qk_rope_head_dim": float(qk_rope_head_dim)}, shape=np.shape(fb))
        return np.where(fb > 0, self._merge(t, fb), 0.0)

    @unique_args
    def moe_ms(self, tokens, hidden: int, inter: int, top_k: int, num_experts: int, tp, ep,
               weight_dtype: str, act_dtype: str = "bf16", fp4_format: str = "nvfp4",
               fp8_block_scales: bool = False) -> np.ndarray:
        fb = self.fallback.moe_ms(tokens, hidden, inter, top_k, num_experts, tp, ep, weight_dtype, act_dtype,
                                  fp4_format=fp4_format, fp8_block_scales=fp8_block_scales)
        table = self._table("moe")
        if table is None:
            return fb
        shape = np.shape(fb)
        mxfp4 = weight_dtype == "fp4" and fp4_format == "mxfp4"
        kernels = self._moe_kernels(table, weight_dtype, fp4_format, self.fp8_block_only(fp8_block_scales))
        if _point.ENABLED and not mxfp4 and np.size(tokens) == np.size(tp) == np.size(ep) == 1:   # one point
            return _point.moe_one(self, table, kernels, fb, tokens, hidden, inter, top_k, num_experts, tp, ep,
                                  act_dtype)
        best = np.full(shape, np.nan)            # fastest kernel measured at this TP x EP width
        best_any = np.full(shape, np.nan)        # fastest kernel, widths held at a measured edge
        tp_b, ep_b = (np.broadcast_to(np.asarray(a, float), shape).ravel() for a in (tp, ep))
        # the model's shape, one value per column spread over the queries (zero-stride: found nearest once)
        near = [np.broadcast_to(float(v), tp_b.shape) for v in (hidden, inter, top_k, num_experts)]
        for cat in kernels:
            dtype = cat[0]

            def query(moe_tp, moe_ep):
                return self._query("moe", cat, {"num_tokens": tokens, "hidden_size": hidden, "inter_size": inter,
                                                "topk": top_k, "num_experts": num_experts, "moe_tp_size": moe_tp,
                                                "moe_ep_size": moe_ep}, {"moe_dtype": dtype, "gated": True}, shape=shape)

            t = query(tp, ep)
            covered = np.asarray(_point.num_covered(table, cat, near, [tp_b, ep_b])).ravel()
            # an MXFP4 kernel measured for the shape without any TP split (TensorRT-LLM's tables: moe_tp 1
            # only): a TP split is priced as the measured EP split of the same width. (The NVFP4 and FP8
            # tables measure TP splits; their TP-1-only kernel is the wide-EP one, an EP-only kernel.)
            if mxfp4:
                tp_measured = table.num_covered(cat, near, [np.full_like(tp_b, 2.0), np.ones_like(tp_b)])
                as_ep = (~covered & ~tp_measured & (tp_b > 1)
                         & table.num_covered(cat, near, [np.ones_like(tp_b), tp_b * ep_b]))
                if as_ep.any():
                    t = np.where(as_ep.reshape(shape), query(1.0, np.asarray(tp, float) * np.asarray(ep, float)), t)
                covered = covered | as_ep
            covered = covered.reshape(shape)
            best = np.fmin(best, np.where(covered, t, np.nan))
            best_any = np.fmin(best_any, t)
        best = np.where(np.isfinite(best), best, best_any)
        if not np.isfinite(best).any():
            return fb
        router = self.gemm_ms(tokens, num_experts, hidden, "bf16", act_dtype)
        return np.where(fb > 0, self._merge(best + router, fb), 0.0)

    def fp8_block_only(self, fp8_block_scales: bool) -> bool:
        """Whether block-scaled FP8 experts may take only the block-scaled FP8 MoE kernels: where TensorRT-LLM's
        tables price them on Hopper. Its ``CutlassFusedMoE._get_quant_method``
        (tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py) gives FP8 block scales
        ``DeepSeekFP8BlockScalesFusedMoEMethod`` (quantization.py) on SM90 and the per-tensor
        ``FP8QDQFusedMoEMethod`` only to per-tensor checkpoints. Hopper: no FP4 tensor cores. (On SM100 such
        runs evidently used the TRTLLM-gen block-scale MoE, which TensorRT-LLM's tables do not measure: there
        the fastest FP8 kernel stays; a framework's own tables (helixsim.backends) keep their kernels.)"""
        return (fp8_block_scales and getattr(self, "backend", "trtllm") == "trtllm"
                and not self.hw.fp4_tensor_cores)

    @_point.per_calibration
    def _moe_kernels(self, table, weight_dtype: str, fp4_format: str = "nvfp4",
                     fp8_block_only: bool = False) -> list[tuple]:
        """The measured gated MoE kernels of a weight format (:func:`moe_candidates`), each with the routing
        it is priced under."""
        cats = moe_candidates(table.categories(), weight_dtype, fp4_format, self.kernel_sources.get("moe", ()),
                              fp8_block_only)
        out = []
        for dtype, kernel in sorted({(c[0], c[1]) for c in cats}):
            dists = [c[2] for c in cats if c[:2] == (dtype, kernel)]
            base = self.moe_distribution.removesuffix("_eplb")   # EPLB measured only for the wide-EP kernel
            dist = next((d for d in (self.moe_distribution, base, "balanced") if d in dists), dists[0])
            out.append((dtype, kernel, dist))
        return out




_LOADED: dict[tuple[str, float], Calibration] = {}
_MANIFESTS: dict[tuple[str, str], Path] = {}   # a calibration path as asked for -> its resolved calibration.json


def _load_cached(path: Path) -> Calibration:
    """The calibration in folder ``path`` (or of its ``calibration.json``), read once per process: from
    its binary copy ``calibration.npz`` when that matches the readable files, else from the CSVs."""
    try:   # (a relative path is resolved against the working directory)
        asked = (str(path), os.getcwd())
    except OSError:   # the working directory is gone: an absolute path is still read
        asked = None
    manifest = None if asked is None else _MANIFESTS.get(asked)
    if manifest is None:   # (resolving a path is some twenty system calls: once per path asked for)
        resolved = Path(path).resolve()
        manifest = resolved / "calibration.json" if resolved.is_dir() else resolved
        if asked is not None and len(_MANIFESTS) < 256:
            _MANIFESTS[asked] = manifest
    key = (str(manifest), manifest.stat().st_mtime)
    if key not in _LOADED:
        _LOADED[key] = _load(manifest.parent)
    return _LOADED[key]


def _load(folder: Path) -> Calibration:
    from .checks import read_manifest
    from .stored import load_binary

    cal = load_binary(folder, read_manifest(folder))
    if cal is None:
        from .fit import load_calibration

        cal = load_calibration(folder)
    return cal


def calibrated_kernels(roofline: RooflineKernels, calibration: str | Path | None = None):
    """The kernel model for ``roofline.hw``: calibrated where a calibration exists, else ``roofline`` itself.

    calibration: a calibration directory (or its ``calibration.json``), or a
    built-in hardware name; None uses the shipped calibration of the
    hardware if there is one.
    """
    from ..errors import SpecError
    from .stored import builtin_calibration_path

    if calibration is None:
        # a what-if (``base:`` in its hardware file) takes its base system's calibration
        path = builtin_calibration_path(roofline.hw.name) or (
            builtin_calibration_path(roofline.hw.base) if getattr(roofline.hw, "base", None) else None)
        if path is None:
            return roofline
    else:
        path = Path(calibration)
        if not path.exists():
            path = builtin_calibration_path(str(calibration))
            if path is None:
                raise SpecError(str(calibration), "", "no such calibration directory or file")
    try:
        cal = _load_cached(path)
    except SpecError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise SpecError(str(path), "", f"cannot read calibration ({err.__class__.__name__}: {err})") from None
    return CalibratedKernels(roofline, on_peaks_of(cal, roofline.hw))


def on_peaks_of(cal: Calibration, hw) -> Calibration:
    """``cal`` applied to another system ``hw`` (a what-if, or another GPU's tables): the measured kernels keep
    their *efficiencies* against the roofline, now of ``hw``'s peaks, so more HBM bandwidth speeds up the
    bandwidth-bound kernels and more FLOP/s the compute-bound ones. Launch floors and the latency-mode
    collective tables (NCCL, all-reduce) keep their measured times. The name says so."""
    roof = rf.RoofParams.from_hardware(hw)
    if cal.hardware == hw.name or roof == cal.roof:
        return cal
    import dataclasses

    return dataclasses.replace(cal, roof=roof, hardware=f"{cal.hardware} as efficiencies on {hw.name}")
