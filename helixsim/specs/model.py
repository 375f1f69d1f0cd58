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

    @property
    def is_mla(self) -> bool:
        return self.type == "mla"


@dataclass(frozen=True)
class MoESpec:
    num_experts: int
    experts_per_token: int
    shared_experts: int = field(metadata=NONNEG)
    expert_intermediate_size: int


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

    # ------------------------------------------------------------ layer mix
    @property
    def moe_layers(self) -> int:
        return 0 if self.ffn.moe is None else self.num_layers - self.ffn.dense_layers

    @property
    def dense_layers(self) -> int:
        return self.num_layers - self.moe_layers

    @property
    def full_attention_layers(self) -> int:
        return self.num_layers - self.attention.sliding_window_layers

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
        """KV cache elements per token per layer, all heads: MLA 576 latent; GQA 2 x K x Hsz."""
        a = self.attention
        if a.is_mla:
            return a.kv_lora_rank + a.qk_rope_head_dim
        return 2 * a.num_kv_heads * a.head_dim

    # ------------------------------------------------------------ parameter counts (per layer)
    def attention_params(self) -> dict[str, int]:
        """Parameters of one attention block, per matrix (biases and the MLA norms included)."""
        a, h = self.attention, self.hidden_size
        if a.is_mla:
            return {
                "q_a": h * a.q_lora_rank + a.q_lora_rank,  # + q_a_layernorm
                "q_b": a.q_lora_rank * self.q_width,
                "kv_a": h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank,  # + kv_a_layernorm
                "kv_b": a.kv_lora_rank * a.num_q_heads * (a.qk_nope_head_dim + a.v_head_dim),
                "o": self.o_width * h,
            }
        kv = a.num_kv_heads * a.head_dim
        bias = (self.q_width + 2 * kv) if a.qkv_bias else 0
        o_bias = h if a.qkv_bias else 0
        return {"qkv": h * (self.q_width + 2 * kv) + bias, "o": self.o_width * h + o_bias}

    def dense_ffn_params(self) -> int:
        """SwiGLU MLP: three H x F matrices."""
        return 3 * self.hidden_size * (self.ffn.intermediate_size or 0)

    def expert_params(self) -> int:
        return 3 * self.hidden_size * self.ffn.moe.expert_intermediate_size if self.ffn.moe else 0

    def router_params(self) -> int:
        return self.hidden_size * self.ffn.moe.num_experts if self.ffn.moe else 0

    def norm_params_per_layer(self) -> int:
        return 2 * self.hidden_size

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """All parameters of the main model (MTP layers excluded), embeddings counted once if tied."""
        attn = sum(self.attention_params().values()) * self.num_layers
        dense = self.dense_ffn_params() * self.dense_layers
        moe = 0
        if self.ffn.moe:
            m = self.ffn.moe
            moe = (self.expert_params() * (m.num_experts + m.shared_experts) + self.router_params()) * self.moe_layers
        norms = self.norm_params_per_layer() * self.num_layers + self.hidden_size
        emb = self.embedding_params() * (1 if self.tie_word_embeddings else 2)
        return attn + dense + moe + norms + emb

    def active_params(self) -> int:
        """Parameters touched per token: top-k + shared experts, router, LM head; not the embedding lookup."""
        attn = sum(self.attention_params().values()) * self.num_layers
        dense = self.dense_ffn_params() * self.dense_layers
        moe = 0
        if self.ffn.moe:
            m = self.ffn.moe
            moe = (self.expert_params() * (m.experts_per_token + m.shared_experts) + self.router_params()) * self.moe_layers
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
