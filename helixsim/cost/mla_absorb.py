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

Memory: SGLang holds the absorbed copies *as well as* the checkpoint's ``kv_b_proj``
(:func:`absorbed_copy_bytes_per_layer`, counted in :func:`helixsim.cost.memory.memory_per_gpu`;
``BackendDefaults.mla_absorb_weight_copies``). In SGLang 0.5.x ``post_load_weights`` binds
``w_kc`` / ``w_vc`` as ``.contiguous()`` copies of strided slices of the (dequantised, for block
FP8) ``kv_b`` (a copy of their own whatever kv_b's format: BF16 for a block-scaled FP8 kv_b, kv_b's
own format otherwise, e.g. BF16 in NVIDIA's FP4 checkpoints) and never deletes ``kv_b_proj``: its
weight and scales stay resident because the MHA prefill path (``forward_normal_prepare`` /
``forward_mha``: ``kv = self.kv_b_proj(kv_a)[0]``) still runs it. ``kv_b_proj`` is a
``ColumnParallelLinear`` over ``attn_tp_size`` (the heads split over the attention TP group; with
DP attention, attn_tp = tp / dp), so each GPU holds its heads' share. DeepSeek-R1 (61 layers,
128 heads, kv_lora_rank 512, qk_nope_head_dim 128, v_head_dim 128), copies in BF16:
512 x 128 x 256 x 2 bytes = 33.55 MB a layer, 2.05 GB per GPU at attention TP 1, 0.26 GB at 8.
TensorRT-LLM's ``k_b_proj_trans`` (a transposed W_UK parameter of its own; ``v_b_proj`` views
into ``kv_b_proj``) is not counted (not asked of this rule; half the size, in kv_b's format).

TensorRT-LLM runs its FP8 block-scaling batched matmul and keeps the checkpoint's format;
vLLM's rule (``MLACommonImpl.process_weights_after_loading``) is not applied (no vLLM
DeepSeek run to check it on, and its MLA is measured only as whole modules).
"""

from __future__ import annotations

import numpy as np

from ..precision import Precision
from ..specs.model import ModelSpec


def absorbed_bmm_dtype(k, model: ModelSpec, prec: Precision) -> str:
    """Weight format in which the framework of kernel model ``k`` (TensorRT-LLM when it names none)
    runs the absorbed W_UK / W_UV batched matmuls of ``model``
    (:attr:`helixsim.backends.BackendDefaults.mla_absorb_bf16_for_block_fp8`)."""
    from ..backends import DEFAULTS

    dtype = prec.attention_weights_dtype
    backend = getattr(k, "backend", "trtllm")
    moe = model.ffn.moe
    block_fp8 = moe is not None and moe.fp8_block_scales
    if dtype == "fp8" and block_fp8 and backend in DEFAULTS and DEFAULTS[backend].mla_absorb_bf16_for_block_fp8:
        return "bf16"
    return dtype


def absorbed_copy_bytes_per_layer(k, model: ModelSpec, a, prec: Precision) -> np.ndarray:
    """Bytes one GPU holds per MLA layer for the absorbed W_UK / W_UV copies that the framework of kernel
    model ``k`` keeps beside the checkpoint's ``kv_b_proj``
    (:attr:`helixsim.backends.BackendDefaults.mla_absorb_weight_copies`), in :func:`absorbed_bmm_dtype`
    (source: module docstring, SGLang ``post_load_weights``); 0 for other frameworks and non-MLA models.
    W_UK (kv_lora x heads x qk_nope) is split over the attention TP ``tpa``, W_UV (kv_lora x heads x v)
    like the output projection (``tpa``, or ``kvp x tpa`` under Helix), as
    :func:`helixsim.cost.memory.attention_weight_elements` splits ``kv_b``'s halves."""
    from ..backends import DEFAULTS
    from .step import HELIX

    at = model.attention
    backend = DEFAULTS.get(getattr(k, "backend", "trtllm"))
    if not at.is_mla or backend is None or not backend.mla_absorb_weight_copies:
        return np.zeros(np.shape(a.tpa))
    o_tp = np.where(a.strategy == HELIX, a.kvp * a.tpa, a.tpa)
    w_uk = at.kv_lora_rank * at.num_q_heads * at.qk_nope_head_dim / a.tpa
    w_uv = at.kv_lora_rank * at.num_q_heads * at.v_head_dim / o_tp
    return (w_uk + w_uv) * k.elem_bytes(absorbed_bmm_dtype(k, model, prec))
