"""Hugging Face ``config.json`` -> :class:`ModelSpec`, read by architecture.

The structure comes from the config's own fields, not from the model's name:

- token mixer per layer: MLA when ``kv_lora_rank`` is present (DSA sparse when
  ``index_topk`` is too), else GQA; ``layer_types`` (full_attention,
  sliding_attention, linear_attention, chunked_attention) or, where a config has
  none, ``full_attention_interval`` (Qwen3-Next) and ``attention_chunk_size``
  (Llama 4) say which layers are which; gated delta-net shapes from ``linear_*``;
- feed-forward per layer: routed experts from ``n_routed_experts`` /
  ``num_experts`` / ``num_local_experts``, shared experts from ``n_shared_experts``
  / ``shared_expert_intermediate_size``, dense layers from
  ``first_k_dense_replace``, ``moe_layer_freq``, ``mlp_only_layers``,
  ``decoder_sparse_step`` or ``interleave_moe_layer_step``.

An architecture name only selects a small dialect: where the expert width lives,
whether a shared expert is implicit (Llama 4), and whether the text model sits
under ``text_config`` (multimodal wrappers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import SpecError, closest
from ..safe_io import loads_json, read_input_text, short
from ._schema import from_mapping
from .model import ModelSpec, check_model
from .strict_yaml import MAX_YAML_BYTES

#: Most decoder layers a config may declare (today's largest models have about 130).
MAX_LAYERS = 100_000
_MIXERS = ("full_attention", "sliding_attention", "chunked_attention", "linear_attention")
# any one of these fields marks the structure; the others are then required
_MLA_KEYS = ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim")
_DSA_KEYS = ("index_topk", "index_n_heads", "index_head_dim")
_EXPERT_KEYS = ("n_routed_experts", "num_experts", "num_local_experts")
_MOE_KEYS = _EXPERT_KEYS + ("num_experts_per_tok", "moe_intermediate_size")


def _has_any(c: "_Config", keys: tuple[str, ...]) -> bool:
    return any(k in c.data for k in keys)


class _Config:
    """Typed access to config.json fields with file-and-field errors (``prefix`` for nested configs)."""

    def __init__(self, data: dict, source: str, prefix: str = ""):
        self.data, self.source, self.prefix = data, source, prefix

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(self.source, self.prefix + key, problem)

    def int(self, key: str, default: Any = ...) -> int:
        value = self.data.get(key, default)
        if value is ...:
            raise self.error(key, "missing required key")
        if value is None:
            return None
        # is_integer() is False for NaN and inf; math.isfinite() would overflow on a 400-digit integer
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise self.error(key, f"expected a whole number, got {value!r}")
        if value <= 0:
            raise self.error(key, f"must be > 0, got {value!r}")
        return int(value)

    def count(self, key: str, default: int = 0) -> int:
        """A whole number that may be zero."""
        value = self.data.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(key, f"expected a whole number >= 0, got {value!r}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def step(self, key: str, layers: int, default: Any = 1) -> int:
        """A layer interval (every n-th layer): a whole number from 1 to the layer count."""
        value = self.int(key, default)
        if value > layers:
            raise self.error(key, f"must be <= num_hidden_layers ({layers}), got {value!r}")
        return value

    def index_list(self, key: str, layers: int) -> list[int]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < layers
                                                   for i in value):
            raise self.error(key, f"expected a list of layer indices 0..{layers - 1}")
        return value

    def sub(self, key: str) -> "_Config":
        """The nested text-model config of a multimodal wrapper."""
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self.error(key, "missing or not an object (the text model's config)")
        return _Config(value, self.source, f"{self.prefix}{key}.")


@dataclass(frozen=True)
class Dialect:
    """What an architecture name adds to its fields."""

    text_config: bool = False            # the text model's fields sit under "text_config"
    expert_width_key: str = "moe_intermediate_size"
    dense_width_key: str = "intermediate_size"
    implicit_shared_expert: bool = False  # Llama 4: every MoE layer has one shared expert of the expert width


# ------------------------------------------------------------------ token mixers

def _layer_kinds(c: _Config, layers: int) -> dict[str, int]:
    """How many layers of each mixer kind: from layer_types, else the interval fields."""
    types = c.data.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers or not all(isinstance(x, str) for x in types):
            raise c.error("layer_types", f"expected a list of {layers} layer kinds")
        unknown = sorted(set(types) - set(_MIXERS))
        if unknown:
            raise c.error("layer_types", f"unsupported layer kind '{unknown[0]}'{closest(unknown[0], _MIXERS)}; "
                                         f"supported: {', '.join(_MIXERS)}")
        return {k: types.count(k) for k in _MIXERS}
    kinds = dict.fromkeys(_MIXERS, 0)
    if "full_attention_interval" in c.data:      # Qwen3-Next: every n-th layer full attention, the rest linear
        n = c.step("full_attention_interval", layers, ...)
        kinds["full_attention"] = layers // n
        kinds["linear_attention"] = layers - layers // n
    elif "attention_chunk_size" in c.data and c.data.get("attention_chunk_size") is not None:
        # Llama 4 (iRoPE): layers with RoPE attend within chunks, every n-th layer (no RoPE) globally.
        # HF Llama4TextConfig: no_rope_layers defaults to (i + 1) % no_rope_layer_interval != 0, interval 4.
        rope = c.data.get("no_rope_layers")
        if rope:
            if not isinstance(rope, list) or len(rope) != layers:
                raise c.error("no_rope_layers", f"expected a list of {layers} flags")
            chunked = sum(1 for x in rope if x)
        else:
            n = c.step("no_rope_layer_interval", layers, 4)
            chunked = layers - layers // n
        kinds["chunked_attention"] = chunked
        kinds["full_attention"] = layers - chunked
    elif c.bool("use_sliding_window", True) and c.int("sliding_window", None) is not None:
        kinds["sliding_attention"] = layers       # Mistral-style: every layer windowed
    else:
        kinds["full_attention"] = layers
    return kinds


def _mla(c: _Config) -> dict:
    attn = {"type": "mla", "num_q_heads": c.int("num_attention_heads"), "num_kv_heads": 1,
            "head_dim": c.int("qk_nope_head_dim"), "q_lora_rank": c.int("q_lora_rank"),
            "kv_lora_rank": c.int("kv_lora_rank"), "qk_nope_head_dim": c.int("qk_nope_head_dim"),
            "qk_rope_head_dim": c.int("qk_rope_head_dim"), "v_head_dim": c.int("v_head_dim"),
            "qkv_bias": c.bool("attention_bias", False)}
    if _has_any(c, _DSA_KEYS):
        attn["dsa"] = {"index_heads": c.int("index_n_heads"), "index_head_dim": c.int("index_head_dim"),
                       "index_topk": c.int("index_topk")}
    return attn


def _gqa(c: _Config, kinds: dict[str, int]) -> dict:
    heads = c.int("num_attention_heads")
    head_dim = c.int("head_dim", None) or c.int("hidden_size") // heads
    attn = {"type": "gqa", "num_q_heads": heads, "num_kv_heads": c.int("num_key_value_heads", heads),
            "head_dim": head_dim, "qkv_bias": c.bool("attention_bias", False),
            "output_gate": c.bool("attn_output_gate", False)}
    if kinds["sliding_attention"]:
        attn["sliding_window_tokens"] = c.int("sliding_window")
        attn["sliding_window_layers"] = kinds["sliding_attention"]
    if kinds["chunked_attention"]:
        # a chunked layer attends to at most attention_chunk_size tokens and caches no more: priced as a
        # window of that size (an upper bound: within a chunk the span averages half of it)
        attn["sliding_window_tokens"] = c.int("attention_chunk_size")
        attn["sliding_window_layers"] = kinds["chunked_attention"]
    return attn


def _linear(c: _Config, layers: int) -> dict:
    dtype = c.data.get("mamba_ssm_dtype", "float32")
    if dtype not in ("float32", "bfloat16"):
        raise c.error("mamba_ssm_dtype", f"expected float32 or bfloat16, got {dtype!r}")
    return {"kind": "gated_delta_net", "layers": layers, "num_key_heads": c.int("linear_num_key_heads"),
            "key_head_dim": c.int("linear_key_head_dim"), "num_value_heads": c.int("linear_num_value_heads"),
            "value_head_dim": c.int("linear_value_head_dim"), "conv_kernel": c.int("linear_conv_kernel_dim"),
            "state_dtype": "fp32" if dtype == "float32" else "bf16"}


# ------------------------------------------------------------------ feed-forward

def _moe_layers(c: _Config, layers: int, dialect: Dialect) -> int:
    """How many layers carry the routed experts (the others are dense MLPs)."""
    first_dense = c.count("first_k_dense_replace", 0)
    if first_dense > layers:
        raise c.error("first_k_dense_replace", f"exceeds num_hidden_layers ({layers})")
    freq = c.step("moe_layer_freq", layers)                      # DeepSeek: MoE where i >= first_k and i % freq == 0
    sparse_step = c.step("decoder_sparse_step", layers)          # Qwen-MoE: MoE where (i + 1) % step == 0
    interleave = c.step("interleave_moe_layer_step", layers)     # Llama 4: MoE where (i + 1) % step == 0
    dense_only = set(c.index_list("mlp_only_layers", layers))
    return sum(1 for i in range(layers)
               if i >= first_dense and i % freq == 0 and (i + 1) % sparse_step == 0
               and (i + 1) % interleave == 0 and i not in dense_only)


def _ffn(c: _Config, layers: int, dialect: Dialect) -> dict:
    if not _has_any(c, _MOE_KEYS):
        return {"dense_layers": layers, "intermediate_size": c.int(dialect.dense_width_key)}
    experts_key = next((k for k in _EXPERT_KEYS if k in c.data), None)
    if experts_key is None:
        raise c.error(" / ".join(_EXPERT_KEYS), "missing required key (the number of routed experts)")
    moe_layers = _moe_layers(c, layers, dialect)
    expert_width = c.int(dialect.expert_width_key)
    shared, shared_width = c.count("n_shared_experts", 0), None
    for key in ("shared_expert_intermediate_size", "shared_intermediate_size"):   # Qwen-MoE, MiniMax
        width = c.count(key, 0)
        if width:
            shared, shared_width = max(shared, 1), width
    if dialect.implicit_shared_expert:
        shared = 1
    dense_layers = layers - moe_layers
    return {"dense_layers": dense_layers,
            "intermediate_size": c.int(dialect.dense_width_key) if dense_layers else None,
            "moe": {"num_experts": c.int(experts_key), "experts_per_token": c.int("num_experts_per_tok"),
                    "shared_experts": shared, "expert_intermediate_size": expert_width,
                    "shared_expert_intermediate_size": shared_width if shared_width != expert_width else None,
                    "fp4_format": _expert_fp4_format(c), "fp8_block_scales": _expert_fp8_block_scales(c)}}


def _expert_fp4_format(c: _Config) -> str:
    """MXFP4 where the checkpoint says its quantisation method is mxfp4 (gpt-oss: config.json
    ``quantization_config.quant_method``), else NVFP4 (NVIDIA's FP4 checkpoints)."""
    quant = c.data.get("quantization_config")
    if quant is None:
        return "nvfp4"
    if not isinstance(quant, dict):
        raise c.error("quantization_config", f"expected an object, got {type(quant).__name__}")
    method = quant.get("quant_method")
    if method is not None and not isinstance(method, str):
        raise c.error("quantization_config.quant_method", f"expected a string, got {type(method).__name__}")
    return "mxfp4" if isinstance(method, str) and method.lower() == "mxfp4" else "nvfp4"


def _expert_fp8_block_scales(c: _Config) -> bool:
    """Whether the checkpoint is FP8 with block scales: ``quantization_config.quant_method`` fp8 with a
    ``weight_block_size`` (DeepSeek-V3/R1 and Kimi-K2: [128, 128])."""
    quant = c.data.get("quantization_config")
    if not isinstance(quant, dict):   # absent (a BF16 checkpoint); a wrong type is reported by _expert_fp4_format
        return False
    method = quant.get("quant_method")
    return isinstance(method, str) and method.lower() == "fp8" and quant.get("weight_block_size") is not None


# ------------------------------------------------------------------ one builder for every architecture

def _builder(dialect: Dialect) -> Callable[[_Config, str], dict]:
    def build(top: _Config, name: str) -> dict:
        c = top.sub("text_config") if dialect.text_config else top
        layers = c.int("num_hidden_layers")
        if layers > MAX_LAYERS:   # the per-layer kinds are counted layer by layer
            raise c.error("num_hidden_layers", f"must be <= {MAX_LAYERS:,}, got {layers!r}")
        kinds = _layer_kinds(c, layers)
        tie = top.bool("tie_word_embeddings", False)         # a wrapper's own flag, unless the text model sets one
        tie = c.bool("tie_word_embeddings", tie) if c is not top else tie
        mtp = c.count("num_nextn_predict_layers", 0) or c.count("mtp_num_hidden_layers", 0)
        spec = {"name": name, "hf_id": top.data.get("_name_or_path") or name, "num_layers": layers,
                "hidden_size": c.int("hidden_size"), "vocab_size": c.int("vocab_size"),
                "tie_word_embeddings": tie, "mtp_layers": mtp,
                "max_context_tokens": c.int("max_position_embeddings", None)}
        if _has_any(c, _MLA_KEYS):
            if kinds["full_attention"] != layers:
                raise c.error("layer_types", "MLA with other layer kinds is not supported")
            spec["attention"] = _mla(c)
        else:
            spec["attention"] = _gqa(c, kinds)
        if kinds["sliding_attention"] and kinds["chunked_attention"]:
            raise c.error("layer_types", "sliding and chunked layers in one model are not supported")
        if kinds["linear_attention"]:
            spec["linear_attention"] = _linear(c, kinds["linear_attention"])
        spec["ffn"] = _ffn(c, layers, dialect)
        return spec
    return build


_PLAIN, _WIDE_EXPERTS = Dialect(), Dialect(expert_width_key="intermediate_size")
ARCHITECTURES: dict[str, Callable[[_Config, str], dict]] = {
    "DeepseekV3ForCausalLM": _builder(_PLAIN),              # also Kimi-K2
    "DeepseekV32ForCausalLM": _builder(_PLAIN),             # MLA + DSA indexer
    "KimiK25ForConditionalGeneration": _builder(Dialect(text_config=True)),
    "LlamaForCausalLM": _builder(_PLAIN),
    "MistralForCausalLM": _builder(_PLAIN),
    "Qwen3ForCausalLM": _builder(_PLAIN),
    "Qwen3MoeForCausalLM": _builder(_PLAIN),
    "Qwen3NextForCausalLM": _builder(_PLAIN),               # gated delta-net hybrid
    "Qwen3_5MoeForConditionalGeneration": _builder(Dialect(text_config=True)),
    "Qwen3_5MoeForCausalLM": _builder(_PLAIN),
    "GptOssForCausalLM": _builder(_WIDE_EXPERTS),
    "MixtralForCausalLM": _builder(_WIDE_EXPERTS),
    "MiniMaxM2ForCausalLM": _builder(_WIDE_EXPERTS),
    # Llama 4 (HF Llama4TextMoe): experts and the shared expert are intermediate_size wide, dense layers
    # intermediate_size_mlp
    "Llama4ForConditionalGeneration": _builder(Dialect(text_config=True, expert_width_key="intermediate_size",
                                                       dense_width_key="intermediate_size_mlp",
                                                       implicit_shared_expert=True)),
    "Llama4ForCausalLM": _builder(Dialect(expert_width_key="intermediate_size", dense_width_key="intermediate_size_mlp",
                                          implicit_shared_expert=True)),
}


def load_hf_config(path: Path) -> ModelSpec:
    """Read a Hugging Face config.json into a checked :class:`ModelSpec`."""
    source = short(path, 200)
    text = read_input_text(path, source, MAX_YAML_BYTES)  # a regular file of bounded size, UTF-8
    try:
        data = loads_json(text, source)
    except json.JSONDecodeError as err:
        raise SpecError(source, "", f"malformed JSON at line {err.lineno}") from None
    except (ValueError, RecursionError) as err:  # a 4300-digit integer, [[[...]]] nested 100,000 deep
        raise SpecError(source, "", f"malformed JSON ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise SpecError(source, "(top level)", "expected a JSON object")
    archs = data.get("architectures")
    if not isinstance(archs, list) or not archs or not isinstance(archs[0], str):
        raise SpecError(source, "architectures", "missing or not a list of names")
    builder = ARCHITECTURES.get(archs[0])
    if builder is None:
        raise SpecError(source, "architectures", f"unsupported architecture '{short(archs[0])}'{closest(archs[0][:200], ARCHITECTURES)}; "
                        f"supported: {', '.join(ARCHITECTURES)}")
    name = Path(path).name.removesuffix(".json").removesuffix(".config")
    fields = builder(_Config(data, source), name)
    return check_model(from_mapping(ModelSpec, fields, source), source)
