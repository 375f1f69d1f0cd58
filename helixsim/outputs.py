"""Output sets that appear whole or not at all.

A command that writes several files (a sweep's tables and plots, a plan report, a
calibration) writes them into a hidden staging folder beside ``--out``
(``.<name>.partial-XXXX``) and moves them into place only when every file is written. If
the run fails, is interrupted (SIGINT, SIGTERM) or the disk fills up, the staging folder
is removed and ``--out`` is left as it was: a rerun starts from the same state and, the
outputs being deterministic, writes the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import SpecError
from .safe_io import short

#: errno values that mean "the output cannot be written here", said in words.
WRITE_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                errno.EFBIG: "file too large for the file system"}


def check_out_dir(out: Path) -> Path:
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpecError(short(out, 200), "--out", f"cannot create directory ({err.strerror})") from None
    if out.exists() and not out.is_dir():
        raise SpecError(short(out, 200), "--out", "exists and is not a directory")
    if not os.access(parent, os.W_OK) or (out.is_dir() and not os.access(out, os.W_OK)):
        raise SpecError(short(out, 200), "--out", "directory is not writable")
    return parent


def commit(staging: Path, out: Path) -> None:
    """Move everything in ``staging`` into ``out``: the folder itself when ``out`` does not exist
    (one rename), else entry by entry (a sub-folder replaces the one of the same name)."""
    if not out.exists():
        os.rename(staging, out)
        return
    for entry in sorted(staging.iterdir()):
        dest = out / entry.name
        if entry.is_dir() and dest.is_dir():
            shutil.rmtree(dest)
        os.replace(entry, dest)
    staging.rmdir()


@contextlib.contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """Yield a staging folder to write ``out``'s files into; commit on success, remove on any failure.

    Write errors (a full disk, a read-only file system) become one :class:`SpecError` naming
    ``out`` instead of a random temporary file.
    """
    out = Path(out)
    if not str(out).strip():
        raise SpecError("--out", "", "must not be empty")
    parent = check_out_dir(out)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name or 'out'}.partial-", dir=parent))
    except OSError as err:
        raise SpecError(short(out, 200), "--out", _words(err)) from None
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
        commit(staging, out)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if err.errno in WRITE_ERRORS:
            raise SpecError(short(out, 200), "--out", f"{_words(err)} while writing; nothing was written") from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: no half-written file. The file gets
    the mode a plain ``open()`` would give (mkstemp's 0600 would hide reports from other users)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mapped(path: Path, staging: Path, out: Path) -> Path:
    """Where a file written into ``staging`` ends up under ``out``."""
    try:
        return Path(out) / Path(path).relative_to(staging)
    except ValueError:
        return Path(path)


def _words(err: OSError) -> str:
    return WRITE_ERRORS.get(err.errno, err.strerror or err.__class__.__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
