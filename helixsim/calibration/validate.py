"""How well a kernel model predicts measured latencies.

- :func:`predict_rows`: predicted ``latency_ms`` for each row of a family
  table (the calibration data's columns and units). With a calibrated model
  the row's own kernel, routing distribution and backend are used; any other
  kernel model (e.g. :class:`~helixsim.cost.kernels.RooflineKernels`) is asked
  through its public methods.
- :func:`kernel_error_report`: absolute percentage errors per family.
- :func:`holdout_report`: the holdout protocol: fit on four fifths of the
  rows (deterministic split by a hash of each row), report the errors on the
  fifth held out.

``python -m helixsim.calibration.validate --data /work/shared/calibration``
prints the held-out table for every system (docs/calibration.md).
"""

from __future__ import annotations

import argparse
import sys
import json
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .extrapolate import predict_family
from .families import FAMILIES, MLA_BMM_SHAPES
from .fit import SYSTEMS, fit_frames, load_calibration, read_frames, save_calibration, system_dir
from .roofline import RoofParams

NOT_KEYS = ("latency_ms", "transmit_us", "notify_us")


# ---------------------------------------------------------------- prediction

def predict_rows(family: str, df: pd.DataFrame, kernels) -> np.ndarray:
    """Predicted latency of each row, in the table's own unit (``latency_ms``); NaN where not predictable."""
    spec = FAMILIES[family]
    cal = getattr(kernels, "calibration", None)
    if cal is not None and family in cal.tables:
        ms = _predict_from_table(family, df, cal)
    else:
        ms = _predict_via_methods(family, df, kernels)
    return ms / spec.unit_to_ms


def _predict_from_table(family: str, df: pd.DataFrame, cal) -> np.ndarray:
    spec = FAMILIES[family]
    table = cal.tables[family]
    data = spec.prepare(df, drop_invalid=False)
    for c in spec.near + spec.num + (spec.axis,):
        data[c] = data[c].astype(float)
    out = np.full(len(data), np.nan)
    groups = data.groupby(list(spec.cat), sort=False).indices if spec.cat else {(): np.arange(len(data))}
    for key, idx in groups.items():
        key = key if isinstance(key, tuple) else (key,)
        sub = data.iloc[idx]
        out[idx] = predict_family(table, spec, key, {c: sub[c].to_numpy() for c in sub.columns}, {}, cal.roof)
    return out


_GEMM = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4"}
_KV = {"bfloat16": "bf16", "fp8": "fp8"}
_COMM = {"bfloat16": "bf16", "half": "bf16", "fp8": "fp8", "int8": "fp8", "nvfp4": "fp4", "fp4": "fp4"}
_NCCL = {"all_gather": "all_gather", "reduce_scatter": "reduce_scatter", "alltoall": "all_to_all",
         "all_reduce": "all_reduce"}
_NCCL_BYTES = {"half": 2.0, "bfloat16": 2.0, "int8": 1.0}


