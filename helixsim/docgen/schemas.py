"""docs/schemas.md: every key of the sweep and plan YAML files, from the loaders' own dataclasses.

The key names, types, defaults and limits are read from :class:`helixsim.sweep.SweepSpec`,
:class:`helixsim.sweep.PrecisionSpec`, :class:`helixsim.planning.inputs.PlanSpec` and
:class:`helixsim.planning.inputs.ContextShare` (the strict loader refuses any other key), so a
key added to a loader appears here on the next ``helixsim docs``; its meaning must be written in
:data:`MEANINGS` below, or the generator stops (and the docs check fails) naming the key.
"""

from __future__ import annotations

import dataclasses
import typing

from ..errors import SpecError
from . import generator

MEANINGS = {
    "SweepSpec": {
        "name": "the study's name; output files are NAME.parquet, NAME-frontier.parquet, ...",
        "description": "free text shown in provenance",
        "models": "built-in model names, model YAML paths or Hugging Face config.json paths (relative paths "
                  "resolve beside the sweep YAML)",
        "hardware": "built-in system names or hardware YAML paths; one name or a list",
        "contexts": "KV lengths per request, tokens (131072, 128k, 128Ki, 1M)",
        "precision": "number formats (the keys below, under `precision:`)",
        "strategies": "parallelism strategies to search (helix, tp, ep, medha, medha-ep, ...)",
        "max_gpus": "largest decode instance searched, GPUs (default: the system's NVLink domain)",
        "pp": "pipeline depths to search",
        "hopb": "HOP-B overlap settings to search (true, false or both)",
        "max_batch": "largest batch per instance",
        "ideal": "textbook roofline: peaks, no efficiencies, floors or overheads",
        "backend": "serving framework whose measured kernels price it (trtllm, sglang, vllm)",
        "mtp": "MTP draft tokens per step to search (0: no speculative decoding)",
        "every_batch": "every batch up to the largest that fits, not the 1, 2, 3, 4, 6, 8, ... grid",
        "widths": "layout widths to search (default: powers of two)",
        "two_batch_overlap": "ep layouts priced without and/or with two-batch overlap (two micro-batches, one's "
                             "all-to-alls hidden behind the other's compute)",
    },
    "PrecisionSpec": {
        "weights": "weight format (default: fp4 where the GPU has FP4, else fp8)",
        "kv_cache": "KV-cache format",
        "activations": "activation format",
        "attention_math": "attention arithmetic format (default: follows the KV cache)",
        "dense_weights": "format of the dense (non-expert) weights of an MoE model (default: as weights)",
    },
    "PlanSpec": {
        "model": "built-in model name, model YAML or Hugging Face config.json",
        "hardware": "systems to compare; one name or a list (repeats are planned once)",
        "users": "concurrent users to serve",
        "min_tokens_per_s_user": "interactivity floor: tokens/s every user gets at least",
        "context": "KV length per request, tokens (give this or context_mix)",
        "context_mix": "a mix of contexts, each a pool of its own (give this or context)",
        "max_gpus_per_instance": "GPU budget of one decode instance (default: the NVLink domain, capped at 64); "
                                 "above the NVLink domain a warning says collectives go over the scale-out network",
        "weights": "weight format (default: fp4 where the GPU has FP4, else fp8)",
        "kv_cache": "KV-cache format (default fp8)",
        "price": "price YAML, USD per GPU-hour per system (default: the built-in illustrative list); a system "
                 "without a price is planned with its cost shown as unavailable",
        "hopb": "HOP-B overlap on or off",
        "max_batch": "largest batch per instance searched",
        "strategies": "parallelism strategies to search",
        "sensitivity": "also re-plan with the context x2 and x0.5, users x2 and the floor +-25 %",
        "mtp": "MTP draft tokens per step to search (speculative decoding with DeepSeek-R1's published "
               "acceptance; 0: none)",
    },
    "ContextShare": {
        "context": "KV length of this pool, tokens",
        "weight": "its share of the users (normalised over the mix)",
    },
}


_PLAIN = {str: "string", int: "whole number", float: "number", bool: "true/false"}


def _type_name(tp) -> str:
    """A key's type in words: string, whole number, optional ..., list of ..., mapping."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union:
        return "optional " + _type_name(args[0])
    if typing.get_origin(tp) is tuple:
        return "list of " + _type_name(args[0])
    if dataclasses.is_dataclass(tp):
        return "mapping (keys below)"
    return _PLAIN.get(tp, getattr(tp, "__name__", str(tp)))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return "**required**"
    if value is None:
        return "none (see meaning)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in value) + "]"
    if dataclasses.is_dataclass(value):
        return "see below"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _limits(f: dataclasses.Field) -> str:
    meta = dict(f.metadata)
    parts = []
    if meta.get("tokens"):
        parts.append("token count: 1M, 256k, 128Ki accepted")
    if "max" in meta:
        parts.append(f"at most {meta['max']:,}")
    if meta.get("nonneg"):
        parts.append(">= 0")
    return "; ".join(parts)


def schema_table(cls, prefix: str = "") -> str:
    """A Markdown table of ``cls``'s keys: name, type, default, limits, meaning."""
    meanings = MEANINGS[cls.__name__]
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    missing = sorted(names - set(meanings))
    stale = sorted(set(meanings) - names)
    if missing or stale:
        raise SpecError("helixsim/docgen/schemas.py", f"MEANINGS.{cls.__name__}",
                        f"keys without a meaning {missing}, meanings of no key {stale}: write them for docs/schemas.md")
    rows = ["| key | type | default | limits | meaning |", "|---|---|---|---|---|"]
    for f in fields:
        rows.append(f"| `{prefix}{f.name}` | {_type_name(hints[f.name])} | {_default(f)} | {_limits(f)} | "
                    f"{meanings[f.name]} |")
    return "\n".join(rows)


@generator("sweep-schema")
def sweep_schema() -> str:
    from ..sweep import PrecisionSpec, SweepSpec

    return (schema_table(SweepSpec) + "\n\nUnder `precision:`\n\n" + schema_table(PrecisionSpec, "precision."))


@generator("plan-schema")
def plan_schema() -> str:
    from ..planning.inputs import ContextShare, PlanSpec

    return (schema_table(PlanSpec) + "\n\nEach entry of `context_mix:`\n\n" + schema_table(ContextShare, "context_mix[]."))
