"""RMSNorms that the frameworks run inside the tensor-parallel all-reduce (TensorRT-LLM: Llama, gpt-oss and
DeepSeek-V3 decoder layers; SGLang: DeepSeek-V3 on SM100).

A decode layer has two residual adds + RMSNorms: after the attention output
projection and after the MLP. helixsim prices them as two bandwidth-only kernels
per layer (:func:`helixsim.cost.step.norms_ms`: a kernel floor each plus the bytes
they move). TensorRT-LLM does not launch them for the decoder layers below:

- dense Llama, ``LlamaDecoderLayer`` (tensorrt_llm/_torch/models/modeling_llama.py):
  ``__init__`` sets ``PRE_MLP_FUSION = mapping.has_tp() and not enable_attention_dp and
  enable_fusion`` and ``POST_MLP_FUSION = mapping.has_tp() and enable_fusion``, with
  ``enable_fusion`` on unless ``TRTLLM_LLAMA_EAGER_FUSION_DISABLED`` is set and only for
  ``hidden_size > 4096`` ("Disable fusion for small models due to accuracy issues");
  ``forward`` then calls the attention and MLP all-reduces with
  ``AllReduceFusionOp.RESIDUAL_RMS_NORM`` (``..._QUANT_FP8`` / ``..._QUANT_NVFP4`` for FP8 /
  NVFP4 checkpoints);
- gpt-oss, ``TransformerBlock`` (tensorrt_llm/_torch/models/modeling_gpt_oss.py):
  ``is_tp = mapping.has_tp() and not enable_attn_dp`` selects ``forward_tp``, whose two
  all-reduces carry ``AllReduceFusionOp.RESIDUAL_RMS_NORM`` with the post-attention and
  the next layer's norm weights (whatever the hidden size).
- DeepSeek-V3 architecture (MLA + MoE: DeepSeek-R1/V3, Kimi-K2), ``DeepseekV3DecoderLayer``
  (modeling_deepseekv3.py): ``enable_fusion &= not enable_attention_dp`` and
  ``PRE_MOE_FUSION = POST_MOE_FUSION = enable_fusion and mapping.has_tp()`` (the dense layers'
  ``PRE_MLP_FUSION`` / ``POST_MLP_FUSION`` likewise), whatever the hidden size.

SGLang does the same for DeepSeek-V3 on SM100: ``ServerArgs._handle_model_specific_adjustments``
turns ``enable_flashinfer_allreduce_fusion`` on for ``DeepseekV3ForCausalLM`` on SM100 without DP
attention on one node (python/sglang/srt/server_args.py, 0.5.x), and its ``LayerCommunicator`` runs
the post-attention norm and, deferred, the MoE all-reduce with the next layer's input norm as
FlashInfer's fused all-reduce + RMSNorm (priced with SGLang's measured custom all-reduce).

The residual add, the post-attention RMSNorm and the next layer's input RMSNorm are
then done by the all-reduce kernel itself. The all-reduce is priced from
TensorRT-LLM's measured custom all-reduce, which was measured without fusion
(``AllReduceFusionOp.NONE``, aiconfigurator ``collector/collect_all_reduce.py``).
Under the fusion the norms' bytes still move (inside the all-reduce kernel), but
their two kernel launches are gone: :func:`separate_norm_kernels` gives 0 instead
of 2 there, and :func:`helixsim.cost.step.norms_ms` keeps the bytes. Only decoder
layers whose source was read are covered; every other model keeps two kernels.

Only a decode step's all-reduce (a batch of tokens, within the one-/two-shot kernels'
reach) is fused this way: a prefill chunk's all-reduce of thousands of tokens runs on
NCCL, and ``AllreduceOp::runNCCLAllReduce`` (cpp/tensorrt_llm/thop/allreduceOp.cpp)
then runs the norm as a kernel of its own (``fallbackRunSubsequentOps``: "AllReduce +
residual_rms_norm + following operations"), so prefill keeps its two launches.
"""

from __future__ import annotations

import numpy as np

#: TensorRT-LLM fuses a Llama layer's norms only above this hidden size (modeling_llama.py, ``enable_fusion``)
LLAMA_FUSION_MIN_HIDDEN_EXCLUSIVE = 4096
#: norm kernels per layer when nothing is fused: the post-attention and the next layer's input RMSNorm
NORM_KERNELS_PER_LAYER = 2.0


def runs_deepseek_v3_decoder_layer(model) -> bool:
    """The DeepSeek-V3 architecture (MLA attention with MoE, no sparse-attention indexer): DeepSeek-R1/V3,
    Kimi-K2 (TensorRT-LLM's ``DeepseekV3DecoderLayer``, SGLang's ``DeepseekV2DecoderLayer``)."""
    return model.ffn.moe is not None and model.attention.is_mla and not model.attention.is_dsa


def trtllm_fusing_decoder(model) -> str | None:
    """Which of TensorRT-LLM's norm-fusing decoder layers serves ``model`` (module docstring), if any:
    ``"llama"`` for a dense Llama (``LlamaForCausalLM``), ``"gpt-oss"`` for gpt-oss (``GptOssForCausalLM``),
    ``"deepseek-v3"`` for the DeepSeek-V3 architecture (:func:`runs_deepseek_v3_decoder_layer`)."""
    hf = str(model.hf_id).lower()
    if "gpt-oss" in hf:
        return "gpt-oss"
    if runs_deepseek_v3_decoder_layer(model):
        return "deepseek-v3"
    if "llama" in hf and model.ffn.moe is None and not model.attention.is_mla:
        return "llama"
    return None


def fuses_allreduce_norm(k, model) -> bool:
    """Whether the framework of kernel model ``k`` (TensorRT-LLM when it names none) fuses ``model``'s
    residual adds and RMSNorms into its tensor-parallel all-reduces (module docstring)."""
    from ..backends import defaults_of

    defaults = defaults_of(k)
    decoder = trtllm_fusing_decoder(model)
    if defaults is not None and defaults.name == "sglang" and decoder == "deepseek-v3":   # SM100: FP4 tensor cores
        return k.hw.fp4_tensor_cores
    if not (defaults is not None and defaults.fuses_allreduce_norm and decoder):
        return False
    return decoder != "llama" or model.hidden_size > LLAMA_FUSION_MIN_HIDDEN_EXCLUSIVE


def separate_norm_kernels(k, model, strategy: np.ndarray, o_tp: np.ndarray, ep_code: int) -> np.ndarray:
    """Norm kernels launched per layer: 0 where the norms ride in the all-reduce after the output
    projection (an all-reduce over ``o_tp`` > 1 GPUs and no attention data parallelism, i.e. not
    ``strategy == ep_code``: TP, and Helix and Medha, whose layers run the same decoder-layer code;
    Medha at kvp = 1 is TP), else 2."""
    if not fuses_allreduce_norm(k, model):
        return np.asarray(NORM_KERNELS_PER_LAYER)
    fused = (np.asarray(strategy) != ep_code) & (np.asarray(o_tp) > 1)
    if getattr(k, "backend", "trtllm") == "sglang":   # SGLang's fusion only on one node (nnodes == 1)
        fused = fused & (np.asarray(o_tp) <= k.hw.gpus_per_node)
    return np.where(fused, 0.0, NORM_KERNELS_PER_LAYER)
