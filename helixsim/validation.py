"""End-to-end validation: predict measured decode time per output token (TPOT) of serving runs.

Input: a CSV with the columns of the measured serving table (model by
Hugging Face id, system, precision, tp, attention_dp, moe_tp, moe_ep, pp,
decode_batch, ctx_mid, measured_tpot_ms). Each row becomes one helixsim
configuration; rows that cannot be modelled are listed with the reason,
never dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .api import evaluate, kernels_for
from .backends import check_backend, default_kv_cache
from .errors import SpecError
from .layout import Layout, LayoutArrays, check_layout
from .precision import Precision
from .safe_io import numeric_column, read_csv_table, short
from .specs.registry import load_hardware, load_model

#: Hugging Face id -> built-in model with the same architecture.
HF_TO_MODEL = {
    "deepseek-ai/DeepSeek-V3": "deepseek-r1", "deepseek-ai/DeepSeek-R1": "deepseek-r1",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b", "meta-llama/Meta-Llama-3.1-70B": "llama-3.1-70b",
    "meta-llama/Llama-3.1-405B": "llama-3.1-405b", "openai/gpt-oss-120b": "gpt-oss-120b",
    "Qwen/Qwen3-32B": "qwen3-32b", "nvidia/Qwen3-32B-NVFP4": "qwen3-32b",
    "Qwen/Qwen3-235B-A22B": "qwen3-235b-a22b", "moonshotai/Kimi-K2-Instruct": "kimi-k2",
    # same architecture as the base checkpoint; the row's own precision column sets the formats
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b", "meta-llama/Meta-Llama-3.1-8B": "llama-3.1-8b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b", "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
}
#: measured-data system name -> built-in hardware
SYSTEM_TO_HARDWARE = {"gb200": "gb200-nvl72", "gb300": "gb300-nvl72", "b200_sxm": "b200-hgx",
                      "h200_sxm": "h200-hgx", "h100_sxm": "h100-hgx"}
#: weight precision -> (weights, KV cache). The records do not give the KV format; BF16 runs keep a
#: BF16 cache, FP4 and FP8 runs the cache their framework keeps by default (validation data README:
#: TensorRT-LLM FP8; vLLM BF16 unless told otherwise): see helixsim.backends.DEFAULTS.
PRECISION = {"fp4": ("fp4", "fp8"), "nvfp4": ("fp4", "fp8"), "mxfp4": ("fp4", "fp8"), "fp8": ("fp8", "fp8"),
             "fp8_block": ("fp8", "fp8"), "bf16": ("bf16", "bf16")}
#: Format of the non-expert linear layers of an FP4 MoE checkpoint (absent: FP4 like the experts).
#: gpt-oss keeps attention, router, embedding and LM head in BF16 (config.json
#: quantization_config.modules_to_not_convert).
FP4_DENSE_WEIGHTS = {"kimi-k2": "fp8", "gpt-oss-120b": "bf16"}
#: Format of the attention input projections of an FP4 checkpoint where it differs from its other
#: non-expert layers. NVIDIA's DeepSeek-R1 FP4 checkpoints keep ``self_attn`` in BF16 (TensorRT Model
#: Optimizer ``examples/deepseek``: ``ptq.py`` turns ``*attn*`` quantisation off unless asked,
#: ``quantize_to_nvfp4.py`` writes unquantised layers dequantised to BF16; nvidia/DeepSeek-R1-FP4's
#: ``exclude_modules`` are ``lm_head`` and ``model.layers.N.self_attn*``, TensorRT-LLM issue #5766), except
#: the output projection wo, NVFP4 in the v2 checkpoints these 1k/1k, 1k/8k, 8k/1k runs use
#: (nvidia/DeepSeek-R1-0528-FP4-v2 model card), like the dense FFN layers and shared experts.
FP4_ATTENTION_WEIGHTS = {"deepseek-r1": "bf16"}
#: What ``decode_batch`` counts when attention is data-parallel: "rank" (requests per attention-DP
#: rank, the instance decodes decode_batch x attention_dp) or "instance" (the whole instance).
#: The shipped measurements count per rank, although their README says per instance: in every one
#: of their 29 DP rows the run's client concurrency (the ``_c<N>_`` of ``source_id``) is a whole
#: multiple of decode_batch x attention_dp, and equals it in all 14 rows with 32 DP ranks; read per
#: instance, each of those 14 runs would need exactly 32 decode instances of 32 GPUs (1,024 GPUs).
#: See docs/calibration.md, "What decode_batch counts".
DP_BATCH_MODES = ("rank", "instance")
REQUIRED = ("hf_model_path", "system", "precision", "tp", "pp", "attention_dp", "moe_tp", "moe_ep",
            "decode_batch", "ctx_mid", "measured_tpot_ms")


def _int(value) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _check_dp_batch(dp_batch: str) -> None:
    if dp_batch not in DP_BATCH_MODES:
        raise SpecError("command line", "--dp-batch", f"'{dp_batch}' is not one of {', '.join(DP_BATCH_MODES)}")


def row_backend(row: pd.Series) -> str:
    """The row's serving framework (``backend`` column); trtllm where the column is absent or blank."""
    value = row.get("backend") if hasattr(row, "get") else None
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return "trtllm"
    return check_backend(str(value).strip().lower(), "backend", "row")


