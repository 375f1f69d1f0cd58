"""Hostile inputs for every loader and command (issue 6, part 2), generated with hypothesis.

The inputs are realistic near-misses: the built-in hardware, model and sweep
YAML files and the shipped Hugging Face ``config.json`` files (read through
``helixsim.specs.registry.data_dir``) with one thing broken -- a key missing,
misspelt or added, a value of the wrong type, NaN, +/-inf, negative, zero,
fractional, absurdly large or absurdly small, a name misspelt, the text
corrupted -- plus hostile command-line flags for ``helixsim point``,
``sweep`` and ``roofline``, missing files, directories where files belong
and output directories that cannot be created.

Every broken input must end the same way: exit status 2, exactly one line
on stderr starting with ``error: `` and naming the file and/or the field
(with the closest known key or name suggested when there is one), no
traceback, no numeric RuntimeWarning (overflow, invalid value) and no file
left in the output directory. Well-formed but absurd numbers must give such
an error or a finite answer (``feasible`` false where it cannot fit).

The CLI runs in-process through :func:`helixsim.cli.run`. The number of
generated inputs is printed at the end of the session.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import difflib
import itertools
import json
import math
import re
import types
import typing
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helixsim.cli import run
from helixsim.layout import STRATEGIES, Layout, LayoutArrays, valid_mask
from helixsim.specs import hf
from helixsim.specs._schema import MAX_MAGNITUDE, MIN_POSITIVE
from helixsim.specs.hardware import HardwareSpec
from helixsim.specs.model import ModelSpec
from helixsim.specs.registry import builtin_names, data_dir, load_hardware, load_model
from helixsim.sweep import SweepSpec

GENERATED: collections.Counter = collections.Counter()  # generated inputs per category

FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                  HealthCheck.filter_too_much, HealthCheck.data_too_large])

HARDWARE = builtin_names("hardware")
MODELS = builtin_names("models")
SWEEPS = builtin_names("sweeps")
HF_DIR = data_dir("models") / "hf"
HF_FILES = sorted(p.name for p in HF_DIR.glob("*.json"))
_SEQ = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _report_generated(request):
    """Print how many inputs this module generated (for docs/robustness.md)."""
    yield
    if not GENERATED:
        return
    line = (f"test_fuzz_inputs: {sum(GENERATED.values())} generated inputs ("
            + ", ".join(f"{k} {v}" for k, v in sorted(GENERATED.items())) + "), none crashed")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # session teardown output is captured otherwise
        reporter.write_line("")
        reporter.write_line(line)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def fresh(work: Path) -> Path:
    """A new empty directory per generated input (the spec loaders cache by path)."""
    d = work / f"c{next(_SEQ)}"
    d.mkdir()
    return d


# ------------------------------------------------------------------ running the CLI
def cli(capsys, argv) -> tuple[int, str, str]:
    """Run ``helixsim <argv>`` in-process; any exception but SystemExit fails the test (a traceback)."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code
    out, err = capsys.readouterr()
    numeric = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not numeric, f"{argv}: {numeric}"
    return code, out, err


def assert_error(result, *names, out_dir: Path | None = None) -> str:
    """Exit 2, one ``error: `` line naming one of ``names``, nothing on stdout, nothing left in ``out_dir``."""
    code, out, err = result
    assert code == 2, f"exit {code}, stderr {err!r}, stdout {out[:400]!r}"
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert "Traceback" not in err
    assert out == "", out[:400]
    if names:
        assert any(str(n) in err for n in names), f"none of {names} in {err!r}"
    if out_dir is not None and Path(out_dir).exists():
        left = sorted(p.name for p in Path(out_dir).iterdir())
        assert not left, f"files left behind: {left}"
    return err


def assert_suggests(err: str, typo: str, intended: str, choices) -> None:
    """The message suggests a known choice at least as close to ``typo`` as the intended one."""
    match = re.search(r"did you mean '([^']*)'", err)
    assert match, f"no suggestion for {typo!r} (meant {intended!r}): {err!r}"
    suggested = match.group(1)
    assert suggested in set(map(str, choices)), err

    def ratio(a):  # the argument order difflib.get_close_matches uses
        return difflib.SequenceMatcher(None, a, typo).ratio()

    assert ratio(suggested) >= ratio(intended) - 1e-12, (typo, intended, suggested)


def assert_finite_point(result, hw_capacity_bytes: float) -> None:
    """A successful ``point --json``: every number finite and >= 0, feasibility consistent with memory."""
    code, out, err = result
    # nothing on stderr but one-line warnings (a context beyond the model's trained window)
    assert code == 0 and all(line.startswith("warning: ") for line in err.splitlines()), err
    data = json.loads(out)
    numbers = [data[k] for k in ("ttl_ms", "tokens_per_s_user", "tokens_per_s_gpu", "memory_per_gpu_gb", "max_batch")]
    numbers += list(data["breakdown_ms"].values())
    assert all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in numbers), data
    assert data["ttl_ms"] > 0 and data["n_gpus"] >= 1
    if abs(data["memory_per_gpu_gb"] * 1e9 - hw_capacity_bytes) > 1e-9 * hw_capacity_bytes:  # not on the edge
        assert data["feasible"] == (data["memory_per_gpu_gb"] * 1e9 <= hw_capacity_bytes), data
    assert data["feasible"] or data["infeasible_reason"]


