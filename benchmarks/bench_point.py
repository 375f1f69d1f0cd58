"""Single points: a warm ``simulate_point`` and a cold ``helixsim point`` (not a test; run by hand).

    python benchmarks/bench_point.py [--json] [--repeat N] [--write-docs]

- ``warm_ms``: median CPU milliseconds of ``simulate_point`` (DeepSeek-R1 on GB200 NVL72, Helix
  16 x 1 = 2 x 8, batch 32, 1M tokens, FP4, calibrated kernels) in a process that has already
  priced one point (imports done, calibration loaded); each call prices a new batch size, so every
  kernel shape that depends on the batch is priced afresh (the few that do not, HOP-B's one-request
  chunk and its all-to-all, are found in the process's memo of priced calls).
- ``warm_new_context_ms``: the same, each call at batch 32 and a new context (a context sweep through
  ``simulate_point``, 1,000 tokens apart: only the attention and its KVP combine are new, the rest is found).
- ``cold_s``: CPU seconds (user + system) and wall seconds of ``python -m helixsim.cli point``
  with the same arguments in a fresh interpreter, median of ``--repeat`` runs.
- ``warm_vectorised_ms``: the same warm point with the single-point fast path switched off
  (:func:`helixsim.calibration.point.vectorised`), the vectorised sweep code on arrays of length one.

``--json`` also prints the figures under the names of issue 14's criteria: ``warm_simulate_point_ms``
(target < 2) and ``cold_point_s`` (CPU seconds, target < 0.5). ``--write-docs`` writes the figures into
the ``measured:bench-point`` block of docs/bench.md (a timing, so not part of ``helixsim docs``).
"""

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARGS = ["--model", "deepseek-r1", "--hardware", "gb200-nvl72", "--strategy", "helix", "--kvp", "16", "--tpa", "1",
        "--tpf", "2", "--ep", "8", "--batch", "32", "--context", "1000000", "--weights", "fp4", "--kv-cache", "fp4"]


def warm(repeat: int, fast: bool = True, first_batch: int = 2, new_context: bool = False) -> float:
    from helixsim.api import simulate_point
    from helixsim.calibration.point import vectorised
    from helixsim.layout import Layout
    from helixsim.precision import Precision

    lay, prec = Layout("helix", kvp=16, tpf=2, ep=8), Precision(weights="fp4", kv_cache="fp4")
    with contextlib.nullcontext() if fast else vectorised():
        simulate_point("deepseek-r1", "gb200-nvl72", lay, batch=1, context=1_000_000, precision=prec)
        times = []
        for i in range(repeat):
            start = time.process_time()
            simulate_point("deepseek-r1", "gb200-nvl72", lay, batch=32 if new_context else first_batch + i,
                           context=1_000_000 + (1000 * (first_batch + i) if new_context else 0), precision=prec)
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
    ap.add_argument("--write-docs", action="store_true", help="write the figures into docs/bench.md")
    args = ap.parse_args()
    cpu, wall = cold(args.repeat)
    n = max(args.repeat, 20)
    # the vectorised reference prices batches the fast path has not seen (no shape is shared)
    out = {"warm_ms": round(warm(n), 2), "warm_vectorised_ms": round(warm(n, fast=False, first_batch=2 + n), 2),
           "warm_new_context_ms": round(warm(n, first_batch=1, new_context=True), 2),
           "cold_cpu_s": round(cpu, 3), "cold_wall_s": round(wall, 3)}
    out["warm_simulate_point_ms"], out["cold_point_s"] = out["warm_ms"], out["cold_cpu_s"]
    print(json.dumps(out) if args.json else "\n".join(f"{k:>22}: {v}" for k, v in out.items()))
    if args.write_docs:
        write_docs(out, n, args.repeat)


def write_docs(out: dict, n_warm: int, n_cold: int) -> None:
    """Replace the ``measured:bench-point`` block of docs/bench.md with these figures."""
    doc = Path(__file__).resolve().parent.parent / "docs" / "bench.md"
    body = (f"| warm `simulate_point` (CPU ms, median of {n_warm}) | {out['warm_ms']} | < 2 |\n"
            f"| the same, vectorised path only (CPU ms) | {out['warm_vectorised_ms']} | |\n"
            f"| warm `simulate_point`, batch 32 at a new context each call (CPU ms) | {out['warm_new_context_ms']} | |\n"
            f"| cold `helixsim point` (CPU s, median of {n_cold}) | {out['cold_cpu_s']} | < 0.5 |\n"
            f"| cold `helixsim point` (wall s) | {out['cold_wall_s']} | |\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} ({os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f} when written), Python {platform.python_version()}.\n")
    block = re.compile(r"(<!-- measured:bench-point -->\n\| what \| figure \| target \|\n\|---\|---:\|---:\|\n)"
                       r".*?(<!-- /measured:bench-point -->)", re.S)
    text = doc.read_text(encoding="utf-8")
    if not block.search(text):
        raise SystemExit("docs/bench.md has no measured:bench-point block")
    doc.write_text(block.sub(lambda m: m.group(1) + body + m.group(2), text), encoding="utf-8")


if __name__ == "__main__":
    main()
