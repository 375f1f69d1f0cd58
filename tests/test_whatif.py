"""Hardware what-ifs (`base:` in a hardware YAML): measured kernels applied as efficiencies against new peaks."""

import re
import subprocess
import sys

import pytest

from helixsim.api import simulate_point
from helixsim.errors import SpecError
from helixsim.layout import Layout
from helixsim.specs.hardware import load_hardware_file

LLAMA = dict(model="llama-3.1-70b", layout=Layout("tp", tpa=8, tpf=8), batch=32, context=131072)


def _write(tmp_path, name, body):
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    return path


def _point(hardware):
    return simulate_point(LLAMA["model"], hardware, LLAMA["layout"], LLAMA["batch"], LLAMA["context"])


def test_twice_the_hbm_bandwidth_is_at_least_1_4x_faster(tmp_path):
    """Llama-3.1-70B, TP 8, batch 32, 128K context on B200: decode is bandwidth-bound (KV and weights)."""
    path = _write(tmp_path, "b200-2xbw", "name: b200-2xbw\nbase: b200-hgx\nhbm_bandwidth_gbps: 15400\n")
    hw = load_hardware_file(path)
    assert hw.base == "b200-hgx" and hw.hbm_bandwidth_gbps == 15400 and hw.dense_tflops.fp8 == 4500
    base, fast = _point("b200-hgx"), _point(hw)
    assert base.ttl_ms / fast.ttl_ms >= 1.4
    # the bandwidth-bound attention keeps its measured efficiency against a roofline twice as fast: half the time
    assert fast.breakdown_ms["attention"] == pytest.approx(base.breakdown_ms["attention"] / 2, rel=1e-6)
    assert fast.kernel_model["attention"] == "calibration:b200-hgx as efficiencies on b200-2xbw"
    assert base.kernel_model["attention"] == "calibration:b200-hgx"


def test_more_flops_leave_bandwidth_bound_attention_alone(tmp_path):
    path = _write(tmp_path, "b200-2xfp8", "name: b200-2xfp8\nbase: b200-hgx\ndense_tflops: {fp8: 9000}\n")
    hw = load_hardware_file(path)
    assert (hw.dense_tflops.fp8, hw.dense_tflops.bf16) == (9000, 2250)   # nested keys merge one by one
    assert _point(hw).breakdown_ms["attention"] == pytest.approx(_point("b200-hgx").breakdown_ms["attention"], rel=1e-9)


@pytest.mark.parametrize("body, needle", [
    ("name: x1\nbase: b200-hgx\nhbm_bandwith_gbps: 15400\n", "hbm_bandwith_gbps: unknown key (did you mean 'hbm_bandwidth_gbps'?)"),
    ("name: x1\nbase: b300-hgx\n", "base: must name a built-in system"),
    ("name: x1\nbase: b200-hgx\nhbm_bandwidth_gbps: -1\n", "hbm_bandwidth_gbps: must be > 0"),
])
def test_bad_what_if_is_a_one_line_error(tmp_path, body, needle):
    path = _write(tmp_path, "x1", body)
    with pytest.raises(SpecError, match=re.escape(needle)):
        load_hardware_file(path)
    out = subprocess.run([sys.executable, "-c", "from helixsim.cli import run; run()", "point", "--model",
                          "llama-3.1-70b", "--hardware", str(path), "--strategy", "tp", "--tpa", "8", "--tpf", "8",
                          "--batch", "1", "--context", "1000"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and str(path) in out.stderr