# ------------------------------------------------------------------ value strategies
PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
TEXT = st.text(PRINTABLE, max_size=12)
TOKEN_TEXT = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*([kKmMgG]i?)?\s*$")
LISTS = st.lists(st.integers(-5, 5) | st.text(PRINTABLE, max_size=3), max_size=3)
NONEMPTY_DICTS = st.dictionaries(st.text(PRINTABLE, min_size=1, max_size=4), st.integers(0, 3), min_size=1, max_size=2)
DICTS = st.dictionaries(st.text(PRINTABLE, min_size=1, max_size=4), st.integers(0, 3), max_size=2)
NUMBERS = st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])
HUGE_INTS = st.sampled_from([2**62, 2**63, 2**64, 10**30, 10**400]) | st.integers(min_value=10**15 + 1)
HUGE_FLOATS = st.sampled_from([1e16, 1e30, 1e300, 1.7e308]) | st.floats(min_value=1.01e15, allow_infinity=False)


def typo(word: str) -> st.SearchStrategy[str]:
    """One edit of ``word``: a character deleted, doubled, replaced or two swapped."""
    n = len(word)

    @st.composite
    def edit(draw):
        i = draw(st.integers(0, max(n - 1, 0)))
        op = draw(st.sampled_from(["delete", "double", "replace", "swap"] if n > 1 else ["double", "replace"]))
        if op == "delete":
            return word[:i] + word[i + 1:]
        if op == "double":
            return word[:i] + word[i:i + 1] * 2 + word[i + 1:]
        if op == "replace":
            c = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_-"))
            return word[:i] + c + word[i + 1:]
        j = min(i + 1, n - 1)
        if i == j:
            i, j = i - 1, i
        chars = list(word)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)

    return edit().filter(lambda w: w != word)


# ------------------------------------------------------------------ schema-driven mutations
@dataclasses.dataclass(frozen=True)
class Slot:
    """One field of a spec file, as the schema sees it."""

    path: tuple          # keys from the top of the file
    kind: str            # int, float, str, literal, bool, tuple, mapping
    optional: bool       # None allowed
    required: bool       # no default
    meta: dict
    siblings: tuple      # the known keys of the mapping holding it
    elem: str = ""       # element kind of a tuple
    choices: tuple = ()  # a Literal's values

    @property
    def label(self) -> str:
        return ".".join(self.path)


def _kind(tp) -> tuple[str, bool, tuple, str]:
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, inner[0]
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return "mapping", optional, (), ""
    if origin is tuple:
        return "tuple", optional, (), _kind(typing.get_args(tp)[0])[0]
    if origin is typing.Literal:
        return "literal", optional, typing.get_args(tp), ""
    return {int: "int", float: "float", str: "str", bool: "bool"}[tp], optional, (), ""


