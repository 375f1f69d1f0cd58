"""Throughput of helixsim.pareto.pareto_mask on 1e6 random points (not a test).

Run: ``PYTHONPATH=. python3 benchmarks/bench_pareto.py``
"""

from __future__ import annotations

import time

import numpy as np

from helixsim.pareto import pareto_mask


def main(n: int = 1_000_000, repeats: int = 5, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    y = rng.random(n)
    pareto_mask(x, y)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mask = pareto_mask(x, y)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"pareto_mask: n={n:,}  frontier={int(mask.sum())}  "
          f"best {best * 1e3:.1f} ms  -> {n / best:,.0f} points/s")


if __name__ == "__main__":
    main()
