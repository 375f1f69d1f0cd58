"""Shared experts fused into the routed-expert MoE kernel, as SGLang runs DeepSeek-V3/R1.

SGLang loads DeepSeek-V3/R1's shared expert as one more expert of the fused MoE
kernel (weights ``mlp.shared_experts`` renamed ``mlp.experts.256``; 257 experts,
top-9, the shared one picked by every token) unless fusion is turned off. Its
``DeepseekV2ForCausalLM.determine_num_fused_shared_experts`` (sglang
python/sglang/srt/models/deepseek_v2.py, 0.5.x) keeps fusion on for a config with
256 routed experts and one shared expert on an NVIDIA GPU of compute capability
8.0 or newer, and turns it off under expert parallelism (MoE EP size > 1: it is
only supported there on AMD MI30x), with DeepEP, with two-batch overlap and for
W4AFP8 checkpoints. On Blackwell (sm100) it is off as well: there SGLang's server
arguments pick the ``flashinfer_trtllm`` MoE runner for DeepseekV3ForCausalLM with
FP8 or ModelOpt FP4/FP8 weights when no all-to-all back-end is set, and that runner
sets ``disable_shared_experts_fusion`` (sglang python/sglang/srt/server_args.py,
0.5.x); its measured MoE kernel is ``sglang_flashinfer_trtllm_moe``. helixsim applies
the rule where the framework has it
(:attr:`helixsim.backends.BackendDefaults.fuses_shared_experts`), the layout has no
expert parallelism and the GPU is not a Blackwell one (helixsim's Blackwell systems
are those with FP4 tensor cores: B200, GB200, GB300), i.e. on Hopper, where the
MoE runs SGLang's Triton fused-MoE kernel.

Fused, the shared expert adds no kernel of its own: the two GEMMs of the separate
shared-expert MLP (each paying a launch floor) are replaced by the extra weights and
FLOPs of one expert that every token visits inside the routed kernel, priced at the
roofline with the roofline model's efficiencies and no launch floor
(:func:`fused_shared_expert_ms`). The routed MoE itself stays priced from the
measured kernel at top-8 (the tables hold no top-9 shapes): an extrapolation by
the roofline, flagged here.
"""

from __future__ import annotations

import numpy as np

from ..precision import Precision
from ..specs.model import ModelSpec
from . import terms as t

#: the configs SGLang's fusion accepts (n_routed_experts, n_shared_experts) on NVIDIA GPUs
FUSABLE = {(256, 1)}


def fuses_shared_experts(k, model: ModelSpec, ep) -> np.ndarray:
    """Where the serving framework of ``k`` runs the shared experts inside the routed MoE kernel."""
    from ..backends import defaults_of

    m = model.ffn.moe
    defaults = defaults_of(k)
    rule = defaults is not None and defaults.fuses_shared_experts
    fusable = m is not None and (m.num_experts, m.shared_experts) in FUSABLE and not model.attention.is_dsa
    blackwell = k.hw.fp4_tensor_cores   # sm100: the flashinfer_trtllm runner
    return np.asarray(ep) == 1 if rule and fusable and not blackwell else np.zeros(np.shape(ep), bool)


def fused_shared_expert_ms(k, model: ModelSpec, tokens, tpf, prec: Precision) -> np.ndarray:
    """The shared expert as one more expert of the fused MoE kernel, visited by all ``tokens``:
    its SwiGLU weights (3 x H x F_shared / tpf) read once, the tokens' activations in and out, and
    2 x tokens x 3 x H x F_shared / tpf FLOPs, at the roofline (no launch floor: no kernel of its own)."""
    m = model.ffn.moe
    h, f = model.hidden_size, m.shared_width / np.asarray(tpf, float)
    tok = np.asarray(tokens, float)
    w = prec.weights   # the shared expert is stored as the routed experts are, in the fused kernel's format
    nbytes = 3.0 * h * f * k.elem_bytes(w) + tok * (2.0 * h + 3.0 * f) * k.elem_bytes(prec.activations)
    flops = 2.0 * tok * 3.0 * h * f
    peak = k.hw.dense_tflops.for_dtype(k.math_dtype(w)) * k.eff.gemm_compute
    return np.where(tok > 0, t.roofline_ms(nbytes, flops, k.hbm_gbps, peak), 0.0)