def slots(cls, data, prefix=()) -> list[Slot]:
    """Every field of ``cls`` (nested dataclasses present in ``data`` included)."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = tuple(f.name for f in fields)
    out = []
    for f in fields:
        kind, optional, choices, elem = _kind(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(Slot(prefix + (f.name,), kind, optional, required, dict(f.metadata), names, elem, choices))
        if kind == "mapping" and isinstance(data, dict) and isinstance(data.get(f.name), dict):
            inner = hints[f.name]
            if typing.get_origin(inner) in (typing.Union, types.UnionType):
                inner = [a for a in typing.get_args(inner) if a is not type(None)][0]
            out += slots(inner, data[f.name], prefix + (f.name,))
    return out


def parent(data: dict, path: tuple) -> dict:
    for key in path[:-1]:
        data = data[key]
    return data


def wrong_type(kind: str, optional: bool) -> st.SearchStrategy:
    """Values a field of this kind must refuse."""
    none = st.nothing() if optional else st.just(None)
    if kind in ("int", "float"):  # "1M" or "12" is a valid token count (helixsim.units) in a context field
        return TEXT.filter(lambda t: not TOKEN_TEXT.match(t)) | LISTS | DICTS | st.booleans() | none
    if kind in ("str", "literal"):
        blank = st.sampled_from(["", " ", "  "]) if kind == "str" else st.nothing()
        return NUMBERS | LISTS | DICTS | st.booleans() | blank | none
    if kind == "bool":
        return NUMBERS | TEXT | LISTS | DICTS | none
    if kind == "tuple":
        return NUMBERS | TEXT.filter(bool) | NONEMPTY_DICTS | st.booleans() | st.just([]) | none
    return NUMBERS | TEXT | LISTS | st.booleans() | none  # mapping


@st.composite
def mutation(draw, cls, data: dict, name_must_match_file: bool = True):
    """(mutated data, field label the error must name, check(err) or None, category)."""
    data = copy.deepcopy(data)
    table = slots(cls, data)
    s = draw(st.sampled_from(table))
    holder = parent(data, s.path)
    key = s.path[-1]
    present = key in holder
    kinds = ["wrong_type", "unknown_typo", "unknown_new"]
    if s.required and present:
        kinds.append("missing")
    if s.kind in ("int", "float"):
        kinds += ["nonfinite", "sign", "huge"]
        if s.kind == "int":
            kinds.append("fraction")
        if s.kind == "float" and not (s.meta.get("nonneg") or s.meta.get("any_sign")):
            kinds.append("tiny")
    if s.kind == "literal" or (s.kind == "str" and key == "name" and name_must_match_file):
        kinds.append("bad_choice")
    if s.kind == "tuple" and isinstance(holder.get(key), list) and holder[key]:
        kinds.append("bad_element")
    how = draw(st.sampled_from(kinds))
    label, check = s.label, None
    if how == "missing":
        del holder[key]
        check = lambda err: f"{label}: missing required key" in err  # noqa: E731
    elif how == "unknown_typo":
        bad = draw(typo(key).filter(lambda w: w not in s.siblings))
        holder[bad] = holder.pop(key) if present else 1
        label = ".".join(s.path[:-1] + (bad,))
        check = lambda err: f"{label}: unknown key" in err and (assert_suggests(err, bad, key, s.siblings) or True)  # noqa: E731
    elif how == "unknown_new":
        bad = draw(st.from_regex(r"\A[a-z][a-z0-9_]{0,15}\Z").filter(lambda w: w not in s.siblings))
        holder[bad] = draw(NUMBERS | TEXT)
        label = ".".join(s.path[:-1] + (bad,))
        check = lambda err: f"{label}: unknown key" in err  # noqa: E731
    elif how == "wrong_type":
        holder[key] = draw(wrong_type(s.kind, s.optional))
    elif how == "nonfinite":
        holder[key] = draw(NONFINITE)
    elif how == "sign":
        if s.meta.get("nonneg"):
            holder[key] = draw(st.integers(max_value=-1) | st.floats(max_value=-1e-300, allow_infinity=False))
        else:
            holder[key] = draw(st.integers(max_value=0) | st.floats(max_value=0.0, allow_infinity=False))
    elif how == "fraction":
        holder[key] = draw(st.floats(0.001, 1e6).filter(lambda v: not v.is_integer()))
    elif how == "huge":
        limit = s.meta.get("max", MAX_MAGNITUDE)
        holder[key] = draw((HUGE_INTS | HUGE_FLOATS).filter(lambda v: v > limit))
    elif how == "tiny":
        holder[key] = draw(st.floats(min_value=0.0, max_value=MIN_POSITIVE, exclude_min=True, exclude_max=True))
    elif how == "bad_choice":
        original = str(holder.get(key) or (s.choices[0] if s.choices else "x"))
        bad = draw(typo(original).filter(lambda w: w.strip() and w not in map(str, s.choices)))
        holder[key] = bad
        if s.choices:
            check = lambda err: assert_suggests(err, bad, original, s.choices) or True  # noqa: E731
    elif how == "bad_element":
        i = draw(st.integers(0, len(holder[key]) - 1))
        holder[key][i] = draw(wrong_type(s.elem, False))
        label = f"{label}[{i}]"
    return data, label, check, how


def dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write_spec(work: Path, name: str, text: str | bytes) -> Path:
    path = fresh(work) / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def point_argv(model="llama-3.1-70b", hardware="h200-hgx", *extra) -> list[str]:
    return ["point", "--model", model, "--hardware", hardware, "--strategy", "tp", "--batch", "1",
            "--context", "1024", *extra]


# ------------------------------------------------------------------ YAML spec files, field by field
def _builtin(kind: str, name: str) -> dict:
    return yaml.safe_load((data_dir(kind) / f"{name}.yaml").read_text())


@settings(max_examples=700, **FUZZ)
@given(data=st.data())
def test_hardware_yaml_mutations(work, capsys, data):
    name = data.draw(st.sampled_from(HARDWARE))
    spec, label, check, how = data.draw(mutation(HardwareSpec, _builtin("hardware", name)))
    GENERATED["hardware yaml"] += 1
    path = write_spec(work, f"{name}.yaml", dump(spec))
    err = assert_error(cli(capsys, point_argv(hardware=str(path))), str(path))
    assert label in err, (how, label, err)
    assert check is None or check(err), (how, err)


@settings(max_examples=900, **FUZZ)
@given(data=st.data())
def test_model_yaml_mutations(work, capsys, data):
    name = data.draw(st.sampled_from(MODELS))
    spec, label, check, how = data.draw(mutation(ModelSpec, _builtin("models", name)))
    GENERATED["model yaml"] += 1
    path = write_spec(work, f"{name}.yaml", dump(spec))
    if data.draw(st.booleans()):
        out = fresh(work) / "out"
        err = assert_error(cli(capsys, ["roofline", "--model", path, "--out", out]), str(path), out_dir=out)
    else:
        err = assert_error(cli(capsys, point_argv(model=str(path))), str(path))
    assert label in err, (how, label, err)
    assert check is None or check(err), (how, err)


def _sweep_mutation():
    @st.composite
    def draw_it(draw):
        name = draw(st.sampled_from(SWEEPS))
        base = _builtin("sweeps", name)
        how = draw(st.sampled_from(["schema"] * 4 + ["model_name", "hardware_name", "strategy", "pp", "precision"]))
        if how == "schema":
            return draw(mutation(SweepSpec, base, name_must_match_file=False))
        if how == "model_name":
            i = draw(st.integers(0, len(base["models"]) - 1))
            bad = draw(typo(base["models"][i]).filter(lambda w: w not in MODELS and not w.endswith((".yaml", ".json"))))
            intended = base["models"][i]
            base["models"][i] = bad
            return base, f"models[{i}]", lambda err: assert_suggests(err, bad, intended, MODELS) or True, how
        if how == "hardware_name":
            bad = draw(typo(base["hardware"]).filter(lambda w: w not in HARDWARE and "/" not in w
                                                      and not w.endswith((".yaml", ".yml", ".json"))))
            intended, base["hardware"] = base["hardware"], bad
            return base, "hardware", lambda err: assert_suggests(err, bad, intended, HARDWARE) or True, how
        if how == "strategy":
            i = draw(st.integers(0, len(base["strategies"]) - 1))
            intended = base["strategies"][i]
            bad = draw(typo(intended).filter(lambda w: w not in STRATEGIES))
            base["strategies"][i] = bad
            return base, f"strategies[{i}]", lambda err: assert_suggests(err, bad, intended, STRATEGIES) or True, how
        if how == "pp":
            i = draw(st.integers(0, len(base["pp"]) - 1))
            base["pp"][i] = draw(st.integers(3, 4096).filter(lambda v: v & (v - 1)))
            return base, f"pp[{i}]", None, how
        field = draw(st.sampled_from(["weights", "kv_cache", "activations", "attention_math"]))
        intended = base.setdefault("precision", {}).get(field) or "fp8"
        bad = draw(typo(intended).filter(lambda w: w.strip() and w not in ("fp4", "fp8", "bf16")))
        base["precision"][field] = bad
        return base, f"precision.{field}", None, how

    return draw_it()


@settings(max_examples=700, **FUZZ)
@given(case=_sweep_mutation())
def test_sweep_yaml_mutations(work, capsys, case):
    spec, label, check, how = case
    GENERATED["sweep yaml"] += 1
    path = write_spec(work, "study.yaml", dump(spec))
    out = fresh(work) / "out"
    err = assert_error(cli(capsys, ["sweep", path, "--out", out]), str(path), out_dir=out)
    assert label in err, (how, label, err)
    assert check is None or check(err), (how, err)


# ------------------------------------------------------------------ cross-field rules (near-valid models and systems)
CROSS = [
    # (kind, built-in, mutate, field named)
    ("hardware", "gb200-nvl72", lambda d: d.update(gpus_per_node=d["nvlink_domain_gpus"] * 2), "gpus_per_node"),
    ("models", "llama-3.1-405b", lambda d: d["attention"].update(num_kv_heads=3), "attention.num_kv_heads"),
    ("models", "deepseek-r1", lambda d: d["attention"].update(num_kv_heads=8), "attention.num_kv_heads"),
    ("models", "deepseek-r1", lambda d: d["attention"].update(kv_lora_rank=None), "attention.kv_lora_rank"),
    ("models", "deepseek-r1", lambda d: d["ffn"]["moe"].update(experts_per_token=512), "ffn.moe.experts_per_token"),
    ("models", "deepseek-r1", lambda d: d["ffn"].update(dense_layers=62), "ffn.dense_layers"),
    ("models", "deepseek-r1", lambda d: d["ffn"].update(intermediate_size=None), "ffn.intermediate_size"),
    ("models", "llama-3.1-70b", lambda d: d["ffn"].update(dense_layers=79), "ffn.dense_layers"),
    ("models", "gpt-oss-120b", lambda d: d["attention"].update(sliding_window_layers=37), "attention.sliding_window_layers"),
    ("models", "gpt-oss-120b", lambda d: d["attention"].update(sliding_window_tokens=None), "attention.sliding_window_tokens"),
    ("models", "qwen3-32b", lambda d: d.update(name="qwen3-33b"), "name"),
]


@pytest.mark.parametrize("kind,name,mutate,field", CROSS)
def test_cross_field_rules(work, capsys, kind, name, mutate, field):
    spec = _builtin(kind, name)
    mutate(spec)
    GENERATED["cross-field"] += 1
    path = write_spec(work, f"{name}.yaml", dump(spec))
    argv = point_argv(hardware=str(path)) if kind == "hardware" else point_argv(model=str(path))
    assert f"{field}:" in assert_error(cli(capsys, argv), str(path))


# ------------------------------------------------------------------ corrupted text and documents that are not mappings
def _corrupt(text: str) -> st.SearchStrategy:
    lines = text.splitlines(keepends=True)

    @st.composite
    def draw_it(draw):
        how = draw(st.sampled_from(["reserved", "unbalanced", "bad_utf8", "not_mapping", "long_int"]))
        if how in ("reserved", "unbalanced"):
            i = draw(st.integers(0, len(lines)))
            junk = draw(st.sampled_from(["@", "`"] if how == "reserved" else ["[", "{", "]", "}"]))
            return "".join(lines[:i]) + junk + draw(TEXT).replace("\n", " ") + "\n" + "".join(lines[i:]), how
        if how == "bad_utf8":
            i = draw(st.integers(0, len(text)))
            return text[:i].encode() + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"])) \
                + text[i:].encode(), how
        if how == "not_mapping":
            return draw(st.sampled_from(["", "~\n", "- a\n- b\n", "just words\n", "42\n", "[1, 2]\n", "'x'\n"])), how
        return text + f"extra_number: 1{'0' * draw(st.integers(4300, 5000))}\n", how

    return draw_it()


@st.composite
def truncated(draw, text: str, last_required: str):
    """A strict prefix of ``text`` that ends before the key ``last_required``: it must be missing or broken."""
    stop = text.index(f"\n{last_required}:")
    return text[:draw(st.integers(0, stop))], "truncated"


SPEC_TEXTS = {
    "hardware": {n: (data_dir("hardware") / f"{n}.yaml").read_text() for n in HARDWARE},
    "models": {n: (data_dir("models") / f"{n}.yaml").read_text() for n in MODELS},
    "sweeps": {n: (data_dir("sweeps") / f"{n}.yaml").read_text() for n in SWEEPS},
}
LAST_REQUIRED = {"hardware": "power_w", "models": "ffn", "sweeps": "contexts"}


@settings(max_examples=500, **FUZZ)
@given(data=st.data())
def test_corrupted_yaml_text(work, capsys, data):
    kind = data.draw(st.sampled_from(sorted(SPEC_TEXTS)))
    name = data.draw(st.sampled_from(sorted(SPEC_TEXTS[kind])))
    text = SPEC_TEXTS[kind][name]
    body, how = data.draw(_corrupt(text) | truncated(text, LAST_REQUIRED[kind]))
    GENERATED["corrupted yaml"] += 1
    path = write_spec(work, f"{name}.yaml", body)
    out = fresh(work) / "out"
    argv = {"hardware": point_argv(hardware=str(path)), "models": point_argv(model=str(path)),
            "sweeps": ["sweep", str(path), "--out", str(out)]}[kind]
    err = assert_error(cli(capsys, argv), str(path), out_dir=out)
    if how in ("reserved", "unbalanced", "long_int"):
        assert "malformed YAML" in err, err
    if how == "bad_utf8":
        assert "cannot read file" in err, err


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_nesting_too_deep(work, capsys, kind):
    """[[[...]]] 1000 deep exhausts the parsers' recursion: an error line, not a RecursionError traceback."""
    GENERATED["corrupted yaml" if kind == "yaml" else "hf config.json"] += 1
    n = 1000 if kind == "yaml" else 100_000
    path = write_spec(work, "deep.yaml" if kind == "yaml" else "deep.config.json", "[" * n + "]" * n + "\n")
    assert "malformed " + kind.upper() in assert_error(cli(capsys, point_argv(model=str(path))), str(path))


