"""Format of MLA's absorbed W_UK / W_UV batched matmuls, by framework.

Decode with weight absorption multiplies each head's query by W_UK (128 -> 512) before
attention and the attention output by W_UV (512 -> 128) after it, two batched matmuls
over the heads (``mla_bmm`` in the measured tables: ``mla_gen_pre`` and ``mla_gen_post``).
helixsim prices them in the attention projections' format
(:attr:`helixsim.precision.Precision.attention_weights_dtype`), except where the framework
runs them in another one:

- SGLang, FP8 checkpoints with 128x128 block scales (DeepSeek-V3/R1, Kimi-K2: config.json
  ``quantization_config.weight_block_size`` [128, 128], with no module left out, so
  ``kv_b_proj`` is block-scaled too): ``DeepseekV2ForCausalLM.post_load_weights``
  (sglang python/sglang/srt/models/deepseek_v2.py, 0.5.x) dequantises ``kv_b_proj`` to
  BF16 on CUDA before splitting it into ``w_kc`` / ``w_vc``, unless
  ``SGL_USE_DEEPGEMM_BMM=true`` with a non-Blackwell DeepGEMM (off by default), and the
  decode path then calls ``torch.bmm`` in BF16. SGLang's tables measure both kernels
  (``sglang_torch_bmm`` BF16 and ``sglang_sgl_kernel_bmm_fp8``); at 128 heads and 1,024
  tokens on GB200 they take 0.033-0.035 ms and 0.193 ms, and SGLang's whole measured
  decode MLA module of that shape (``sglang/wideep_generation_mla``, FP8 block GEMMs,
  128 heads, batch 1,024, 1 cached token: 0.332 ms) is faster than the two FP8 batched
  matmuls alone (0.386 ms), so the served ones are not the FP8 kernel.

Memory: the frameworks hold absorbed copies *as well as* the checkpoint's ``kv_b_proj``
(:func:`absorbed_copy_bytes_per_layer`, counted in :func:`helixsim.cost.memory.memory_per_gpu`;
``BackendDefaults.mla_absorb_weight_copies`` names each framework's rule):

- SGLang (``"w_kc+w_vc"``). In SGLang 0.5.x ``post_load_weights`` binds ``w_kc`` / ``w_vc`` as
  ``.contiguous()`` copies of strided slices of the (dequantised, for block FP8) ``kv_b`` (a copy of
  their own whatever kv_b's format: BF16 for a block-scaled FP8 kv_b, kv_b's own format otherwise, e.g.
  BF16 in NVIDIA's FP4 checkpoints) and never deletes ``kv_b_proj``: its weight and scales stay resident
  because the MHA prefill path (``forward_normal_prepare`` / ``forward_mha``:
  ``kv = self.kv_b_proj(kv_a)[0]``) still runs it. ``kv_b_proj`` is a ``ColumnParallelLinear`` over
  ``attn_tp_size`` (the heads split over the attention TP group; with DP attention, attn_tp = tp / dp),
  so each GPU holds its heads' share. DeepSeek-R1 (61 layers, 128 heads, kv_lora_rank 512,
  qk_nope_head_dim 128, v_head_dim 128), copies in BF16: 512 x 128 x 256 x 2 bytes = 33.55 MB a layer,
  2.05 GB per GPU at attention TP 1, 0.26 GB at 8.
- TensorRT-LLM (``"k_b_proj_trans"``; tensorrt_llm/_torch/modules/attention.py ``MLA.__init__`` /
  ``create_weights`` and models/modeling_deepseekv3.py ``load_weights``, 1.2-1.3 main). ``kv_b_proj``
  is a column-parallel ``Linear`` over the attention TP group (``tp_size`` 1 under
  ``enable_attention_dp``; the Helix CP ranks are not part of it) and stays resident: the loader copies
  the checkpoint into ``kv_b_proj.weight`` and the context (MHA) path runs it. ``v_b_proj`` is a view
  into that weight (``split_kv_b_proj`` returns ``.view`` / slices of ``module.weight.data``): no bytes of
  its own. ``k_b_proj_trans`` is a parameter of its own, ``[num_heads_tp, kv_lora_rank,
  qk_nope_head_dim]``, filled by ``.copy_`` with W_UK transposed: float8_e4m3fn when kv_b has FP8 block
  scales (with a float32 ``k_b_proj_trans_scale`` of [heads, kv_lora/128, qk_nope/128], 2 KB a layer
  at 128 heads, not counted), else the model dtype (BF16; also for NVIDIA's FP4 checkpoints, whose
  kv_b is BF16). On SM100-family GPUs (``is_sm_100f``: B200, GB200, GB300) with FP8 block scales and the
  default ``use_cute_dsl_blockscaling_bmm=False`` it also keeps BF16 dequantised copies of both halves,
  ``k_b_proj_trans_dequant`` [num_heads_tp, kv_lora, qk_nope] and ``v_b_proj_dequant``
  [num_heads_tp_cp, v_head, kv_lora] (filled by ``weight_dequant`` in the loader), which its decode bmm
  (``fp8_block_scaling_bmm_out``: ``torch.bmm`` on ``mat2_dequant`` on SM100) reads. W_UK copies are split
  over the attention TP group (``num_heads_tp``), W_UV's over TP x Helix CP (``num_heads_tp_cp``), as
  helixsim splits kv_b's halves. DeepSeek-R1: FP8 W_UK 61 x 512 x 128 x 128 x 1 byte = 0.51 GB per GPU
  at attention TP 1 on Hopper, 0.51 + 2.05 = 2.56 GB on Blackwell; BF16 (FP4 checkpoint) 1.02 GB.

vLLM's rule (``MLACommonImpl.process_weights_after_loading``) is not applied: a quantised kv_b is
dequantised to a BF16 tensor whose W_UK_T / W_UV are kept (views in some releases, ``.contiguous()``
copies or pre-allocated parameters in others), an unquantised one is viewed in older releases and copied
in newer ones, so its bytes depend on the release; no vLLM DeepSeek run checks it.

TensorRT-LLM's batched matmuls are priced from its own ``fp8`` rows, which are what it runs: the
calibration tables' ``mla_bmm`` FP8 kernel is ``trtllm_fp8_block_scaling_bmm_out`` on H100/H200 and
``trtllm_bmm_out_dequant_bf16`` (the BF16 bmm on the dequantised copies above) on B200/GB200/GB300.
vLLM's pricing rule is not applied either (its MLA is measured only as whole modules).
"""

