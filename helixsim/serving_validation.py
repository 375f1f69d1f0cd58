"""End-to-end validation of the serving model: TTFT and TPOT under prefill interference.

Called by :func:`helixsim.validation.validate_e2e` when the measured table carries the
serving columns (``isl``, ``osl``, ``mode``; ``measured_ttft_ms`` and ``concurrency`` for
TTFT). For each row the prefill of one ``isl``-token prompt is priced on the row's own layout
(:mod:`helixsim.cost.prefill`), then:

- aggregated rows (``mode == "agg"``): TPOT = decode step + the other requests' prefills spread
  over the decode, less the decode work a mixed pass absorbs (:func:`helixsim.serving.aggregated_tpot_ms`);
  TTFT = the scheduler wait + the own prefill passes (with the running decodes' attention where
  the row's framework mixes them, :data:`helixsim.serving.SCHEDULERS`);
- disaggregated rows: TPOT is the decode step; TTFT adds the KV transfer from a prefill
  instance of the decode instance's size (NVLink inside an NVL72 rack, the scale-out NIC
  between 8-GPU boards).

Nothing here is fitted to the serving runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import SpecError
from .layout import LayoutArrays
from .prefill import DEFAULT_CHUNK_TOKENS
from .ttft_interval import attention_doublings, prefill_attention_top_isl, ttft_interval_ms, ttft_interval_stats
from .serving import (absorbed_decode_ms, aggregated_tpot_ms, kv_transfer_ms, launch_setting_wait_iterations,
                      mixed_pass_extra_ms, prefill_ms_per_token, scheduler_for, scheduler_wait_iterations, ttft_ms)

SERVING_COLUMNS = ("isl", "osl", "mode")
#: TTFT is compared where queueing behind other prompts is small (validation data README).
TTFT_MAX_CONCURRENCY = 4
TTFT_FILTER = f"rows with measured_ttft_ms and concurrency <= {TTFT_MAX_CONCURRENCY}"


def has_serving_columns(table: pd.DataFrame) -> bool:
    return all(c in table.columns for c in SERVING_COLUMNS)


def serving_predictions(table: pd.DataFrame, decode_tpot_ms: np.ndarray, configs: dict, ideal: bool = False,
                        calibration=None, decode_attention_ms=None) -> dict[str, np.ndarray]:
    """Per row: predicted prefill, TTFT and TPOT (with interference where aggregated), NaN where not modelled.

    ``configs`` maps row index -> (model, hardware, layout, precision, backend) from the decode validation;
    each row's prefill is priced with its framework's measured kernels, as its decode step is.
    ``decode_attention_ms``: per row, the decode step's attention (the part of a decode step that a
    mixed prefill pass does not absorb); without it nothing is absorbed.
    """
    from .api import kernels_for
    from .prefill import evaluate_prefill, prefill_calibration
    from .specs.registry import load_hardware, load_model

    n = len(table)
    prefill = np.full(n, np.nan)
    transfer = np.zeros(n)
    linear = np.full(n, np.nan)     # the prefill less its attention: what scales with the tokens in a pass
    extrapolated_attention = np.zeros(n)   # prefill attention priced beyond the measured prompt lengths
    doublings = np.zeros(n)
    groups: dict[tuple, list] = {}
    for i, (model, hardware, layout, prec, backend) in configs.items():
        isl = table["isl"].iloc[i]
        if pd.notna(isl) and isl >= 1:
            groups.setdefault((model, hardware, prec, backend), []).append((i, layout, int(isl)))
    for (model, hardware, prec, backend), members in groups.items():
        hw, spec = load_hardware(hardware), load_model(model)
        k = kernels_for(hw, ideal, calibration, backend)
        idx = np.array([m[0] for m in members])
        lay = LayoutArrays(*(np.concatenate([getattr(LayoutArrays.from_layout(m[1]), f) for m in members])
                             for f in LayoutArrays.__dataclass_fields__))
        isl = np.array([m[2] for m in members])
        pcal = prefill_calibration(hw, ideal, calibration, backend)
        try:
            res = evaluate_prefill(spec, hw, lay, isl, 1, DEFAULT_CHUNK_TOKENS, 1, prec, k, pcal)
        except SpecError:
            continue
        prefill[idx] = res["ttft_ms"]
        extrapolated_attention[idx] = np.where(res["extrapolated"], res["attention"], 0.0)
        doublings[idx] = attention_doublings(isl, prefill_attention_top_isl(k, pcal, spec, prec))
        linear[idx] = res["ttft_ms"] - res["attention"]
        disagg = (table["mode"].iloc[idx] == "disagg").to_numpy()
        same_rack = lay.n_gpus * 2 <= hw.nvlink_domain_gpus   # prefill + decode instance in one NVLink domain
        transfer[idx] = np.where(disagg, kv_transfer_ms(k, spec, lay, lay.n_gpus, isl, prec, same_rack), 0.0)
    agg = (table["mode"] == "agg").to_numpy()
    per_rank = table["decode_batch"].to_numpy(float)
    mixed, overlap = np.zeros(n, bool), np.zeros(n, bool)
    for i, cfg in configs.items():
        sched = scheduler_for(cfg[4])
        mixed[i], overlap[i] = sched.mixed_batches, sched.overlap
    attn = np.zeros(n) if decode_attention_ms is None else np.nan_to_num(np.asarray(decode_attention_ms, float))
    chunks = np.ceil(np.maximum(table["isl"].to_numpy(float), 1.0) / DEFAULT_CHUNK_TOKENS)
    per_token = prefill_ms_per_token(linear, table["isl"].to_numpy(float))
    absorbed = absorbed_decode_ms(decode_tpot_ms, attn, mixed, per_rank, per_token)
    tpot = np.where(agg, aggregated_tpot_ms(decode_tpot_ms, prefill, per_rank, table["osl"].to_numpy(float),
                                            chunks, absorbed), decode_tpot_ms)
    # disaggregated: the prefill instance runs no decode iterations (nothing mixed, nothing in flight at
    # concurrency <= 4); the first token reaches the client when the decode instance takes the request
    # at its next scheduling point, half a decode iteration after the KV arrives on average
    iteration = tpot
    wait = np.where(agg, scheduler_wait_iterations(overlap), 0.5)
    extra = np.where(agg, mixed_pass_extra_ms(attn, per_rank, chunks, mixed, per_token), 0.0)
    ttft = ttft_ms(prefill, iteration, transfer, wait, extra)
    ttft_lo, ttft_hi = np.full(n, np.nan), np.full(n, np.nan)
    index = np.fromiter(configs, dtype=np.int64, count=len(configs))
    backend_of = np.array([configs[i][4] for i in index.tolist()], dtype=object)
    for backend in np.unique(backend_of).tolist():
        rows = index[backend_of == backend]
        ttft_lo[rows], ttft_hi[rows] = ttft_interval_ms(ttft[rows], extrapolated_attention[rows], doublings[rows],
                                                        backend, ideal)
    return {"predicted_prefill_ms": prefill, "predicted_kv_transfer_ms": transfer,
            "predicted_ttft_ms": ttft, "predicted_ttft_ms_lo": ttft_lo, "predicted_ttft_ms_hi": ttft_hi,
            "predicted_tpot_ms": tpot}


def ttft_mask(rows: pd.DataFrame) -> pd.Series:
    """The rows TTFT is scored on (:data:`TTFT_FILTER`): measured and predicted, at low concurrency."""
    sel = rows["measured_ttft_ms"].notna() & rows["predicted_ttft_ms"].notna()
    if "concurrency" in rows:
        sel &= rows["concurrency"] <= TTFT_MAX_CONCURRENCY
    return sel


def serving_summary(rows: pd.DataFrame, ape_stats) -> dict:
    """``ttft`` (over :data:`TTFT_FILTER`, with the filter stated) and ``by_tier`` (TPOT) sections."""
    out = {}
    ok = rows["ape_pct"].notna()
    if "tier" in rows:
        out["by_tier"] = {k: ape_stats(g["ape_pct"]) for k, g in rows[ok].groupby("tier")}
        heavy = rows["tier"].astype(str).str[:2].isin(["C_", "D_"])
        if (ok & heavy).any():   # the aggregated runs with moderate or heavy prefill interference together
            out["by_tier"]["C+D"] = ape_stats(rows.loc[ok & heavy, "ape_pct"])
    if "measured_ttft_ms" in rows and "predicted_ttft_ms" in rows:
        sel = ttft_mask(rows)
        ape = 100.0 * (rows["predicted_ttft_ms"] - rows["measured_ttft_ms"]).abs() / rows["measured_ttft_ms"]
        out["ttft"] = {**ape_stats(ape[sel]), "filter": TTFT_FILTER,
                       "under_predicted_share": float((rows.loc[sel, "predicted_ttft_ms"]
                                                       < rows.loc[sel, "measured_ttft_ms"]).mean()) if sel.any() else None,
                       **ttft_interval_stats(rows[sel]),
                       "by_model": {k: ape_stats(ape[g.index]) for k, g in rows[sel].groupby(
                           "model" if "model" in rows else "hf_model_path")},
                       **({"by_backend": {k: ape_stats(ape[g.index]) for k, g in rows[sel].groupby("backend")}}
                          if "backend" in rows else {})}
    return out


def ttft_with_launch_settings(rows: pd.DataFrame, backend: str, stream_interval: int, recv_interval: int) -> pd.Series:
    """Predicted TTFT had ``backend``'s rows run with these launch settings instead of the defaults
    (a sensitivity, not a fit: :func:`helixsim.serving.launch_setting_wait_iterations` iterations of
    each row's predicted TPOT added to its predicted TTFT)."""
    mine = (rows["backend"] == backend).to_numpy()
    extra = launch_setting_wait_iterations(stream_interval, recv_interval, scheduler_for(backend).streams_first_token)
    return rows["predicted_ttft_ms"] + np.where(mine, extra * rows["predicted_tpot_ms"].to_numpy(float), 0.0)