# ------------------------------------------------------------------ Hugging Face config.json
class _Recording(dict):
    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def _hf_keys_read(name: str) -> set[str]:
    data = _Recording(json.loads((HF_DIR / name).read_text()))
    hf.ARCHITECTURES[data["architectures"][0]](hf._Config(data, name), name)
    return data.read


HF_CONFIGS = {n: json.loads((HF_DIR / n).read_text()) for n in HF_FILES}
HF_READ = {n: _hf_keys_read(n) for n in HF_FILES}
HF_COUNT = {"num_nextn_predict_layers", "first_k_dense_replace", "n_shared_experts", "shared_expert_intermediate_size",
            "shared_intermediate_size", "mtp_num_hidden_layers"}
HF_BOOL = {"tie_word_embeddings", "attention_bias", "use_sliding_window", "attn_output_gate"}
HF_OTHER = {"architectures", "_name_or_path", "layer_types", "mlp_only_layers", "quantization_config"}
HF_REQUIRED = {"num_hidden_layers", "hidden_size", "vocab_size", "num_attention_heads", "qk_nope_head_dim",
               "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "v_head_dim", "n_routed_experts",
               "num_experts_per_tok", "moe_intermediate_size", "num_experts", "num_local_experts"}


@st.composite
def hf_mutation(draw):
    name = draw(st.sampled_from(HF_FILES))
    cfg = copy.deepcopy(HF_CONFIGS[name])
    text = None
    numeric = sorted(k for k in HF_READ[name] - HF_OTHER - HF_BOOL if k in cfg)
    how = draw(st.sampled_from(["value"] * 6 + ["missing", "huge", "arch", "arch_typo", "not_object", "mlp_only_layers",
                                                  "control_char", "truncated", "bad_utf8", "long_int"]))
    named = None  # the JSON key the error must name
    if how == "value":
        key = draw(st.sampled_from(numeric + sorted(HF_BOOL & set(cfg))))
        if key in HF_BOOL:
            cfg[key] = draw(NUMBERS | TEXT | LISTS | DICTS)
        elif key in HF_COUNT:
            cfg[key] = draw(st.integers(max_value=-1) | st.floats(allow_nan=True) | NONFINITE | TEXT | LISTS | DICTS
                            | st.booleans())
        else:
            cfg[key] = draw(st.integers(max_value=0) | st.floats(max_value=0.0, allow_nan=False)
                            | st.floats(0.001, 1e6).filter(lambda v: not v.is_integer()) | NONFINITE | TEXT | LISTS
                            | DICTS | st.booleans())
        named = key
    elif how == "missing":
        required = sorted(HF_REQUIRED & HF_READ[name] & set(cfg))   # empty where the model sits under text_config
        assume(required)
        key = draw(st.sampled_from(required))
        del cfg[key]
        named = key
    elif how == "huge":
        cfg[draw(st.sampled_from(numeric))] = draw(HUGE_INTS)
    elif how == "arch":
        value = draw(st.sampled_from([None, "LlamaForCausalLM", [], [3], {"a": 1}, [None]]))
        if value is None:
            del cfg["architectures"]
        else:
            cfg["architectures"] = value
        named = "architectures"
    elif how == "arch_typo":
        intended = cfg["architectures"][0]
        bad = draw(typo(intended).filter(lambda w: w not in hf.ARCHITECTURES))
        cfg["architectures"] = [bad]
        named = "architectures"
        return name, json.dumps(cfg), named, lambda err: assert_suggests(err, bad, intended, hf.ARCHITECTURES) or True, how
    elif how == "not_object":
        text = draw(st.sampled_from(["[]", "null", "3", '"config"', "[{}]"]))
        named = "(top level)"
    elif how == "mlp_only_layers":
        assume("mlp_only_layers" in HF_READ[name])
        cfg["mlp_only_layers"] = draw(st.integers(1, 10) | st.text(PRINTABLE, min_size=1, max_size=5) | NONEMPTY_DICTS)
        named = "mlp_only_layers"
    elif how == "control_char":
        base = json.dumps(cfg, indent=2)
        i = draw(st.integers(0, len(base)))
        text = base[:i] + draw(st.sampled_from(["\x00", "\x01", "\x1f"])) + base[i:]
    elif how == "truncated":
        base = json.dumps(cfg, indent=2)
        text = base[:draw(st.integers(0, base.rindex("}") - 1))]
    elif how == "bad_utf8":
        base = json.dumps(cfg, indent=2).encode()
        i = draw(st.integers(0, len(base)))
        text = base[:i] + b"\xff\xfe" + base[i:]
    else:
        text = json.dumps(cfg)[:-1] + f', "extra": 1{"0" * draw(st.integers(4300, 5000))}}}'
    return name, json.dumps(cfg) if text is None else text, named, None, how