from __future__ import annotations

import numpy as np

from ..precision import Precision
from ..specs.model import ModelSpec


def absorbed_bmm_dtype(k, model: ModelSpec, prec: Precision) -> str:
    """Weight format in which the framework of kernel model ``k`` (TensorRT-LLM when it names none)
    runs the absorbed W_UK / W_UV batched matmuls of ``model``
    (:attr:`helixsim.backends.BackendDefaults.mla_absorb_bf16_for_block_fp8`)."""
    from ..backends import defaults_of

    defaults = defaults_of(k)
    if _block_fp8_kv_b(model, prec) and defaults is not None and defaults.mla_absorb_bf16_for_block_fp8:
        return "bf16"
    return prec.attention_weights_dtype


def trtllm_k_b_proj_trans_dtype(model: ModelSpec, prec: Precision) -> str:
    """Format of TensorRT-LLM's ``k_b_proj_trans`` (its W_UK copy): FP8 when ``kv_b_proj`` carries FP8 block
    scales, else the model dtype (``mla_weight_dtype`` in ``MLA.create_weights``; module docstring)."""
    return "fp8" if _block_fp8_kv_b(model, prec) else prec.activations


def _block_fp8_kv_b(model: ModelSpec, prec: Precision) -> bool:
    """Whether kv_b_proj is FP8 with 128x128 block scales (DeepSeek's own FP8 checkpoints)."""
    moe = model.ffn.moe
    return prec.attention_weights_dtype == "fp8" and moe is not None and moe.fp8_block_scales


def absorbed_copy_bytes_per_layer(k, model: ModelSpec, a, prec: Precision) -> np.ndarray:
    """Bytes one GPU holds per MLA layer for the absorbed W_UK / W_UV copies that the framework of kernel
    model ``k`` keeps beside the checkpoint's ``kv_b_proj``, by its
    :attr:`helixsim.backends.BackendDefaults.mla_absorb_weight_copies` rule (source: module docstring):
    SGLang's ``w_kc`` + ``w_vc`` in :func:`absorbed_bmm_dtype`; TensorRT-LLM's ``k_b_proj_trans`` (W_UK in
    :func:`trtllm_k_b_proj_trans_dtype`) plus, on SM100-family GPUs with a block-FP8 kv_b, BF16 dequantised
    W_UK and W_UV; 0 for other frameworks and non-MLA models.
    W_UK (kv_lora x heads x qk_nope) is split over the attention TP ``tpa``, W_UV (kv_lora x heads x v)
    like the output projection (``tpa``, or ``kvp x tpa`` under Helix), as
    :func:`helixsim.cost.memory.attention_weight_elements` splits ``kv_b``'s halves."""
    from ..backends import defaults_of
    from .step import o_proj_tp

    at = model.attention
    defaults = defaults_of(k)
    rule = defaults.mla_absorb_weight_copies if defaults is not None else ""
    if not at.is_mla or not rule:
        return np.zeros(np.shape(a.tpa))
    o_tp = o_proj_tp(a)
    w_uk = at.kv_lora_rank * at.num_q_heads * at.qk_nope_head_dim / a.tpa
    w_uv = at.kv_lora_rank * at.num_q_heads * at.v_head_dim / o_tp
    if rule == "w_kc+w_vc":
        return (w_uk + w_uv) * k.elem_bytes(absorbed_bmm_dtype(k, model, prec))
    if rule == "k_b_proj_trans":
        copies = w_uk * k.elem_bytes(trtllm_k_b_proj_trans_dtype(model, prec))
        if _block_fp8_kv_b(model, prec) and k.hw.fp4_tensor_cores:   # SM100 family: BF16 dequantised copies
            copies = copies + (w_uk + w_uv) * k.elem_bytes("bf16")
        return copies
    raise ValueError(f"unknown mla_absorb_weight_copies rule {rule!r}")
