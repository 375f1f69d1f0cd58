"""Kernel microbenchmarks that write calibration tables (``helixsim bench``).

Measures the kernels of a decode step with PyTorch on the local device and
writes one table per run with exactly the columns of the shipped
calibration data (``<family>.csv.gz``, see ``docs/calibration.md``), so that
``helixsim calibrate --data DIR --hardware H`` fits a user's own GPU:

=================  =========================  ==========================================================
bench              table written              kernel measured
=================  =========================  ==========================================================
``gemm``           ``gemm``                   ``[m,k] x [k,n]``: ``F.linear`` (bf16), ``torch._scaled_mm`` (fp8)
``attention``      ``gqa_decode_attention``   one decode token per request, ``scaled_dot_product_attention``
``mla_attention``  ``mla_decode_attention``   absorbed MLA (latent 512 + rope 64 scores, 512-wide values), matmuls
``moe``            ``moe``                    routed experts of one GPU: permute, grouped GEMMs, SwiGLU, combine
``allreduce``      ``nccl`` (``all_reduce``)  ``torch.distributed.all_reduce`` (under torchrun, >= 2 ranks)
``alltoall``       ``nccl`` (``alltoall``)    ``torch.distributed.all_to_all_single`` (under torchrun, >= 2 ranks)
=================  =========================  ==========================================================

Timing: ``warmup`` untimed calls, then ``iters`` timed calls, one at a time;
the median is recorded (milliseconds per call). On CUDA each call is timed
with CUDA events, replaying a CUDA graph of the kernel(s) where capture
works (no CPU launch gaps); on the CPU with ``time.perf_counter``. Collective
latencies are the largest median over the ranks. The run's conditions
(device, versions, clocks, protocol, skipped parts) go to a sidecar
``<stem>.conditions.json`` beside the table.

PyTorch is an optional dependency (``pip install 'helixsim[bench]'``); it is
imported only when a benchmark runs.
"""

from __future__ import annotations

import datetime
import gzip
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import __version__
from .errors import SpecError

TORCH_MISSING = "PyTorch is not installed; pip install 'helixsim[bench]'"

#: bench name -> calibration table (family) it writes
TABLES: dict[str, str] = {
    "gemm": "gemm",
    "attention": "gqa_decode_attention",
    "mla_attention": "mla_decode_attention",
    "moe": "moe",
    "allreduce": "nccl",
    "alltoall": "nccl",
}
BENCHES = tuple(TABLES)
COLLECTIVES = {"allreduce": "all_reduce", "alltoall": "alltoall"}

#: the columns of each table, in the order of the calibration data's files
COLUMNS: dict[str, tuple[str, ...]] = {
    "gemm": ("op_name", "kernel_source", "gemm_dtype", "m", "n", "k", "latency_ms"),
    "gqa_decode_attention": ("op_name", "kernel_source", "batch_size", "isl", "num_heads", "num_key_value_heads",
                             "head_dim", "window_size", "beam_width", "attn_dtype", "kv_cache_dtype", "step",
                             "latency_ms"),
    "mla_decode_attention": ("op_name", "kernel_source", "mla_dtype", "kv_cache_dtype", "num_heads", "batch_size",
                             "isl", "tp_size", "step", "latency_ms"),
    "moe": ("op_name", "kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk",
            "num_experts", "moe_tp_size", "moe_ep_size", "distribution", "latency_ms"),
    "nccl": ("op_name", "kernel_source", "nccl_dtype", "num_gpus", "message_size", "latency_ms"),
}
#: columns that identify a row (all but the latency): ``--append`` replaces rows with the same key
KEY_COLUMNS = {t: tuple(c for c in cols if c != "latency_ms") for t, cols in COLUMNS.items()}

DTYPE_ALIASES = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16", "half": "fp16",
                 "fp8": "fp8", "float8": "fp8", "int8": "int8"}
