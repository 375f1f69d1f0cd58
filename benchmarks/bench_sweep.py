"""Configurations per second of the vectorised search, per core (not a test; run by hand).

    python benchmarks/bench_sweep.py [--json] [--repeat N] [--scale CONTEXTS]

The study: DeepSeek-R1 (and Llama-3.1-405B) on GB200 NVL72 over every valid layout of up
to 64 GPUs (helix, tp, ep, medha; pp 1, 2, 4; HOP-B on and off), a batch grid up to 4096
and 24 context lengths from 64K to 16M tokens (the paper's Fig. 5 study crossed with
contexts), priced with the calibrated kernels (the default) and with the uncalibrated
roofline. Each repetition starts from a fresh kernel object (no shape priced yet).

Time is CPU time of this process (``time.process_time``, one thread), so the figure is per
core. Beside it, in the same run, a plain numpy streaming pass over the same table: ``np.add(a, b,
out=c)`` over float64 arrays of as many rows as the study has configurations (at most one sweep
chunk, 2**18 rows, at a time) and as many columns as its table (``baseline_rows_per_s``: rows per
CPU-second, best of 7). ``baseline_ratio = configs_per_s / baseline_rows_per_s`` is then the time
of that one pass over the table divided by the time of the sweep that produced it (1.0: the sweep
costs no more than reading two tables of its size and writing one). Both figures move together on a
loaded or slower machine, so the ratio is what stays put; ``configs_per_s`` is the raw figure
(docs/bench.md, "Sweep speed"). ``--scale N`` also streams the DeepSeek-R1 study over N contexts
chunk by chunk (nothing kept) to show the rate at scale, where later chunks find their kernel shapes
already priced.
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


#: rows of one chunk of the baseline pass (a sweep prices and writes its table chunk by chunk too)
BASELINE_CHUNK_ROWS = 1 << 18


def baseline_rows_per_s(rows: int, columns: int, repeat: int = 7) -> float:
    """numpy streaming over a table of ``rows`` x ``columns`` float64 (``np.add(a, b, out=c)``, chunks of at
    most BASELINE_CHUNK_ROWS rows): rows per CPU-second, best of ``repeat``."""
    n = max(1, min(rows, BASELINE_CHUNK_ROWS))
    a, b = np.random.default_rng(0).random((n, columns)), np.random.default_rng(1).random((n, columns))
    c = np.empty_like(a)
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(4):
            np.add(a, b, out=c)
        best = min(best, (time.process_time() - start) / 4)
    return n / best


def timed_search(model: str, calibration, repeat: int) -> tuple[int, int, float]:
    """(configurations, table columns, best CPU seconds of ``repeat`` searches)."""
    hw = load_hardware("gb200-nvl72")
    prec = Precision(weights="fp4", kv_cache="fp4")
    m = load_model(model)
    columns = search(m, hw, space(), prec, calibration=calibration).shape[1]  # warm-up: imports, tables loaded
    best, rows = float("inf"), 0
    for _ in range(repeat):
        start = time.process_time()
        rows = len(search(m, hw, space(), prec, calibration=calibration))
        best = min(best, time.process_time() - start)
    return rows, columns, best


def streamed(n_contexts: int) -> tuple[int, int, float]:
    """The DeepSeek-R1 study over ``n_contexts`` contexts, chunk by chunk, from a fresh kernel object:
    (configurations, table columns, CPU seconds)."""
    hw = load_hardware("gb200-nvl72")
    prec = Precision(weights="fp4", kv_cache="fp4")
    m = load_model("deepseek-r1")
    start = time.process_time()
    k = kernels_for(hw)
    rows, columns = 0, 0
    for ch in chunks(m, hw, space(n_contexts), prec, k):
        table = evaluate_chunk(m, hw, ch, prec, k)
        rows, columns = rows + len(table), table.shape[1]
    return rows, columns, time.process_time() - start


def figures(rows: int, columns: int, secs: float) -> dict:
    """One study's figures beside the baseline pass over a table of its size, measured now."""
    base = baseline_rows_per_s(rows, columns)
    return {"configurations": rows, "columns": columns, "cpu_s": round(secs, 4), "configs_per_s": round(rows / secs),
            "baseline_rows_per_s": round(base), "baseline_ratio": round(rows / secs / base, 5)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=int, default=0, help="also stream the study over this many contexts")
    args = ap.parse_args()
    results = {}
    for kernels, calibration in (("calibrated", None), ("roofline", "none")):
        for name in ("deepseek-r1", "llama-3.1-405b"):
            results[f"{kernels} {name}"] = figures(*timed_search(name, calibration, args.repeat))
    head = results["calibrated deepseek-r1"]
    out = {"configs_per_s": head["configs_per_s"], "baseline_ratio": head["baseline_ratio"],
           "baseline_rows_per_s": head["baseline_rows_per_s"],
           "baseline": "np.add(a, b, out=c) over float64 tables of the study's rows x columns, rows per CPU-second",
           "studies": results}
    if args.scale:
        out["at_scale"] = {"contexts": args.scale, **figures(*streamed(args.scale))}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print("baseline: numpy streaming pass, np.add(a, b, out=c) over a float64 table of the study's size")
    for key, r in results.items():
        print(f"{key:>30}: {r['configurations']:,} configurations in {r['cpu_s']:.3f} CPU-s = "
              f"{r['configs_per_s']:,} configurations/s; baseline {r['baseline_rows_per_s']:,} rows/s "
              f"(x {r['columns']} columns); ratio {r['baseline_ratio']:.4f}")
    if args.scale:
        r = out["at_scale"]
        print(f"{'streamed, ' + str(r['contexts']) + ' contexts':>30}: {r['configurations']:,} configurations in "
              f"{r['cpu_s']:.2f} CPU-s = {r['configs_per_s']:,} configurations/s; baseline "
              f"{r['baseline_rows_per_s']:,} rows/s; ratio {r['baseline_ratio']:.4f}")

if __name__ == "__main__":
    main()