@settings(max_examples=700, **FUZZ)
@given(case=hf_mutation())
def test_hf_config_mutations(work, capsys, case):
    name, text, named, check, how = case
    GENERATED["hf config.json"] += 1
    path = write_spec(work, name, text)
    err = assert_error(cli(capsys, point_argv(model=str(path))), str(path))
    if named:
        assert named in err, (how, named, err)
    if how in ("control_char", "truncated", "long_int"):
        assert "malformed JSON" in err, err
    assert check is None or check(err), err


# ------------------------------------------------------------------ command-line flags
INT_FLAGS = ["--kvp", "--tpa", "--dp", "--tpf", "--ep", "--pp", "--batch", "--context"]


def _not_an_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return True
    return False


@settings(max_examples=400, **FUZZ)
@given(flag=st.sampled_from(INT_FLAGS), value=TEXT.filter(_not_an_int) | st.sampled_from(["nan", "inf", "2.5", "1e3", "0x10", ""]))
def test_point_flag_not_a_number(capsys, flag, value):
    GENERATED["point flags"] += 1
    argv = point_argv()
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    assert_error(cli(capsys, argv), flag, "Invalid value", "No such option", "requires an argument", "Got unexpected")


@settings(max_examples=300, **FUZZ)
@given(flag=st.sampled_from(INT_FLAGS), value=st.integers(max_value=0) | HUGE_INTS.filter(lambda v: v.bit_length() < 4000))
def test_point_flag_out_of_range(capsys, flag, value):
    GENERATED["point flags"] += 1
    argv = point_argv()
    if flag in argv:
        argv[argv.index(flag) + 1] = str(value)
    else:
        argv += [flag, str(value)]
    # a width of 0 is named itself; a huge one may break another rule first (e.g. tp's tpa = tpf x ep)
    assert_error(cli(capsys, argv), *([flag] if value <= 0 else INT_FLAGS))


