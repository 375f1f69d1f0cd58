"""Hugging Face ``config.json`` -> :class:`ModelSpec`.

Supported architectures: DeepseekV3 (MLA + MoE, also Kimi-K2), Llama,
Qwen3, Qwen3-MoE and GptOss. Field names follow the public configs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import SpecError, closest
from ._schema import from_mapping
from .model import ModelSpec, check_model


class _Config:
    """Typed access to config.json fields with file-and-field errors."""

    def __init__(self, data: dict, source: str):
        self.data, self.source = data, source

    def int(self, key: str, default: Any = ...) -> int:
        value = self.data.get(key, default)
        if value is ...:
            raise SpecError(self.source, key, "missing required key")
        if value is None:
            return None
        # is_integer() is False for NaN and inf; math.isfinite() would overflow on a 400-digit integer
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise SpecError(self.source, key, f"expected a whole number, got {value!r}")
        if value <= 0:
            raise SpecError(self.source, key, f"must be > 0, got {value!r}")
        return int(value)

    def count(self, key: str, default: int = 0) -> int:
        """A whole number that may be zero."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SpecError(self.source, key, f"expected a whole number >= 0, got {value!r}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise SpecError(self.source, key, f"expected true or false, got {value!r}")
        return value


def _base(c: _Config, name: str) -> dict:
    return {"name": name, "hf_id": c.data.get("_name_or_path") or name, "num_layers": c.int("num_hidden_layers"),
            "hidden_size": c.int("hidden_size"), "vocab_size": c.int("vocab_size"),
            "tie_word_embeddings": c.bool("tie_word_embeddings", False), "mtp_layers": c.count("num_nextn_predict_layers", 0)}


def _gqa_attention(c: _Config) -> dict:
    heads = c.int("num_attention_heads")
    head_dim = c.int("head_dim", None) or c.int("hidden_size") // heads
    attn = {"type": "gqa", "num_q_heads": heads, "num_kv_heads": c.int("num_key_value_heads", heads),
            "head_dim": head_dim, "qkv_bias": c.bool("attention_bias", False)}
    types = c.data.get("layer_types")
    if isinstance(types, list) and "sliding_attention" in types:
        attn["sliding_window_tokens"] = c.int("sliding_window")
        attn["sliding_window_layers"] = types.count("sliding_attention")
    return attn


def _deepseek_v3(c: _Config, name: str) -> dict:
    spec = _base(c, name)
    spec["attention"] = {"type": "mla", "num_q_heads": c.int("num_attention_heads"), "num_kv_heads": 1,
                         "head_dim": c.int("qk_nope_head_dim"), "q_lora_rank": c.int("q_lora_rank"),
                         "kv_lora_rank": c.int("kv_lora_rank"), "qk_nope_head_dim": c.int("qk_nope_head_dim"),
                         "qk_rope_head_dim": c.int("qk_rope_head_dim"), "v_head_dim": c.int("v_head_dim"),
                         "qkv_bias": c.bool("attention_bias", False)}
    spec["ffn"] = {"dense_layers": c.count("first_k_dense_replace", 0), "intermediate_size": c.int("intermediate_size"),
                   "moe": {"num_experts": c.int("n_routed_experts"), "experts_per_token": c.int("num_experts_per_tok"),
                           "shared_experts": c.count("n_shared_experts", 0),
                           "expert_intermediate_size": c.int("moe_intermediate_size")}}
    return spec


def _llama(c: _Config, name: str) -> dict:
    spec = _base(c, name)
    spec["attention"] = _gqa_attention(c)
    spec["ffn"] = {"dense_layers": spec["num_layers"], "intermediate_size": c.int("intermediate_size")}
    return spec


def _qwen3_moe(c: _Config, name: str) -> dict:
    spec = _base(c, name)
    spec["attention"] = _gqa_attention(c)
    dense = c.data.get("mlp_only_layers") or []
    if not isinstance(dense, list):
        raise SpecError(c.source, "mlp_only_layers", f"expected a list of layer indices, got {type(dense).__name__}")
    step = c.int("decoder_sparse_step", 1)
    if step != 1:
        raise SpecError(c.source, "decoder_sparse_step", "only 1 (every layer MoE) is supported")
    spec["ffn"] = {"dense_layers": len(dense), "intermediate_size": c.int("intermediate_size") if dense else None,
                   "moe": {"num_experts": c.int("num_experts"), "experts_per_token": c.int("num_experts_per_tok"),
                           "shared_experts": 0, "expert_intermediate_size": c.int("moe_intermediate_size")}}
    return spec


def _gpt_oss(c: _Config, name: str) -> dict:
    spec = _base(c, name)
    spec["attention"] = _gqa_attention(c)
    spec["ffn"] = {"dense_layers": 0, "intermediate_size": None,
                   "moe": {"num_experts": c.int("num_local_experts"), "experts_per_token": c.int("num_experts_per_tok"),
                           "shared_experts": 0, "expert_intermediate_size": c.int("intermediate_size")}}
    return spec


ARCHITECTURES: dict[str, Callable[[_Config, str], dict]] = {
    "DeepseekV3ForCausalLM": _deepseek_v3,
    "LlamaForCausalLM": _llama,
    "Qwen3ForCausalLM": _llama,
    "Qwen3MoeForCausalLM": _qwen3_moe,
    "GptOssForCausalLM": _gpt_oss,
}


def load_hf_config(path: Path) -> ModelSpec:
    """Read a Hugging Face config.json into a checked :class:`ModelSpec`."""
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(source, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(source, "", f"cannot read file ({err.__class__.__name__})") from None
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
        raise SpecError(source, "architectures", f"unsupported architecture '{archs[0]}'{closest(archs[0], ARCHITECTURES)}; "
                        f"supported: {', '.join(ARCHITECTURES)}")
    name = Path(path).name.removesuffix(".json").removesuffix(".config")
    fields = builder(_Config(data, source), name)
    return check_model(from_mapping(ModelSpec, fields, source), source)
