"""Configurations per second of the vectorised search, per core (not a test; run by hand).

    python benchmarks/bench_sweep.py [--json] [--repeat N] [--scale CONTEXTS]

The study: DeepSeek-R1 (and Llama-3.1-405B) on GB200 NVL72 over every valid layout of up
to 64 GPUs (helix, tp, ep, medha; pp 1, 2, 4; HOP-B on and off), a batch grid up to 4096
and 24 context lengths from 64K to 16M tokens (the paper's Fig. 5 study crossed with
contexts), priced with the calibrated kernels (the default) and with the uncalibrated
roofline. Each repetition starts from a fresh kernel object (no shape priced yet).

Time is CPU time of this process (``time.process_time``, one thread), so the figure is per
core; it is set beside a numpy streaming baseline measured in the same run, the rate at
which this core adds two float64 arrays of 4M elements (``np.add(a, b, out=c)``):
``baseline_ratio = configurations/s / baseline elements/s``. The ratio is what stays put
on a loaded machine; ``configs_per_s`` is the raw figure. ``--scale N`` also streams the
DeepSeek-R1 study over N contexts chunk by chunk (nothing kept) to show the rate at scale,
where later chunks find their kernel shapes already priced.
"""

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from helixsim.api import kernels_for  # noqa: E402
from helixsim.precision import Precision  # noqa: E402
from helixsim.search import SearchSpace, chunks, evaluate_chunk, search  # noqa: E402
from helixsim.specs.registry import load_hardware, load_model  # noqa: E402


def contexts(n: int) -> tuple[int, ...]:
    return tuple(int(c) for c in np.geomspace(65_536, 16_000_000, n))


def space(n_contexts: int = 24) -> SearchSpace:
    return SearchSpace(max_gpus=64, pp=(1, 2, 4), hopb=(True, False), max_batch=4096, contexts=contexts(n_contexts))


def baseline_elements_per_s(repeat: int = 7) -> float:
    """numpy streaming: float64 elements added per CPU-second (best of ``repeat``)."""
    n = 1 << 22
    a, b, c = np.random.default_rng(0).random(n), np.random.default_rng(1).random(n), np.empty(n)
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(8):
            np.add(a, b, out=c)
        best = min(best, (time.process_time() - start) / 8)
    return n / best


def timed_search(model: str, calibration, repeat: int) -> tuple[int, float]:
    hw = load_hardware("gb200-nvl72")
    prec = Precision(weights="fp4", kv_cache="fp4")
    m = load_model(model)
    search(m, hw, space(), prec, calibration=calibration)  # warm-up: imports, tables loaded
    best, rows = float("inf"), 0
    for _ in range(repeat):
        start = time.process_time()
        rows = len(search(m, hw, space(), prec, calibration=calibration))
        best = min(best, time.process_time() - start)
    return rows, best


def streamed(n_contexts: int) -> tuple[int, float]:
    """The DeepSeek-R1 study over ``n_contexts`` contexts, chunk by chunk, from a fresh kernel object."""
    hw = load_hardware("gb200-nvl72")
    prec = Precision(weights="fp4", kv_cache="fp4")
    m = load_model("deepseek-r1")
    start = time.process_time()
    k = kernels_for(hw)
    rows = 0
    for ch in chunks(m, hw, space(n_contexts), prec, k):
        rows += len(evaluate_chunk(m, hw, ch, prec, k))
    return rows, time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=int, default=0, help="also stream the study over this many contexts")
    args = ap.parse_args()
    base = baseline_elements_per_s()
    results = {}
    for kernels, calibration in (("calibrated", None), ("roofline", "none")):
        for name in ("deepseek-r1", "llama-3.1-405b"):
            rows, secs = timed_search(name, calibration, args.repeat)
            results[f"{kernels} {name}"] = {"configurations": rows, "cpu_s": round(secs, 4),
                                            "configs_per_s": round(rows / secs),
                                            "baseline_ratio": round(rows / secs / base, 5)}
    head = results["calibrated deepseek-r1"]
    out = {"configs_per_s": head["configs_per_s"], "baseline_ratio": head["baseline_ratio"],
           "baseline_elements_per_s": round(base), "studies": results}
    if args.scale:
        rows, secs = streamed(args.scale)
        out["at_scale"] = {"contexts": args.scale, "configurations": rows, "cpu_s": round(secs, 3),
                           "configs_per_s": round(rows / secs), "baseline_ratio": round(rows / secs / base, 5)}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"baseline: numpy adds {base:,.0f} float64 elements per CPU-second")
    for key, r in results.items():
        print(f"{key:>30}: {r['configurations']:,} configurations in {r['cpu_s']:.3f} CPU-s = "
              f"{r['configs_per_s']:,} configurations/s (ratio to baseline {r['baseline_ratio']:.5f})")
    if args.scale:
        r = out["at_scale"]
        print(f"{'streamed, ' + str(r['contexts']) + ' contexts':>30}: {r['configurations']:,} configurations in "
              f"{r['cpu_s']:.2f} CPU-s = {r['configs_per_s']:,} configurations/s "
              f"(ratio to baseline {r['baseline_ratio']:.5f})")


if __name__ == "__main__":
    main()