@settings(max_examples=250, **FUZZ)
@given(batch=st.integers(1, 10**15) | st.sampled_from([10**15, 2**40, 10**12]),
       context=st.integers(1, 10**15) | st.sampled_from([10**15, 2**40, 10**12]),
       model=st.sampled_from(MODELS), hardware=st.sampled_from(HARDWARE), ideal=st.booleans())
def test_point_absurd_batch_and_context_are_finite(capsys, batch, context, model, hardware, ideal):
    """Up to the 1e15 limit the answer is finite and honest about memory (largest batches never overflow)."""
    GENERATED["point absurd sizes"] += 1
    small = _point_json(capsys, model, hardware, 1, 1, ideal)
    assert_not_cheaper(_point_json(capsys, model, hardware, batch, context, ideal), small)


def _point_json(capsys, model, hardware, batch, context, ideal):
    argv = ["point", "--model", model, "--hardware", hardware, "--strategy", "tp", "--tpa", "1", "--tpf", "1",
            "--batch", str(batch), "--context", str(context), "--weights", "fp8", "--json"] + (["--ideal"] if ideal else [])
    result = cli(capsys, argv)
    assert_finite_point(result, load_hardware(hardware).hbm_capacity_bytes)
    return json.loads(result[1])


def assert_not_cheaper(big: dict, small: dict) -> None:
    """More requests or more context never cost less (an int64 wrap shows up as a 0 or a drop)."""
    for key, value in small["breakdown_ms"].items():
        assert big["breakdown_ms"][key] >= value * (1 - 1e-12), (key, big["breakdown_ms"], small["breakdown_ms"])
    assert big["memory_per_gpu_gb"] >= small["memory_per_gpu_gb"] * (1 - 1e-12)