def row_config(row: pd.Series, dp_batch: str = "rank") -> tuple[str, str, Layout, Precision, int, int]:
    """Map one measured row to (model, hardware, layout, precision, batch, context); SpecError if it can't be.

    ``batch`` is the instance's whole decode batch; ``dp_batch`` says what the row's
    ``decode_batch`` counts under attention DP (see :data:`DP_BATCH_MODES`). The KV-cache
    format is the row's framework's default for the weights (:mod:`helixsim.backends`).
    """
    _check_dp_batch(dp_batch)
    model = HF_TO_MODEL.get(str(row["hf_model_path"]))
    if model is None:
        raise SpecError("row", "hf_model_path", f"no built-in model for '{row['hf_model_path']}'")
    hardware = SYSTEM_TO_HARDWARE.get(str(row["system"]))
    if hardware is None:
        raise SpecError("row", "system", f"unknown system '{row['system']}'")
    prec = PRECISION.get(str(row["precision"]).lower())
    if prec is None:
        raise SpecError("row", "precision", f"unknown precision '{row['precision']}'")
    spec = load_model(model)
    tp, dp, pp = _int(row["tp"]), _int(row["attention_dp"]) or 1, _int(row["pp"]) or 1
    moe_tp, moe_ep = _int(row["moe_tp"]), _int(row["moe_ep"])
    n = tp * dp
    if spec.ffn.moe is None:
        moe_tp, moe_ep = n, 1
    elif moe_tp is None or moe_ep is None:
        moe_tp, moe_ep = n, 1
    strategy = "ep" if dp > 1 else "tp"
    layout = Layout(strategy, kvp=1, tpa=tp, dp=dp, tpf=moe_tp, ep=moe_ep, pp=pp, hopb=False)
    check_layout(layout, spec, "row")
    weights, _ = prec  # FP4 weights on Hopper run on FP8 units (README, modelling choice 4)
    kv = "bf16" if prec[1] == "bf16" else default_kv_cache(row_backend(row), weights, model)
    dense = FP4_DENSE_WEIGHTS.get(model) if weights == "fp4" else None
    attn = FP4_ATTENTION_WEIGHTS.get(model) if weights == "fp4" else None
    batch = _int(row["decode_batch"]) * (dp if dp_batch == "rank" else 1)
    return (model, hardware, layout, Precision(weights=weights, kv_cache=kv, dense_weights=dense,
                                               attention_weights=attn),
            batch, _int(row["ctx_mid"]))


@dataclass
class E2EResult:
    rows: pd.DataFrame          # every input row with predicted_tpot_ms, ape_pct, and reason where skipped
    summary: dict               # {"overall": {...}, "by_model": {...}, "by_system": {...}}