#: what --dtype means per bench: GEMM / MoE weights and math, the KV-cache format for attention, the payload
#: of a collective
DTYPES = {"gemm": ("bf16", "fp8"), "attention": ("bf16", "fp8"), "mla_attention": ("bf16", "fp8"),
          "moe": ("bf16",), "allreduce": ("bf16", "fp16", "int8"), "alltoall": ("bf16", "fp16", "int8")}
DEFAULT_DTYPES = {"gemm": ("bf16", "fp8"), "attention": ("bf16", "fp8"), "mla_attention": ("bf16", "fp8"),
                  "moe": ("bf16",), "allreduce": ("bf16",), "alltoall": ("bf16",)}
#: dtype -> label used in the tables (the calibration data's spelling)
LABELS = {"bf16": "bfloat16", "fp16": "half", "fp8": "fp8", "int8": "int8"}

SHAPES = ("small", "full")
MLA_LORA, MLA_ROPE = 512, 64
MLA_REFERENCE_HEADS = 128   # tp_size = 128 / heads per GPU, as in the calibration data (DeepSeek-V3/R1)

Log = Callable[[str], None]


# ------------------------------------------------------------------ shape grids

def _pow2(lo: int, hi: int) -> list[int]:
    return [2 ** i for i in range(lo, hi + 1)]


def _steps(max_exp: int) -> list[int]:
    """Tokens already in the KV cache: 2^i - 1, so the step reads 2^i tokens (as in the calibration data)."""
    return [2 ** i - 1 for i in range(1, max_exp + 1)]


def gemm_grid(shapes: str) -> list[dict]:
    if shapes == "small":
        ms, nks = [1, 2, 8, 32], [(64, 64), (64, 128), (128, 64), (128, 128)]
    else:
        ms = _pow2(0, 14)
        dims = [512, 1024, 2048, 4096, 7168, 8192, 16384]
        nks = [(n, k) for n in dims for k in dims]
    return [{"m": m, "n": n, "k": k} for n, k in nks for m in ms]


def gqa_grid(shapes: str) -> list[dict]:
    if shapes == "small":
        heads, batches, steps = [(4, 1, 64), (8, 2, 64)], [1, 4], [1, 15, 63, 255]
    else:
        heads = [(kv * g, kv, d) for d in (64, 128) for kv in (1, 2, 4, 8) for g in (1, 4, 8, 16)]
        batches, steps = [1, 4, 16, 64, 256, 1024], _steps(17)
    return [{"num_heads": h, "num_key_value_heads": kv, "head_dim": d, "batch_size": b, "step": s}
            for h, kv, d in heads for b in batches for s in steps]


def mla_grid(shapes: str) -> list[dict]:
    if shapes == "small":
        heads, batches, steps = [1, 4], [1, 2], [1, 15, 63, 255]
    else:
        heads, batches, steps = _pow2(0, 7), _pow2(0, 10), _steps(17)
    return [{"num_heads": h, "batch_size": b, "step": s} for h in heads for b in batches for s in steps
            if shapes == "small" or b * (s + 1) <= 2 ** 24]      # the calibration data's largest batch x KV length


def moe_grid(shapes: str) -> list[dict]:
    if shapes == "small":
        models, tokens = [((64, 32, 2, 8), (1, 2))], [1, 4, 16, 64]
    else:
        models = [((7168, 2048, 8, 256), (8, 16, 32, 64)),     # DeepSeek-V3/R1
                  ((4096, 1536, 8, 128), (4, 8, 16)),          # Qwen3-235B-A22B
                  ((2880, 2880, 4, 128), (2, 4, 8)),           # gpt-oss-120b
                  ((4096, 14336, 2, 8), (1, 2, 4, 8))]         # Mixtral-8x7B
        tokens = _pow2(0, 14)
    return [{"hidden_size": h, "inter_size": f, "topk": k, "num_experts": e, "moe_tp_size": 1, "moe_ep_size": ep,
             "num_tokens": t} for (h, f, k, e), eps in models for ep in eps for t in tokens]


def collective_grid(shapes: str) -> list[dict]:
    sizes = [256, 1024, 4096, 16384, 65536] if shapes == "small" else _pow2(8, 29)
    return [{"message_size": s} for s in sizes]


