"""What ``helixsim bench`` measures: the tables and their columns, the formats, the shape grids,
where results go and the record of one run. Plain Python, no PyTorch."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import SpecError

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


