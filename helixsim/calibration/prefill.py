"""Prefill (context) attention calibrated on measured kernels: ``context_attention`` and ``context_mla``.

The measured tables (aiconfigurator-core 0.12.0, TensorRT-LLM kernels; see
``hardware/calibration/NOTICE``) time causal attention of ``batch_size``
requests of ``isl`` new tokens each, nothing cached (``step`` = 0). They are
reduced to one small grid per (family, attention dtype, KV dtype, head size):

    efficiency(isl, work) = roofline_ms / measured_ms,   work = batch_size x num_heads

where the roofline is :func:`causal_attention_flops` at the system's dense BF16
(or FP8) peak and, when larger, the Q/K/V/O bytes at its HBM bandwidth. A cell
holds the median of log2(efficiency) over the rows that fall in it (the KV
head count varies inside a cell and matters little to a compute-bound
kernel); empty cells are filled by linear interpolation in log2(work), then
log2(isl), edges held. A prediction interpolates log2(efficiency) bilinearly
in (log2 isl, log2 work).

**Beyond the measured prompt lengths** (16,384 for GQA, 32,768 for MLA) the
efficiency of the longest measured length is held, so the time grows with the
causal FLOPs, quadratically in the prompt: a long-prompt attention kernel is
compute-bound and its tiles are already full at 16K (the measured TFLOP/s
flatten there). Such predictions are flagged ``extrapolated``.

SGLang's and vLLM's own measured prefill kernels (``<system>/sglang/``, ``<system>/vllm/``) give
their own grids, stored under ``<system>/<framework>/`` (:data:`PREFILL_SOURCES` says which kernel
each framework runs); a framework without a family's measurements uses TensorRT-LLM's grid.

Regenerate the shipped grids (and their held-out error) with

    python -m helixsim.calibration.prefill --data /work/shared/calibration --out hardware/calibration
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: data system name -> helixsim hardware name (as :data:`helixsim.calibration.fit.SYSTEMS`)
SYSTEMS = {"gb200": "gb200-nvl72", "gb300": "gb300-nvl72", "b200_sxm": "b200-hgx",
           "h200_sxm": "h200-hgx", "h100_sxm": "h100-hgx"}
DTYPE_NAMES = {"bfloat16": "bf16", "fp8": "fp8"}
#: MLA prefill runs un-absorbed: per head a 192-wide query/key (128 nope + 64 rope) and a 128-wide
#: value (DeepSeek-V3 config.json: qk_nope_head_dim 128, qk_rope_head_dim 64, v_head_dim 128),
#: which is the only MLA shape the context_mla table measures.
MLA_QK_DIM, MLA_V_DIM = 192, 128
FAMILIES = ("context_attention", "context_mla")
#: framework -> family -> the measured ``kernel_source`` values it runs for prefill attention, preferred
#: first (the first present in a system's table is used): TensorRT-LLM's own (top-level tables);
#: SGLang: TensorRT-LLM's MHA kernels through FlashInfer on SM100, FlashAttention-3 on SM90, and
#: TensorRT-LLM's MLA kernels; vLLM: FlashInfer with TensorRT-LLM prefill kernels on SM100,
#: FlashAttention-3 on SM90 (vLLM measures MLA only as whole modules, so its MLA prefill borrows
#: TensorRT-LLM's grid).
PREFILL_SOURCES = {
    "trtllm": {"context_attention": ("torch_flow",), "context_mla": ("default",)},
    "sglang": {"context_attention": ("trtllm_mha", "fa3", "flashinfer", "triton"), "context_mla": ("trtllm_mla",)},
    "vllm": {"context_attention": ("vllm_flashinfer_trtllmprefill", "vllm_flash_attn_fa3", "vllm_flash_attn_fa4",
                                   "vllm_triton_attn"), "context_mla": ()},
}
HOLDOUT_FRACTION = 0.2
MANIFEST = "prefill_attention.json"


# ------------------------------------------------------------------ cost terms

def causal_attention_flops(batch, q_heads, isl, qk_dim, v_dim, prefix=0.0) -> np.ndarray:
    """FLOPs of causal attention of ``isl`` new tokens over ``prefix`` cached ones plus themselves.

    Query i (0-based) attends to prefix + i + 1 keys; summed over the isl queries that is
    isl x (prefix + (isl + 1) / 2) (query, key) pairs, each costing 2 x qk_dim (scores) plus
    2 x v_dim (P x V) FLOPs (FlashAttention-2 paper's count, Dao 2023, with the causal half).
    """
    from ..cost.prefill import attended_pairs

    return 2.0 * np.asarray(batch, float) * np.asarray(q_heads, float) * attended_pairs(isl, prefix) * (qk_dim + v_dim)


def attention_io_bytes(batch, q_heads, kv_heads, isl, qk_dim, v_dim, elem_bytes=2.0) -> np.ndarray:
    """Bytes a fused prefill attention kernel moves at least: Q, K, V read and O written once."""
    b, h, kh, s = (np.asarray(x, float) for x in (batch, q_heads, kv_heads, isl))
    return b * s * (h * (qk_dim + v_dim) + kh * (qk_dim + v_dim)) * elem_bytes


def roofline_ms(flops, nbytes, peak_tflops: float, hbm_gbps: float) -> np.ndarray:
    """max(FLOPs / peak, bytes / bandwidth), ms (Williams et al. 2009)."""
    return np.maximum(np.asarray(flops, float) / (peak_tflops * 1e9), np.asarray(nbytes, float) / (hbm_gbps * 1e6))


# ------------------------------------------------------------------ the grid

@dataclass(frozen=True)
class EfficiencyGrid:
    """log2(efficiency) on a (log2 isl) x (log2 work) grid of one kernel category."""

    isl: np.ndarray          # ascending knots (tokens)
    work: np.ndarray         # ascending knots (batch x heads)
    log2_eff: np.ndarray     # [len(isl), len(work)]

    @property
    def max_isl(self) -> float:
        return float(self.isl[-1])

    def efficiency(self, isl, work) -> np.ndarray:
        """Bilinear interpolation of log2(efficiency) in (log2 isl, log2 work); edges held."""
        x = np.clip(np.log2(np.maximum(np.asarray(isl, float), 1.0)), *np.log2(self.isl[[0, -1]]))
        y = np.clip(np.log2(np.maximum(np.asarray(work, float), 1.0)), *np.log2(self.work[[0, -1]]))
        x, y = np.broadcast_arrays(x, y)
        lx, ly = np.log2(self.isl), np.log2(self.work)
        i = np.clip(np.searchsorted(lx, x, side="right") - 1, 0, len(lx) - 2) if len(lx) > 1 else np.zeros(x.shape, int)
        j = np.clip(np.searchsorted(ly, y, side="right") - 1, 0, len(ly) - 2) if len(ly) > 1 else np.zeros(y.shape, int)
        g = self.log2_eff
        if len(lx) == 1 or len(ly) == 1:
            return 2.0 ** g[np.minimum(i, g.shape[0] - 1), np.minimum(j, g.shape[1] - 1)]
        fx = (x - lx[i]) / (lx[i + 1] - lx[i])
        fy = (y - ly[j]) / (ly[j + 1] - ly[j])
        v = (g[i, j] * (1 - fx) * (1 - fy) + g[i + 1, j] * fx * (1 - fy)
             + g[i, j + 1] * (1 - fx) * fy + g[i + 1, j + 1] * fx * fy)
        return 2.0 ** v

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.log2_eff, index=pd.Index(self.isl, name="isl"),
                            columns=[f"work={w:g}" for w in self.work])

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> "EfficiencyGrid":
        work = np.array([float(c.split("=", 1)[1]) for c in df.columns if c.startswith("work=")])
        return cls(isl=df["isl"].to_numpy(float), work=work,
                   log2_eff=df[[c for c in df.columns if c.startswith("work=")]].to_numpy(float))


def _fill(grid: np.ndarray) -> np.ndarray:
    """Fill NaN cells: linear along each row (work), then each column (isl), edges held."""
    out = grid.copy()
    for axis in (1, 0):
        moved = np.moveaxis(out, axis, -1)
        for idx in np.ndindex(moved.shape[:-1]):
            line = moved[idx]
            ok = np.isfinite(line)
            if ok.any() and not ok.all():
                pos = np.arange(len(line))
                line[~ok] = np.interp(pos[~ok], pos[ok], line[ok])
    return out


def fit_grid(isl: np.ndarray, work: np.ndarray, log2_eff: np.ndarray) -> EfficiencyGrid:
    """Median log2(efficiency) per (isl, power-of-two work) cell, holes filled."""
    knots_isl = np.unique(isl)
    wk = np.round(np.log2(np.maximum(work, 1.0)))
    knots_work = 2.0 ** np.arange(wk.min(), wk.max() + 1)
    frame = pd.DataFrame({"i": np.searchsorted(knots_isl, isl), "j": (wk - wk.min()).astype(int), "v": log2_eff})
    med = frame.groupby(["i", "j"])["v"].median()
    grid = np.full((len(knots_isl), len(knots_work)), np.nan)
    grid[med.index.get_level_values(0), med.index.get_level_values(1)] = med.to_numpy()
    return EfficiencyGrid(knots_isl.astype(float), knots_work, _fill(grid))


def prepare_rows(family: str, df: pd.DataFrame, sources: tuple = ()) -> pd.DataFrame:
    """Rows used: full causal attention (window 0), one kernel source (the first of ``sources`` the
    table holds; TensorRT-LLM's by default), nothing cached; shape columns."""
    df = df[df["latency_ms"] > 0]
    if "step" in df:
        df = df[df["step"] == 0]
    sources = sources or PREFILL_SOURCES["trtllm"][family]
    if "kernel_source" in df:
        present = [src for src in sources if (df["kernel_source"] == src).any()]
        df = df[df["kernel_source"] == present[0]] if present else df.iloc[:0]
    if family == "context_attention":
        df = df[df["window_size"] == 0]
        out = pd.DataFrame({"attn": df["attn_dtype"], "kv": df["kv_cache_dtype"], "head_dim": df["head_dim"],
                            "qk": df["head_dim"], "v": df["head_dim"], "kv_heads": df["num_key_value_heads"]})
    else:
        out = pd.DataFrame({"attn": df["mla_dtype"], "kv": df["kv_cache_dtype"], "head_dim": MLA_QK_DIM,
                            "qk": MLA_QK_DIM, "v": MLA_V_DIM, "kv_heads": df["num_heads"]})
    out["batch"], out["heads"], out["isl"] = df["batch_size"], df["num_heads"], df["isl"]
    out["ms"] = df["latency_ms"]
    out["attn"] = out["attn"].map(DTYPE_NAMES)
    out["kv"] = out["kv"].map(DTYPE_NAMES)
    return out.dropna().reset_index(drop=True)


def row_roofline_ms(rows: pd.DataFrame, peaks: dict) -> np.ndarray:
    flops = causal_attention_flops(rows["batch"], rows["heads"], rows["isl"], rows["qk"], rows["v"])
    nbytes = attention_io_bytes(rows["batch"], rows["heads"], rows["kv_heads"], rows["isl"], rows["qk"], rows["v"])
    peak = np.where(rows["attn"] == "fp8", peaks["fp8_tflops"], peaks["bf16_tflops"])
    return roofline_ms(flops, nbytes, peak, peaks["hbm_gbps"])


def fit_family(rows: pd.DataFrame, peaks: dict) -> dict[tuple, EfficiencyGrid]:
    """One grid per (attention dtype, KV dtype, head size)."""
    y = np.log2(row_roofline_ms(rows, peaks) / rows["ms"].to_numpy(float))
    grids = {}
    for key, g in rows.assign(y=y).groupby(["attn", "kv", "head_dim"]):
        grids[(str(key[0]), str(key[1]), int(key[2]))] = fit_grid(g["isl"].to_numpy(float),
                                                                  (g["batch"] * g["heads"]).to_numpy(float),
                                                                  g["y"].to_numpy(float))
    return grids


def predict_rows(grids: dict, rows: pd.DataFrame, peaks: dict) -> np.ndarray:
    out = np.full(len(rows), np.nan)
    for key, idx in rows.groupby(["attn", "kv", "head_dim"]).groups.items():
        grid = grids.get((str(key[0]), str(key[1]), int(key[2])))
        if grid is None:
            continue
        sub = rows.loc[idx]
        out[np.asarray(idx)] = row_roofline_ms(sub, peaks) / grid.efficiency(sub["isl"], sub["batch"] * sub["heads"])
    return out


# ------------------------------------------------------------------ shipped tables

@dataclass(frozen=True)
class PrefillCalibration:
    """The prefill attention grids of one system and the peaks they were fitted against."""

    hardware: str
    peaks: dict
    grids: dict            # family -> {(attn, kv, head_dim): EfficiencyGrid}
    holdout: dict          # family -> held-out error summary

    def grid(self, family: str, attn: str, kv: str, head_dim: int) -> tuple[str, EfficiencyGrid] | None:
        """(attention dtype used, grid) for these formats; a KV format without data (FP4) borrows
        FP8's, an attention format without data (FP4; FP8 MLA) BF16's; the nearest measured head
        size in log2."""
        fam = self.grids.get(family, {})
        for a in dict.fromkeys(("fp8" if attn == "fp4" else attn, "bf16")):
            for k in dict.fromkeys(("fp8" if kv == "fp4" else kv, "bf16" if kv == "bf16" else "fp8")):
                dims = [d for (aa, kk, d) in fam if aa == a and kk == k]
                if dims:
                    best = min(dims, key=lambda d: abs(np.log2(d) - np.log2(head_dim)))
                    return a, fam[(a, k, best)]
        return None


def peaks_of(hw) -> dict:
    """The roofline constants from a hardware spec (datasheet dense peaks and HBM bandwidth)."""
    fp8 = hw.dense_tflops.for_dtype("fp8")
    return {"bf16_tflops": float(hw.dense_tflops.for_dtype("bf16")), "fp8_tflops": float(fp8),
            "hbm_gbps": float(hw.hbm_bandwidth_gbps)}


def save(cal: PrefillCalibration, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {}
    for family, grids in cal.grids.items():
        (out_dir / family).mkdir(exist_ok=True)
        for (attn, kv, hd), grid in sorted(grids.items()):
            name = f"{family}/{attn}_{kv}_hd{hd}.csv"
            grid.to_frame().reset_index().to_csv(out_dir / name, index=False, float_format="%.5f")
            tables.setdefault(family, []).append({"attn": attn, "kv": kv, "head_dim": hd, "file": name})
    manifest = {"format": "helixsim-prefill-attention", "version": 1, "hardware": cal.hardware,
                "values": "log2(efficiency): causal-attention roofline ms / measured ms, per isl (rows) and "
                          "batch x heads (columns); see helixsim/calibration/prefill.py",
                "roofline": cal.peaks, "tables": tables, "holdout": cal.holdout}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def load(directory: Path) -> PrefillCalibration | None:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    m = json.loads(path.read_text(encoding="utf-8"))
    grids = {fam: {(t["attn"], t["kv"], int(t["head_dim"])): EfficiencyGrid.from_frame(pd.read_csv(Path(directory) / t["file"]))
                   for t in items} for fam, items in m["tables"].items()}
    return PrefillCalibration(m["hardware"], m["roofline"], grids, m.get("holdout", {}))


_CACHE: dict[str, PrefillCalibration | None] = {}


def builtin(hardware_name: str, backend: str | None = None) -> PrefillCalibration | None:
    """The shipped prefill calibration of a built-in system, or None; with ``backend`` (sglang, vllm)
    that framework's grids where it measured the family, TensorRT-LLM's for the rest."""
    key = f"{hardware_name}/{backend or ''}"
    if key not in _CACHE:
        from ..specs.registry import data_dir

        root = data_dir("hardware") / "calibration" / hardware_name
        base = load(root)
        own = load(root / backend) if backend and backend != "trtllm" else None
        _CACHE[key] = base if own is None or base is None else merged(base, own)
    return _CACHE[key]


def merged(base: PrefillCalibration, own: PrefillCalibration) -> PrefillCalibration:
    """``own``'s grids per family where it has them, ``base``'s elsewhere (same system and peaks)."""
    return PrefillCalibration(own.hardware, own.peaks, {**base.grids, **own.grids}, {**base.holdout, **own.holdout})


def ape_summary(pred: np.ndarray, meas: np.ndarray) -> dict:
    ape = 100.0 * np.abs(pred - meas) / meas
    ape = ape[np.isfinite(ape)]
    return {"n": int(ape.size), "median_ape": round(float(np.median(ape)), 2) if ape.size else None,
            "p90_ape": round(float(np.percentile(ape, 90)), 2) if ape.size else None}


def build_system(data_dir: Path, hw, backend: str = "trtllm") -> PrefillCalibration:
    """Fit the grids on all rows; the held-out error from a fit on a random 80 % (seed 0) tested on the rest."""
    peaks = peaks_of(hw)
    grids, holdout = {}, {}
    for family in FAMILIES:
        path = Path(data_dir) / f"{family}.csv.gz"
        if not path.is_file() or not PREFILL_SOURCES[backend][family]:
            continue
        rows = prepare_rows(family, pd.read_csv(path), PREFILL_SOURCES[backend][family])
        if rows.empty:
            continue
        test = np.random.default_rng(0).random(len(rows)) < HOLDOUT_FRACTION
        train = rows[~test].reset_index(drop=True)
        held = rows[test].reset_index(drop=True)
        pred = predict_rows(fit_family(train, peaks), held, peaks)
        big = held["isl"].to_numpy() >= 1024
        holdout[family] = {"all": ape_summary(pred, held["ms"].to_numpy(float)),
                           "isl_ge_1024": ape_summary(pred[big], held["ms"].to_numpy(float)[big])}
        grids[family] = fit_family(rows, peaks)
    return PrefillCalibration(hw.name, peaks, grids, holdout)


def main(argv: list[str] | None = None) -> int:
    from ..specs.hardware import load_hardware_file
    from ..specs.registry import data_dir

    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.prefill", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="root of the measured tables (<system>/<family>.csv.gz)")
    ap.add_argument("--out", type=Path, required=True, help="output root, e.g. hardware/calibration")
    args = ap.parse_args(argv)
    for system, name in SYSTEMS.items():
        if not (args.data / system).is_dir():
            continue
        hw = load_hardware_file(data_dir("hardware") / f"{name}.yaml")
        for backend, sub in (("trtllm", ""), ("sglang", "sglang"), ("vllm", "vllm")):
            cal = build_system(args.data / system / sub, hw, backend)
            if not cal.grids:
                continue
            save(cal, args.out / name / sub)
            print(f"{system:9s} {backend:6s} -> {args.out / name / sub}: " + ", ".join(
                f"{fam} held-out median {h['all']['median_ape']} % (isl>=1024: {h['isl_ge_1024']['median_ape']} %)"
                for fam, h in cal.holdout.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
