"""Checks on measured kernel tables before they are fitted or scored.

A kernel table is one row per measured shape: the shape's sizes (the family's
``num`` columns and sweep ``axis``) and its latency. A size or latency that is
not a finite number above zero cannot be a measurement (a GEMM with n = 0, a
latency of -1 ms) and a size above :data:`MAX_KERNEL_SIZE` is a typo (m = 1e300
would make every later prediction overflow), so each is refused with the file,
the line and the column rather than fitted. Columns the family needs are named
when missing.
"""

from __future__ import annotations

from pathlib import Path

from .._lazy import pandas as pd  # imported on first use (helixsim._lazy)

from ..errors import SpecError
from ..safe_io import check_regular_file, loads_json, numeric_column, read_csv_table, read_input_text, short
from .families import FamilySpec

#: Largest size or latency accepted in a kernel table. The shipped tables reach 5.4e8 (a 512 MiB
#: collective message, /work/shared/calibration); 1e12 leaves three decades above that.
MAX_KERNEL_SIZE = 1e12


def _sized_columns(spec: FamilySpec) -> tuple[str, ...]:
    return tuple(dict.fromkeys(spec.num + (spec.axis,)))


def check_family_frame(spec: FamilySpec, df: pd.DataFrame, source: str) -> pd.DataFrame:
    """``df`` unchanged if every column ``spec`` needs is there and every size and latency is a
    finite number in (0, :data:`MAX_KERNEL_SIZE`]; else a :class:`SpecError` naming the cell."""
    if "latency_ms" not in df.columns:
        raise SpecError(source, "column 'latency_ms'", "missing column")
    for col in ("latency_ms",) + tuple(c for c in _sized_columns(spec) if c in df.columns):
        numeric_column(df, col, source, minimum=0.0, min_open=True, maximum=MAX_KERNEL_SIZE)
    try:
        prepared = spec.prepare(df, drop_invalid=False)
    except KeyError as err:
        raise SpecError(source, f"column '{err.args[0]}'", f"missing column (the {spec.name} family needs it)") from None
    except (TypeError, ValueError) as err:
        raise SpecError(source, "", f"cannot read the {spec.name} columns ({err.__class__.__name__})") from None
    for col in spec.key_columns + (spec.axis,):
        if col not in prepared.columns:
            raise SpecError(source, f"column '{col}'", f"missing column (the {spec.name} family needs it)")
    for col in _sized_columns(spec):
        if col not in df.columns:  # derived (e.g. kv_len = step + isl): check what was derived
            numeric_column(prepared, col, source, minimum=0.0, min_open=True, maximum=MAX_KERNEL_SIZE)
    return df


# ---------------------------------------------------------------- calibration folders
#: Largest calibration.json read (the shipped ones are under 100 kB).
MAX_MANIFEST_BYTES = 8 << 20
ROOF_KEYS = ("hbm_gbps", "bf16_tflops", "fp8_tflops", "fp4_tflops", "nvlink_gbps")


def _positive(value, source: str, field: str, optional: bool = False) -> None:
    import math

    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SpecError(source, field, f"must be a finite number > 0, got {short(repr(value))}")


def read_manifest(folder: Path) -> dict:
    """``folder/calibration.json``, parsed and checked: the format tag, the version, positive
    roofline peaks (a zero or negative peak would silently rescale every fitted efficiency), and
    every table file a plain relative path to a regular file inside the folder."""
    import json

    src = short(folder / "calibration.json", 200)
    text = read_input_text(folder / "calibration.json", src, MAX_MANIFEST_BYTES)
    try:
        manifest = loads_json(text, src)
    except SpecError:
        raise
    except (ValueError, RecursionError) as err:
        raise SpecError(src, "", f"malformed JSON ({short(err, 80)})") from None
    if not isinstance(manifest, dict):
        raise SpecError(src, "(top level)", f"expected a JSON object, got {type(manifest).__name__}")
    roof = manifest.get("roofline")
    if not isinstance(roof, dict):
        raise SpecError(src, "roofline", "expected an object of roofline peaks")
    for key in ROOF_KEYS:
        if key not in roof and key != "fp4_tflops":
            raise SpecError(src, f"roofline.{key}", "missing key")
        _positive(roof.get(key), src, f"roofline.{key}", optional=key == "fp4_tflops")
    unknown = set(roof) - set(ROOF_KEYS)
    if unknown:
        raise SpecError(src, f"roofline.{short(sorted(unknown)[0])}", "unknown key")
    families = manifest.get("families")
    if not isinstance(families, dict):
        raise SpecError(src, "families", "expected an object of family tables")
    for name, meta in families.items():
        files = meta.get("files") if isinstance(meta, dict) else None
        if not isinstance(files, dict):
            raise SpecError(src, f"families.{short(name)}.files", "expected an object of table files")
        for file, cat in files.items():
            where = f"families.{short(name)}.files"
            parts = Path(str(file)).parts
            if Path(str(file)).is_absolute() or ".." in parts or not parts:
                raise SpecError(src, where, f"'{short(file)}' must be a relative path inside the calibration folder")
            if not isinstance(cat, list):
                raise SpecError(src, f"{where}.{short(file)}", "expected a list of category values")
            check_regular_file(folder / file, short(folder / file, 200))
        knots = meta.get("knots")
        if not isinstance(knots, list) or not knots:
            raise SpecError(src, f"families.{short(name)}.knots", "expected a list of numbers")
        for i, k in enumerate(knots):
            _positive(k, src, f"families.{short(name)}.knots[{i}]")
    return manifest


def read_knot_table(folder: Path, file: str) -> pd.DataFrame:
    """One stored table of fitted knot latencies (microseconds): read as text; the shape columns
    (sizes) checked to be finite numbers > 0, the knot columns ``<axis>=<value>`` to be blank
    (outside the measured sweep) or finite numbers > 0."""
    src = short(folder / file, 200)
    frame = read_csv_table(folder / file, source=src)
    for col in frame.columns:
        numeric_column(frame, col, src, minimum=0.0, min_open=True, maximum=MAX_KERNEL_SIZE, blank_ok="=" in col)
    return frame