def ape_stats(ape: np.ndarray) -> dict:
    ape = np.asarray(ape, float)
    ape = ape[np.isfinite(ape)]
    if ape.size == 0:
        return {"n": 0, "median_ape": None, "mean_ape": None, "p90_ape": None}
    return {"n": int(ape.size), "median_ape": float(np.median(ape)), "mean_ape": float(np.mean(ape)),
            "p90_ape": float(np.percentile(ape, 90))}


def interval_stats(rows: pd.DataFrame, ideal: bool = False, calibration=None, folds: int = 5) -> dict:
    """Share of runs whose measured TPOT lies inside the predicted 80 % interval (``interval_coverage``).

    The shipped interval's end-to-end term comes from these very runs' residuals, so
    ``interval_coverage_cv`` also reports it cross-validated: runs split into ``folds`` by a hash
    of their row, each fold's interval rescaled to the residual quantiles of the other folds
    (exact where the whole step is calibrated; the roofline and extrapolation terms kept).
    """
    import zlib

    from .uncertainty import coverage, ln_ratio_quantiles, shipped_rule

    meas = rows["measured_tpot_ms"].to_numpy(float)
    pred = rows["predicted_tpot_ms"].to_numpy(float)
    lo, hi = rows["predicted_tpot_ms_lo"].to_numpy(float), rows["predicted_tpot_ms_hi"].to_numpy(float)
    out = {"interval_coverage": coverage(meas, lo, hi)}
    if ideal or len(rows) < folds:
        return out
    q10, q90 = shipped_rule().roofline_q if str(calibration) == "none" else shipped_rule().calibrated_q
    key = rows.index.to_numpy()
    fold = np.array([zlib.crc32(str(i).encode()) % folds for i in key])
    cv_lo, cv_hi = lo.copy(), hi.copy()
    for f in range(folds):
        a, b = ln_ratio_quantiles(meas[fold != f], pred[fold != f])
        cv_lo[fold == f] = np.minimum(lo[fold == f] * np.exp(a - q10), pred[fold == f])
        cv_hi[fold == f] = np.maximum(hi[fold == f] * np.exp(b - q90), pred[fold == f])
    out["interval_coverage_cv"] = coverage(meas, cv_lo, cv_hi)
    return out


#: Numeric columns of the serving table: (whole number?, smallest allowed, blank allowed). Widths and
#: counts are whole and >= 1; a blank attention_dp/pp means 1, a blank moe_tp/moe_ep "as attention".
NUMERIC = {"tp": (True, 1, False), "pp": (True, 1, True), "attention_dp": (True, 1, True),
           "moe_tp": (True, 1, True), "moe_ep": (True, 1, True), "decode_batch": (True, 1, False),
           "ctx_mid": (True, 1, False), "measured_tpot_ms": (False, 0, False)}
#: Upper limits: a parallel width beyond 4096 GPUs, a batch beyond 2^20 requests or a context beyond
#: 2^40 tokens is no serving run (the plan YAML's limits); a TPOT beyond an hour is a unit mistake.
#: Columns of serving runs (prefill and TTFT), checked where present.
OPTIONAL_NUMERIC = {"isl": (True, 1, True), "osl": (True, 1, True), "measured_ttft_ms": (False, 0, True)}
MAXIMA = {"isl": float(1 << 40), "osl": float(1 << 40), "measured_ttft_ms": 3.6e6, "decode_batch": float(1 << 20), "ctx_mid": float(1 << 40), "measured_tpot_ms": 3.6e6}
WIDTH_MAX = 4096.0


def read_e2e_table(path: Path) -> pd.DataFrame:
    """The serving table with every numeric cell checked (one line naming file, line and column)."""
    src = short(path, 200)
    table = read_csv_table(path, REQUIRED, src, dtype=None, keep_default_na=False, na_values=[""])
    for col, (integer, lo, blank_ok) in {**NUMERIC, **{c: v for c, v in OPTIONAL_NUMERIC.items() if c in table}}.items():
        table[col] = numeric_column(table, col, src, integer=integer, minimum=lo, min_open=lo == 0,
                                    maximum=MAXIMA.get(col, WIDTH_MAX), blank_ok=blank_ok)
    return table


