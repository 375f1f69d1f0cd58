"""Model architecture specs (``models/<name>.yaml``) and the quantities derived from them.

Every derived number (parameters per matrix, total and active parameters,
KV elements per token) is computed here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ..errors import SpecError
from ._schema import NONNEG, from_mapping, read_yaml


@dataclass(frozen=True)
class SparseIndexSpec:
    """DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2, HF config ``index_*``).

    Each query token scores every cached token with ``index_heads`` x
    ``index_head_dim`` FP8 products against one cached index key per token, and the
    MLA then attends over the ``index_topk`` best tokens only.
    """

    index_heads: int
    index_head_dim: int
    index_topk: int


@dataclass(frozen=True)
class LinearAttentionSpec:
    """Gated delta-net linear attention (Qwen3-Next / Qwen3.5 ``linear_attention`` layers).

    A fixed-size recurrent state per request per layer (``num_value_heads`` x
    ``key_head_dim`` x ``value_head_dim``) plus a short causal-convolution state;
    nothing grows with the context.
    """

    kind: Literal["gated_delta_net"]
    layers: int
    num_key_heads: int
    key_head_dim: int
    num_value_heads: int
    value_head_dim: int
    conv_kernel: int
    state_dtype: Literal["fp32", "bf16"] = "fp32"

    @property
    def key_width(self) -> int:
        return self.num_key_heads * self.key_head_dim

    @property
    def value_width(self) -> int:
        return self.num_value_heads * self.value_head_dim

    @property
    def conv_channels(self) -> int:
        """Channels of the depthwise causal convolution: q, k and v."""
        return 2 * self.key_width + self.value_width

    @property
    def in_proj_width(self) -> int:
        """Fused input projection: q, k, v, the output gate z (value width) and the b, a gates (one per value head)."""
        return 2 * self.key_width + 2 * self.value_width + 2 * self.num_value_heads

    def state_elements(self) -> int:
        """Recurrent state of one request in one layer: value heads x key dim x value dim."""
        return self.num_value_heads * self.key_head_dim * self.value_head_dim

    def conv_state_elements(self) -> int:
        """Causal-convolution state of one request in one layer: channels x (kernel - 1)."""
        return self.conv_channels * (self.conv_kernel - 1)

    def params(self, hidden: int) -> dict[str, int]:
        """Parameters of one gated delta-net layer, per matrix (Qwen3-Next modelling code's shapes)."""
        return {"in_proj": hidden * self.in_proj_width,
                "conv1d": self.conv_channels * self.conv_kernel,
                "gates": 2 * self.num_value_heads + self.value_head_dim,   # A_log, dt_bias, gated RMSNorm weight
                "out_proj": self.value_width * hidden}


@dataclass(frozen=True)
class AttentionSpec:
    type: Literal["mla", "gqa"]
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    q_lora_rank: Optional[int] = None
    kv_lora_rank: Optional[int] = None
    qk_nope_head_dim: Optional[int] = None
    qk_rope_head_dim: Optional[int] = None
    v_head_dim: Optional[int] = None
    qkv_bias: bool = False
    sliding_window_tokens: Optional[int] = None
    sliding_window_layers: int = field(default=0, metadata=NONNEG)
    output_gate: bool = False            # q_proj also emits a per-head sigmoid gate (Qwen3.5 attn_output_gate)
    dsa: Optional[SparseIndexSpec] = None   # DeepSeek Sparse Attention indexer (MLA layers only)

    @property
    def is_dsa(self) -> bool:
        return self.dsa is not None

    @property
    def is_mla(self) -> bool:
        return self.type == "mla"


@dataclass(frozen=True)
class MoESpec:
    num_experts: int
    experts_per_token: int
    shared_experts: int = field(metadata=NONNEG)
    expert_intermediate_size: int
    shared_expert_intermediate_size: Optional[int] = None   # None: as wide as a routed expert
    #: block-scaled FP4 format of the routed experts when the run stores them in FP4: NVFP4 (E4M3 scale
    #: per 16 values, NVIDIA's FP4 checkpoints) or MXFP4 (E8M0 scale per 32, OCP MX; gpt-oss ships its
    #: experts so). It selects which measured MoE kernels price the experts (helixsim.calibration.kernels).
    fp4_format: Literal["nvfp4", "mxfp4"] = "nvfp4"
    #: whether the checkpoint's FP8 experts carry block scales (DeepSeek-V3/R1, Kimi-K2: one FP32 scale per
    #: 128x128 weight block, config.json ``quantization_config.weight_block_size``) rather than one per tensor.
    #: TensorRT-LLM on Hopper runs such experts only with its block-scale kernel (helixsim.calibration.kernels).
    fp8_block_scales: bool = False

    @property
    def shared_width(self) -> int:
        """Total intermediate width of the shared experts (0 without any)."""
        return self.shared_experts * (self.shared_expert_intermediate_size or self.expert_intermediate_size)


@dataclass(frozen=True)
class FFNSpec:
    dense_layers: int = field(metadata=NONNEG)
    intermediate_size: Optional[int] = None
    moe: Optional[MoESpec] = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hf_id: str
    num_layers: int
    hidden_size: int
    vocab_size: int
    tie_word_embeddings: bool
    attention: AttentionSpec
    ffn: FFNSpec
    mtp_layers: int = field(default=0, metadata=NONNEG)
    linear_attention: Optional[LinearAttentionSpec] = None
    #: The context the checkpoint is trained / configured for (HF max_position_embeddings, after any
    #: rope scaling); None where not published. Longer contexts are simulated with a warning.
    max_context_tokens: Optional[int] = field(default=None, metadata={"tokens": True, "max": 1 << 40})

    # ------------------------------------------------------------ layer mix
    @property
    def linear_layers(self) -> int:
        """Layers whose token mixer is linear attention (fixed-size state, no KV cache)."""
        return 0 if self.linear_attention is None else self.linear_attention.layers

    @property
    def softmax_layers(self) -> int:
        """Layers with a softmax attention over a KV cache (full or sliding window)."""
        return self.num_layers - self.linear_layers

    @property
    def moe_layers(self) -> int:
        return 0 if self.ffn.moe is None else self.num_layers - self.ffn.dense_layers

    @property
    def dense_layers(self) -> int:
        return self.num_layers - self.moe_layers

    @property
    def full_attention_layers(self) -> int:
        """Layers attending over the whole context: the only ones whose KV grows with it."""
        return self.softmax_layers - self.attention.sliding_window_layers

    # ------------------------------------------------------------ attention shapes
    @property
    def q_width(self) -> int:
        """Query width Q x head size of the score products (MLA: nope + rope per head)."""
        a = self.attention
        if a.is_mla:
            return a.num_q_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim)
        return a.num_q_heads * a.head_dim

    @property
    def o_width(self) -> int:
        """Input width of the output projection: heads x value head size."""
        a = self.attention
        return a.num_q_heads * (a.v_head_dim if a.is_mla else a.head_dim)

    @property
    def value_width_per_head(self) -> int:
        """Width of one head's attention output as the decode kernel produces it.

        MLA (absorbed) attends in the 512-wide latent space; TensorRT-LLM's Helix
        exchanges partial outputs in that space (kv_lora_rank per head).
        """
        a = self.attention
        return a.kv_lora_rank if a.is_mla else a.head_dim

    @property
    def kv_elements_per_token_per_layer(self) -> int:
        """KV cache elements per token per layer, all heads: MLA 576 latent; GQA 2 x K x Hsz.
        (DSA's index keys are a separate cache in their own format: :meth:`index_key_elements_per_token`.)"""
        a = self.attention
        if a.is_mla:
            return a.kv_lora_rank + a.qk_rope_head_dim
        return 2 * a.num_kv_heads * a.head_dim

    @property
    def index_key_elements_per_token(self) -> int:
        """DSA indexer keys cached per token per layer (index_head_dim; 0 without DSA)."""
        return self.attention.dsa.index_head_dim if self.attention.is_dsa else 0

    # ------------------------------------------------------------ parameter counts (per layer)
    def attention_params(self) -> dict[str, int]:
        """Parameters of one attention block, per matrix (biases and the MLA norms included)."""
        a, h = self.attention, self.hidden_size
        if a.is_mla:
            out = {
                "q_a": h * a.q_lora_rank + a.q_lora_rank,  # + q_a_layernorm
                "q_b": a.q_lora_rank * self.q_width,
                "kv_a": h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank,  # + kv_a_layernorm
                "kv_b": a.kv_lora_rank * a.num_q_heads * (a.qk_nope_head_dim + a.v_head_dim),
                "o": self.o_width * h,
            }
            if a.is_dsa:
                out.update(self.indexer_params())
            return out
        kv = a.num_kv_heads * a.head_dim
        q_out = self.q_width * (2 if a.output_gate else 1)
        bias = (q_out + 2 * kv) if a.qkv_bias else 0
        o_bias = h if a.qkv_bias else 0
        return {"qkv": h * (q_out + 2 * kv) + bias, "o": self.o_width * h + o_bias}

    def indexer_params(self) -> dict[str, int]:
        """DSA lightning indexer of one layer (DeepSeek-V3.2 inference ``Indexer``): wq_b from the q
        latent, wk from the hidden state, its LayerNorm (weight and bias), and the per-head weights_proj."""
        a, h, d = self.attention, self.hidden_size, self.attention.dsa
        return {"index_q": a.q_lora_rank * d.index_heads * d.index_head_dim,
                "index_k": h * d.index_head_dim + 2 * d.index_head_dim,
                "index_w": h * d.index_heads}

    def mixer_params_total(self) -> int:
        """Token-mixer parameters summed over layers: softmax attention plus linear attention."""
        lin = sum(self.linear_attention.params(self.hidden_size).values()) * self.linear_layers if self.linear_attention else 0
        return sum(self.attention_params().values()) * self.softmax_layers + lin

    def dense_ffn_params(self) -> int:
        """SwiGLU MLP: three H x F matrices."""
        return 3 * self.hidden_size * (self.ffn.intermediate_size or 0)

    def expert_params(self) -> int:
        return 3 * self.hidden_size * self.ffn.moe.expert_intermediate_size if self.ffn.moe else 0

    def shared_expert_params(self) -> int:
        """All shared experts of one MoE layer: a SwiGLU of the shared width."""
        return 3 * self.hidden_size * self.ffn.moe.shared_width if self.ffn.moe else 0

    def router_params(self) -> int:
        return self.hidden_size * self.ffn.moe.num_experts if self.ffn.moe else 0

    def norm_params_per_layer(self) -> int:
        return 2 * self.hidden_size

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """All parameters of the main model (MTP layers excluded), embeddings counted once if tied."""
        attn = self.mixer_params_total()
        dense = self.dense_ffn_params() * self.dense_layers
        moe = 0
        if self.ffn.moe:
            m = self.ffn.moe
            moe = (self.expert_params() * m.num_experts + self.shared_expert_params() + self.router_params()) * self.moe_layers
        norms = self.norm_params_per_layer() * self.num_layers + self.hidden_size
        emb = self.embedding_params() * (1 if self.tie_word_embeddings else 2)
        return attn + dense + moe + norms + emb

    def active_params(self) -> int:
        """Parameters touched per token: top-k + shared experts, router, LM head; not the embedding lookup."""
        attn = self.mixer_params_total()
        dense = self.dense_ffn_params() * self.dense_layers
        moe = 0
        if self.ffn.moe:
            m = self.ffn.moe
            moe = (self.expert_params() * m.experts_per_token + self.shared_expert_params() + self.router_params()) * self.moe_layers
        norms = self.norm_params_per_layer() * self.num_layers + self.hidden_size
        return attn + dense + moe + norms + self.embedding_params()


