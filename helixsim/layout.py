"""Parallel layouts: one general shape, four strategies as constraint sets.

A layout is (kvp, tpa, dp, tpf, ep, pp) plus a HOP-B switch. Per pipeline
stage, attention runs on kvp x tpa x dp GPUs and the FFN on tpf x ep GPUs;
pp splits the layers into stages. The strategies:

* helix: N = kvp x tpa = tpf x ep, dp = 1, tpa <= KV heads (paper §2).
* tp:    classic tensor parallelism, kvp = dp = 1, tpa = tpf x ep.
* ep:    data-parallel attention (dp groups of tpa GPUs) with an
         expert-parallel (or TP) FFN on the same N = dp x tpa GPUs.
* medha: KV parallelism for attention (kvp x tpa), the FFN on one fixed
         TP group (tpf = tpa, ep = 1), every communication exposed: Medha as
         the Helix paper describes it (§1, §3.2: TP tied between attention
         and FFN; no MoE results published, so no expert parallelism).
* medha-ep: helixsim's extension of medha: the FFN group may spread its
         experts over ep ways (tpf = tpa, tpf x ep <= kvp x tpa). Not in the
         paper; kept as a separately labelled strategy.

The rules below are written once and evaluated on numpy arrays, so the
same code checks one ``--kvp 8 ...`` point (with a one-line error) and masks
a grid of a million candidate layouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import SpecError, closest
from .specs.model import ModelSpec

STRATEGIES: tuple[str, ...] = ("helix", "tp", "ep", "medha", "medha-ep")
WIDTHS: tuple[str, ...] = ("kvp", "tpa", "dp", "tpf", "ep", "pp")
#: Largest width and GPU count one configuration may have (far beyond any NVLink or scale-out
#: domain; keeps every product of widths well inside int64).
MAX_GPUS = 1 << 20


def strategy_code(name: str) -> int:
    if name not in STRATEGIES:
        raise SpecError("--strategy", "", f"unknown strategy '{name}'{closest(name, STRATEGIES)}; known: {', '.join(STRATEGIES)}")
    return STRATEGIES.index(name)


def layout_label(kvp: int, tpa: int, dp: int, tpf: int, ep: int, pp: int) -> str:
    """Blog-style label of a layout's widths: ``KVPxTPxDP=TPFxEP``, then `` ppN`` where pp > 1."""
    text = f"{kvp}x{tpa}x{dp}={tpf}x{ep}"
    return text + (f" pp{pp}" if pp > 1 else "")


@dataclass(frozen=True)
class Layout:
    strategy: str
    kvp: int = 1
    tpa: int = 1
    dp: int = 1
    tpf: int = 1
    ep: int = 1
    pp: int = 1
    hopb: bool = True

    @property
    def n_attention(self) -> int:
        return self.kvp * self.tpa * self.dp

    @property
    def n_gpus(self) -> int:
        return self.n_attention * self.pp

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in WIDTHS + ("hopb",)}

    def label(self) -> str:
        """Blog-style label: KVP x TP x DP = TPF x EP (x PP)."""
        return layout_label(self.kvp, self.tpa, self.dp, self.tpf, self.ep, self.pp)


@dataclass(frozen=True)
class LayoutArrays:
    """Columns of many layouts (int arrays of one shape); ``strategy`` holds codes."""

    strategy: np.ndarray
    kvp: np.ndarray
    tpa: np.ndarray
    dp: np.ndarray
    tpf: np.ndarray
    ep: np.ndarray
    pp: np.ndarray
    hopb: np.ndarray

    @classmethod
    def from_layout(cls, layout: Layout) -> "LayoutArrays":
        return cls(strategy=np.array([strategy_code(layout.strategy)]),
                   **{k: np.array([getattr(layout, k)]) for k in WIDTHS}, hopb=np.array([layout.hopb]))

    @property
    def n_attention(self) -> np.ndarray:
        return self.kvp * self.tpa * self.dp

    @property
    def n_ffn(self) -> np.ndarray:
        return self.tpf * self.ep

    @property
    def n_gpus(self) -> np.ndarray:
        return self.n_attention * self.pp


Rule = tuple[str, str, Callable[[LayoutArrays, ModelSpec], np.ndarray]]


def _is(code_name: str, a: LayoutArrays) -> np.ndarray:
    return a.strategy == STRATEGIES.index(code_name)


def _medha(a: LayoutArrays) -> np.ndarray:
    return _is("medha", a) | _is("medha-ep", a)


