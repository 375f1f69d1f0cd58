"""Reading files a user hands us, defensively: every problem is one :class:`SpecError` line.

Every input file (YAML and JSON specs, CSV tables, calibration folders) goes
through :func:`read_input_bytes`, which refuses what is not a regular file
(a directory, a FIFO that would block forever, ``/dev/zero`` that never
ends) and anything over a size limit, before a single byte is read. Text
is then decoded as UTF-8 with a clear word for UTF-16 and binary files;
CSV tables are parsed with :func:`read_csv_table` and their numeric cells
checked with :func:`numeric_column`, which names the file, the line and
the column of the first bad cell.
"""

from __future__ import annotations

import io
import math
import os
import stat
import zlib
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from ._lazy import pandas as pd  # imported on first use (helixsim._lazy)

from .errors import SpecError

#: Largest input file read (YAML, JSON, CSV), and largest decompressed .gz table. The biggest
#: shipped file (a calibration data table) is a few MB; 64 MB leaves room without risking memory.
MAX_INPUT_BYTES = 64 << 20
#: Longest piece of user text (a name, a cell) echoed back in an error line.
MAX_SHOWN_CHARS = 60


def short(value, limit: int = MAX_SHOWN_CHARS) -> str:
    """``str(value)`` cut to ``limit`` characters (with the original length), one line."""
    text = str(value).replace("\n", "\\n").replace("\r", "\\r")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def check_regular_file(path: Path, source: Optional[str] = None, max_bytes: int = MAX_INPUT_BYTES) -> os.stat_result:
    """Stat ``path`` (never opening it) and refuse a missing, special or oversized file."""
    src = source or short(path, 200)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SpecError(src, "", "file not found") from None
    except OSError as err:
        raise SpecError(src, "", f"cannot read file ({err.strerror or err.__class__.__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError(src, "", "cannot read file: it is a directory")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a device" if
                stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a special file")
        raise SpecError(src, "", f"cannot read file: it is {kind}, not a regular file")
    if st.st_size > max_bytes:
        raise SpecError(src, "", f"file of {st.st_size:,} bytes is larger than the {max_bytes:,}-byte limit")
    return st


def read_input_bytes(path: str | Path, source: Optional[str] = None, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (a file swapped for a FIFO after the
    check cannot block: it is opened non-blocking and read no further than the limit)."""
    path = Path(path)
    src = source or short(path, 200)
    check_regular_file(path, src, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise SpecError(src, "", "is not a regular file; refused")
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise SpecError(src, "", f"cannot read file ({err.strerror or err.__class__.__name__})") from None
    if len(data) > max_bytes:
        raise SpecError(src, "", f"file is larger than the {max_bytes:,}-byte limit")
    return data


def decode_text(data: bytes, source: str, binary_check: bool = False) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped); UTF-16 files, and with ``binary_check`` files
    holding NUL bytes (a parser of YAML or JSON calls those malformed itself), are named as such."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpecError(source, "", "file is UTF-16 text; save it as UTF-8")
    if binary_check and b"\x00" in data[:65536]:
        raise SpecError(source, "", "binary file (contains NUL bytes), expected text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SpecError(source, "", f"cannot read file: not UTF-8 text (bad byte at offset {err.start})") from None


def read_input_text(path: str | Path, source: Optional[str] = None, max_bytes: int = MAX_INPUT_BYTES) -> str:
    src = source or short(path, 200)
    return decode_text(read_input_bytes(path, src, max_bytes), src)


def gunzip_limited(data: bytes, source: str, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """Decompress a whole .gz; a truncated or corrupt stream and a decompression bomb are errors."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, max_bytes + 1)
        if len(out) > max_bytes or d.unconsumed_tail:
            raise SpecError(source, "", f"decompresses to more than the {max_bytes:,}-byte limit")
        if not d.eof:
            raise SpecError(source, "", "truncated gzip file (the compressed stream ends early)")
    except zlib.error as err:
        raise SpecError(source, "", f"corrupt gzip file ({err})") from None
    return out


def read_csv_table(path: str | Path, required: Iterable[str] = (), source: Optional[str] = None,
                   max_bytes: int = MAX_INPUT_BYTES, **read_csv_kwargs) -> pd.DataFrame:
    """A CSV (or .csv.gz) file as a DataFrame of strings, checked for shape: not empty, at least one
    data row, every row as wide as the header, every ``required`` column present, no duplicate
    column names."""
    path = Path(path)
    src = source or short(path, 200)
    data = read_input_bytes(path, src, max_bytes)
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        data = gunzip_limited(data, src, max_bytes)
    text = decode_text(data, src, binary_check=True)
    if not text.strip():
        raise SpecError(src, "", "empty file, expected a CSV header and rows")
    header = next(iter(text.splitlines()), "")
    names = [h.strip() for h in header.split(",")]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SpecError(src, f"column '{short(dup)}'", "appears twice in the header")
    kwargs = dict(dtype=str, keep_default_na=False, na_values=[""])
    kwargs.update(read_csv_kwargs)
    try:
        table = pd.read_csv(io.StringIO(text), **kwargs)
    except pd.errors.ParserError as err:
        raise SpecError(src, "", f"malformed CSV ({short(err, 120)})") from None
    except (ValueError, pd.errors.EmptyDataError) as err:
        raise SpecError(src, "", f"cannot read CSV ({short(err, 120)})") from None
    _check_ragged(text, len(table.columns), src)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise SpecError(src, missing[0], "missing column" + (
            f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""))
    if not len(table):
        raise SpecError(src, "", "no data rows (only a header)")
    return table


def _check_ragged(text: str, width: int, source: str) -> None:
    """pandas pads short rows with blanks silently; a row narrower than the header is an error."""
    import csv

    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if row and len(row) != width:
            raise SpecError(source, f"line {line_no}", f"has {len(row)} fields, the header has {width}")


def numeric_column(table: pd.DataFrame, column: str, source: str, *, integer: bool = False,
                   minimum: float | None = None, min_open: bool = False, maximum: float | None = None,
                   blank_ok: bool = False) -> np.ndarray:
    """The cells of ``column`` as float64, each checked: a number (``1,000``, ``inf``, ``nan`` and
    text are not), whole where ``integer``, within [``minimum``, ``maximum``] (``min_open``: strictly
    above ``minimum``). Blank cells are NaN where ``blank_ok``, else an error. The first bad cell
    is named by its line in the file (the header is line 1) and the column."""
    raw = table[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(float)  # already parsed by pandas: only blanks (NaN) and range to check
        blank = np.isnan(values)
        parsed = np.where(blank, 0.0, values)
        text = raw.map(lambda c: "" if c != c else repr(c))
    else:
        text = raw.astype(object).map(
            lambda c: "" if c is None or (isinstance(c, float) and math.isnan(c)) else str(c).strip())
        blank = (text == "").to_numpy()
        values = pd.to_numeric(text.where(~blank, "nan"), errors="coerce").to_numpy(float)
        parsed = pd.to_numeric(text.where(~blank, "0"), errors="coerce").to_numpy(float)
    bad = np.isnan(parsed) | np.isinf(parsed)
    bad |= (~blank & np.isnan(values))
    if not blank_ok:
        bad |= blank
    finite = np.where(np.isfinite(values), values, 0.0)
    if integer:
        bad |= ~blank & (finite != np.round(finite))
    if minimum is not None:
        bad |= ~blank & ((finite <= minimum) if min_open else (finite < minimum))
    if maximum is not None:
        bad |= ~blank & (finite > maximum)
    if bad.any():
        i = int(np.argmax(bad))
        _raise_cell(text.iloc[i], source, f"line {i + 2}, column '{column}'", integer, minimum, min_open, maximum)
    return values


def _raise_cell(cell: str, source: str, where: str, integer: bool, minimum, min_open: bool, maximum) -> None:
    """The error for one bad cell (the checks of :func:`numeric_column`, in words)."""
    if not cell:
        raise SpecError(source, where, "empty cell, expected a number")
    try:
        v = float(cell)
    except ValueError:
        hint = " (no thousands separators)" if "," in cell else ""
        raise SpecError(source, where, f"expected a number, got '{short(cell)}'{hint}") from None
    if not math.isfinite(v):
        raise SpecError(source, where, f"must be a finite number, got '{short(cell)}'")
    if integer and not v.is_integer():
        raise SpecError(source, where, f"expected a whole number, got '{short(cell)}'")
    if maximum is not None and v > maximum:
        raise SpecError(source, where, f"must be <= {maximum:g}, got '{short(cell)}'")
    raise SpecError(source, where, f"must be {'>' if min_open else '>='} {minimum:g}, got '{short(cell)}'")


class _DuplicateKey(Exception):  # not a ValueError: it passes through json.loads and its callers' handlers
    pass


def _no_duplicate_keys(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def loads_json(text: str, source: str):
    """``json.loads`` that refuses a key given twice in one object (JSON would keep only the last,
    silently), as the strict YAML loader does; other JSON errors are left to the caller."""
    import json

    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as err:
        raise SpecError(source, short(err.args[0], 200), "duplicate key (JSON keeps only the last; give it once)") from None