def _predict_via_methods(family: str, df: pd.DataFrame, k) -> np.ndarray:
    """Rows priced through a kernel model's public methods (any model with the RooflineKernels interface)."""
    spec = FAMILIES[family]
    d = spec.prepare(df, drop_invalid=False)
    out = np.full(len(d), np.nan)

    def each(cols, fn):
        for key, idx in d.groupby(cols, sort=False).indices.items():
            key = key if isinstance(key, tuple) else (key,)
            res = fn(dict(zip(cols, key)), d.iloc[idx])
            if res is not None:
                out[idx] = np.asarray(res, float)

    a = lambda g, c: g[c].to_numpy(float)  # noqa: E731
    if family == "gemm":
        each(["gemm_dtype"], lambda key, g: None if key["gemm_dtype"] not in _GEMM else
             k.gemm_ms(a(g, "m"), a(g, "n"), a(g, "k"), _GEMM[key["gemm_dtype"]]))
    elif family == "mla_bmm":
        each(["op_name", "bmm_dtype"], lambda key, g: None if key["bmm_dtype"] not in _GEMM else
             k.bmm_ms(a(g, "num_heads"), a(g, "num_tokens"), MLA_BMM_SHAPES[key["op_name"]][1],
                      MLA_BMM_SHAPES[key["op_name"]][0], _GEMM[key["bmm_dtype"]]))
    elif family == "mla_decode_attention":
        each(["kv_cache_dtype"], lambda key, g: k.mla_attention_ms(
            a(g, "batch_size"), a(g, "num_heads"), 512, 64, a(g, "kv_len"), _KV[key["kv_cache_dtype"]], "bf16"))
    elif family == "gqa_decode_attention":
        def gqa(key, g):
            s = a(g, "kv_len")
            w = a(g, "window_size")
            s = np.where(w > 0, np.minimum(s, np.maximum(w, 1.0)), s)
            return k.gqa_attention_ms(a(g, "batch_size"), a(g, "num_heads"), a(g, "num_key_value_heads"),
                                      int(key["head_dim"]), s, _KV[key["kv_cache_dtype"]], "bf16")
        each(["kv_cache_dtype", "head_dim"], gqa)
    elif family == "moe":
        each(["moe_dtype", "hidden_size", "inter_size", "topk", "num_experts"],
             lambda key, g: None if key["moe_dtype"] not in _GEMM else k.moe_ms(
                 a(g, "num_tokens"), int(key["hidden_size"]), int(key["inter_size"]), int(key["topk"]),
                 int(key["num_experts"]), a(g, "moe_tp_size"), a(g, "moe_ep_size"), _GEMM[key["moe_dtype"]]))
    elif family == "nccl":
        each(["op_name", "nccl_dtype"], lambda key, g: k.collective_ms(
            _NCCL[key["op_name"]], a(g, "num_gpus"), a(g, "message_size") * _NCCL_BYTES[key["nccl_dtype"]]))
    elif family == "allreduce_custom":
        each(["allreduce_dtype"], lambda key, g: k.collective_ms(
            "all_reduce", a(g, "num_gpus"), a(g, "message_size") * _NCCL_BYTES.get(key["allreduce_dtype"], 2.0)))
    elif family in ("moe_alltoall", "moe_alltoall_nvlink"):
        phase_col, dt_col = ("phase", "comm_dtype") if family == "moe_alltoall" else ("op_name", "moe_dtype")

        def a2a(key, g):
            phase = str(key[phase_col])
            fn = k.moe_dispatch_ms if "dispatch" in phase else k.moe_combine_ms if "combine" in phase else None
            if fn is None:
                return None
            return fn(a(g, "num_tokens"), int(key["hidden_size"]), int(key["topk"]), a(g, "moe_ep_size"),
                      _COMM[key[dt_col]])
        each([phase_col, dt_col, "hidden_size", "topk"], a2a)
    return out


# ---------------------------------------------------------------- errors

def ape_stats(pred: np.ndarray, true: np.ndarray) -> dict:
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    ok = np.isfinite(pred) & np.isfinite(true) & (true > 0)
    ape = np.abs(pred[ok] - true[ok]) / true[ok] * 100.0
    if not len(ape):
        return {"n": 0, "median_ape": None, "mean_ape": None, "p90_ape": None}  # None: valid JSON, unlike NaN
    return {"n": int(len(ape)), "median_ape": float(np.median(ape)), "mean_ape": float(ape.mean()),
            "p90_ape": float(np.percentile(ape, 90))}


def kernel_error_report(data_dir: Path, kernels) -> dict[str, dict]:
    """APE (percent) of ``kernels`` against every family table in ``data_dir``.

    ``data_dir``: one system's directory, or the root holding ``<system>/``
    (the system is then the one of ``kernels.hw``).
    """
    data_dir = Path(data_dir)
    hw = getattr(kernels, "hw", None)
    frames = read_frames(system_dir(data_dir, hw.name) if hw is not None else data_dir)
    return {fam: ape_stats(predict_rows(fam, df, kernels), df["latency_ms"].to_numpy(float))
            for fam, df in frames.items()}