def _divides(d: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    return (np.asarray(n) % d) == 0


def _experts(m: ModelSpec) -> int:
    return m.ffn.moe.num_experts if m.ffn.moe else 1


RULES: list[Rule] = [
    # (field, message, predicate that must hold)
    ("dp", "helix, tp, medha and medha-ep run attention without data parallelism: dp must be 1",
     lambda a, m: _is("ep", a) | (a.dp == 1)),
    ("kvp", "tp and ep do not shard the KV cache by sequence: kvp must be 1",
     lambda a, m: ~(_is("tp", a) | _is("ep", a)) | (a.kvp == 1)),
    ("tpf", "helix needs kvp x tpa = tpf x ep (the same N GPUs in both phases)",
     lambda a, m: ~_is("helix", a) | (a.kvp * a.tpa == a.tpf * a.ep)),
    ("tpf", "tp needs tpa = tpf x ep",
     lambda a, m: ~_is("tp", a) | (a.tpa == a.tpf * a.ep)),
    ("tpf", "ep needs dp x tpa = tpf x ep",
     lambda a, m: ~_is("ep", a) | (a.dp * a.tpa == a.tpf * a.ep)),
    ("tpf", "medha ties the FFN's TP to attention's: tpf must equal tpa",
     lambda a, m: ~_medha(a) | (a.tpf == a.tpa)),
    ("ep", "medha runs the FFN on one TP group without expert parallelism: ep must be 1 (medha-ep spreads it)",
     lambda a, m: ~_is("medha", a) | (a.ep == 1)),
    ("ep", "medha-ep's FFN group tpf x ep cannot exceed its kvp x tpa GPUs",
     lambda a, m: ~_is("medha-ep", a) | (a.tpf * a.ep <= a.kvp * a.tpa)),
    ("tpa", "helix needs tpa <= the number of KV heads (1 for MLA)",
     lambda a, m: ~_is("helix", a) | (a.tpa <= m.attention.num_kv_heads)),
    ("tpa", "tpa must divide the number of query heads",
     lambda a, m: _divides(a.tpa, m.attention.num_q_heads)),
    ("tpa", "tpa must divide the KV heads or be a multiple of them",
     lambda a, m: _divides(a.tpa, m.attention.num_kv_heads) | _divides(m.attention.num_kv_heads, a.tpa)),
    ("kvp", "helix's all-to-all splits each GPU's query heads kvp ways: kvp must divide num_q_heads / tpa",
     lambda a, m: ~_is("helix", a) | _divides(a.kvp, m.attention.num_q_heads // np.maximum(a.tpa, 1))),
    ("ep", "ep cannot exceed the number of routed experts (1 for a dense model); where it does not divide "
     "them, redundant expert slots fill ceil(E / ep) per rank (helixsim.cost.wideep)",
     lambda a, m: a.ep <= _experts(m)),
    ("tpf", "tpf must divide the FFN width (expert width for MoE)",
     lambda a, m: _divides(a.tpf, m.ffn.moe.expert_intermediate_size if m.ffn.moe else m.ffn.intermediate_size)),
    ("pp", "pp cannot exceed the number of layers",
     lambda a, m: a.pp <= m.num_layers),
]


def valid_mask(a: LayoutArrays, model: ModelSpec) -> np.ndarray:
    """True where every layout rule holds (widths assumed >= 1)."""
    ok = np.ones(np.shape(a.kvp), dtype=bool)
    for _, _, rule in RULES:
        ok &= rule(a, model)
    return ok


#: layouts already found valid, per model object: (layout, the types of its fields) -> the model (kept alive, so
#: its id is not reused); a single point checks the same layout at every call
_VALID: dict[tuple, ModelSpec] = {}


def check_layout(layout: Layout, model: ModelSpec, source: str = "layout") -> Layout:
    """Raise a one-line :class:`SpecError` for the first rule ``layout`` breaks."""
    try:   # (True == 1 and 16.0 == 16: the field types are part of the key, a bool width is still refused)
        key = (layout, tuple(type(v) for v in layout.__dict__.values()), id(model))
        if _VALID.get(key) is model:
            return layout
    except TypeError:   # a field that is no dictionary key: checked every time
        key = None
    _check_layout(layout, model, source)
    if key is not None:
        if len(_VALID) >= 1024:
            _VALID.clear()
        _VALID[key] = model
    return layout


def _check_layout(layout: Layout, model: ModelSpec, source: str) -> None:
    strategy_code(layout.strategy)
    for name in WIDTHS:
        value = getattr(layout, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SpecError(source, f"--{name}", f"must be a whole number >= 1, got {value!r}")
        if value > MAX_GPUS:
            raise SpecError(source, f"--{name}", f"must be <= {MAX_GPUS:,}, got {value!r}")
    if int(layout.n_gpus) > MAX_GPUS:  # exact Python ints: the int64 arrays below would wrap silently
        raise SpecError(source, "--kvp x --tpa x --dp x --pp", f"{int(layout.n_gpus):,} GPUs is more than "
                        f"{MAX_GPUS:,} (model {model.name}, layout {layout.label()})")
    arrays = LayoutArrays.from_layout(layout)
    for field, message, rule in RULES:
        if not bool(rule(arrays, model)[0]):
            raise SpecError(source, f"--{field}", f"{message} (model {model.name}, layout {layout.label()})")


def infer_ffn_widths(strategy: str, n_attention: int, tpf: int | None, ep: int | None) -> tuple[int, int]:
    """The FFN widths a user left out, from the layout rule tpf x ep = kvp x tpa x dp (the attention
    GPUs run the FFN too): ``--strategy tp --tpa 8`` means tpf 8. Neither given: all of it on tpf
    (strategy ep: all of it on ep). A width that does not divide is left for check_layout to refuse."""
    if tpf is None and ep is None:
        return (1, n_attention) if strategy == "ep" else (n_attention, 1)
    if tpf is None:
        return (n_attention // ep if ep and n_attention % ep == 0 else 1), ep
    if ep is None:
        return tpf, (n_attention // tpf if tpf and n_attention % tpf == 0 else 1)
    return tpf, ep
