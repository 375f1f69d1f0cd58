"""Sweeps at any size: chunks priced in order (in this process, in local worker processes, or on a
Dask distributed cluster), each written as it comes (Parquet row groups, or CSV), and the Pareto
frontiers reduced chunk by chunk, so memory does not grow with the sweep.

The cut into chunks depends only on the study (:func:`helixsim.search.chunks`), and chunks are
written in that order whoever priced them, so the tables are byte-identical whatever the number of
workers. Frontiers are kept per (hardware, context) and strategy group.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .api import frame_from_columns, kernels_for
from .pareto import X_COL, Y_COL
from .precision import Precision
from .search import BASELINES, STRATEGY_FRONTIERS, SearchSpace, chunks, evaluate_chunk
from .specs.hardware import HardwareSpec
from .specs.model import ModelSpec

FORMATS = ("parquet", "csv")
#: Frontier groups: name -> strategies (``helix-nohopb``: Helix with HOP-B off).
GROUPS: dict[str, tuple[str, ...]] = {"Helix": ("helix",), "Best baseline": BASELINES,
                                      **{name: (s,) for s, name in STRATEGY_FRONTIERS.items()},
                                      "Helix HOP-B off": ("helix-nohopb",)}


# ---------------------------------------------------------------- pricing, in order
_KERNELS: dict = {}


def _price(model: ModelSpec, hw: HardwareSpec, precision: Precision, ideal: bool, calibration, backend: str,
           mtps: tuple[int, ...], chunk, hardware: str, tbos: tuple[bool, ...] = (False,)) -> pd.DataFrame:
    """One chunk's table (run in a worker: the kernel object, with its memo of priced shapes, is kept
    per process and reused by every chunk that process prices)."""
    key = (hw, ideal, None if calibration is None else str(calibration), backend)
    try:
        k = _KERNELS.get(key)
    except TypeError:
        k, key = None, None
    if k is None:
        k = kernels_for(hw, ideal, calibration, backend)
        if key is not None:
            _KERNELS.clear()
            _KERNELS[key] = k
    cols = evaluate_chunk(model, hw, chunk, precision, k, frame=False, mtps=mtps, tbos=tbos)
    table = frame_from_columns(cols)
    table.insert(0, "hardware", pd.Categorical([hardware] * len(table)) if len(table) else pd.Categorical([]))
    return table


def priced_chunks(model: ModelSpec, hw: HardwareSpec, space: SearchSpace, precision: Precision, hardware: str,
                  ideal: bool = False, calibration=None, workers: int = 1, scheduler: str | None = None,
                  rows: int = 1 << 18, backend: str = "trtllm",
                  mtps: tuple[int, ...] = (0,),
                  tbos: tuple[bool, ...] = (False,)) -> Iterator[tuple[int, int, pd.DataFrame]]:
    """(index, number of chunks, table) for every chunk of the study, in order.

    workers > 1: local processes; scheduler: the address of a Dask distributed scheduler
    (``tcp://host:8786``) or a ``distributed.Client``. At most ``2 x workers`` chunks are in flight.
    """
    k = kernels_for(hw, ideal, calibration, backend)
    plan = list(chunks(model, hw, space, precision, k, rows=rows))
    args = (model, hw, precision, ideal, calibration, backend, mtps)
    if scheduler is None and workers <= 1:
        for i, ch in enumerate(plan):
            yield i, len(plan), _price(*args, ch, hardware, tbos)
        return
    if scheduler is not None:
        submit, close = _dask_submitter(scheduler)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        submit, close = pool.submit, pool.shutdown
    try:
        ahead = max(2 * max(workers, 1), 2)
        pending = [submit(_price, *args, ch, hardware, tbos) for ch in plan[:ahead]]
        for i in range(len(plan)):
            table = pending.pop(0).result()
            if i + ahead < len(plan):
                pending.append(submit(_price, *args, plan[i + ahead], hardware, tbos))
            yield i, len(plan), table
    finally:
        close()


def _dask_submitter(scheduler):
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a dependency of helixsim
        from .errors import SpecError
        raise SpecError("--scheduler", "", "needs dask[distributed] (pip install 'dask[distributed]')") from None
    if isinstance(scheduler, Client):
        client, own = scheduler, False
    else:
        try:
            client, own = Client(scheduler, timeout="10s"), True
        except (OSError, TimeoutError) as err:
            from .errors import SpecError
            raise SpecError("--scheduler", "", f"cannot reach a Dask scheduler at {scheduler} ({err})") from None

    def submit(fn, *a):
        return client.submit(fn, *a, pure=False)

    def close():
        if own:
            client.close()

    return submit, close


# ---------------------------------------------------------------- frontiers, chunk by chunk
def grouped_pareto_mask(group: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-dominated rows within each group (maximising x and y; the tie rules of
    :func:`helixsim.pareto.pareto_mask`: copies of a frontier point all stay, NaN never does),
    for all groups at once: rows sorted by (group, x desc, y desc), y replaced by its rank and
    offset by the group so one running maximum serves every group."""
    group = np.asarray(group, np.int64)
    x, y = np.asarray(x, float), np.asarray(y, float)
    mask = np.zeros(len(x), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(x) | np.isnan(y)))
    if len(valid) == 0:
        return mask
    order = valid[np.lexsort((-y[valid], -x[valid], group[valid]))]
    g, xs, ys = group[order], x[order], y[order]
    _, rank = np.unique(ys, return_inverse=True)
    rank = rank.ravel().astype(np.int64)
    key = (g - g.min()) * (int(rank.max()) + 2) + rank
    idx = np.arange(len(order))
    new_group = np.ones(len(order), bool)
    new_group[1:] = g[1:] != g[:-1]
    new_run = new_group.copy()
    new_run[1:] |= xs[1:] != xs[:-1]
    run_start = np.maximum.accumulate(np.where(new_run, idx, 0))
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    best_before = np.maximum.accumulate(key)[np.maximum(run_start - 1, 0)]
    has_larger_x = run_start > group_start
    mask[order] = (ys == ys[run_start]) & (~has_larger_x | (key > best_before))
    return mask