def validate_e2e(path: Path, ideal: bool = False, calibration=None, dp_batch: str = "rank") -> E2EResult:
    """Predict TPOT for every row of ``path`` and summarise the absolute percentage error."""
    _check_dp_batch(dp_batch)
    table = read_e2e_table(path)
    predicted = np.full(len(table), np.nan)
    pred_lo, pred_hi = np.full(len(table), np.nan), np.full(len(table), np.nan)
    decode_attention = np.full(len(table), np.nan)
    reasons = [""] * len(table)
    groups: dict[tuple, list] = {}
    for i, row in table.iterrows():
        try:
            model, hardware, layout, prec, batch, context = row_config(row, dp_batch)
            backend = row_backend(row)
        except SpecError as err:
            reasons[i] = f"{err.field}: {err.problem}"
            continue
        groups.setdefault((model, hardware, prec, backend), []).append((i, layout, batch, context))
    for (model, hardware, prec, backend), members in groups.items():  # one vectorised evaluation per group
        hw = load_hardware(hardware)
        idx = np.array([m[0] for m in members])
        layouts = LayoutArrays(*(np.concatenate([getattr(LayoutArrays.from_layout(m[1]), f) for m in members])
                                 for f in LayoutArrays.__dataclass_fields__))
        try:
            res = evaluate(load_model(model), hw, layouts, np.array([m[2] for m in members]),
                           np.array([m[3] for m in members]), prec,
                           kernels=kernels_for(hw, ideal, calibration, backend))
        except SpecError as err:
            for i in idx:
                reasons[i] = f"{err.field}: {err.problem}"
            continue
        predicted[idx] = res["ttl_ms"].to_numpy()
        decode_attention[idx] = res["attention_ms"].to_numpy()
        pred_lo[idx], pred_hi[idx] = res["ttl_ms_lo"].to_numpy(), res["ttl_ms_hi"].to_numpy()
        for i, fits in zip(idx, res["feasible"].to_numpy()):
            if not fits:
                reasons[i] = "predicted not to fit in HBM (kept: the run shows it did)"
    out = table.copy()
    from . import serving_validation as sv   # serving runs: TPOT with prefill interference, TTFT

    if sv.has_serving_columns(table):
        out["predicted_decode_tpot_ms"] = predicted
        configs = {m[0]: (key[0], key[1], m[1], key[2], key[3]) for key, members in groups.items() for m in members}
        for name, values in sv.serving_predictions(table, predicted, configs, ideal, calibration,
                                                             decode_attention).items():
            out[name] = values
        added = out["predicted_tpot_ms"].to_numpy() - predicted   # prefill interference moves the interval too
        predicted, pred_lo, pred_hi = predicted + added, pred_lo + added, pred_hi + added
    out["predicted_tpot_ms"] = predicted
    out["predicted_tpot_ms_lo"], out["predicted_tpot_ms_hi"] = pred_lo, pred_hi
    out["ape_pct"] = 100.0 * np.abs(predicted - out["measured_tpot_ms"]) / out["measured_tpot_ms"]
    out["reason"] = reasons
    ok = out["ape_pct"].notna()
    summary = {"overall": {**ape_stats(out.loc[ok, "ape_pct"]), **interval_stats(out[ok], ideal, calibration)},
               "by_model": {k: ape_stats(g["ape_pct"]) for k, g in out[ok].groupby("model" if "model" in out else "hf_model_path")},
               "by_system": {k: ape_stats(g["ape_pct"]) for k, g in out[ok].groupby("system")},
               **({"by_backend": {k: ape_stats(g["ape_pct"]) for k, g in out[ok].groupby("backend")}}
                  if "backend" in out else {}),
               **sv.serving_summary(out, ape_stats),
               "skipped": [{"row": int(i), "reason": r} for i, r in enumerate(reasons) if r and not ok.iloc[i]]}
    return E2EResult(out, summary)
