"""Hostile inputs, every command x every input class (issue 15).

Each *slot* is one way a user hands a file to a command (``point --model F``, ``sweep F``,
``plan --price F``, ``validate --e2e F``, ``calibrate --data DIR``, ``docs --root DIR`` ...), with
a valid base input that the command accepts (its *valid twin* is run too, so a slot cannot pass
by refusing everything). Each *class* breaks that input one way: malformed syntax, a YAML alias
bomb, a duplicate key, a binary or UTF-16 file, an empty file, NaN / inf / 1e400 where a number
goes, a list where a mapping goes, an enormous grid, a missing file, a folder, a FIFO and
``/dev/zero``, and output paths that cannot be written. Every case must end as a user error
does: exit status 2, one ``error:`` line naming the file or flag, nothing on stdout, no
traceback, nothing left in the output folder. Cases run in-process (``helixsim.cli.run``) under
a 60 s alarm, so a hang (a FIFO read, ``/dev/zero``) fails the case instead of stalling the suite.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from test_fuzz_inputs import assert_error, cli

from helixsim.specs.registry import data_dir

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = data_dir("hardware") / "calibration" / "b200-hgx"  # the shipped folder, tables linked into each case
LIMIT_S = 60
BOMB = ("x: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(7)))
SWEEP = ("name: tiny\ndescription: hostile-input base\nmodels: [llama-3.1-8b]\nhardware: b200-hgx\n"
         "contexts: [8192]\nstrategies: [tp]\nmax_gpus: 8\nmax_batch: 8\n")
PLAN = ("model: llama-3.1-8b\nhardware: [b200-hgx]\ncontext: 8192\nusers: 8\nmin_tokens_per_s_user: 10\n"
        "max_batch: 8\nstrategies: [tp]\nsensitivity: false\n")
PRICE = "usd_per_gpu_hour:\n  b200-hgx: 5.0\n"
GEMM = "op_name,kernel_source,gemm_dtype,m,n,k,latency_ms\n" + "".join(
    f"gemm,torch_flow,bfloat16,{m},4096,4096,{0.02 + 0.001 * m:.4f}\n" for m in (1, 2, 4, 8, 16, 32, 64))
E2E = "\n".join((ROOT / "validation" / "silicon_decode_dev.csv").read_text().splitlines()[:4]) + "\n"
DOC = "# Doc\n\n<!-- generated:sweep-schema -->\nold\n<!-- /generated:sweep-schema -->\n"
LAYOUT = ["--strategy", "tp", "--tpa", "8", "--tpf", "8", "--batch", "8", "--context", "8192"]
PLAN_FLAGS = ["--context", "8192", "--users", "8", "--min-tokens-per-s-user", "10", "--max-batch", "8",
              "--no-sensitivity"]


@dataclass(frozen=True)
class Slot:
    """One file a command reads: where it sits (``name`` inside a case folder, ``folder``: the command
    is given the folder), its valid text, and the command line with ``{F}`` for it and ``{OUT}``."""

    command: str
    name: str
    base: str
    argv: tuple[str, ...]
    kind: str  # yaml, json, csv or md: which classes apply
    folder: bool = False
    number: str = ""  # a 'key: value' (or CSV cell) line of the base to put NaN / inf / 1e400 in
    twin: bool = True  # run the valid twin (reproduce's takes minutes: its calibration is point's twin)


def _model_yaml() -> str:
    return (data_dir("models") / "llama-3.1-8b.yaml").read_text()


SLOTS = {
    "point --model": Slot("point", "llama-3.1-8b.yaml", _model_yaml(),
                          ("point", "--model", "{F}", "--hardware", "b200-hgx", *LAYOUT), "yaml", number="hidden_size"),
    "point --model config.json": Slot(
        "point", "config.json", (data_dir("models") / "hf" / "meta-llama--Meta-Llama-3.1-8B.config.json").read_text(),
        ("point", "--model", "{F}", "--hardware", "b200-hgx", *LAYOUT), "json", number="hidden_size"),
    "point --hardware": Slot("point", "b200-hgx.yaml", (data_dir("hardware") / "b200-hgx.yaml").read_text(),
                             ("point", "--model", "llama-3.1-8b", "--hardware", "{F}", *LAYOUT), "yaml",
                             number="power_w"),
    "prefill --model": Slot("prefill", "llama-3.1-8b.yaml", _model_yaml(),
                            ("prefill", "--model", "{F}", "--hardware", "b200-hgx", "--strategy", "tp", "--tpa", "8",
                             "--tpf", "8", "--isl", "1024"), "yaml", number="hidden_size"),
    "roofline --model": Slot("roofline", "llama-3.1-8b.yaml", _model_yaml(),
                             ("roofline", "--model", "{F}", "--hardware", "b200-hgx", "--out", "{OUT}"), "yaml",
                             number="hidden_size"),
    "sweep FILE": Slot("sweep", "tiny.yaml", SWEEP, ("sweep", "{F}", "--out", "{OUT}"), "yaml", number="max_batch"),
    "plan --plan": Slot("plan", "plan.yaml", PLAN, ("plan", "--plan", "{F}", "--out", "{OUT}"), "yaml",
                        number="min_tokens_per_s_user"),
    "plan --price": Slot("plan", "prices.yaml", PRICE, ("plan", "--model", "llama-3.1-8b", "--hardware", "b200-hgx",
                                                         *PLAN_FLAGS, "--price", "{F}"), "yaml", number="b200-hgx"),
    "plan --model": Slot("plan", "llama-3.1-8b.yaml", _model_yaml(),
                         ("plan", "--model", "{F}", "--hardware", "b200-hgx", *PLAN_FLAGS), "yaml", number="hidden_size"),
    "validate --e2e": Slot("validate", "runs.csv", E2E, ("validate", "--e2e", "{F}", "--out", "{OUT}/pred.csv"), "csv",
                           number="tp"),
    "validate --kernels": Slot("validate", "gemm.csv", GEMM, ("validate", "--kernels", "{D}", "--hardware",
                                                               "gb200-nvl72"), "csv", folder=True, number="latency_ms"),
    "calibrate --data": Slot("calibrate", "gemm.csv", GEMM, ("calibrate", "--data", "{D}", "--hardware", "gb200-nvl72",
                                                              "--out", "{OUT}"), "csv", folder=True, number="latency_ms"),
    "point --calibration": Slot("point", "calibration.json", (CALIBRATION / "calibration.json").read_text(),
                                ("point", "--model", "llama-3.1-8b", "--hardware", "b200-hgx", *LAYOUT, "--calibration",
                                 "{D}"), "json", folder=True, number="roofline.hbm_gbps"),
    "reproduce --calibration": Slot("reproduce", "calibration.json", (CALIBRATION / "calibration.json").read_text(),
                                    ("reproduce", "--calibration", "{D}", "--out", "{OUT}"), "json", folder=True,
                                    number="roofline.hbm_gbps", twin=False),
    "docs --root": Slot("docs", "README.md", DOC, ("docs", "--root", "{D}"), "md", folder=True),
}


def _with_number(slot: Slot, value: str) -> str:
    """The base with the number of ``slot.number`` replaced by ``value``."""
    if slot.kind == "csv":
        lines = slot.base.splitlines()
        header = lines[0].split(",")
        cells = lines[2].split(",")
        cells[header.index(slot.number)] = value
        lines[2] = ",".join(cells)
        return "\n".join(lines) + "\n"
    if slot.kind == "json":
        import json

        data = json.loads(slot.base)
        *outer, last = slot.number.split(".")
        inner = data
        for key in outer:
            inner = inner[key]
        inner[last] = "@@"
        return json.dumps(data).replace('"@@"', value)
    out, done = [], False
    for line in slot.base.splitlines():
        key = line.split(":")[0].strip()
        if not done and key == slot.number and ":" in line:
            indent = line[: len(line) - len(line.lstrip())]
            line, done = f"{indent}{key}: {value}", True
        out.append(line)
    assert done, slot.number
    return "\n".join(out) + "\n"


def _json_first_key_twice(text: str) -> str:
    """The JSON object with its first key given again (with the same value) at the end."""
    import json

    key, value = next(iter(json.loads(text).items()))
    return text.rstrip().rstrip("}") + f", {json.dumps(key)}: {json.dumps(value)}}}"


#: class name -> (kinds it applies to, content maker (slot -> str | bytes) or a path maker for special files)
CONTENT: dict[str, tuple[tuple[str, ...], Callable]] = {
    "malformed syntax": (("yaml", "json", "csv", "md"), lambda s: {
        "yaml": s.base + "\nbroken: [1, 2\n", "json": s.base[: len(s.base) // 2],
        "csv": s.base.splitlines()[0] + "\n" + "1,2\n", "md": s.base.replace("<!-- /generated:sweep-schema -->\n", "")}[s.kind]),
    "alias bomb": (("yaml",), lambda s: BOMB + s.base),
    "self alias": (("yaml",), lambda s: "a: &a [*a]\n" + s.base),
    "duplicate key": (("yaml", "json"), lambda s: s.base + "\n" + next(x for x in s.base.splitlines() if x[:1].isalpha()) + "\n"
                      if s.kind == "yaml" else _json_first_key_twice(s.base)),
    "binary": (("yaml", "json", "csv", "md"), lambda s: bytes(range(256)) * 8),
    "UTF-16": (("yaml", "json", "csv", "md"), lambda s: s.base.encode("utf-16")),
    "empty": (("yaml", "json", "csv"), lambda s: ""),
    "NaN": (("yaml", "json", "csv"), lambda s: _with_number(s, {"yaml": ".nan", "json": "NaN", "csv": "nan"}[s.kind])),
    "inf": (("yaml", "json", "csv"), lambda s: _with_number(s, {"yaml": ".inf", "json": "Infinity", "csv": "inf"}[s.kind])),
    "huge number": (("yaml", "json", "csv"), lambda s: _with_number(s, "1e400")),
    "1,000 as a number": (("csv",), lambda s: _with_number(s, '"1,000"')),
    "list for a mapping": (("yaml", "json"), lambda s: "[1, 2, 3]\n"),
    "unknown generator": (("md",), lambda s: s.base.replace("sweep-schema", "no-such-block")),
}
SPECIAL = ("missing", "a folder", "FIFO", "/dev/zero")


def _case_dir(tmp_path: Path, slot: Slot | None = None) -> tuple[Path, Path]:
    d, out = tmp_path / "in", tmp_path / "out"
    d.mkdir()
    if slot is not None and slot.name == "calibration.json":  # the shipped tables beside the manifest under test
        for entry in CALIBRATION.iterdir():
            if entry.name != "calibration.json":
                os.symlink(entry, d / entry.name)
    out.mkdir()  # an empty output folder: a failed run must leave it empty
    return d, out


def _argv(slot: Slot, f: Path, d: Path, out: Path) -> list[str]:
    return [a.replace("{F}", str(f)).replace("{D}", str(d)).replace("{OUT}", str(out)) for a in slot.argv]


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"no answer within {LIMIT_S} s")


def run_case(capsys, argv):
    """The CLI in-process under a LIMIT_S alarm (a hang fails the case)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        return cli(capsys, argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _named(slot: Slot, f: Path, d: Path) -> tuple[str, ...]:
    return (str(f), str(d), f.name)


@pytest.mark.parametrize("slot_name", sorted(SLOTS))
def test_valid_twin_is_accepted(tmp_path, capsys, slot_name):
    slot = SLOTS[slot_name]
    if not slot.twin:
        pytest.skip("the valid twin takes minutes; the same input is point's twin")
    d, out = _case_dir(tmp_path, slot)
    f = d / slot.name
    f.write_text(slot.base)
    code, stdout, err = run_case(capsys, _argv(slot, f, d, out))
    assert code == 0, err
    assert "Traceback" not in err


CASES = [(s, c) for s in sorted(SLOTS) for c, (kinds, _) in CONTENT.items() if SLOTS[s].kind in kinds
         and (c not in ("NaN", "inf", "huge number", "1,000 as a number") or SLOTS[s].number)]


@pytest.mark.parametrize("slot_name, hostile", CASES)
def test_hostile_content(tmp_path, capsys, slot_name, hostile):
    slot = SLOTS[slot_name]
    d, out = _case_dir(tmp_path, slot)
    f = d / slot.name
    content = CONTENT[hostile][1](slot)
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_error(run_case(capsys, _argv(slot, f, d, out)), *_named(slot, f, d), out_dir=out)


@pytest.mark.parametrize("slot_name, special", [(s, k) for s in sorted(SLOTS) for k in SPECIAL])
def test_special_files(tmp_path, capsys, slot_name, special):
    slot = SLOTS[slot_name]
    d, out = _case_dir(tmp_path, slot)
    f = d / slot.name
    if special == "a folder":
        f.mkdir()
    elif special == "FIFO":
        if not hasattr(os, "mkfifo"):
            pytest.skip("needs FIFOs")
        os.mkfifo(f)
    elif special == "/dev/zero":
        if not Path("/dev/zero").exists():
            pytest.skip("needs /dev/zero")
        os.symlink("/dev/zero", f)
    argv = _argv(slot, f, d, out)
    if special == "missing" and slot.folder:
        shutil.rmtree(d)  # the folder itself is missing
    assert_error(run_case(capsys, argv), *_named(slot, f, d), out_dir=out)


OUT_SLOTS = sorted(s for s in SLOTS if "{OUT}" in " ".join(SLOTS[s].argv))


@pytest.mark.parametrize("slot_name", OUT_SLOTS)
@pytest.mark.parametrize("bad_out", ["under a file", "empty", "/proc"])
def test_output_path_cannot_be_written(tmp_path, capsys, slot_name, bad_out):
    slot = SLOTS[slot_name]
    d, _ = _case_dir(tmp_path)
    f = d / slot.name
    f.write_text(slot.base)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = {"under a file": str(blocker / "sub"), "empty": "", "/proc": "/proc/helixsim-out"}[bad_out]
    argv = [("" if not out and "{OUT}" in a else a.replace("{OUT}", out)).replace("{F}", str(f)).replace("{D}", str(d))
            for a in slot.argv]  # an empty --out is the whole value, not "/pred.csv"
    assert_error(run_case(capsys, argv), "--out", out or "empty")


@pytest.mark.parametrize("argv, flag", [
    (["sweep", "{F}"], "contexts"),
    (["plan", "--model", "llama-3.1-8b", "--hardware", "b200-hgx", "--context", "8192", "--users", "1e30",
      "--min-tokens-per-s-user", "10"], "--users"),
    (["plan", "--model", "llama-3.1-8b", "--hardware", "b200-hgx", "--context", str(2 ** 63), "--users", "8",
      "--min-tokens-per-s-user", "10"], "--context"),
    (["plan", "--model", "llama-3.1-8b", "--hardware", "b200-hgx", "--context", "8192", "--users", "8",
      "--min-tokens-per-s-user", "nan"], "--min-tokens-per-s-user"),
    (["point", "--model", "llama-3.1-8b", "--hardware", "b200-hgx", "--strategy", "tp", "--tpa", "8", "--batch", "8",
      "--context", "inf"], "--context"),
    (["prefill", "--model", "llama-3.1-8b", "--hardware", "b200-hgx", "--strategy", "tp", "--tpa", "8", "--tpf", "8",
      "--isl", "99999999999999999999999"], "--isl"),
])
def test_enormous_or_non_finite_flags(tmp_path, capsys, argv, flag):
    """An enormous grid (100,000 contexts), 1e30 users, a 2^63 context, NaN and inf where a number goes."""
    f = tmp_path / "huge.yaml"
    f.write_text(SWEEP.replace("contexts: [8192]", "contexts: [" + ", ".join(str(1024 + i) for i in range(100_000)) + "]"))
    argv = [a.replace("{F}", str(f)) for a in argv]
    if argv[0] == "sweep":
        argv += ["--out", str(tmp_path / "out")]
    assert_error(run_case(capsys, argv), flag, str(f), out_dir=tmp_path / "out")
