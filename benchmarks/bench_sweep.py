"""Configurations per second of the vectorised search (not a test; run by hand).

    python benchmarks/bench_sweep.py

Prices DeepSeek-R1 and Llama-3.1-405B on GB200 NVL72 over every valid layout of up to
64 GPUs (helix, tp, ep, medha; pp 1, 2, 4; HOP-B on and off), a batch grid up to 4096
and 24 context lengths from 64K to 16M tokens, and prints configurations per second on one core, with the calibrated kernel model (the
default) and with the uncalibrated roofline.
"""

import os
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

from helixsim.precision import Precision  # noqa: E402
from helixsim.search import SearchSpace, search  # noqa: E402
from helixsim.specs.registry import load_hardware, load_model  # noqa: E402

CONTEXTS = tuple(int(c) for c in np.geomspace(65_536, 16_000_000, 24))


def main() -> None:
    hw = load_hardware("gb200-nvl72")
    prec = Precision(weights="fp4", kv_cache="fp4")
    for kernels, calibration in (("calibrated", None), ("roofline", "none")):
        for name in ("deepseek-r1", "llama-3.1-405b"):
            space = SearchSpace(max_gpus=64, pp=(1, 2, 4), hopb=(True, False), max_batch=4096, contexts=CONTEXTS)
            search(load_model(name), hw, space, prec, calibration=calibration)  # warm-up
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                table = search(load_model(name), hw, space, prec, calibration=calibration)
                best = min(best, time.perf_counter() - start)
            print(f"{kernels:>10} {name}: {len(table):,} configurations in {best:.3f} s "
                  f"= {len(table) / best:,.0f} configurations/s")


if __name__ == "__main__":
    main()