@settings(max_examples=120, **FUZZ)
@given(data=st.data(), size=st.integers(1, 10**15) | st.integers(0, 15).map(lambda e: 10**e), ideal=st.booleans())
def test_point_absurd_but_valid_model_is_finite(work, capsys, data, size, ideal):
    """A model YAML with one size blown up to <= 1e15 (the schema limit) and batch/context up to 1e15:
    finite numbers, honest feasibility, and never cheaper than one request of one token."""
    name = data.draw(st.sampled_from(["llama-3.1-70b", "deepseek-r1", "gpt-oss-120b", "qwen3-235b-a22b"]))
    spec = _builtin("models", name)
    field = data.draw(st.sampled_from(["num_layers", "hidden_size", "vocab_size", "attention.head_dim",
                                       "ffn.intermediate_size"]))
    if field == "num_layers":
        size = max(size, spec["ffn"]["dense_layers"], spec["attention"]["sliding_window_layers"])
        if spec["ffn"]["moe"] is None:
            spec["ffn"]["dense_layers"] = size
    holder = parent(spec, tuple(field.split(".")))
    holder[field.split(".")[-1]] = size
    GENERATED["point absurd sizes"] += 1
    path = write_spec(work, f"{name}.yaml", dump(spec))
    batch = data.draw(st.integers(1, 10**15) | st.sampled_from([1, 10**15]))
    context = data.draw(st.integers(1, 10**15) | st.sampled_from([1, 10**15]))
    small = _point_json(capsys, str(path), "gb200-nvl72", 1, 1, ideal)
    assert_not_cheaper(_point_json(capsys, str(path), "gb200-nvl72", batch, context, ideal), small)


@st.composite
def bad_layout(draw):
    model = draw(st.sampled_from(MODELS))
    strategy = draw(st.sampled_from(STRATEGIES))
    width = st.integers(1, 300) | st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128])
    widths = {k: draw(width) for k in ("kvp", "tpa", "dp", "tpf", "ep", "pp")}
    m = load_model(model)
    assume(not valid_mask(LayoutArrays.from_layout(Layout(strategy, **widths)), m)[0])
    return model, strategy, widths


@settings(max_examples=400, **FUZZ)
@given(case=bad_layout())
def test_point_layout_that_cannot_exist(capsys, case):
    model, strategy, widths = case
    GENERATED["point layouts"] += 1
    argv = ["point", "--model", model, "--hardware", "gb200-nvl72", "--strategy", strategy, "--batch", "8",
            "--context", "4096"] + [x for k, v in widths.items() for x in (f"--{k}", str(v))]
    err = assert_error(cli(capsys, argv), *(f"--{k}" for k in widths))
    assert model in err


WIDTH_NAMES = ("kvp", "tpa", "dp", "tpf", "ep", "pp")
BIG_WIDTH = (st.integers(0, 64).map(lambda e: 2**e) | st.integers(1, 2**64) | st.just(10**30)
             | st.sampled_from([1, 2, 4, 8, 16, 64]))


@st.composite
def medha_with_huge_kvp(draw):
    """Medha is the one strategy whose rules leave kvp unbounded: every other rule holds here."""
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    kvp = draw(st.integers(50, 64).map(lambda e: 2**e) | BIG_WIDTH)
    return "medha", {"kvp": kvp, "tpa": tp, "dp": 1, "tpf": tp, "ep": 1, "pp": draw(st.sampled_from([1, 2, 4, 8]))}


@settings(max_examples=400, **FUZZ)
@given(model=st.sampled_from(["deepseek-r1", "llama-3.1-405b", "qwen3-235b-a22b"]),
       case=st.tuples(st.sampled_from(STRATEGIES), st.fixed_dictionaries({k: BIG_WIDTH for k in WIDTH_NAMES}))
       | medha_with_huge_kvp())
def test_point_huge_widths(capsys, model, case):
    """Widths up to 2**64 GPUs (whose products wrap int64) are refused, or priced finitely; never a traceback."""
    strategy, widths = case
    GENERATED["point layouts"] += 1
    argv = ["point", "--model", model, "--hardware", "gb200-nvl72", "--strategy", strategy, "--batch", "8",
            "--context", "4096", "--json"] + [x for k, v in widths.items() for x in (f"--{k}", str(v))]
    result = cli(capsys, argv)
    if result[0] == 0:
        assert_finite_point(result, load_hardware("gb200-nvl72").hbm_capacity_bytes)
    else:
        assert_error(result, *(f"--{k}" for k in widths))