def _strategy_codes(table: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """(codes, names) of the strategy column, Helix with HOP-B off as a strategy of its own."""
    col = table["strategy"]
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes, names = col.cat.codes.to_numpy(np.int64), [str(c) for c in col.cat.categories]
    else:
        codes, uniq = pd.factorize(col)
        names = [str(c) for c in uniq]
    names = names + ["helix-nohopb"]
    if "helix" in names[:-1]:
        off = (codes == names.index("helix")) & ~table["hopb"].to_numpy(bool)
        codes = np.where(off, len(names) - 1, codes)
    return codes, names


def frontier_rows(table: pd.DataFrame, groups: dict[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Frontier rows of ``table`` per (hardware, context, group): the table's columns plus ``frontier``
    (the group's name); Helix rows with HOP-B off are relabelled ``helix-nohopb``."""
    groups = GROUPS if groups is None else groups
    ok = table["feasible"].to_numpy(bool)
    codes, names = _strategy_codes(table)
    hw_codes = (pd.factorize(table["hardware"])[0] if "hardware" in table else np.zeros(len(table), np.int64))
    ctx_codes = pd.factorize(table["context"])[0]
    facet = hw_codes.astype(np.int64) * (int(ctx_codes.max(initial=0)) + 1) + ctx_codes
    x, y = table[X_COL].to_numpy(float), table[Y_COL].to_numpy(float)
    keep, name_of = [], []
    for name, members in groups.items():
        member = np.isin(codes, [names.index(m) for m in members if m in names])
        rows = np.flatnonzero(ok & member)
        if len(rows) == 0:
            continue
        kept = rows[grouped_pareto_mask(facet[rows], x[rows], y[rows])]
        keep.append(kept)
        name_of += [name] * len(kept)
    for col, off, tag in (("mtp", 0, "no MTP"), ("two_batch_overlap", False, "no TBO")):
        if col in table and table[col].nunique() > 1:   # the same frontiers without the feature
            plain = table[col].to_numpy() == off
            for name in ("Helix", "Best baseline"):
                member = np.isin(codes, [names.index(m) for m in groups.get(name, ()) if m in names])
                rows = np.flatnonzero(ok & member & plain)
                kept = rows[grouped_pareto_mask(facet[rows], x[rows], y[rows])] if len(rows) else rows
                keep.append(kept)
                name_of += [f"{name} {tag}"] * len(kept)
    keep = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    out = table.iloc[keep].reset_index(drop=True)
    out["strategy"] = np.asarray(names, dtype=object)[codes[keep]]
    out["frontier"] = np.asarray(name_of, dtype=object)
    for c in ("hardware", "label"):
        if c in out:
            out[c] = out[c].astype(object).astype(str) if len(out) else out[c].astype(object)
    return out


class FrontierReducer:
    """Running frontiers per (hardware, context, group): each chunk's frontier rows merged in.

    The rows are kept as the pieces they arrived in, each with its facet key and (x, y) as plain
    arrays: merging a chunk runs the Pareto test on those arrays and copies only the pieces that
    lose rows, so a sweep over many contexts (1e8 configurations: 13,000 contexts, 1.5M frontier
    rows) holds its frontier about once, not three times."""

    #: bits of each facet column's id in the packed facet key (4,096 systems, 2^32 contexts, 256 groups)
    _BITS = (("hardware", 12), ("context", 32), ("frontier", 8))

    def __init__(self, groups: dict[str, Sequence[str]] | None = None) -> None:
        self.groups = GROUPS if groups is None else groups
        self._parts: list[pd.DataFrame] = []
        self._keys: list[np.ndarray] = []
        self._ids: dict[str, dict] = {c: {} for c, _ in self._BITS}
        self._empty: pd.DataFrame | None = None
        self._table: pd.DataFrame | None = None

    def _facet_key(self, frame: pd.DataFrame) -> np.ndarray:
        """One int64 per row naming its (hardware, context, group), stable across pieces."""
        key = np.zeros(len(frame), np.int64)
        for c, bits in self._BITS:
            if c in frame:
                local, uniq = pd.factorize(frame[c])
                ids = self._ids[c]
                codes = np.array([ids.setdefault(v, len(ids)) for v in uniq.tolist()], np.int64)[local]
            else:
                codes = np.zeros(len(frame), np.int64)
            key = (key << bits) | codes
        return key

    def add(self, table: pd.DataFrame) -> None:
        new = frontier_rows(table, self.groups)
        if self._empty is None:
            self._empty = new.iloc[0:0]
        if not len(new):
            return
        self._table = None
        parts, keys = self._parts + [new], self._keys + [self._facet_key(new)]
        _, group = np.unique(np.concatenate(keys), return_inverse=True)
        mask = grouped_pareto_mask(group.ravel(), np.concatenate([p[X_COL].to_numpy(float) for p in parts]),
                                   np.concatenate([p[Y_COL].to_numpy(float) for p in parts]))
        self._parts, self._keys, at = [], [], 0
        for part, key in zip(parts, keys):
            m = mask[at:at + len(part)]
            at += len(part)
            if m.all():
                self._parts.append(part)
                self._keys.append(key)
            elif m.any():
                self._parts.append(part[m].reset_index(drop=True))
                self._keys.append(key[m])

    def table(self) -> pd.DataFrame:
        """The frontier table, sorted by hardware (sweep order), context, group (GROUPS order) and x
        (then y and label): the order is found on the key columns alone and the pieces are joined and
        put in that order once (the frontier of a 1e8-configuration sweep is about 0.5 GB)."""
        if self._table is not None:
            return self._table
        if not self._parts:
            return pd.DataFrame() if self._empty is None else self._empty
        parts, self._parts, self._keys = self._parts, [], []

        def column(c: str) -> np.ndarray:
            return np.concatenate([p[c].to_numpy() for p in parts])

        order = {name: i for i, name in enumerate(self.groups)}
        keys = [pd.factorize(column("label"), sort=True)[0], column(Y_COL), column(X_COL),
                pd.Series(column("frontier")).map(order).to_numpy(float), column("context")]
        if "hardware" in parts[0]:
            keys.append(pd.factorize(column("hardware"))[0])
        sort = np.lexsort(keys)   # stable, the last key first: as a mergesort by (hardware, context, ...)
        del keys
        # column by column, each dropped from the pieces once it is in the sorted table: the frontier
        # is held about once, not twice
        out = {}
        for c in list(parts[0].columns):
            out[c] = pd.concat([p[c] for p in parts], ignore_index=True).take(sort).reset_index(drop=True)
            for p in parts:
                del p[c]
        del parts
        rows = pd.DataFrame(out, copy=False)
        del out
        # a later add() merges into a shallow copy: the columns table() drops then are not the caller's
        self._parts, self._keys, self._table = [rows.copy(deep=False)], [self._facet_key(rows)], rows
        return rows

    def facets(self) -> "Facets":
        """{(hardware, context): {group name: frontier}} for plotting, each facet built when asked for."""
        return Facets(self.table())


class Facets(Mapping):
    """The frontier table by (hardware, context): each facet's {group name: frontier} is built when it
    is looked up, so thousands of contexts do not hold thousands of small frames at once."""

    def __init__(self, table: pd.DataFrame) -> None:
        self._table = table
        self._rows: dict[tuple[str, int], np.ndarray] = {}
        if len(table):
            for (h, c), idx in table.groupby(["hardware", "context"], sort=False).indices.items():
                self._rows[(str(h), int(c))] = idx

    def __getitem__(self, key: tuple[str, int]) -> dict[str, pd.DataFrame]:
        sub = self._table.iloc[self._rows[key]]
        return {name: f.drop(columns=["frontier"]) for name, f in sub.groupby("frontier", sort=False)}

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


# ---------------------------------------------------------------- writing, chunk by chunk
class TableWriter:
    """A table written piece by piece to a temporary file beside ``path`` and renamed into place on
    :meth:`close` (no half-written output). Parquet: one row group per piece, ``provenance`` in the
    file's key-value metadata; CSV: a plain header line and rows (no comment line)."""

    def __init__(self, path: Path, fmt: str, provenance: dict) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        self.path, self.fmt, self.provenance = Path(path), fmt, provenance
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        self.writer = None
        self.schema = None
        self.rows = 0

    def write(self, table: pd.DataFrame) -> None:
        import pyarrow as pa

        at = pa.Table.from_pandas(table, preserve_index=False)
        # categorical columns: one dictionary type whatever a chunk's number of categories
        fields = [pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if pa.types.is_dictionary(f.type) else f
                  for f in at.schema]
        at = at.cast(pa.schema(fields))
        # every piece in the first piece's schema (a column all-null in one chunk keeps its type)
        if self.schema is None:
            self.schema = at.schema.with_metadata({b"helixsim": json.dumps(self.provenance, sort_keys=True).encode()})
        at = at.cast(self.schema) if at.schema.remove_metadata() != self.schema.remove_metadata() else at
        at = at.replace_schema_metadata(self.schema.metadata)
        if self.writer is None:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                strings = [f.name for f in self.schema if not pa.types.is_floating(f.type)
                           and not pa.types.is_integer(f.type) and not pa.types.is_boolean(f.type)]
                self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="lz4", use_dictionary=strings)
            else:
                import pyarrow.csv as pcsv

                self.writer = pcsv.CSVWriter(self.tmp, self.schema.remove_metadata())
        self.writer.write_table(at if self.fmt == "parquet" else at.replace_schema_metadata(None))
        self.rows += len(table)

    def close(self, empty: pd.DataFrame | None = None) -> Path:
        if self.writer is None:
            self.write(empty if empty is not None else pd.DataFrame())
        self.writer.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            Path(self.tmp).unlink(missing_ok=True)


def read_table(path: str | Path) -> pd.DataFrame:
    """A table helixsim wrote (Parquet or CSV)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


@dataclass
class StreamResult:
    model: str
    configurations: int
    feasible: int
    frontier: pd.DataFrame
    facets: dict
    written: list[Path]
    seconds: float


def stream_model(model: ModelSpec, systems: Sequence[tuple[str, HardwareSpec]], space: SearchSpace,
                 precision: Precision, table_path: Path, frontier_path: Path, fmt: str, provenance: dict,
                 ideal: bool = False, calibration=None, workers: int = 1, scheduler=None,
                 progress: Callable[[int, int], None] | None = None, rows: int = 1 << 18,
                 backend: str = "trtllm", mtps: tuple[int, ...] = (0,),
                 tbos: tuple[bool, ...] = (False,)) -> StreamResult:
    """Price one model on every system of the sweep, writing the table chunk by chunk and keeping only
    the running frontiers in memory."""
    import time

    start = time.perf_counter()
    writer = TableWriter(table_path, fmt, provenance)
    reducer = FrontierReducer()
    n = n_ok = 0
    try:
        for name, hw in systems:
            for i, total, table in priced_chunks(model, hw, space, precision, name, ideal, calibration,
                                                 workers, scheduler, rows, backend, mtps, tbos):
                writer.write(table)
                reducer.add(table)
                n += len(table)
                n_ok += int(table["feasible"].sum())
                if progress:
                    progress(i + 1, total)
        written = [writer.close()]
    except BaseException:
        writer.abort()
        raise
    frontier = reducer.table()
    fw = TableWriter(frontier_path, fmt, provenance)
    try:
        fw.write(frontier)
        written.append(fw.close())
    except BaseException:
        fw.abort()
        raise
    return StreamResult(model.name, n, n_ok, frontier, reducer.facets(), written, time.perf_counter() - start)
