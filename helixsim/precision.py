"""Number formats and the per-run precision choice.

Bytes per element include block-scale overhead where the format has one:
NVFP4 stores one FP8 (E4M3) scale per 16 FP4 values, i.e. 0.5 + 1/16 =
0.5625 bytes per element (NVIDIA NVFP4 format; the per-tensor FP32 scale
is negligible). FP8 here is per-tensor scaled (E4M3), 1 byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import SpecError, closest

Dtype = Literal["fp4", "fp8", "bf16"]
DTYPES: tuple[str, ...] = ("fp4", "fp8", "bf16")

#: bytes per stored element, scale overhead included (see module docstring)
BYTES_PER_ELEMENT: dict[str, float] = {"fp4": 0.5 + 1.0 / 16.0, "fp8": 1.0, "bf16": 2.0}

#: bytes per element without the block scales (the paper's bytes_param; --ideal uses it)
BYTES_PER_ELEMENT_NO_SCALE: dict[str, float] = {"fp4": 0.5, "fp8": 1.0, "bf16": 2.0}

#: softmax statistics exchanged by Helix: (max, sum) as two fp32 per (token, head)
#: (TensorRT-LLM Helix blog: "Log-sum-exp scalars ... (float32)")
STAT_BYTES_PER_HEAD = 8.0


def check_dtype(value: str, field: str, source: str = "command line") -> str:
    if value not in DTYPES:
        raise SpecError(source, field, f"unknown precision '{value}', choose one of {', '.join(DTYPES)}{closest(value, DTYPES)}")
    return value


@dataclass(frozen=True)
class Precision:
    """Formats of one run.

    weights: storage format of the weights; with ``dense_weights`` set, of the
    routed experts only, and ``dense_weights`` is the format of every other
    linear layer (dense FFN, shared experts, the attention output projection
    unless ``o_proj_weights`` names its, and the attention input projections
    unless ``attention_weights`` names theirs).
    attention_weights: format of the attention's input projections (MLA: the
    fused q_a/kv_a down-projection, q_b, and kv_b, whose halves run as the
    absorbed W_UK/W_UV batched matmuls) where it differs from the other
    non-expert layers. NVIDIA's FP4 DeepSeek-R1 checkpoints keep ``self_attn``
    in BF16: TensorRT Model Optimizer ``examples/deepseek/ptq.py`` turns
    ``*attn*`` quantisation off unless asked and ``quantize_to_nvfp4.py`` writes
    unquantised layers dequantised to BF16 (nvidia/DeepSeek-R1-FP4's
    ``exclude_modules`` lists ``model.layers.N.self_attn*`` for every layer,
    TensorRT-LLM issue #5766); the v2 checkpoints ("additionally quantizes
    the wo module in attention layers", nvidia/DeepSeek-R1-0528-FP4-v2 model
    card; ``ptq.py --enable_wo_quant``) hold the output projection in NVFP4
    like the dense FFN and shared experts.
    o_proj_weights: format of the attention output projection ``wo`` where it
    differs from ``dense_weights``: the v1 checkpoint nvidia/DeepSeek-R1-FP4
    excludes every ``self_attn`` module, ``o_proj`` included, so its ``wo`` is
    BF16 like the input projections (``--o-proj-weights bf16``); the v2
    checkpoints' NVFP4 ``wo`` is the default (the dense format).
    kv_cache: storage format of the KV cache. activations: the format of
    activations and of every communication payload. attention_math: the
    tensor-core format of the attention products (explicit, since absorbed
    MLA with 128 heads is near the compute roof); ``None`` means: fp8 when
    the KV cache is fp8 or fp4 (no FP4 attention kernel is assumed), else bf16.
    gemm_math: format of the projection/FFN GEMMs; ``None`` means the
    weight format (FP4 weights run FP4 tensor cores).
    """

    weights: str = "fp8"
    kv_cache: str = "fp8"
    activations: str = "bf16"
    attention_math: str | None = None
    gemm_math: str | None = None
    dense_weights: str | None = None
    attention_weights: str | None = None
    o_proj_weights: str | None = None

    def __post_init__(self) -> None:
        for name in ("weights", "kv_cache", "activations"):
            check_dtype(getattr(self, name), f"--{name.replace('_', '-')}")
        for name in ("attention_math", "gemm_math", "dense_weights", "attention_weights", "o_proj_weights"):
            value = getattr(self, name)
            if value is not None:
                check_dtype(value, f"--{name.replace('_', '-')}")

    @property
    def attention_math_dtype(self) -> str:
        if self.attention_math is not None:
            return self.attention_math
        return "fp8" if self.kv_cache in ("fp8", "fp4") else "bf16"

    @property
    def dense_weights_dtype(self) -> str:
        """Format of the non-expert linear layers."""
        return self.dense_weights or self.weights

    @property
    def attention_weights_dtype(self) -> str:
        """Format of the attention projections (MLA: also the absorbed W_UK/W_UV batched matmuls)."""
        return self.attention_weights or self.dense_weights_dtype

    @property
    def o_proj_weights_dtype(self) -> str:
        """Format of the attention output projection ``wo`` (the dense format unless ``o_proj_weights`` names one)."""
        return self.o_proj_weights or self.dense_weights_dtype

    @property
    def gemm_math_dtype(self) -> str:
        return self.gemm_math or self.weights

    def bytes(self, which: str, ideal: bool = False) -> float:
        """Bytes per element of ``weights``, ``kv_cache`` or ``activations``."""
        table = BYTES_PER_ELEMENT_NO_SCALE if ideal else BYTES_PER_ELEMENT
        return table[getattr(self, which)]


def default_weights(hw) -> str:
    """The weight format used when none is given, the same in point, sweep and plan: FP4 where the
    GPU has FP4 tensor cores (Blackwell), else FP8 (what those GPUs run as their densest format)."""
    return "fp4" if hw.fp4_tensor_cores else "fp8"
