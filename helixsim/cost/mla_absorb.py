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

TensorRT-LLM runs its FP8 block-scaling batched matmul and keeps the checkpoint's format;
vLLM's rule (``MLACommonImpl.process_weights_after_loading``) is not applied (no vLLM
DeepSeek run to check it on, and its MLA is measured only as whole modules).
"""

from __future__ import annotations

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
