"""A strict YAML reader for spec files: YAML 1.2 scalars, no duplicate keys, bounded aliases.

PyYAML's ``safe_load`` follows YAML 1.1, which turns ``0700`` into 448 (octal),
``3:20`` into 200 (base 60), ``yes``/``on`` into true and ``2024-01-01`` into a
date, keeps the last of two equal keys without a word, and expands aliases
without limit (a 514-byte "billion laughs" document becomes billions of
nodes). Spec files are read here instead:

- scalars resolve by the YAML 1.2 core schema: ``true``/``false``, ``null``/``~``,
  decimal integers, decimal floats (``1e5`` too) and ``.inf``/``.nan``; everything
  else is a string, so a field that wants a number says so. An integer written
  with a leading zero (``0700``) is refused as ambiguous rather than guessed;
- a key given twice in one mapping is an error naming both lines;
- after composing, the document's size with every alias expanded is counted
  before anything is built: more than :data:`MAX_NODES` nodes, more than
  :data:`MAX_DEPTH` levels, or an alias that contains itself is an error.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from ..errors import SpecError

#: Most nodes a document may expand to (aliases counted as often as they are used). The largest
#: shipped spec file has under 500 nodes.
MAX_NODES = 100_000
#: Deepest nesting of sequences and mappings accepted.
MAX_DEPTH = 64
#: Largest spec file read, bytes.
MAX_YAML_BYTES = 4 << 20

_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_AMBIGUOUS_INT = re.compile(r"^[-+]?0[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")
_BOOL = re.compile(r"^(true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(~|null|Null|NULL|)$")
_AMBIGUOUS_TAG = "tag:helixsim,2026:ambiguous-int"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core implicit types and duplicate-key detection."""

    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise ConstructorError(None, None, "merge keys ('<<') are not supported", key_node.start_mark)
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    raise ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark) from None
                if first is not None:
                    raise ConstructorError(None, None, f"duplicate key '{str(key)[:60]}' (first at line {first})",
                                           key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _ambiguous(loader, node):
    raise ConstructorError(None, None, f"'{node.value}' is ambiguous (an octal number in YAML 1.1, decimal in 1.2); "
                           "write it without the leading zero, or quote it", node.start_mark)


for _tag, _regex, _first in (("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
                             ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
                             (_AMBIGUOUS_TAG, _AMBIGUOUS_INT, "-+0"),
                             ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
                             ("tag:yaml.org,2002:float", _FLOAT, "-+.0123456789")):
    StrictLoader.add_implicit_resolver(_tag, _regex, list(_first))
StrictLoader.add_constructor(_AMBIGUOUS_TAG, _ambiguous)
StrictLoader.add_constructor("tag:yaml.org,2002:float",
                             lambda loader, node: float(loader.construct_scalar(node).lower().replace(".inf", "inf")
                                                        .replace(".nan", "nan")))
StrictLoader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: int(loader.construct_scalar(node)))


def expanded_size(root: Node) -> int:
    """Nodes of the document with every alias expanded; raises ValueError past the limits."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in busy:
            raise ValueError("an alias refers to a node that contains it")
        busy.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_NODES:
                raise ValueError(f"expands to more than {MAX_NODES:,} nodes (aliases included)")
        busy.discard(key)
        sizes[key] = total
        return total

    return size(root, 0)


def load_strict(text: str, source: str) -> Any:
    """Parse one YAML document strictly (see the module docstring); problems are one-line SpecErrors."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            expanded_size(node)
        except ValueError as err:
            raise SpecError(source, "", f"refused YAML: {err}") from None
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None)
        detail = f": {problem}" if problem and isinstance(err, ConstructorError) else ""
        raise SpecError(source, "", f"malformed YAML{where}{detail}") from None
    except (ValueError, RecursionError) as err:  # a 4300-digit integer, [[[...]]] 5000 deep
        if isinstance(err, SpecError):
            raise
        raise SpecError(source, "", f"malformed YAML ({err.__class__.__name__}: {str(err)[:80]})") from None
    finally:
        loader.dispose()
