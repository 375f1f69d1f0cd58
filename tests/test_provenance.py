"""Reproducible, traceable outputs (issue 6, part 3).

* The same inputs give byte-identical outputs: every file of ``helixsim sweep``
  (tables, PNG and SVG plots) and of ``helixsim roofline``, run twice --
  once in this process and once in a fresh one (another hash seed, another
  matplotlib start-up).
* Every table a sweep writes (Parquet) carries in its metadata, and in the sidecar
  ``provenance.json``, the helixsim version and ``[<file>, <sha256[:16]>]`` of the sweep,
  model and hardware files, and the hashes are those of the files.
* Outputs are written through a temporary file and renamed: none is left
  behind, and the files get the mode an ordinary ``open()`` would give.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import helixsim
from helixsim.cli import run
from helixsim.specs.registry import data_dir

SWEEP = """\
# a small study: every strategy, HOP-B on and off, two contexts
name: tiny
description: provenance and reproducibility check
models: [llama-3.1-70b]
hardware: h200-hgx
contexts: [8192, 131072]
max_gpus: 8
max_batch: 32
hopb: [true, false]
"""


def sha16(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def cli(argv, capsys) -> str:
    capsys.readouterr()
    try:
        run([str(a) for a in argv])
    except SystemExit as exc:  # pragma: no cover - a failure is reported below
        assert exc.code in (0, None), capsys.readouterr().err
    out, err = capsys.readouterr()
    assert all(line.startswith("warning: ") for line in err.splitlines()), err  # warnings only (trained window)
    return out


def cli_subprocess(argv, cwd: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    src = Path(helixsim.__file__).resolve().parent.parent  # import the same helixsim as this process
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", *map(str, argv)],
                          capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def header_files(table: Path) -> tuple[str, list[tuple[str, str]]]:
    """(helixsim version, [(file, sha16), ...]) from a table's Parquet metadata, checked against
    the sidecar provenance.json."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(table).metadata
    assert meta and b"helixsim" in meta, f"{table.name}: no provenance in the Parquet metadata"
    prov = json.loads(meta[b"helixsim"])
    side = json.loads((table.parent / "provenance.json").read_text(encoding="utf-8"))
    assert side[table.name] == prov, table.name
    return prov["helixsim"], [tuple(pair) for pair in prov["inputs"]]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The tiny sweep run twice: here (the first) and in a fresh interpreter (the second)."""
    root = tmp_path_factory.mktemp("provenance")
    sweep = root / "tiny.yaml"
    sweep.write_text(SWEEP)
    first, second = root / "first", root / "second"
    try:
        run(["sweep", str(sweep), "--out", str(first)])
    except SystemExit as exc:  # pragma: no cover - only on failure
        assert exc.code in (0, None)
    cli_subprocess(["sweep", sweep, "--out", second], cwd=root)
    return sweep, first, second


def test_sweep_outputs_are_byte_identical(tiny_runs):
    _, first, second = tiny_runs
    a, b = files(first), files(second)
    assert set(a) == set(b)
    assert {Path(n).suffix for n in a} == {".parquet", ".json", ".png", ".svg"}
    assert len(a) == 5  # table, frontier table, provenance.json, the faceted frontier figure (two contexts; PNG + SVG)
    for name in a:
        assert a[name] == b[name], f"{name} differs between two runs of the same sweep"
    for name, data in a.items():
        if name.endswith(".svg"):
            assert b"<dc:date>" not in data, name  # no timestamp in the SVG metadata


def test_no_temporary_files_and_ordinary_permissions(tiny_runs):
    _, first, _ = tiny_runs
    names = sorted(p.name for p in first.iterdir())
    assert not [n for n in names if n.startswith(".")], names
    umask = os.umask(0)
    os.umask(umask)
    for p in first.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, (p.name, oct(p.stat().st_mode))


def test_every_table_names_and_hashes_its_inputs(tiny_runs):
    sweep, first, _ = tiny_runs
    tables = sorted(first.glob("*.parquet"))
    assert [p.name for p in tables] == ["tiny-frontier.parquet", "tiny.parquet"]
    expected = [("tiny.yaml", sha16(sweep)),
                ("llama-3.1-70b.yaml", sha16(data_dir("models") / "llama-3.1-70b.yaml")),
                ("h200-hgx.yaml", sha16(data_dir("hardware") / "h200-hgx.yaml"))]
    for table in tables:
        version, pairs = header_files(table)
        assert version == helixsim.__version__
        assert pairs == expected, table.name
        body = pd.read_parquet(table)
        assert len(body) > 0 and {"strategy", "ttl_ms", "tokens_per_s_user", "tokens_per_s_gpu"} <= set(body.columns)
    # the hash is of the bytes: a comment changes it
    changed = sweep.parent / "changed" / "tiny.yaml"
    changed.parent.mkdir()
    changed.write_text(sweep.read_text() + "# a comment\n")
    assert sha16(changed) != sha16(sweep)


def test_files_given_as_paths_are_named_and_hashed(tmp_path, monkeypatch, capsys):
    """Models and hardware given as files (relative, absolute, a Hugging Face config.json) are hashed as
    those files, and a multi-model sweep names each model's outputs by the file's stem."""
    local_model = tmp_path / "llama-3.1-70b.yaml"
    local_model.write_text((data_dir("models") / "llama-3.1-70b.yaml").read_text() + "# a local copy\n")
    local_hw = tmp_path / "h200-hgx.yaml"
    local_hw.write_text((data_dir("hardware") / "h200-hgx.yaml").read_text() + "# a local copy\n")
    hf_json = tmp_path / "hf" / "meta-llama--Meta-Llama-3.1-8B.config.json"
    hf_json.parent.mkdir()
    shutil.copy(data_dir("models") / "hf" / hf_json.name, hf_json)
    sweep = tmp_path / "paths.yaml"
    sweep.write_text(f"name: paths\ndescription: files as paths\nmodels: [qwen3-32b, llama-3.1-70b.yaml, {hf_json}]\n"
                     f"hardware: h200-hgx.yaml\ncontexts: [8192]\nmax_gpus: 4\nmax_batch: 8\nstrategies: [helix, tp]\n")
    monkeypatch.chdir(tmp_path)  # the relative paths resolve here
    cli(["sweep", sweep, "--out", tmp_path / "out"], capsys)
    out = tmp_path / "out"
    hw = ("h200-hgx.yaml", sha16(local_hw))
    assert hw[1] != sha16(data_dir("hardware") / "h200-hgx.yaml")
    for tag, model in [("qwen3-32b", ("qwen3-32b.yaml", sha16(data_dir("models") / "qwen3-32b.yaml"))),
                       ("llama-3.1-70b", ("llama-3.1-70b.yaml", sha16(local_model))),
                       ("meta-llama--Meta-Llama-3.1-8B", (hf_json.name, sha16(hf_json)))]:
        for table in (out / f"paths-{tag}.parquet", out / f"paths-{tag}-frontier.parquet"):
            version, pairs = header_files(table)
            assert pairs == [("paths.yaml", sha16(sweep)), model, hw], table.name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_roofline_outputs_are_byte_identical(tmp_path, capsys):
    for folder in ("a", "b"):
        cli(["roofline", "--model", "llama-3.1-70b", "--hardware", "h200-hgx", "--out", tmp_path / folder], capsys)
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert set(a) == set(b) and {Path(n).suffix for n in a} == {".csv", ".png", ".svg"}
    # named after the whole model name (Path.stem would cut "llama-3.1-70b" to "llama-3")
    assert all(n.startswith("roofline-llama-3.1-70b-h200-hgx") for n in a), sorted(a)
    for name in a:
        assert a[name] == b[name], name
