"""RMSNorms that TensorRT-LLM runs inside the tensor-parallel all-reduce (Llama decoder layers).

A decode layer of a dense Llama model has two residual adds + RMSNorms: after
the attention output projection and after the MLP. helixsim prices them as two
bandwidth-only kernels per layer (:func:`helixsim.cost.step.norms_ms`: a kernel
floor each plus the bytes they move). TensorRT-LLM does not launch them:

- ``LlamaDecoderLayer.__init__`` (tensorrt_llm/_torch/models/modeling_llama.py)
  sets ``PRE_MLP_FUSION = mapping.has_tp() and not enable_attention_dp and
  enable_fusion`` and ``POST_MLP_FUSION = mapping.has_tp() and enable_fusion``,
  with ``enable_fusion`` on unless ``TRTLLM_LLAMA_EAGER_FUSION_DISABLED`` is set and
  only for ``hidden_size > 4096`` ("Disable fusion for small models due to
  accuracy issues");
- ``LlamaDecoderLayer.forward`` then calls the attention and MLP all-reduces with
  ``AllReduceFusionOp.RESIDUAL_RMS_NORM`` (``..._QUANT_FP8`` / ``..._QUANT_NVFP4``
  for FP8 / NVFP4 checkpoints): the residual add, the post-attention RMSNorm and
  the next layer's input RMSNorm are done by the all-reduce kernel itself.

The all-reduce is priced from TensorRT-LLM's measured custom all-reduce, which
was measured without fusion (``AllReduceFusionOp.NONE``, aiconfigurator
``collector/collect_all_reduce.py``). Under the fusion the norms' bytes still
move (inside the all-reduce kernel), but their two kernel launches are gone:
:func:`separate_norm_kernels` gives 0 instead of 2 there, and
:func:`helixsim.cost.step.norms_ms` keeps the bytes. Only the decoder layer whose
source was read is covered (dense Llama); every other model keeps two kernels.
"""

from __future__ import annotations

import numpy as np

#: TensorRT-LLM fuses the norms only above this hidden size (modeling_llama.py, ``enable_fusion``)
FUSION_MIN_HIDDEN_EXCLUSIVE = 4096
#: norm kernels per layer when nothing is fused: the post-attention and the next layer's input RMSNorm
NORM_KERNELS_PER_LAYER = 2.0


def runs_llama_decoder_layer(model) -> bool:
    """A dense Llama model (Llama 3.x: ``LlamaForCausalLM``, served by TensorRT-LLM's ``LlamaDecoderLayer``)."""
    return model.ffn.moe is None and not model.attention.is_mla and "llama" in str(model.hf_id).lower()


def fuses_allreduce_norm(k, model) -> bool:
    """Whether the framework of kernel model ``k`` (TensorRT-LLM when it names none) fuses ``model``'s
    residual adds and RMSNorms into its tensor-parallel all-reduces (module docstring)."""
    from ..backends import DEFAULTS

    backend = getattr(k, "backend", "trtllm")
    return (backend in DEFAULTS and DEFAULTS[backend].fuses_allreduce_norm and runs_llama_decoder_layer(model)
            and model.hidden_size > FUSION_MIN_HIDDEN_EXCLUSIVE)


def separate_norm_kernels(k, model, strategy: np.ndarray, o_tp: np.ndarray, ep_code: int) -> np.ndarray:
    """Norm kernels launched per layer: 0 where the norms ride in the all-reduce after the output
    projection (an all-reduce over ``o_tp`` > 1 GPUs and no attention data parallelism, i.e. not
    ``strategy == ep_code``: TP, and Helix and Medha, whose layers run the same decoder-layer code;
    Medha at kvp = 1 is TP), else 2."""
    if not fuses_allreduce_norm(k, model):
        return np.asarray(NORM_KERNELS_PER_LAYER)
    fused = (np.asarray(strategy) != ep_code) & (np.asarray(o_tp) > 1)
    return np.where(fused, 0.0, NORM_KERNELS_PER_LAYER)
