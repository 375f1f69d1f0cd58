"""The binary calibration (``calibration.npz``, helixsim/calibration/stored.py) against the readable CSVs.

The CSVs are the calibration of record (fitted from the measured kernel tables); the binary copy
is only a faster way to load them, so everything here compares it with what the CSV loader gives:
the tables themselves, and the prices of whole decode steps, which must be bit-identical.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helixsim.api import simulate_point
from helixsim.calibration import kernels as ck
from helixsim.calibration import stored
from helixsim.calibration.binary import calibration_folders, is_fresh
from helixsim.calibration.checks import read_manifest
from helixsim.calibration.fit import load_calibration
from helixsim.layout import Layout
from helixsim.precision import Precision

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "hardware" / "calibration"


def test_every_shipped_calibration_has_a_fresh_binary_copy():
    # a CSV edited without `python -m helixsim.calibration.binary` would make the copy unusable (slow)
    folders = calibration_folders(SHIPPED)
    assert len(folders) >= 15   # 5 systems x (trtllm, sglang, vllm)
    stale = [str(f) for f in folders if not is_fresh(f)]
    assert not stale, f"regenerate with python -m helixsim.calibration.binary: {stale}"


@pytest.mark.parametrize("folder", ["gb200-nvl72", "h200-hgx/vllm"])
def test_binary_copy_loads_the_same_tables_as_the_csvs(folder):
    path = SHIPPED / folder
    from_csv = load_calibration(path)
    from_npz = stored.load_binary(path, read_manifest(path))
    assert from_npz is not None
    assert (from_npz.hardware, from_npz.roof, from_npz.version, from_npz.source, from_npz.stats) == (
        from_csv.hardware, from_csv.roof, from_csv.version, from_csv.source, from_csv.stats)
    assert from_npz.collectives == from_csv.collectives
    assert sorted(from_npz.tables) == sorted(from_csv.tables)
    for name, a in from_csv.tables.items():
        b = from_npz.tables[name]
        assert a.meta() == b.meta(), name
        np.testing.assert_array_equal(a.knots, b.knots)
        np.testing.assert_array_equal(a.values, b.values)   # NaN where the CSV cell is blank, in both
        ca, cb = a.key_columns(), b.key_columns()
        for col in a.cat:
            assert ca[col].tolist() == cb[col].tolist(), (name, col)
        for col in a.near + a.num:
            np.testing.assert_array_equal(ca[col].astype(float), cb[col], err_msg=f"{name}.{col}")
        assert a.categories() == b.categories()


def _points():
    # several models and layouts on one system (reading its CSVs takes a few seconds), with the SGLang tables too
    fp4 = Precision(weights="fp4", kv_cache="fp4")
    return [
        ("deepseek-r1", "gb200-nvl72", Layout("helix", kvp=16, tpf=2, ep=8), 32, 1_000_000, fp4, "trtllm"),
        ("deepseek-r1", "gb200-nvl72", Layout("ep", dp=8, ep=8), 64, 131_072, fp4, "sglang"),
        ("llama-3.1-405b", "gb200-nvl72", Layout("helix", kvp=8, tpa=8, tpf=64), 8, 1_000_000,
         Precision(kv_cache="fp8"), "trtllm"),
        ("llama-3.1-70b", "gb200-nvl72", Layout("tp", tpa=8, tpf=8), 16, 32_768, Precision(), "sglang"),
        ("qwen3-235b-a22b", "gb200-nvl72", Layout("helix", kvp=4, tpa=2, tpf=2, ep=4), 24, 262_144, Precision(),
         "trtllm"),
        ("mixtral-8x22b", "gb200-nvl72", Layout("tp", tpa=4, tpf=4, pp=2), 48, 65_536, Precision(), "trtllm"),
    ]


def _prices(monkeypatch, use_binary: bool) -> list[dict]:
    monkeypatch.setattr(ck, "_LOADED", {})
    if not use_binary:
        monkeypatch.setattr(stored, "load_binary", lambda folder, manifest: None)
    return [simulate_point(m, hw, lay, batch=b, context=c, precision=p, backend=be).to_json_dict()
            for m, hw, lay, b, c, p, be in _points()]


def test_points_priced_from_the_binary_copy_equal_those_from_the_csvs(monkeypatch):
    fast = _prices(monkeypatch, use_binary=True)
    with monkeypatch.context() as mp:
        slow = _prices(mp, use_binary=False)
    assert fast == slow   # every field, every breakdown term, bit for bit
    assert all(r["kernel_model"]["attention"].startswith("calibration") for r in fast)


def test_a_stale_binary_copy_is_not_used(tmp_path):
    folder = tmp_path / "cal"
    shutil.copytree(SHIPPED / "h100-hgx" / "vllm", folder)
    before = stored.load_binary(folder, read_manifest(folder))
    assert before is not None
    manifest = json.loads((folder / "calibration.json").read_text())
    table = folder / next(iter(next(iter(manifest["families"].values()))["files"]))
    lines = table.read_text().splitlines()
    cells = lines[1].split(",")
    cells[-1] = "1" if cells[-1] != "1" else "2"   # one edited latency cell (microseconds)
    lines[1] = ",".join(cells)
    table.write_text("\n".join(lines) + "\n")
    # the copy no longer matches its CSVs, so they are read instead
    assert stored.load_binary(folder, read_manifest(folder)) is None
    loaded = ck._load(folder)
    assert sorted(loaded.tables) == sorted(before.tables)
    assert any(not np.array_equal(loaded.tables[n].values, t.values, equal_nan=True) for n, t in before.tables.items())


def test_a_point_imports_neither_pandas_nor_scipy():
    code = ("import sys\n"
            "from helixsim.api import simulate_point\n"
            "from helixsim.layout import Layout\n"
            "r = simulate_point('deepseek-r1', 'gb200-nvl72', Layout('helix', kvp=16, tpf=2, ep=8), 32, 1000000)\n"
            "assert r.kernel_model['attention'].startswith('calibration'), r.kernel_model\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'scipy')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ))
    assert out.stdout.strip() == "[]"