# ------------------------------------------------------------------ results


@dataclass
class BenchResult:
    """What one ``helixsim bench`` run wrote (rank 0)."""

    table: str
    path: Path
    conditions_path: Path
    rows: int
    skipped: int
    notes: list[str] = field(default_factory=list)


def output_paths(out: str | Path, table: str) -> tuple[Path, Path]:
    """The table file for ``--out`` (a ``.csv``/``.csv.gz`` file, or a directory) and its conditions file."""
    text = str(out)
    p = Path(out)
    if p.is_dir() or text.endswith(("/", os.sep)):
        p = p / f"{table}.csv.gz"
    elif not (p.name.endswith(".csv") or p.name.endswith(".csv.gz")):
        raise SpecError(text, "--out", f"must end in .csv or .csv.gz, or name a directory (e.g. DIR/{table}.csv.gz)")
    stem = p.name.removesuffix(".gz").removesuffix(".csv")
    return p, p.with_name(f"{stem}.conditions.json")


def _import_torch():
    try:
        import torch
    except ImportError:
        raise SpecError("bench", "", TORCH_MISSING) from None
    return torch


def parse_dtypes(bench: str, dtypes) -> tuple[str, ...]:
    """``--dtype`` values (repeatable, comma lists, aliases) -> canonical names valid for ``bench``."""
    words = [w.strip().lower() for d in (dtypes or ()) for w in str(d).split(",") if w.strip()]
    if not words:
        return DEFAULT_DTYPES[bench]
    out = []
    for w in words:
        d = DTYPE_ALIASES.get(w)
        if d is None or d not in DTYPES[bench]:
            raise SpecError("--dtype", w, f"not measured by 'bench {bench}' (choose from {', '.join(DTYPES[bench])})")
        if d not in out:
            out.append(d)
    return tuple(out)


# ------------------------------------------------------------------ timing


class Timer:
    """Median latency (ms) of ``fn()`` over ``iters`` timed calls after ``warmup`` untimed ones."""

    def __init__(self, torch, device, warmup: int, iters: int, cuda_graphs: bool) -> None:
        self.torch, self.device = torch, device
        self.warmup, self.iters, self.cuda_graphs = warmup, iters, cuda_graphs
        self.graph_calls = 0
        self.eager_calls = 0
        self.graph_error: str | None = None

    @property
    def method(self) -> str:
        if self.device.type != "cuda":
            return "time.perf_counter per call"
        if self.graph_calls and self.eager_calls:
            return "CUDA events per call; CUDA graph replay where capture worked, else eager"
        return "CUDA events per call, CUDA graph replay" if self.graph_calls else "CUDA events per call, eager"

    def __call__(self, fn: Callable[[], object], graphs: bool = True) -> float:
        if self.device.type == "cuda":
            return self._cuda(fn, graphs and self.cuda_graphs)
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.iters):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    def _cuda(self, fn, graphs: bool) -> float:
        torch = self.torch
        torch.cuda.synchronize()
        fn()        # lazy initialisation (cuBLAS handles, NCCL communicators) before any capture
        torch.cuda.synchronize()
        run, graph = fn, None
        if graphs:
            try:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    fn()
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    fn()
                run = graph.replay
            except Exception as err:  # capture is an optimisation: fall back to eager launches
                self.graph_error = self.graph_error or f"{err.__class__.__name__}: {str(err).splitlines()[0][:160]}"
                graph, run = None, fn
                torch.cuda.synchronize()
        self.graph_calls += graph is not None
        self.eager_calls += graph is None
        for _ in range(self.warmup):
            run()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(self.iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(self.iters)]
        for start, end in zip(starts, ends):
            start.record()
            run()
            end.record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        del graph
        return float(statistics.median(times))


# ------------------------------------------------------------------ the benchmarks
#
# Each ``_<bench>`` generator yields (row, bytes, setup): the table row without its latency, an estimate of the
# device memory the configuration needs, and a function building the tensors and returning the callable to time.