def check_model(spec: ModelSpec, source: str) -> ModelSpec:
    """Cross-field rules the schema alone cannot state."""
    a = spec.attention
    if a.is_mla:
        for key in ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            if getattr(a, key) is None:
                raise SpecError(source, f"attention.{key}", "required for mla attention")
        if a.num_kv_heads != 1:
            raise SpecError(source, "attention.num_kv_heads", "mla caches one shared latent: must be 1")
    else:
        if a.num_q_heads % a.num_kv_heads:
            raise SpecError(source, "attention.num_kv_heads", f"{a.num_kv_heads} does not divide num_q_heads {a.num_q_heads}")
    if a.sliding_window_layers > spec.num_layers:
        raise SpecError(source, "attention.sliding_window_layers", "exceeds num_layers")
    if a.is_dsa and not a.is_mla:
        raise SpecError(source, "attention.dsa", "the DSA indexer is modelled on MLA attention only")
    if spec.linear_layers + a.sliding_window_layers > spec.num_layers:
        raise SpecError(source, "linear_attention.layers", "with sliding_window_layers exceeds num_layers")
    if spec.full_attention_layers + a.sliding_window_layers == 0:
        raise SpecError(source, "linear_attention.layers", "a model needs at least one softmax-attention layer")
    if a.sliding_window_layers and not a.sliding_window_tokens:
        raise SpecError(source, "attention.sliding_window_tokens", "required when sliding_window_layers > 0")
    f = spec.ffn
    if f.dense_layers > spec.num_layers:
        raise SpecError(source, "ffn.dense_layers", "exceeds num_layers")
    if f.dense_layers and not f.intermediate_size:
        raise SpecError(source, "ffn.intermediate_size", "required when dense_layers > 0")
    if f.moe is None and f.dense_layers != spec.num_layers:
        raise SpecError(source, "ffn.dense_layers", "a model without moe must have every layer dense")
    if f.moe and f.moe.experts_per_token > f.moe.num_experts:
        raise SpecError(source, "ffn.moe.experts_per_token", "exceeds num_experts")
    return spec


def load_model_file(path: Path) -> ModelSpec:
    """Read and check one model YAML file."""
    spec = from_mapping(ModelSpec, read_yaml(path), str(path))
    if spec.name != Path(path).stem:
        raise SpecError(str(path), "name", f"'{spec.name}' must equal the file name '{Path(path).stem}'")
    return check_model(spec, str(path))