def holdout_mask(df: pd.DataFrame, folds: int = 5) -> np.ndarray:
    """True for the rows held out: crc32 of the row's key values (not its latency) is 0 modulo ``folds``."""
    cols = [c for c in df.columns if c not in NOT_KEYS]
    text = df[cols].astype(str).agg("|".join, axis=1)
    h = np.fromiter((zlib.crc32(s.encode()) for s in text), dtype=np.uint64, count=len(text))
    return (h % folds) == 0


class _TableModel:
    """Just enough of a kernel model for :func:`predict_rows` to use a bare calibration."""

    def __init__(self, cal):
        self.calibration = cal


def holdout_report(data_dir: Path, roof: RoofParams, hardware: str = "", folds: int = 5,
                   roundtrip: bool = True) -> dict[str, dict]:
    """Fit on the rows outside the holdout fifth, report APE on the held-out rows, per family.

    With ``roundtrip`` the fitted tables are saved and read back first, so the
    figures include the rounding of the stored tables.
    """
    frames = read_frames(Path(data_dir))
    masks = {fam: holdout_mask(df, folds) for fam, df in frames.items()}
    cal = fit_frames({fam: df[~masks[fam]] for fam, df in frames.items()}, roof, hardware)
    if roundtrip:
        with tempfile.TemporaryDirectory() as tmp:
            save_calibration(cal, Path(tmp))
            cal = load_calibration(Path(tmp))
    model = _TableModel(cal)
    report = {}
    for fam, df in frames.items():
        test = df[masks[fam]]
        report[fam] = ape_stats(predict_rows(fam, test, model), test["latency_ms"].to_numpy(float))
    return report


# ---------------------------------------------------------------- command line

def kernel_predictions(data_dir: Path, kernels) -> pd.DataFrame:
    """Every row of every family table in ``data_dir`` with ``predicted_ms`` and ``ape_pct`` added."""
    data_dir = Path(data_dir)
    hw = getattr(kernels, "hw", None)
    frames = read_frames(system_dir(data_dir, hw.name) if hw is not None else data_dir)
    out = []
    for fam, df in frames.items():
        pred = predict_rows(fam, df, kernels)
        true = df["latency_ms"].to_numpy(float)
        out.append(df.assign(family=fam, predicted_ms=pred, ape_pct=100.0 * np.abs(pred - true) / true))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


HOLDOUT_FILE = "holdout.json"
#: end-to-end errors per system, written from `helixsim validate --e2e ... --json` (hardware/calibration/)
E2E_FILE = "e2e-validation.json"
E2E_SYSTEMS = {"gb200": "gb200-nvl72", "gb300": "gb300-nvl72", "b200_sxm": "b200-hgx", "h200_sxm": "h200-hgx",
               "h100_sxm": "h100-hgx"}


def summary_for(hardware_name: str) -> dict | None:
    """The shipped held-out kernel errors of a built-in system (median APE per family, percent), or None."""
    from .fit import builtin_calibration_path

    path = builtin_calibration_path(hardware_name)
    if path is None or not (path / HOLDOUT_FILE).is_file():
        return None
    data = json.loads((path / HOLDOUT_FILE).read_text())
    summary = {f"{fam} median error %": round(st["median_ape"], 1) for fam, st in data["families"].items()}
    e2e = path.parent / E2E_FILE
    if e2e.is_file():
        system = {v: k for k, v in E2E_SYSTEMS.items()}.get(hardware_name)
        stats = json.loads(e2e.read_text()).get("by_system", {}).get(system)
        if stats and stats.get("n"):
            summary["end-to-end TPOT median error %"] = f"{stats['median_ape']:.1f} (n = {stats['n']} measured serving runs)"
    return summary


def _hardware(name: str):
    from ..specs.registry import load_hardware

    return load_hardware(name)