@settings(max_examples=300, **FUZZ)
@given(which=st.sampled_from(["--model", "--hardware"]), data=st.data())
def test_unknown_names_suggest_the_closest(capsys, which, data):
    names = MODELS if which == "--model" else HARDWARE
    intended = data.draw(st.sampled_from(names))
    bad = data.draw(typo(intended).filter(lambda w: w not in names and "/" not in w
                                          and not w.endswith((".yaml", ".yml", ".json"))))
    GENERATED["unknown names"] += 1
    argv = point_argv(**{which[2:]: bad})
    err = assert_error(cli(capsys, argv), which)
    assert f"'{bad}'" in err and "known:" in err
    assert_suggests(err, bad, intended, names)


@settings(max_examples=200, **FUZZ)
@given(which=st.sampled_from(["--model", "--hardware"]), name=st.text(PRINTABLE, max_size=20))
def test_unknown_random_names(capsys, which, name):
    assume("/" not in name and not name.endswith((".yaml", ".yml", ".json")) and not name.startswith("-"))
    assume(name not in MODELS + HARDWARE)
    GENERATED["unknown names"] += 1
    assert_error(cli(capsys, point_argv(**{which[2:]: name})), which)


# ------------------------------------------------------------------ roofline flags
@settings(max_examples=300, **FUZZ)
@given(flag=st.sampled_from(["--batch", "--context", "--bytes-param"]),
       value=st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e400", str(10**16), str(2**63), "", "many"])
       | TEXT.filter(_not_an_int) | st.integers(max_value=0).map(str))
def test_roofline_flags(work, capsys, flag, value):
    assume(not (flag == "--bytes-param" and _is_ok_bytes(value)))
    GENERATED["roofline flags"] += 1
    out = fresh(work) / "out"
    err = assert_error(cli(capsys, ["roofline", "--model", "llama-3.1-70b", flag, value, "--out", out]),
                       flag, "No such option", "requires an argument", out_dir=out)
    assert "error: " in err


def _is_ok_bytes(value: str) -> bool:
    try:
        v = float(value)
    except ValueError:
        return False
    return 0 < v <= 64


# ------------------------------------------------------------------ files that are not there, directories, unwritable outputs
@settings(max_examples=150, **FUZZ)
@given(where=st.sampled_from(["point-model-yaml", "point-model-json", "point-hardware", "sweep", "roofline-model"]),
       problem=st.sampled_from(["missing", "directory"]))
def test_missing_or_unreadable_files(work, capsys, where, problem):
    GENERATED["missing/unreadable files"] += 1
    d = fresh(work)
    suffix = ".json" if where.endswith("json") else ".yaml"
    path = d / f"spec{suffix}"
    if problem == "directory":
        path.mkdir()  # a directory where a file is expected (tests run as root: chmod 000 would not stop a read)
    out = d / "out"
    argv = {"point-model-yaml": point_argv(model=str(path)), "point-model-json": point_argv(model=str(path)),
            "point-hardware": point_argv(hardware=str(path)), "sweep": ["sweep", str(path), "--out", str(out)],
            "roofline-model": ["roofline", "--model", str(path), "--out", str(out)]}[where]
    err = assert_error(cli(capsys, argv), str(path), out_dir=out)
    assert ("file not found" if problem == "missing" else "cannot read file") in err


SMALL_SWEEP = ("name: tiny\ndescription: tiny\nmodels: [llama-3.1-70b]\nhardware: h200-hgx\ncontexts: [4096]\n"
               "max_gpus: 2\nmax_batch: 2\nstrategies: [tp]\n")


@settings(max_examples=150, **FUZZ)
@given(command=st.sampled_from(["sweep", "roofline"]), depth=st.integers(0, 3), as_file=st.booleans())
def test_output_directory_cannot_be_written(work, capsys, command, depth, as_file):
    GENERATED["unwritable --out"] += 1
    d = fresh(work)
    blocker = d / "blocker"
    blocker.write_text("a regular file\n")
    out = blocker if as_file else blocker.joinpath(*(["sub"] * (depth + 1)))
    sweep = d / "tiny.yaml"
    sweep.write_text(SMALL_SWEEP)
    argv = ["sweep", sweep, "--out", out] if command == "sweep" else ["roofline", "--out", out]
    assert_error(cli(capsys, argv), str(out), str(blocker), "--out")
    assert sorted(p.name for p in d.iterdir()) == ["blocker", "tiny.yaml"]
    assert blocker.read_text() == "a regular file\n"


@settings(max_examples=200, **FUZZ)
@given(data=st.data())
def test_unknown_builtin_sweep_suggests_the_closest(work, capsys, data):
    intended = data.draw(st.sampled_from(SWEEPS))
    bad = data.draw(typo(intended).filter(lambda w: w not in SWEEPS and "." not in w and "/" not in w
                                          and not w.startswith("-")))  # "-x" would be read as an option
    GENERATED["unknown names"] += 1
    out = fresh(work) / "out"
    err = assert_error(cli(capsys, ["sweep", bad, "--out", out]), f"'{bad}'", out_dir=out)
    assert_suggests(err, bad, intended, SWEEPS)
