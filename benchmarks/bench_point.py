"""Single points: a warm ``simulate_point`` and a cold ``helixsim point`` (not a test; run by hand).

    python benchmarks/bench_point.py [--json] [--repeat N]

- ``warm_ms``: median CPU milliseconds of ``simulate_point`` (DeepSeek-R1 on GB200 NVL72, Helix
  16 x 1 = 2 x 8, batch 32, 1M tokens, FP4, calibrated kernels) in a process that has already
  priced one point (imports done, calibration loaded); each call prices a new batch size, so no
  kernel shape is looked up from an earlier call.
- ``cold_s``: CPU seconds (user + system) and wall seconds of ``python -m helixsim.cli point``
  with the same arguments in a fresh interpreter, median of ``--repeat`` runs.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARGS = ["--model", "deepseek-r1", "--hardware", "gb200-nvl72", "--strategy", "helix", "--kvp", "16", "--tpa", "1",
        "--tpf", "2", "--ep", "8", "--batch", "32", "--context", "1000000", "--weights", "fp4", "--kv-cache", "fp4"]


def warm(repeat: int) -> float:
    from helixsim.api import simulate_point
    from helixsim.layout import Layout
    from helixsim.precision import Precision

    lay, prec = Layout("helix", kvp=16, tpf=2, ep=8), Precision(weights="fp4", kv_cache="fp4")
    simulate_point("deepseek-r1", "gb200-nvl72", lay, batch=1, context=1_000_000, precision=prec)
    times = []
    for i in range(repeat):
        start = time.process_time()
        simulate_point("deepseek-r1", "gb200-nvl72", lay, batch=2 + i, context=1_000_000, precision=prec)
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times)


def cold(repeat: int) -> tuple[float, float]:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    cpu, wall = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "helixsim.cli", "point", *ARGS], env=env, check=True,
                       capture_output=True)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cpu, wall = cold(args.repeat)
    out = {"warm_ms": round(warm(max(args.repeat, 20)), 2), "cold_cpu_s": round(cpu, 3), "cold_wall_s": round(wall, 3)}
    print(json.dumps(out) if args.json else "\n".join(f"{k:>12}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
