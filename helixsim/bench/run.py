"""Running one benchmark: checking the request, starting torch.distributed for collectives,
timing every configuration within the memory budget, writing the table and its conditions."""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
from pathlib import Path

from ..errors import SpecError
from .conditions import _environment, _write_table, nvidia_smi
from .spec import (BENCHES, COLLECTIVES, LABELS, SHAPES, TABLES, TORCH_MISSING, BenchResult, Log, collective_grid,
                   output_paths, parse_dtypes)
from .timing import Timer
from .workloads import _collective_row, _gemm, _gqa, _mla, _moe, _time_collective


def _import_torch():
    try:
        import torch
    except ImportError:
        raise SpecError("bench", "", TORCH_MISSING) from None
    return torch



def _probe(fn) -> str | None:
    """None if ``fn()`` runs, else a one-line reason."""
    try:
        fn()
        return None
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        return f"{err.__class__.__name__}: {first[:160]}"


def _memory_budget(torch, device) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 0.6 * free
    return 2.0 * 2 ** 30


def run_bench(bench: str, out: str | Path, device: str | None = None, dtypes=(), shapes: str | None = None,
              warmup: int = 10, iters: int = 50, cuda_graphs: bool = True, append: bool = False,
              log: Log | None = None) -> BenchResult | None:
    """Measure ``bench`` and write its calibration table (and conditions JSON) to ``out``.

    Returns the result on the writing process (rank 0), None on the other ranks of a torchrun launch.
    """
    if bench not in TABLES:
        raise SpecError("bench", bench, f"unknown benchmark (choose from {', '.join(BENCHES)})")
    if warmup < 0 or iters < 1:
        raise SpecError("bench", "--warmup/--iters", "need warmup >= 0 and iters >= 1")
    table = TABLES[bench]
    path, cond_path = output_paths(out, table)
    wanted = parse_dtypes(bench, dtypes)
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        raise SpecError("WORLD_SIZE", "", f"not an integer: {os.environ.get('WORLD_SIZE')!r}") from None
    collective = bench in COLLECTIVES
    if collective and world < 2:
        raise SpecError("bench", bench, "collectives need torchrun with >= 2 ranks, e.g. torchrun "
                        f"--nproc-per-node 8 -m helixsim.cli bench {bench} --out DIR/nccl.csv.gz")
    if not collective and world > 1:
        raise SpecError("bench", bench, "run single-kernel benchmarks in one process, not under torchrun")
    torch = _import_torch()
    import torch.nn.functional as F

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cuda", "cpu"):
        raise SpecError("--device", str(device), "choose cuda or cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("--device", "cuda", "no CUDA device visible to PyTorch (use --device cpu)")
    shapes = shapes or ("full" if device == "cuda" else "small")
    if shapes not in SHAPES:
        raise SpecError("--shapes", str(shapes), "choose small or full")

    log = log or (lambda s: None)

    dist, rank = None, 0
    if collective:
        import torch.distributed as dist

        local = int(os.environ.get("LOCAL_RANK", "0") or 0)
        if device == "cuda":
            torch.cuda.set_device(local)
            dev = torch.device("cuda", local)
        else:
            dev = torch.device("cpu")
        backend = "nccl" if device == "cuda" else "gloo"
        try:
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as err:
            raise SpecError("bench", bench, f"cannot start torch.distributed ({backend}): "
                            f"{(str(err).splitlines() or [''])[0][:200]}") from None
        rank = dist.get_rank()
    else:
        dev = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.removesuffix(".gz").removesuffix(".csv") != table:
            log(f"note: helixsim calibrate reads {table}.csv.gz (or {table}.csv) from the --data directory; "
                f"this table is named {path.name}")
    try:
        return _measure(torch, F, dist, dev, bench, table, path, cond_path, wanted, shapes, warmup, iters,
                        cuda_graphs, append, log)
    finally:
        if dist is not None and dist.is_initialized():
            dist.destroy_process_group()


def _measure(torch, F, dist, dev, bench, table, path, cond_path, wanted, shapes, warmup, iters, cuda_graphs,
             append, log) -> BenchResult | None:
    torch.manual_seed(0)
    timer = Timer(torch, dev, warmup, iters, cuda_graphs)
    started = datetime.datetime.now(datetime.timezone.utc)
    rank = dist.get_rank() if dist is not None else 0
    world = dist.get_world_size() if dist is not None else 1
    conditions = {"bench": bench, "table": table, "shapes": shapes, "dtypes": list(wanted),
                  "started_utc": started.isoformat(timespec="seconds"),
                  "protocol": {"warmup": warmup, "iters": iters, "statistic": "median",
                               "unit": "milliseconds per call"},
                  **_environment(torch, dev)}
    if dev.type == "cuda":
        conditions["nvidia_smi_before"] = nvidia_smi() if rank == 0 else None
    notes: list[str] = []
    budget = _memory_budget(torch, dev)
    if dist is not None:   # the same grid on every rank: use the smallest budget
        b = torch.tensor([budget], dtype=torch.float64, device=dev)
        dist.all_reduce(b, op=dist.ReduceOp.MIN)
        budget = float(b.item())

    # which requested formats this device and PyTorch can run
    dtypes = []
    for d in wanted:
        reason = None
        if d == "fp8" and bench == "gemm":
            one = torch.ones((), device=dev, dtype=torch.float32)
            reason = _probe(lambda: torch._scaled_mm(
                torch.zeros((16, 32), device=dev).to(torch.float8_e4m3fn),
                torch.zeros((16, 32), device=dev).to(torch.float8_e4m3fn).t(),
                scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
        elif d == "fp8":
            reason = _probe(lambda: torch.zeros(8, device=dev).to(torch.float8_e4m3fn).to(torch.bfloat16))
        if reason:
            notes.append(f"{LABELS[d]}: skipped, not supported by PyTorch {torch.__version__} on {dev.type} ({reason})")
        else:
            dtypes.append(d)
    if not dtypes:
        raise SpecError("bench", bench, f"none of the requested formats runs here ({'; '.join(notes)})")

    grouped_mm = False
    if bench == "moe":
        if dev.type == "cuda" and hasattr(torch, "_grouped_mm"):
            w = torch.zeros((2, 32, 32), device=dev, dtype=torch.bfloat16)
            off = torch.tensor([8, 16], device=dev, dtype=torch.int32)
            reason = _probe(lambda: torch._grouped_mm(torch.zeros((16, 32), device=dev, dtype=torch.bfloat16),
                                                      w.transpose(-2, -1), offs=off))
            grouped_mm = reason is None
            if reason:
                notes.append(f"moe: torch._grouped_mm unavailable ({reason}); one GEMM per expert instead")
        conditions["moe_kernel"] = "torch._grouped_mm" if grouped_mm else "one matmul per local expert"

    rows: list[dict] = []
    skipped_budget = skipped_error = 0
    first_error = None
    if bench in COLLECTIVES:
        jobs = [(d, cfg) for d in dtypes for cfg in collective_grid(shapes)]
    else:
        gen = {"gemm": _gemm, "attention": _gqa, "mla_attention": _mla}.get(bench)
        jobs = [(d, item) for d in dtypes
                for item in (gen(torch, dev, d, shapes, F) if gen else _moe(torch, dev, d, shapes, F, grouped_mm))]
    total = len(jobs)
    step = max(1, total // 10)
    for i, (d, job) in enumerate(jobs):
        if rank == 0 and total >= 50 and i and i % step == 0:
            log(f"bench {bench}: {i}/{total} configurations")
        if bench in COLLECTIVES:
            row, need = _collective_row(torch, dist, dev, bench, d, job, world, budget)
            if row is None:
                skipped_budget += need
                continue
            row["latency_ms"] = _time_collective(torch, dist, dev, bench, d, row["message_size"], timer)
            rows.append(row)
            continue
        row, need, setup = job
        if need > budget:
            skipped_budget += 1
            continue
        try:
            fn = setup()
            latency = timer(fn)
        except Exception as err:   # e.g. out of memory, a shape a kernel does not take
            skipped_error += 1
            first_error = first_error or f"{row}: {err.__class__.__name__}: {(str(err).splitlines() or [''])[0][:200]}"
            if dev.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            continue
        finally:
            fn = None
        if not (latency > 0 and math.isfinite(latency)):
            skipped_error += 1
            first_error = first_error or f"{row}: latency {latency}"
            continue
        rows.append({**row, "latency_ms": latency})
    if dev.type == "cuda" and timer.graph_error:
        notes.append(f"CUDA graph capture failed for some kernels, timed eagerly ({timer.graph_error})")
    if skipped_budget:
        notes.append(f"{skipped_budget} configurations skipped: above the memory budget of "
                     f"{budget / 2 ** 30:.1f} GiB")
    if skipped_error:
        notes.append(f"{skipped_error} configurations failed and were skipped (first: {first_error})")
    if bench in ("attention", "mla_attention") and "fp8" in dtypes:
        notes.append("fp8 KV cache: stored as float8_e4m3fn and converted to bf16 before the attention "
                     "(a separate pass in eager PyTorch; fused kernels dequantise in registers)")
    if rank != 0:
        return None
    if not rows:
        raise SpecError("bench", bench, "no configuration could be measured (" + "; ".join(notes) + ")")

    n_rows = _write_table(path, rows, table, append)
    conditions.update(timing=timer.method, rows_measured=len(rows), rows_in_table=n_rows,
                      skipped=skipped_budget + skipped_error, notes=notes,
                      finished_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      argv=sys.argv[1:], world_size=world)
    if dist is not None:
        conditions["backend"] = dist.get_backend()
    if dev.type == "cuda":
        conditions["nvidia_smi_after"] = nvidia_smi()
    if append and cond_path.exists():
        try:
            old = json.loads(cond_path.read_text(encoding="utf-8"))
            conditions["previous_runs"] = old.pop("previous_runs", []) + [old]
        except (OSError, ValueError):
            pass
    cond_path.write_text(json.dumps(conditions, indent=1, default=str) + "\n", encoding="utf-8")
    return BenchResult(table=table, path=path, conditions_path=cond_path, rows=n_rows,
                       skipped=skipped_budget + skipped_error, notes=notes)