def _uniform(torch, shape, device, dtype, scale: float = 1.0):
    return (torch.rand(shape, device=device, dtype=torch.float32) * 2.0 - 1.0).mul_(scale).to(dtype)


def _gemm(torch, device, dtype: str, shapes: str, F) -> Iterator[tuple[dict, float, Callable]]:
    label = LABELS[dtype]
    for c in gemm_grid(shapes):
        m, n, k = c["m"], c["n"], c["k"]
        eb = 1 if dtype == "fp8" else 2
        row = {"op_name": "gemm", "kernel_source": "torch_scaled_mm" if dtype == "fp8" else "torch_linear",
               "gemm_dtype": label, "m": m, "n": n, "k": k}

        def setup(m=m, n=n, k=k):
            a = _uniform(torch, (m, k), device, torch.bfloat16)
            w = _uniform(torch, (n, k), device, torch.bfloat16, 1.0 / math.sqrt(k))
            if dtype == "bf16":
                return lambda: F.linear(a, w)
            a8, w8 = a.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
            one = torch.ones((), device=device, dtype=torch.float32)
            wt = w8.t()   # column-major [k, n], as cuBLASLt FP8 wants it
            return lambda: torch._scaled_mm(a8, wt, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

        yield row, (m * k + n * k) * eb + m * n * 2 + (m * k + n * k) * 2, setup


def _kv_dtype(torch, dtype: str):
    return torch.float8_e4m3fn if dtype == "fp8" else torch.bfloat16


def _gqa(torch, device, dtype: str, shapes: str, F) -> Iterator[tuple[dict, float, Callable]]:
    kvb = 1 if dtype == "fp8" else 2
    for c in gqa_grid(shapes):
        b, h, kv, d, step = c["batch_size"], c["num_heads"], c["num_key_value_heads"], c["head_dim"], c["step"]
        s = step + 1
        row = {"op_name": "generation_attention", "kernel_source": "torch_sdpa", "batch_size": b, "isl": 1,
               "num_heads": h, "num_key_value_heads": kv, "head_dim": d, "window_size": 0, "beam_width": 1,
               "attn_dtype": "bfloat16", "kv_cache_dtype": LABELS[dtype], "step": step}
        cache = 2 * b * kv * s * d
        if shapes == "full" and cache * kvb > 8 * 2 ** 30:     # the calibration data's largest KV cache
            continue

        def setup(b=b, h=h, kv=kv, d=d, s=s):
            # one query token per request: the h / kv query heads sharing a KV head attend as a block of
            # g = h / kv query rows of that head (non-causal: every cached token is visible)
            q = _uniform(torch, (b, kv, h // kv, d), device, torch.bfloat16)
            k = _uniform(torch, (b, kv, s, d), device, torch.bfloat16).to(_kv_dtype(torch, dtype))
            v = _uniform(torch, (b, kv, s, d), device, torch.bfloat16).to(_kv_dtype(torch, dtype))
            if dtype == "fp8":   # FP8 cache: dequantised to BF16 on the fly (a separate pass in eager PyTorch)
                return lambda: F.scaled_dot_product_attention(q, k.to(torch.bfloat16), v.to(torch.bfloat16))
            return lambda: F.scaled_dot_product_attention(q, k, v)

        extra = cache * 2 if dtype == "fp8" else 0
        yield row, cache * kvb + extra + 2 * b * h * d * 2, setup


def _mla(torch, device, dtype: str, shapes: str, F) -> Iterator[tuple[dict, float, Callable]]:
    kvb = 1 if dtype == "fp8" else 2
    width = MLA_LORA + MLA_ROPE
    for c in mla_grid(shapes):
        b, h, step = c["batch_size"], c["num_heads"], c["step"]
        s = step + 1
        row = {"op_name": "mla_generation", "kernel_source": "torch_matmul", "mla_dtype": "bfloat16",
               "kv_cache_dtype": LABELS[dtype], "num_heads": h, "batch_size": b, "isl": 1,
               "tp_size": max(1, MLA_REFERENCE_HEADS // h), "step": step}

        def setup(b=b, h=h, s=s):
            # absorbed MLA: the query is already projected into the latent space (q x W_UK), so scores are
            # [q_latent | q_rope] . [c_kv | k_rope] over 512 + 64 and the values are the 512-wide latent c_kv
            q = _uniform(torch, (b, h, width), device, torch.bfloat16)
            cache = _uniform(torch, (b, s, width), device, torch.bfloat16).to(_kv_dtype(torch, dtype))
            scale = 1.0 / math.sqrt(128 + MLA_ROPE)     # DeepSeek's qk_nope + qk_rope head dim

            def attend():
                kv = cache.to(torch.bfloat16) if dtype == "fp8" else cache
                scores = torch.matmul(q, kv.transpose(1, 2))                    # [b, h, s]
                p = torch.softmax(scores.float() * scale, dim=-1).to(torch.bfloat16)
                return torch.matmul(p, kv[:, :, :MLA_LORA])                     # [b, h, 512]

            return attend

        cache_elems = b * s * width
        yield row, cache_elems * (kvb + (2 if dtype == "fp8" else 0)) + b * h * s * (2 + 4 + 4 + 2), setup


def _moe(torch, device, dtype: str, shapes: str, F, grouped_mm: bool) -> Iterator[tuple[dict, float, Callable]]:
    for c in moe_grid(shapes):
        t, hid, inter, topk, e = c["num_tokens"], c["hidden_size"], c["inter_size"], c["topk"], c["num_experts"]
        tp, ep = c["moe_tp_size"], c["moe_ep_size"]
        local, f = max(1, e // ep), inter // tp
        row = {"op_name": "moe", "kernel_source": "moe_torch_grouped_mm" if grouped_mm else "moe_torch_loop",
               "moe_dtype": LABELS[dtype], **{k_: c[k_] for k_ in ("num_tokens", "hidden_size", "inter_size",
                                                                      "topk", "num_experts", "moe_tp_size",
                                                                      "moe_ep_size")},
               "distribution": "balanced"}
        pairs = -(-t * topk // ep)
        weights = local * 3 * hid * f * 2

        def setup(t=t, hid=hid, topk=topk, e=e, local=local, f=f):
            # balanced routing: token i's j-th choice is expert (i * topk + j) mod e (distinct for topk <= e);
            # this GPU holds experts [0, local) (one EP shard of a tp x ep grid) and computes their pairs only
            choice = [(i, (i * topk + j) % e) for i in range(t) for j in range(topk)]
            mine = [(i, x) for i, x in choice if x < local]
            counts = [0] * local
            for _, x in mine:
                counts[x] += 1
            tok = torch.tensor([i for i, _ in mine], device=device, dtype=torch.long)
            eid = torch.tensor([x for _, x in mine], device=device, dtype=torch.long)
            gate = torch.full((len(mine),), 1.0 / topk, device=device, dtype=torch.bfloat16)
            x_in = _uniform(torch, (t, hid), device, torch.bfloat16)
            w_up = _uniform(torch, (local, 2 * f, hid), device, torch.bfloat16, 1.0 / math.sqrt(hid))
            w_down = _uniform(torch, (local, hid, f), device, torch.bfloat16, 1.0 / math.sqrt(f))
            out = torch.zeros((t, hid), device=device, dtype=torch.bfloat16)
            bounds, acc = [], 0
            for n_ in counts:
                bounds.append((acc, acc + n_))
                acc += n_
            offs = torch.tensor([b_ for _, b_ in bounds], device=device, dtype=torch.int32)

            def grouped(a, w):
                if grouped_mm:
                    return torch._grouped_mm(a, w.transpose(-2, -1), offs=offs)
                return torch.cat([a[lo:hi] @ w[x].t() for x, (lo, hi) in enumerate(bounds) if hi > lo]
                                 or [a.new_zeros((0, w.shape[1]))])

            def moe():
                order = torch.argsort(eid, stable=True)                      # permute pairs by expert
                rows, g = tok[order], gate[order]
                h1 = grouped(x_in.index_select(0, rows), w_up)              # [pairs, 2f]
                act = F.silu(h1[:, :f]) * h1[:, f:]                          # SwiGLU
                y = grouped(act, w_down) * g[:, None]                        # [pairs, hid]
                out.zero_()
                return out.index_add_(0, rows, y)                            # combine

            return moe

        yield row, weights + t * hid * 4 + pairs * (2 * hid + 3 * f) * 2 * 2, setup


# ------------------------------------------------------------------ conditions


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


NVSMI_FIELDS = ("index", "name", "driver_version", "pstate", "clocks.sm", "clocks.mem", "clocks.max.sm",
                "clocks.max.mem", "power.draw", "power.limit", "temperature.gpu")


def nvidia_smi() -> list[dict] | str:
    """Per-GPU clocks, power and driver from ``nvidia-smi`` (a string saying why where it cannot be queried)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi not found"
    try:
        res = subprocess.run([exe, f"--query-gpu={','.join(NVSMI_FIELDS)}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as err:
        return f"nvidia-smi failed: {err.__class__.__name__}"
    if res.returncode != 0:
        return f"nvidia-smi failed: {(res.stderr or res.stdout).strip()[:200]}"
    return [dict(zip(NVSMI_FIELDS, (v.strip() for v in line.split(","))))
            for line in res.stdout.strip().splitlines() if line.strip()]


def _environment(torch, device) -> dict:
    env = {"helixsim_version": __version__, "python": platform.python_version(), "platform": platform.platform(),
           "torch_version": torch.__version__, "cuda_version": torch.version.cuda, "device_type": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, compute_capability=f"{props.major}.{props.minor}",
                   device_memory_gib=round(props.total_memory / 2 ** 30, 2),
                   multiprocessors=props.multi_processor_count,
                   cudnn_version=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
        try:
            nccl = torch.cuda.nccl.version()
            env["nccl_version"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
        except Exception:  # not built with NCCL
            env["nccl_version"] = None
    else:
        env.update(device_name=_cpu_name(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads())
    return env


# ------------------------------------------------------------------ running


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


def _write_table(path: Path, rows: list[dict], table: str, append: bool) -> int:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(COLUMNS[table]))
    if append and path.exists():
        old = pd.read_csv(path)
        if list(old.columns) != list(COLUMNS[table]):
            raise SpecError(str(path), "--append", f"existing table has other columns than a '{table}' table")
        frame = pd.concat([old, frame], ignore_index=True)
        frame = frame.drop_duplicates(subset=list(KEY_COLUMNS[table]), keep="last").reset_index(drop=True)
    text = frame.to_csv(index=False, float_format="%.6g").encode("utf-8")
    data = gzip.compress(text, mtime=0) if path.name.endswith(".gz") else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(frame)


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


_DIST_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "int8": "int8"}


def _collective_row(torch, dist, dev, bench, d, cfg, world, budget):
    """(row, 0) for a message every rank can send, else (None, 1): skipped (same decision on every rank)."""
    size = cfg["message_size"] - cfg["message_size"] % world   # all_to_all_single splits the buffer evenly
    eb = 1 if d == "int8" else 2
    if size <= 0 or 2 * size * eb > budget:
        return None, 1
    backend = dist.get_backend()
    return {"op_name": COLLECTIVES[bench], "kernel_source": "NCCL" if backend == "nccl" else backend,
            "nccl_dtype": LABELS[d], "num_gpus": world, "message_size": size}, 0


def _time_collective(torch, dist, dev, bench, d, size, timer: Timer) -> float:
    dt = getattr(torch, _DIST_DTYPES[d])
    send = torch.zeros(size, device=dev, dtype=dt)
    if bench == "allreduce":
        fn = lambda: dist.all_reduce(send)   # noqa: E731
    else:
        recv = torch.empty_like(send)
        fn = lambda: dist.all_to_all_single(recv, send)   # noqa: E731
    dist.barrier()
    local = timer(fn, graphs=False)
    worst = torch.tensor([local], dtype=torch.float64, device=dev)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)   # a collective is as slow as its slowest rank
    return float(worst.item())
