"""Dense (non-expert) MLP layers under attention data parallelism: data-parallel or gathered, by framework.

An MoE model's dense MLP layers (DeepSeek-R1's first three) have no experts to
spread. Under attention DP (helixsim's ``ep`` strategy) the frameworks differ:

- TensorRT-LLM runs them data-parallel: ``DeepseekV3DecoderLayer._compute_mlp_tp_size``
  returns 1 when ``enable_attention_dp`` ("If using attention DP, the MLP also uses DP
  instead of TP"; tensorrt_llm/_torch/models/modeling_deepseekv3.py), so each rank
  computes the whole MLP for its own requests, with no collective;
- vLLM keeps every non-expert layer inside its data-parallel rank (the DP ranks are
  replicas; only the expert layers form the EP group: vLLM docs, "Data Parallel
  Deployment"), TP over the rank's own attention TP group;
- SGLang gathers the DP groups' tokens and splits the MLP over the whole TP group
  (``--moe-dense-tp-size`` unset: the dense layers take the full TP size), which is
  helixsim's gathered form (:func:`helixsim.cost.step.dense_ffn_ms`).

:func:`dense_ffn_data_parallel` says which one the kernel model's framework runs.
"""

from __future__ import annotations


def dense_ffn_data_parallel(k) -> bool:
    """Whether the framework of kernel model ``k`` (TensorRT-LLM when it names none) runs dense MLP
    layers data-parallel under attention DP (:attr:`helixsim.backends.BackendDefaults.dense_mlp_data_parallel`)."""
    from ..backends import defaults_of

    defaults = defaults_of(k)
    return defaults is not None and defaults.dense_mlp_data_parallel