def _model(hw, mode: str, backend: str = ""):
    from ..cost.kernels import RooflineKernels
    from ..specs.registry import load_efficiency
    from .fit import builtin_calibration_path
    from .kernels import CalibratedKernels

    roof = RooflineKernels(hw, load_efficiency(hw.name))
    if mode == "roofline":
        return roof
    path = builtin_calibration_path(hw.name)
    if path is None or not (path / backend / "calibration.json").is_file():
        raise SystemExit(f"no shipped {backend or 'trtllm'} calibration for {hw.name}")
    return CalibratedKernels(roof, load_calibration(path / backend))


def main(argv: list[str] | None = None) -> int:
    """``python -m helixsim.calibration.validate``: bad data folders are one line and status 2."""
    from ..errors import SpecError

    try:
        return _main(argv)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helixsim.calibration.validate", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="root of the calibration data (<system>/<family>.csv.gz)")
    ap.add_argument("--systems", nargs="*", default=list(SYSTEMS), help="data system names (default: all)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--mode", choices=("holdout", "shipped", "roofline"), default="holdout",
                    help="holdout: fit on 4/5, score the other 1/5 (default); shipped: score the shipped tables on "
                         "all rows (in-sample); roofline: score the uncalibrated roofline model")
    ap.add_argument("--write-summary", action="store_true",
                    help="with --mode holdout: store the figures as hardware/calibration/<name>/holdout.json "
                         "(read by helixsim plan to state the calibration error)")
    ap.add_argument("--backend", choices=("trtllm", "sglang", "vllm"), default="trtllm",
                    help="serving framework whose kernels to score (<system>/<backend>/ of the data; "
                         "trtllm: the top-level tables)")
    args = ap.parse_args(argv)
    rows = []
    sub = "" if args.backend == "trtllm" else args.backend
    for system in args.systems:
        hw = _hardware(SYSTEMS[system])
        if args.mode == "holdout":
            rep = holdout_report(args.data / system / sub, RoofParams.from_hardware(hw), hw.name, args.folds)
            if args.write_summary:
                from .fit import builtin_calibration_path

                target = builtin_calibration_path(hw.name) / sub / HOLDOUT_FILE
                doc = {"what": f"held-out kernel error: fit on {args.folds - 1}/{args.folds} of the measured rows, "
                               f"APE (percent) on the other 1/{args.folds}",
                       "command": "python -m helixsim.calibration.validate --data <calibration data> --write-summary"
                                  + (f" --backend {args.backend}" if sub else ""),
                       "families": rep}
                target.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        else:
            rep = kernel_error_report(args.data / system / sub, _model(hw, args.mode, sub))
        for fam, st in rep.items():
            rows.append({"system": system, "family": fam, **st})
    table = pd.DataFrame(rows)
    title = {"holdout": f"Held-out median APE (%) per family and system ({args.backend} kernels): fit on "
                        f"{args.folds - 1}/{args.folds} of the rows, evaluated on the other 1/{args.folds} "
                        f"(rows held out: n)",
             "shipped": "Median APE (%) of the shipped tables on all rows (in-sample)",
             "roofline": "Median APE (%) of the uncalibrated roofline (hardware/efficiency/default.yaml)"}[args.mode]
    print(title + "\n")
    print(_markdown(table, args.systems, "median_ape"))
    print("\nMean / 90th-percentile APE (%) of the same rows:\n")
    print(_markdown(table, args.systems, "mean_ape", "p90_ape"))
    return 0


def _markdown(table: pd.DataFrame, systems: list[str], col: str, col2: str | None = None) -> str:
    families = list(dict.fromkeys(table["family"]))
    lines = ["| family | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
    for fam in families:
        cells = []
        for system in systems:
            hit = table[(table["family"] == fam) & (table["system"] == system)]
            if not len(hit):
                cells.append("–")
                continue
            r = hit.iloc[0]
            if not r["n"]:
                cells.append("–")
                continue
            cells.append(f"{r[col]:.2f} / {r[col2]:.1f}" if col2 else f"{r[col]:.2f} (n={int(r['n'])})")
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
