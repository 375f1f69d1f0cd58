"""Interrupted, failed and repeated runs (issue 15): no half-written output sets, clean exits.

A command writes its files into a staging folder beside ``--out`` and moves them into
place at the end (helixsim/outputs.py). Here a run is stopped after its first file was
written -- by SIGINT, by SIGTERM, by a full disk -- and must leave neither ``--out`` nor
a staging folder behind, with exit status 130, 143 or 2 and one line on stderr. The
signals are sent by the child to itself right after that first write, so the test does
not depend on timing. Reruns write the same bytes.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_fuzz_inputs import assert_error, cli

ROOT = Path(__file__).resolve().parent.parent
TINY_SWEEP = ("name: tiny\ndescription: tiny\nmodels: [llama-3.1-70b]\nhardware: h200-hgx\ncontexts: [4096]\n"
              "max_gpus: 2\nmax_batch: 2\nstrategies: [tp]\n")
PLAN = ["plan", "--model", "llama-3.1-70b", "--hardware", "h200-hgx", "--context", "4096", "--users", "4",
        "--min-tokens-per-s-user", "10", "--max-batch", "4", "--max-gpus-per-instance", "2", "--no-sensitivity"]

#: Child: run the CLI with the first table write followed by a signal to itself.
SIGNAL_AFTER_FIRST_WRITE = """
import os, signal, sys
import helixsim.sweep as sweep
from helixsim.cli import run
original = sweep.atomic_write_text
def write_then_signal(path, text):
    original(path, text)
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
sweep.atomic_write_text = write_then_signal
run(sys.argv[2:])
"""


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_mid_roofline_leaves_nothing(tmp_path, sig, code):
    (tmp_path / "tiny.yaml").write_text(TINY_SWEEP)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", SIGNAL_AFTER_FIRST_WRITE, sig, "roofline", "--out", "out"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a background job ignores it
    assert p.returncode == code, p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert leftovers(tmp_path) == ["tiny.yaml"]   # no out/, no .out.partial-*


def full_disk_after(n_ok: int):
    """An atomic writer that writes ``n_ok`` files, then fails as a full disk does."""
    calls = {"n": 0}

    def write(path, data, original):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device", str(path) + ".tmp123")
        original(path, data)
    return write


def test_full_disk_mid_roofline_names_out_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import helixsim.sweep as sweep

    (tmp_path / "tiny.yaml").write_text(TINY_SWEEP)
    original, failing = sweep.atomic_write_text, full_disk_after(1)
    monkeypatch.setattr(sweep, "atomic_write_text", lambda path, text: failing(path, text, original))
    out = tmp_path / "out"
    err = assert_error(cli(capsys, ["roofline", "--out", out]), str(out))
    assert "no space left on device" in err and "tmp123" not in err, err
    assert leftovers(tmp_path) == ["tiny.yaml"]


def test_full_disk_mid_plan_report_keeps_the_previous_report(tmp_path, capsys, monkeypatch):
    import helixsim.report as report

    out = tmp_path / "plan"
    code, _, err = cli(capsys, PLAN + ["--out", out])
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    original, failing = report.atomic_write_bytes, full_disk_after(1)
    monkeypatch.setattr(report, "atomic_write_bytes", lambda path, data: failing(path, data, original))
    assert_error(cli(capsys, PLAN + ["--out", out]), str(out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # untouched, no partial set
    assert leftovers(tmp_path) == ["plan"]


def test_validate_out_in_a_missing_folder_names_the_flag(tmp_path, capsys):
    target = tmp_path / "missing" / "dir" / "x.csv"
    e2e = ROOT / "validation" / "silicon_decode_dev.csv"
    rows = e2e.read_text().splitlines()[:3]
    (tmp_path / "runs.csv").write_text("\n".join(rows) + "\n")
    err = assert_error(cli(capsys, ["validate", "--e2e", tmp_path / "runs.csv", "--out", target]), str(target))
    assert "--out" in err and ".x.csv." not in err, err


def test_empty_out_is_refused(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY_SWEEP)
    assert_error(cli(capsys, ["sweep", tmp_path / "tiny.yaml", "--out", ""]), "--out")


def test_plan_reruns_are_byte_identical(tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        code, _, err = cli(capsys, PLAN + ["--out", tmp_path / name])
        assert code == 0, err
        runs.append({p.name: p.read_bytes() for p in (tmp_path / name).iterdir()})
    assert runs[0].keys() == runs[1].keys() and runs[0] == runs[1]
    assert all((tmp_path / "a" / n).stat().st_mode & 0o044 for n in runs[0])  # readable like any file (was 0600)


def test_closed_pipe_is_quiet():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-c", "from helixsim.cli import run; run()", "list"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL)
    p.stdout.close()          # the reader goes away at once, as `| head -0` would
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    p.stderr.close()
    assert err == "", err
