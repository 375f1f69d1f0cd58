"""RMSNorms fused into the tensor-parallel all-reduce, by framework.

A decoder layer runs two RMSNorms, each with its residual add (helixsim prices them
as two bandwidth kernels, :func:`helixsim.cost.step.norms_ms`). With tensor-parallel
attention each of them directly follows an all-reduce (after the attention output
projection, after the FFN), and the frameworks run the pair as one kernel, the
all-reduce applying residual add and RMSNorm to the reduced tensor before writing it:

- TensorRT-LLM: ``DeepseekV3DecoderLayer`` sets ``PRE_MOE_FUSION`` / ``POST_MOE_FUSION``
  (and the dense layers' ``PRE_MLP_FUSION`` / ``POST_MLP_FUSION``) whenever the mapping
  has TP and attention is not data-parallel (``enable_fusion &= not enable_attention_dp``;
  tensorrt_llm/_torch/models/modeling_deepseekv3.py), and then calls its all-reduce with
  ``AllReduceFusionOp.RESIDUAL_RMS_NORM`` (``..._QUANT_NVFP4`` / ``_QUANT_FP8`` where the next
  GEMM wants quantised input) and the post-attention or the next layer's input norm weight;
- SGLang: ``ServerArgs._handle_model_specific_adjustments`` turns
  ``enable_flashinfer_allreduce_fusion`` on for ``DeepseekV3ForCausalLM`` on SM100 without DP
  attention on one node (python/sglang/srt/server_args.py, 0.5.x), FlashInfer's all-reduce
  with residual add and RMSNorm;
- vLLM: not priced as fused (its fusion pass is not on by default).

The measured all-reduce tables time the plain all-reduce (``AllReduceFusionOp.NONE`` in the
collector), so where a framework fuses, a norm keeps its bytes (the residual and the normalised
output read and written once more, at HBM bandwidth, inside the all-reduce kernel) but loses its
kernel launch. The fusion is a property of the all-reduce op, not of what precedes it, so a norm
is fused wherever the tensor it normalises comes out of an all-reduce over more than one GPU:
the attention-side norm under ``tp`` (TP = tpa) and Helix (TP = N after the all-to-all), the
FFN-side one where the FFN ends in an all-reduce (``tp``: over its tpf x ep GPUs; Helix: a dense
layer over N, an MoE layer only without EP, whose last collective is otherwise the all-gather
over ep). Helix is not measured: that part is an assumption. ``ep`` and Medha layouts (attention
data-parallel, or gathered by point-to-point sends) keep separate norms, as
``enable_fusion &= not enable_attention_dp`` says. Applied to the DeepSeek-V3 architecture (MLA
attention with MoE: DeepSeek-R1/V3, Kimi-K2), the decoder layers the sources above cover; other
architectures keep two norm kernels per layer.
"""

from __future__ import annotations

import numpy as np


def fuses_norms(k, model) -> bool:
    """Whether kernel model ``k``'s framework (TensorRT-LLM when it names none) runs ``model``'s norms
    inside its TP all-reduces at all (per-layout conditions: :func:`norm_launches`)."""
    if model.ffn.moe is None or not model.attention.is_mla:
        return False
    return getattr(k, "backend", "trtllm") in ("trtllm", "sglang")


def norm_launches(k, model, s, tpf, ep) -> np.ndarray:
    """Norm kernels per layer (0 to 2, averaged over dense and MoE layers) left after the framework of
    kernel model ``k`` fuses the norms that follow a TP all-reduce; ``s``: the step shapes."""
    from .step import HELIX, TP

    strategy, o_tp = np.asarray(s.strategy), np.asarray(s.o_tp)
    if not fuses_norms(k, model):
        return np.full(np.shape(o_tp), 2.0)
    tp, helix = strategy == TP, strategy == HELIX
    attn = (tp | helix) & (o_tp > 1)
    ffn_dense = (tp | helix) & (np.asarray(s.n_ffn) > 1)
    ffn_moe = (tp & (np.asarray(s.n_ffn) > 1)) | (helix & (np.asarray(tpf) > 1) & (np.asarray(ep) == 1))
    ffn = (model.dense_layers * ffn_dense + model.moe_layers * ffn_moe) / model.num_layers
    fused = attn + ffn
    if getattr(k, "backend", "trtllm") == "sglang":   # SM100 (the GPUs with FP4 tensor cores), one node
        fused = fused * ((k.hw.dense_tflops.fp4 is not None) & (o_tp <= k.hw.gpus_per_node))
    return 2.0 - fused
