"""Strict conversion of parsed YAML/JSON mappings into frozen dataclasses.

One generic checker serves every spec file, so every file gets the same
treatment: unknown keys are refused (with the closest known key suggested),
missing keys are named, types are checked, and numbers must be finite and
positive unless a field says ``nonneg``. Errors are :class:`SpecError` with
the file and a dotted field path.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from ..errors import SpecError, closest
from ..safe_io import read_input_text, short
from ..units import parse_tokens
from .strict_yaml import MAX_YAML_BYTES, load_strict

T = TypeVar("T")

NONNEG = {"nonneg": True}  # field metadata: zero allowed
ANY_SIGN = {"any_sign": True}  # field metadata: any finite number
TOKENS = {"tokens": True}  # field metadata: a token count, "1M", "256k" and "128Ki" accepted
#: Largest magnitude of any number in a spec file unless a field sets its own "max"; with
#: MIN_POSITIVE (smallest strictly positive float) it keeps every derived quantity finite.
MAX_MAGNITUDE = 1e15
MIN_POSITIVE = 1e-6


def read_yaml(path: Path) -> Any:
    """Parse a YAML spec file strictly (:mod:`.strict_yaml`: a regular file of bounded size, YAML 1.2
    scalars, no duplicate keys, bounded alias expansion); problems are one-line errors."""
    source = short(path, 200)
    return load_strict(read_input_text(path, source, MAX_YAML_BYTES), source)


def _show(value: Any) -> str:
    """repr() of a value for an error line, short even for a 400-digit integer."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, meta: Mapping[str, Any], source: str, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], meta, source, path)
    if value is None:
        raise SpecError(source, path, "must not be empty")
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, source, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise SpecError(source, path, f"expected a list, got {type(value).__name__}")
        if not value:
            raise SpecError(source, path, "must list at least one value")
        return tuple(_convert(v, args[0], meta, source, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is typing.Literal:
        if value not in args:
            raise SpecError(source, path, f"must be one of {', '.join(map(str, args))}, got {_show(value)}{closest(value, map(str, args))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(source, path, f"expected true or false, got {_show(value)}")
        return value
    if tp is str:
        if not isinstance(value, str) or not value.strip():
            raise SpecError(source, path, f"expected a non-empty string, got {_show(value)}")
        return value
    if tp in (int, float):
        if meta.get("tokens") and isinstance(value, str):  # "1M", "256k", "128Ki"
            value = parse_tokens(value, source, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(source, path, f"expected a number, got {_show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(source, path, f"must be finite, got {value!r}")
        # all checks compare the parsed value first: float() of a 400-digit integer would overflow
        if meta.get("any_sign"):
            pass
        elif meta.get("nonneg"):
            if value < 0:
                raise SpecError(source, path, f"must be >= 0, got {_show(value)}")
        elif value <= 0:
            raise SpecError(source, path, f"must be > 0, got {_show(value)}")
        limit = meta.get("max", MAX_MAGNITUDE)
        if abs(value) > limit:
            raise SpecError(source, path, f"must be {'within +/-' if meta.get('any_sign') else '<= '}{limit:g}, got {_show(value)}")
        if tp is float and not (meta.get("any_sign") or meta.get("nonneg")) and value < MIN_POSITIVE:
            raise SpecError(source, path, f"must be >= {MIN_POSITIVE:g}, got {value!r}")
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise SpecError(source, path, f"expected a whole number, got {value!r}")
            return int(value)
        return float(value)
    raise TypeError(f"unsupported schema type {_type_name(tp)}")  # programming error


def from_mapping(cls: type[T], data: Any, source: str, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, strictly."""
    if not isinstance(data, Mapping):
        raise SpecError(source, path or "(top level)", f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(source, where, f"unknown key{closest(key, fields)}")
    kwargs = {}
    for name, f in fields.items():
        where = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            raise SpecError(source, where, "missing required key")
        kwargs[name] = _convert(data[name], hints[name], f.metadata, source, where)
    return cls(**kwargs)
