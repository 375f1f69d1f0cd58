"""Hostile input files (issue 15): CSV tables, calibration folders, YAML tricks, special files.

Each case breaks one thing in an otherwise valid input and expects what every user error
gets: exit status 2, one ``error:`` line naming the file (and the line and column of a bad
cell), nothing on stdout, no traceback. The valid twin of each input is run too, so a case
cannot pass by refusing everything. Special files (a FIFO, ``/dev/zero``) run in a
subprocess under a 60 s limit: a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_fuzz_inputs import assert_error, cli

from helixsim.calibration.validate import ape_stats
from helixsim.specs.registry import data_dir

ROOT = Path(__file__).resolve().parent.parent
E2E = ROOT / "validation" / "silicon_decode_dev.csv"
SHIPPED_CAL = data_dir("hardware") / "calibration" / "gb200-nvl72"
POINT = ["point", "--model", "llama-3.1-70b", "--hardware", "gb200-nvl72", "--strategy", "tp", "--tpa", "8",
         "--tpf", "8", "--batch", "8", "--context", "8192"]
COUNT = {"cases": 0}


def expect_error(capsys, argv, *names, out_dir=None) -> str:
    COUNT["cases"] += 1
    result = cli(capsys, argv)
    # source and field are cut at 200 characters and the problem at 700 (helixsim.errors), so a
    # line stays near 1 KB whatever the input's size (a 3 MB name must not make a 3 MB line)
    assert len(result[2]) < 1200, f"error line of {len(result[2]):,} characters: {result[2][:300]!r}"
    return assert_error(result, *names, out_dir=out_dir)


# ------------------------------------------------------------------ validate --e2e
def e2e_with(tmp_path: Path, column: str, value: str) -> Path:
    """The first three shipped serving rows with ``column`` of the second set to ``value``."""
    lines = E2E.read_text().splitlines()[:4]
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index(column)] = value
    lines[2] = ",".join(cells)
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_e2e_valid_twin_is_predicted(tmp_path, capsys):
    code, out, err = cli(capsys, ["validate", "--e2e", e2e_with(tmp_path, "tp", "4"), "--json"])
    assert code == 0, err
    assert json.loads(out)["overall"]["n"] == 3


@pytest.mark.parametrize("column, value, words", [
    ("measured_tpot_ms", "abc", "expected a number"),
    ("measured_tpot_ms", "", "empty cell"),
    ("measured_tpot_ms", "inf", "finite"),
    ("measured_tpot_ms", "-5", "> 0"),        # was a negative error in the median
    ("measured_tpot_ms", "0", "> 0"),         # was dropped silently
    ("ctx_mid", '"1,000"', "thousands"),
    ("ctx_mid", "0", ">= 1"),                 # was priced
    ("decode_batch", "0", ">= 1"),            # was priced
    ("tp", "2.5", "whole number"),            # became 2
    ("tp", "nan", "finite"),
    ("attention_dp", "1e300", "<="),
])
def test_e2e_bad_cell_names_file_line_and_column(tmp_path, capsys, column, value, words):
    path = e2e_with(tmp_path, column, value)
    err = expect_error(capsys, ["validate", "--e2e", path], str(path))
    assert f"line 3, column '{column}'" in err and words in err, err


@pytest.mark.parametrize("content, words", [
    (b"", "empty file"),
    (b"hf_model_path,system\n", "missing column"),
    (None, "only a header"),
    (b"\x00\x01\x02binary\x00", "binary"),
    ("tp,pp\n1,2\n".encode("utf-16"), "UTF-16"),
    (b"\xff\xfe\xfa not utf8", "UTF-16"),
    (b"\xc3\x28 not utf8\n", "UTF-8"),
])
def test_e2e_unreadable_tables(tmp_path, capsys, content, words):
    path = tmp_path / "runs.csv"
    path.write_bytes(content if content is not None else E2E.read_bytes().splitlines(keepends=True)[0])
    err = expect_error(capsys, ["validate", "--e2e", path], str(path))
    assert words in err, err


def test_e2e_ragged_row(tmp_path, capsys):
    lines = E2E.read_text().splitlines()[:3]
    lines[2] += ",extra"
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    assert "line 3" in expect_error(capsys, ["validate", "--e2e", path], str(path))


# ------------------------------------------------------------------ calibrate and validate --kernels
GEMM_HEADER = "op_name,kernel_source,gemm_dtype,m,n,k,latency_ms"


def gemm_rows() -> list[str]:
    """A small, well-formed GEMM table: BF16, n = k = 4096, m = 1..64, latencies rising with m."""
    return [f"gemm,torch_flow,bfloat16,{m},4096,4096,{0.02 + 0.001 * m:.4f}" for m in (1, 2, 4, 8, 16, 32, 64)]


def kernel_dir(tmp_path: Path, rows: list[str], header: str = GEMM_HEADER, name: str = "gemm.csv") -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    (d / name).write_text("\n".join([header] + rows) + "\n")
    return d


def test_kernels_valid_twin_is_scored(tmp_path, capsys):
    code, out, err = cli(capsys, ["validate", "--kernels", kernel_dir(tmp_path, gemm_rows()), "--hardware",
                                  "gb200-nvl72", "--json"])
    assert code == 0, err
    assert json.loads(out)["gemm"]["n"] == 7


@pytest.mark.parametrize("row, column, words", [
    ("gemm,torch_flow,bfloat16,8,0,4096,0.03", "n", "> 0"),             # n = 0 was accepted
    ("gemm,torch_flow,bfloat16,1e300,4096,4096,0.03", "m", "<="),       # m = 1e300 was accepted
    ("gemm,torch_flow,bfloat16,8,4096,4096,-1", "latency_ms", "> 0"),
    ("gemm,torch_flow,bfloat16,8,4096,4096,0", "latency_ms", "> 0"),
    ("gemm,torch_flow,bfloat16,8,4096,abc,0.03", "k", "expected a number"),
    ("gemm,torch_flow,bfloat16,8,4096,4096,", "latency_ms", "empty cell"),
])
@pytest.mark.parametrize("command", ["calibrate", "validate"])
def test_kernel_table_bad_cell(tmp_path, capsys, row, column, words, command):
    d = kernel_dir(tmp_path, gemm_rows()[:3] + [row])
    argv = (["calibrate", "--data", d, "--hardware", "gb200-nvl72", "--out", tmp_path / "cal"] if command == "calibrate"
            else ["validate", "--kernels", d, "--hardware", "gb200-nvl72"])
    err = expect_error(capsys, argv, str(d / "gemm.csv"))
    assert f"line 5, column '{column}'" in err and words in err, err
    assert not (tmp_path / "cal").exists()


@pytest.mark.parametrize("make, words", [
    (lambda d: (d / "gemm.csv").write_text(GEMM_HEADER + "\n"), "only a header"),
    (lambda d: (d / "gemm.csv").write_text(""), "empty file"),
    (lambda d: (d / "gemm.csv").write_text("op_name,m,n,k,latency_ms\ngemm,8,8,8,0.1\n"), "gemm_dtype"),
    (lambda d: (d / "gemm.csv").write_text("m,n\n1,2,3\n"), "line 2"),
    (lambda d: (d / "gemm.csv").write_bytes(bytes(range(256)) * 4), "binary"),
    (lambda d: (d / "gemm.csv").write_bytes(("\n".join([GEMM_HEADER] + gemm_rows())).encode("utf-16")), "UTF-16"),
    (lambda d: (d / "gemm.csv.gz").write_bytes(gzip.compress(("\n".join([GEMM_HEADER] + gemm_rows() * 50)).encode())[:200]),
     "truncated gzip"),
    (lambda d: (d / "gemm.csv.gz").write_bytes(b"\x1f\x8b not gzip at all"), "gzip"),
    (lambda d: None, "no kernel tables"),       # an empty folder
    (lambda d: (d / "notes.csv").write_text("a\n1\n"), "no kernel tables"),
])
def test_kernel_folder_unreadable(tmp_path, capsys, make, words):
    d = tmp_path / "data"
    d.mkdir()
    make(d)
    for argv in (["calibrate", "--data", d, "--hardware", "gb200-nvl72", "--out", tmp_path / "cal"],
                 ["validate", "--kernels", d, "--hardware", "gb200-nvl72"]):
        err = expect_error(capsys, argv, str(d))
        assert words in err, err


def test_kernel_error_stats_are_valid_json_when_nothing_is_scored():
    st = ape_stats([float("nan")], [1.0])
    assert st["n"] == 0
    json.dumps(st, allow_nan=False)  # NaN would be invalid JSON


# ------------------------------------------------------------------ --calibration folders
def calibration_copy(tmp_path: Path) -> Path:
    d = tmp_path / "cal"
    shutil.copytree(SHIPPED_CAL, d)
    return d


def edit_manifest(d: Path, change) -> None:
    m = json.loads((d / "calibration.json").read_text())
    change(m)
    (d / "calibration.json").write_text(json.dumps(m))


def _first_file(m) -> tuple[dict, str]:
    files = m["families"]["gemm"]["files"]
    return files, next(iter(files))


def test_calibration_valid_twin(tmp_path, capsys):
    code, out, err = cli(capsys, POINT + ["--calibration", calibration_copy(tmp_path)])
    assert code == 0, err


@pytest.mark.parametrize("break_it, words", [
    (lambda d: (d / "calibration.json").write_text('{"format": '), "malformed JSON"),
    (lambda d: (d / "calibration.json").write_text("[]"), "expected a JSON object"),
    (lambda d: edit_manifest(d, lambda m: m["roofline"].update(bf16_tflops=-5)), "roofline.bf16_tflops"),
    (lambda d: edit_manifest(d, lambda m: m["roofline"].update(hbm_gbps=0)), "roofline.hbm_gbps"),
    (lambda d: edit_manifest(d, lambda m: m["roofline"].update(nvlink_gbps="fast")), "roofline.nvlink_gbps"),
    (lambda d: edit_manifest(d, lambda m: m.pop("roofline")), "roofline"),
    (lambda d: edit_manifest(d, lambda m: m.update(format="other")), "format"),
    (lambda d: edit_manifest(d, lambda m: m["families"]["gemm"].update(knots=[1, -2])), "knots[1]"),
    (lambda d: edit_manifest(d, lambda m: m["families"]["gemm"].pop("axis")), "malformed calibration"),
    (lambda d: edit_manifest(d, lambda m: (lambda f, k: f.update({"/dev/zero": f.pop(k)}))(*_first_file(m))),
     "relative path"),
    (lambda d: edit_manifest(d, lambda m: (lambda f, k: f.update({"../../etc/passwd": f.pop(k)}))(*_first_file(m))),
     "relative path"),
])
def test_calibration_folder_is_checked(tmp_path, capsys, break_it, words):
    d = calibration_copy(tmp_path)
    break_it(d)
    err = expect_error(capsys, POINT + ["--calibration", d], str(d))
    assert words in err, err


def test_calibration_table_that_is_a_device_or_holds_bad_numbers(tmp_path, capsys):
    d = calibration_copy(tmp_path)
    table = sorted((d / "gemm").glob("*.csv"))[0]
    text = table.read_text().splitlines()
    table.unlink()
    table.symlink_to("/dev/zero")   # was a hang
    assert "not a regular file" in expect_error(capsys, POINT + ["--calibration", d], str(table))
    table.unlink()
    cells = text[1].split(",")
    cells[1] = "-3"                    # a negative shape size
    table.write_text("\n".join([text[0], ",".join(cells)] + text[2:]) + "\n")
    err = expect_error(capsys, POINT + ["--calibration", d], str(table))
    assert "line 2" in err and "> 0" in err, err


# ------------------------------------------------------------------ strict YAML
MODEL_YAML = data_dir("models") / "llama-3.1-70b.yaml"


def model_variant(tmp_path: Path, edit) -> Path:
    path = tmp_path / MODEL_YAML.name  # a model file's name must match its 'name' key
    path.write_text(edit(MODEL_YAML.read_text()))
    return path


BOMB = ("x: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(7)))


@pytest.mark.parametrize("edit, words", [
    (lambda t: BOMB + t, "expands to more than"),                        # billion laughs, 500 bytes
    (lambda t: "a: &a [*a]\n" + t, "contains it"),                        # an alias inside itself
    (lambda t: t + "\n" + next(x for x in t.splitlines() if x[:1].isalpha()) + "\n", "duplicate key"),
    (lambda t: "[" * 200 + "]" * 200, "deep"),
])
def test_yaml_tricks_are_refused(tmp_path, capsys, edit, words):
    path = model_variant(tmp_path, edit)
    err = expect_error(capsys, POINT[:1] + ["--model", path] + POINT[3:], str(path))
    assert words in err, err


def test_yaml_1_1_coercions_are_not_applied(tmp_path, capsys):
    """0700 is not read as 448 nor 3:20 as 200: the first is refused, the second stays text."""
    text = MODEL_YAML.read_text()
    key = next(line.split(":")[0] for line in text.splitlines() if line.strip().startswith("num_layers"))
    for value, words in (("0700", "ambiguous"), ("3:20", "expected a number")):
        path = model_variant(tmp_path, lambda t: "\n".join(f"{key}: {value}" if line.split(":")[0] == key else line
                                                            for line in t.splitlines()))
        err = expect_error(capsys, POINT[:1] + ["--model", path] + POINT[3:], str(path))
        assert words in err, err


# ------------------------------------------------------------------ special files and long names
def run_cli_subprocess(argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", *map(str, argv)],
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_refused_without_hanging(tmp_path):
    fifo = tmp_path / "model.yaml"
    os.mkfifo(fifo)
    hw_fifo = tmp_path / "hw.yaml"
    os.mkfifo(hw_fifo)
    csv_fifo = tmp_path / "runs.csv"
    os.mkfifo(csv_fifo)
    for argv, name in ((["point", "--model", fifo] + POINT[3:], fifo),
                       (["point", "--model", "/dev/zero"] + POINT[3:], "/dev/zero"),
                       (POINT[:3] + ["--hardware", hw_fifo] + POINT[5:], hw_fifo),
                       (["validate", "--e2e", csv_fifo], csv_fifo)):
        COUNT["cases"] += 1
        p = run_cli_subprocess(argv)
        assert p.returncode == 2, (argv, p.stderr)
        assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1 and str(name) in p.stderr, p.stderr


def test_a_huge_name_is_not_echoed_whole(capsys):
    name = "x" * 3_000_000
    for argv in (["point", "--model", name] + POINT[3:], POINT[:3] + ["--hardware", name] + POINT[5:]):
        expect_error(capsys, argv, "characters")
