"""Memory and write time of streamed sweeps (not a test; run by hand).

    python benchmarks/bench_stream.py --configs 1e6 [--format parquet|csv] [--workers N] [--json]

Streams the DeepSeek-R1 paper study (GB200 NVL72, FP4, up to 64 GPUs, every strategy, pp 1-4,
HOP-B on/off, batches up to 4096) over as many contexts between 64K and 16M tokens as it takes
to reach about ``--configs`` configurations, to a table file in a temporary folder, and reports:

- ``configurations`` and ``wall_s`` of the whole sweep, ``configs_per_s``;
- ``write_s``: wall time spent writing the table (the writer's calls only);
- ``peak_rss_mb``: the process's peak resident memory (``ru_maxrss``), and ``import_rss_mb``,
  the peak before the sweep started (interpreter, numpy, pandas, pyarrow, calibration tables),
  so ``(peak - import) / configurations`` is the memory a configuration costs.

Run each size in its own process (the peak is per process).
"""

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from helixsim import stream  # noqa: E402
from helixsim.precision import Precision  # noqa: E402
from helixsim.search import SearchSpace  # noqa: E402
from helixsim.specs.registry import load_hardware, load_model  # noqa: E402

PER_CONTEXT = 7_442   # configurations per context of this study (178,602 over 24 contexts)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", type=float, default=1e6)
    ap.add_argument("--format", default="parquet", choices=stream.FORMATS)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n_ctx = max(1, int(round(args.configs / PER_CONTEXT)))
    contexts = tuple(int(c) for c in np.unique(np.geomspace(65_536, 16_000_000, n_ctx).astype(np.int64)))
    space = SearchSpace(max_gpus=64, pp=(1, 2, 4), hopb=(True, False), max_batch=4096, contexts=contexts)
    hw, model = load_hardware("gb200-nvl72"), load_model("deepseek-r1")
    prec = Precision(weights="fp4", kv_cache="fp4")
    import_peak = peak_mb()
    write_s = [0.0]
    original = stream.TableWriter.write

    def timed_write(self, table):
        t0 = time.perf_counter()
        original(self, table)
        write_s[0] += time.perf_counter() - t0

    stream.TableWriter.write = timed_write
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        res = stream.stream_model(model, [("gb200-nvl72", hw)], space, prec, Path(tmp) / f"t.{args.format}",
                                  Path(tmp) / f"f.{args.format}", args.format, {"bench": True},
                                  workers=args.workers)
        wall = time.perf_counter() - start
        size = (Path(tmp) / f"t.{args.format}").stat().st_size
    out = {"contexts": len(contexts), "configurations": res.configurations, "wall_s": round(wall, 2),
           "configs_per_s": round(res.configurations / wall), "write_s": round(write_s[0], 3),
           "table_mb": round(size / 2**20, 1), "import_rss_mb": round(import_peak, 1),
           "peak_rss_mb": round(peak_mb(), 1),
           "bytes_per_configuration": round((peak_mb() - import_peak) * 2**20 / max(res.configurations, 1), 2),
           "format": args.format, "workers": args.workers}
    print(json.dumps(out) if args.json else "\n".join(f"{k:>24}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
