"""End-to-end validation of the serving model: TTFT and TPOT under prefill interference.

Called by :func:`helixsim.validation.validate_e2e` when the measured table carries the
serving columns (``isl``, ``osl``, ``mode``; ``measured_ttft_ms`` and ``concurrency`` for
TTFT). For each row the prefill of one ``isl``-token prompt is priced on the row's own layout
(:mod:`helixsim.cost.prefill`), then:

- aggregated rows (``mode == "agg"``): TPOT = decode step + the other requests' prefills spread
  over the decode (:func:`helixsim.serving.aggregated_tpot_ms`);
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
from .serving import aggregated_tpot_ms, kv_transfer_ms, ttft_ms

SERVING_COLUMNS = ("isl", "osl", "mode")
#: TTFT is compared where queueing behind other prompts is small (validation data README).
TTFT_MAX_CONCURRENCY = 4
TTFT_FILTER = f"rows with measured_ttft_ms and concurrency <= {TTFT_MAX_CONCURRENCY}"


def has_serving_columns(table: pd.DataFrame) -> bool:
    return all(c in table.columns for c in SERVING_COLUMNS)


def serving_predictions(table: pd.DataFrame, decode_tpot_ms: np.ndarray, configs: dict, ideal: bool = False,
                        calibration=None) -> dict[str, np.ndarray]:
    """Per row: predicted prefill, TTFT and TPOT (with interference where aggregated), NaN where not modelled.

    ``configs`` maps row index -> (model, hardware, layout, precision, backend) from the decode validation;
    each row's prefill is priced with its framework's measured kernels, as its decode step is.
    """
    from .api import kernels_for
    from .prefill import DEFAULT_CHUNK_TOKENS, evaluate_prefill, prefill_calibration
    from .specs.registry import load_hardware, load_model

    n = len(table)
    prefill = np.full(n, np.nan)
    transfer = np.zeros(n)
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
        try:
            res = evaluate_prefill(spec, hw, lay, isl, 1, DEFAULT_CHUNK_TOKENS, 1, prec, k,
                                   prefill_calibration(hw, ideal, calibration))
        except SpecError:
            continue
        prefill[idx] = res["ttft_ms"]
        disagg = (table["mode"].iloc[idx] == "disagg").to_numpy()
        same_rack = lay.n_gpus * 2 <= hw.nvlink_domain_gpus   # prefill + decode instance in one NVLink domain
        transfer[idx] = np.where(disagg, kv_transfer_ms(k, spec, lay, lay.n_gpus, isl, prec, same_rack), 0.0)
    agg = (table["mode"] == "agg").to_numpy()
    per_rank = table["decode_batch"].to_numpy(float)
    tpot = np.where(agg, aggregated_tpot_ms(decode_tpot_ms, prefill, per_rank, table["osl"].to_numpy(float)),
                    decode_tpot_ms)
    iteration = np.where(agg, tpot, 0.0)    # a disaggregated prefill instance runs no decode iterations
    return {"predicted_prefill_ms": prefill, "predicted_kv_transfer_ms": transfer,
            "predicted_ttft_ms": ttft_ms(prefill, iteration, transfer), "predicted_tpot_ms": tpot}


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
        sel = rows["measured_ttft_ms"].notna() & rows["predicted_ttft_ms"].notna()
        if "concurrency" in rows:
            sel &= rows["concurrency"] <= TTFT_MAX_CONCURRENCY
        ape = 100.0 * (rows["predicted_ttft_ms"] - rows["measured_ttft_ms"]).abs() / rows["measured_ttft_ms"]
        out["ttft"] = {**ape_stats(ape[sel]), "filter": TTFT_FILTER,
                       "by_model": {k: ape_stats(ape[g.index]) for k, g in rows[sel].groupby(
                           "model" if "model" in rows else "hf_model_path")}}
    return out
