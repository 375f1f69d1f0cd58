"""Serving frameworks: whose measured kernels price a step, and each framework's defaults.

The same model, layout and batch decode at different speeds under TensorRT-LLM,
SGLang and vLLM because the three run different kernels (GEMM libraries, fused
MoE implementations, attention back-ends, custom all-reduce) and make different
default choices. Everything helixsim knows about those differences is in this
module:

- :data:`DEFAULTS`: per framework, the KV-cache format it uses when the run does
  not say, and which of its measured kernels it runs where the tables hold
  several (decode attention back-end, all-reduce under CUDA graphs). MoE: the
  fastest of the framework's measured fused-MoE kernels for the weight format
  (each framework picks its MoE back-end by format and GPU; the tables hold the
  ones it can pick).
- :class:`BackendKernels`: the kernel model. Every kernel is priced from the
  framework's own measured tables (``hardware/calibration/<hw>/<backend>/``,
  fitted from ``<system>/sglang/`` and ``<system>/vllm/`` of the calibration
  data) where they cover the kernel and format, else from TensorRT-LLM's tables
  (``hardware/calibration/<hw>/``), else the roofline, and records which one
  priced each op (:meth:`BackendKernels.kernel_model`).

What the frameworks' tables do not hold, and therefore always falls back to
TensorRT-LLM's measurements: NCCL collectives other than all-reduce (all-gather,
reduce-scatter, all-to-all), vLLM's MLA decode attention (vLLM measured MLA
only as whole modules), SGLang's MoE all-to-all in the ``moe_alltoall``
layout, and FP4 GEMMs on Hopper.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .calibration.stored import Calibration
from .calibration.kernels import CalibratedKernels
from .errors import SpecError

BACKENDS: tuple[str, ...] = ("trtllm", "sglang", "vllm")
DEFAULT_BACKEND = "trtllm"


@dataclass(frozen=True)
class BackendDefaults:
    """What a framework does when the deployment does not say otherwise."""

    name: str
    label: str
    #: KV-cache format of an FP8 or FP4 checkpoint when the run does not choose one (a BF16
    #: checkpoint always gets a BF16 cache)
    kv_cache_quantized: str
    #: calibration family -> measured ``kernel_source`` values the framework runs, preferred first
    kernel_sources: dict = field(default_factory=dict)
    source: str = ""
    #: whether ``--kv-cache-dtype auto`` takes the KV format the checkpoint's own quantisation
    #: config asks for (``kv_cache_quant_algo``, :data:`CHECKPOINT_KV_CACHE`) before the model dtype
    follows_checkpoint_kv: bool = False
    #: whether DeepSeek-V3/R1's shared expert runs inside the routed MoE kernel when there is no
    #: expert parallelism (:mod:`helixsim.cost.shared_experts`)
    fuses_shared_experts: bool = False
    #: whether an MoE model's dense MLP layers run data-parallel (each attention-DP rank its own
    #: requests, TP over its attention group) under attention DP, rather than gathered and split
    #: over the whole group (:mod:`helixsim.cost.dense_dp`)
    dense_mlp_data_parallel: bool = False
    #: whether a dense Llama or gpt-oss layer's residual adds and RMSNorms run inside its tensor-parallel
    #: all-reduces rather than as kernels of their own (:mod:`helixsim.cost.fused_norms`)
    fuses_allreduce_norm: bool = False
    #: whether an MLA model's absorbed W_UK / W_UV batched matmuls run in BF16 when its checkpoint is FP8 with
    #: 128x128 block scales, rather than in the checkpoint's format (:mod:`helixsim.cost.mla_absorb`)
    mla_absorb_bf16_for_block_fp8: bool = False
    #: which absorbed W_UK / W_UV copies the framework holds beside the checkpoint's ``kv_b_proj`` (memory:
    #: :func:`helixsim.cost.mla_absorb.absorbed_copy_bytes_per_layer`): ``"w_kc+w_vc"`` (SGLang: both halves),
    #: ``"k_b_proj_trans"`` (TensorRT-LLM: W_UK, plus BF16 W_UK and W_UV on SM100 for block FP8), ``""`` none
    mla_absorb_weight_copies: str = ""


DEFAULTS: dict[str, BackendDefaults] = {
    "trtllm": BackendDefaults(
        "trtllm", "TensorRT-LLM", kv_cache_quantized="fp8",
        kernel_sources={"gqa_decode_attention": ("torch_flow",)},
        # TensorRT-LLM's FP8/FP4 serving recipes enable an FP8 KV cache (kv_cache_config dtype fp8),
        # which is what the measured TensorRT-LLM runs use (calibration data README, "KV-cache precision")
        source="TensorRT-LLM serving recipes (FP8 KV cache with FP8/FP4 checkpoints); its custom one-/two-shot "
               "all-reduce or NCCL, whichever is faster; dense MLP data-parallel under attention DP; a dense Llama "
               "or gpt-oss layer's residual adds and RMSNorms inside its TP all-reduces",
        # modeling_deepseekv3.py _compute_mlp_tp_size: 1 with enable_attention_dp (helixsim.cost.dense_dp)
        dense_mlp_data_parallel=True,
        # modeling_llama.py LlamaDecoderLayer: PRE_MLP_FUSION / POST_MLP_FUSION; modeling_gpt_oss.py
        # TransformerBlock.forward_tp (AllReduceFusionOp.RESIDUAL_RMS_NORM)
        fuses_allreduce_norm=True,
        # modules/attention.py MLA.create_weights: k_b_proj_trans, a W_UK parameter of its own (FP8 for a block-FP8
        # kv_b, else BF16), and on SM100 k_b_proj_trans_dequant / v_b_proj_dequant in BF16; v_b_proj views into
        # kv_b_proj, which stays resident (modeling_deepseekv3.py load_weights; helixsim.cost.mla_absorb)
        mla_absorb_weight_copies="k_b_proj_trans"),
    "sglang": BackendDefaults(
        "sglang", "SGLang", kv_cache_quantized="bf16",
        # SM100: TensorRT-LLM's MHA kernels through FlashInfer; SM90: FlashAttention-3; then the others measured
        kernel_sources={"gqa_decode_attention": ("trtllm_mha", "fa3", "flashinfer", "triton"),
                        # decode runs under CUDA graphs: the graph-captured custom all-reduce
                        "allreduce_custom": ("SGLang_CustomAllReduce_graph",)},
        # SGLang docs, "Quantized KV Cache": the cache is kept in the model's precision (BF16) unless
        # --kv-cache-dtype asks for FP8 (https://docs.sglang.io/advanced_features/quantized_kv_cache.html)
        source="SGLang --kv-cache-dtype auto (model precision, BF16; FP8 where the checkpoint's "
               "kv_cache_quant_algo is FP8); CUDA-graph custom all-reduce",
        # SGLang ModelRunner.configure_kv_cache_dtype: with --kv-cache-dtype auto, a quantisation config
        # whose kv_cache_quant_algo is "FP8" gets a float8_e4m3fn cache, anything else the model dtype
        # (sglang python/sglang/srt/model_executor/model_runner.py, 0.5.x)
        follows_checkpoint_kv=True,
        # SGLang DeepseekV2ForCausalLM.determine_num_fused_shared_experts: on by default for 256 routed +
        # 1 shared expert on NVIDIA sm80+, off under MoE EP > 1, DeepEP or TBO, and on sm100, where the
        # flashinfer_trtllm MoE runner it picks turns it off (helixsim.cost.shared_experts)
        fuses_shared_experts=True,
        # SGLang DeepseekV2ForCausalLM.post_load_weights (python/sglang/srt/models/deepseek_v2.py, 0.5.x): on CUDA a
        # kv_b_proj with 128x128 FP8 block scales is dequantised to BF16 (block_quant_dequant(..., torch.bfloat16))
        # before it is split into w_kc / w_vc, unless SGL_USE_DEEPGEMM_BMM=true on a non-Blackwell DeepGEMM (default
        # false); forward_absorb_prepare / forward_absorb_core then run torch.bmm in BF16 (helixsim.cost.mla_absorb)
        mla_absorb_bf16_for_block_fp8=True,
        # same function: w_kc / w_vc are bound as ``.contiguous()`` copies of slices of kv_b (a copy whatever
        # kv_b's format: the slices are strided) and kv_b_proj is never deleted, as the MHA prefill path
        # (forward_normal_prepare: ``kv = self.kv_b_proj(kv_a)[0]``) still runs it
        mla_absorb_weight_copies="w_kc+w_vc"),
    "vllm": BackendDefaults(
        "vllm", "vLLM", kv_cache_quantized="bf16",
        # SM100: FlashInfer with TensorRT-LLM decode kernels; SM90: FlashAttention-3, then FA4 / Triton
        kernel_sources={"gqa_decode_attention": ("vllm_flashinfer_trtllmdecode", "vllm_flash_attn_fa3",
                                                 "vllm_flash_attn_fa4", "vllm_triton_attn"),
                        "allreduce_custom": ("vLLM_custom_graph",),
                        # MXFP4 experts (gpt-oss): vLLM's MXFP4 MoE method picks FlashInfer's TensorRT-LLM MXFP4 x
                        # BF16 kernel on SM100 unless VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1, and OpenAI's Triton
                        # kernels on SM90 (vLLM model_executor/layers/quantization/mxfp4.py, get_mxfp4_backend).
                        # The tables' Marlin MXFP4 kernels serve compressed-tensors checkpoints, which gpt-oss is not
                        "moe": ("vllm_gptossmxfp4moe_flashinfer_trtllm_mxfp4_bf16_trtllmmxfp4expertsmonolithic",
                                "vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic")},
        # vLLM --kv-cache-dtype auto uses the model's activation dtype: a BF16 cache for FP8 and FP4
        # checkpoints unless told --kv-cache-dtype fp8 (vLLM docs, "Quantized KV Cache"; calibration
        # data README: "vLLM keeps a BF16 cache unless told otherwise")
        source="vLLM --kv-cache-dtype auto (BF16 cache for FP8/FP4 checkpoints); CUDA-graph custom all-reduce; "
               "non-expert layers inside each data-parallel rank",
        # vLLM docs, Data Parallel Deployment: DP ranks replicate the non-expert layers (helixsim.cost.dense_dp)
        dense_mlp_data_parallel=True),
}


def defaults_of(k) -> BackendDefaults | None:
    """The defaults of the framework whose tables kernel model ``k`` prices from (TensorRT-LLM's when it names
    none, as the roofline and TensorRT-LLM's own tables do); None for a framework without an entry."""
    return DEFAULTS.get(getattr(k, "backend", "trtllm"))


def check_backend(name: str, field_name: str = "--backend", source: str = "command line") -> str:
    """``name`` if it is a known framework, else a one-line SpecError."""
    if name not in BACKENDS:
        raise SpecError(source, field_name, f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


#: KV-cache format that a built-in model's published checkpoint of a given weight format asks for in
#: its own quantisation config (``hf_quant_config.json`` ``kv_cache_quant_algo``), where it asks for one.
#: NVIDIA's DeepSeek-R1 NVFP4 checkpoints (nvidia/DeepSeek-R1-FP4, -0528-FP4) are written by
#: TensorRT Model Optimizer's examples/deepseek/ptq.py, whose --enable_fp8_kvcache defaults to True
#: and sets kv_cache_quant_algo = "FP8". DeepSeek's own FP8 checkpoint (quant_method fp8, block
#: 128x128) names no KV format, so its cache stays in the model dtype (BF16).
CHECKPOINT_KV_CACHE: dict[tuple[str, str], str] = {("deepseek-r1", "fp4"): "fp8"}


def default_kv_cache(backend: str, weights: str, model: str | None = None) -> str:
    """KV-cache format a framework uses for a checkpoint with ``weights`` when the run does not say.

    ``model`` (a built-in name): a framework that follows the checkpoint's own KV format
    (:attr:`BackendDefaults.follows_checkpoint_kv`) takes :data:`CHECKPOINT_KV_CACHE` where that
    checkpoint names one.
    """
    if weights == "bf16":
        return "bf16"
    defaults = DEFAULTS[check_backend(backend)]
    if defaults.follows_checkpoint_kv and (model, weights) in CHECKPOINT_KV_CACHE:
        return CHECKPOINT_KV_CACHE[(model, weights)]
    return defaults.kv_cache_quantized


# breakdown op of each step function that calls the kernel model (helixsim.cost.step)
STEP_FUNCTION_OP = {
    "qkv_proj_ms": "qkv_proj", "attention_ms": "attention", "kvp_combine_ms": "attn_comm",
    "o_proj_allreduce_ms": "attn_comm", "o_proj_ms": "o_proj", "dense_ffn_ms": "ffn", "moe_ffn_ms": "ffn",
    "dense_ffn_comm_ms": "ffn_comm", "moe_comm_ms": "ffn_comm", "medha_broadcast_ms": "ffn_comm",
    "lm_head_ms": "lm_head", "norms_ms": "overhead", "pp_comm_ms": "pp_comm",
}


def _calling_op() -> str:
    """The breakdown op whose step function is (indirectly) asking for a kernel price."""
    frame = sys._getframe(2)
    while frame is not None:
        op = STEP_FUNCTION_OP.get(frame.f_code.co_name)
        if op is not None and str(frame.f_globals.get("__name__", "")).startswith("helixsim.cost"):
            return op
        frame = frame.f_back
    return "other"


def _traced(family: str, name: str):
    base = getattr(CalibratedKernels, name)

    def method(self, *args, **kwargs):
        self._stack.append([])
        try:
            out = base(self, *args, **kwargs)
        finally:
            covered = self._stack.pop()
        self._note(family, covered)
        return out

    method.__name__ = name
    method.__doc__ = base.__doc__
    return method


class BackendKernels(CalibratedKernels):
    """A framework's measured kernels; TensorRT-LLM's calibrated model (``trtllm``) where they have none."""

    def __init__(self, trtllm, calibration: Calibration, backend: str, deepep_ll=None) -> None:
        super().__init__(trtllm, calibration, kernel_sources=DEFAULTS[backend].kernel_sources)
        self.backend = backend
        #: the framework's measured DeepEP low-latency dispatch/combine (helixsim.calibration.deepep), if any
        self.deepep_ll = deepep_ll
        self._stack: list[list[np.ndarray]] = []
        self._log: dict[str, dict[str, set]] = {}

    def _merge(self, calibrated: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        if self._stack:
            self._stack[-1].append(np.isfinite(calibrated))
        return super()._merge(calibrated, fallback)

    def _note(self, family: str, covered: list[np.ndarray]) -> None:
        own = any(c.any() for c in covered)
        rest = not covered or any((~c).any() for c in covered)
        who = self._log.setdefault(_calling_op(), {}).setdefault(family, set())
        if own:
            who.add(self.backend)
        if rest:
            who.add("trtllm")

    gemm_ms = _traced("gemm", "gemm_ms")
    bmm_ms = _traced("mla_bmm", "bmm_ms")
    gqa_attention_ms = _traced("gqa_decode_attention", "gqa_attention_ms")
    mla_attention_ms = _traced("mla_decode_attention", "mla_attention_ms")
    moe_ms = _traced("moe", "moe_ms")

    def collective_ms(self, op: str, n, message_bytes) -> np.ndarray:
        """All-reduce from the framework's custom all-reduce table; other collectives are NCCL's (TensorRT-LLM data)."""
        out = super().collective_ms(op, n, message_bytes)
        if not ((np.asarray(n) > 1) & (np.asarray(message_bytes) > 0)).any():
            return out   # nothing to communicate: no kernel runs
        table = self._table("allreduce_custom")
        own = op == "all_reduce" and table is not None and any(
            c[0] in self.kernel_sources.get("allreduce_custom", (c[0],)) for c in table.categories())
        self._note({"all_reduce": "allreduce_custom", "p2p": "p2p"}.get(op, "nccl"),
                   [np.ones(1, bool) if own else np.zeros(1, bool)])
        return out

    def _a2a_ms(self, phase, tokens_per_rank, hidden, top_k, ep, dtype, fb, num_experts=0):
        """The framework's measured DeepEP low-latency kernels (:mod:`helixsim.calibration.deepep`) where
        it has them for this (hidden, top-k) and the EP group fits the NVLink domain, else its
        ``moe_alltoall`` table, else TensorRT-LLM's."""
        rest = super()._a2a_ms(phase, tokens_per_rank, hidden, top_k, ep, dtype, fb, num_experts)
        table = self._table("moe_alltoall")
        own = table is not None and any(c[1] == phase for c in table.categories())
        if self.deepep_ll is None:
            self._note("moe_alltoall", [np.ones(1, bool) if own else np.zeros(1, bool)])
            return rest
        shape = np.shape(fb)
        ll = np.broadcast_to(self.deepep_ll.time_ms(phase, tokens_per_rank, hidden, top_k, num_experts), shape)
        ep_a = np.broadcast_to(np.asarray(ep, float), shape)
        tok = np.broadcast_to(np.asarray(tokens_per_rank, float), shape)
        covered = (ep_a > 1) & (tok > 0) & (ep_a <= self.hw.nvlink_domain_gpus) & np.isfinite(ll)
        active = (ep_a > 1) & (tok > 0)
        self._note("moe_alltoall", [covered[active] | own] if active.any() else [])
        return np.where(covered, ll, rest)

    # ------------------------------------------------------------ provenance
    def reset_log(self) -> None:
        self._log = {}

    def kernel_model(self) -> dict[str, dict[str, str]]:
        """Per breakdown op, per measured kernel family it used: whose tables priced it.

        ``"<backend>"``: the framework's own measurements; ``"trtllm (fallback)"``: TensorRT-LLM's
        (or, where those have none either, the roofline); both when part of the configurations fell back.
        """
        out = {}
        for op, fams in sorted(self._log.items()):
            out[op] = {}
            for fam, who in sorted(fams.items()):
                if who == {self.backend}:
                    out[op][fam] = self.backend
                elif self.backend in who:
                    out[op][fam] = f"{self.backend}, trtllm (fallback) for part"
                else:
                    out[op][fam] = "trtllm (fallback)"
        return out


def backend_calibration_path(calibration_root: Path, backend: str) -> Path | None:
    """``<calibration>/<backend>/`` when it holds a fitted calibration, else None."""
    path = Path(calibration_root)
    if path.is_file():
        path = path.parent
    path = path / backend
    return path if (path / "calibration.json").is_file() else None


def backend_kernels(trtllm_kernels, backend: str, calibration_root: Path | None):
    """The kernel model of ``backend`` on top of TensorRT-LLM's (``trtllm_kernels``).

    ``trtllm`` (or an uncalibrated model: there are no framework tables to use) returns
    ``trtllm_kernels`` itself. A framework without fitted tables for this system gets a
    :class:`BackendKernels` with none, so that every op records its fallback.
    """
    check_backend(backend)
    if backend == "trtllm" or not isinstance(trtllm_kernels, CalibratedKernels) or calibration_root is None:
        return trtllm_kernels
    from .calibration.kernels import _load_cached

    path = backend_calibration_path(calibration_root, backend)
    cal = _load_cached(path) if path is not None else Calibration(
        hardware=trtllm_kernels.hw.name, roof=trtllm_kernels.calibration.roof, tables={})
    from .calibration import deepep

    return BackendKernels(trtllm_kernels, cal, backend, deepep.load(path))
