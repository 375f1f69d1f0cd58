"""Terms priced only on the layouts that use them.

A step term often depends on the strategy: the MoE's communication is an all-to-all under ep, an
all-reduce and an all-gather under Helix, one all-reduce otherwise. Written as ``np.select`` over
every variant, each variant is priced on every layout of a sweep and all but one thrown away.
:func:`select_rows` gives the same cells (``np.select`` of the same values) but prices each variant
only on the layout rows where it is the one chosen. The layout axis is the first of the mask's shape
(``(layouts, 1)`` in a sweep's grid, ``(rows,)`` for its capacity-edge rows); a leading axis of stacked
replays (:mod:`helixsim.uncertainty`) in front of it is kept.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: fewer chosen rows than this: the variant is priced on every row (as one call over all of them), so a
#: kernel call never sees an array small enough for the kernel models' single-point or unmemoised paths
MIN_ROWS = 64

#: a single point whose kernel model keeps no log of its calls: only the chosen variant is priced
_CHOSEN_ONLY: ContextVar[bool] = ContextVar("chosen_only", default=False)


@contextmanager
def chosen_only():
    """Within the block a single point (every mask of one element) prices only the variant it takes, not the
    others (whose values np.select would throw away; no value changes). For kernel models without a log of
    their calls: one with a log (a serving framework's) reports every variant asked, so is asked them all."""
    token = _CHOSEN_ONLY.set(True)
    try:
        yield
    finally:
        _CHOSEN_ONLY.reset(token)


@dataclass(frozen=True)
class Rows:
    """Some rows of the layout axis (``rows`` None: all of them; else increasing, as np.flatnonzero gives them)."""

    rows: np.ndarray | None = None
    axis: int = -1            # the layout axis, counted from the end (the mask's -ndim)
    n: int = 0                # its length

    def pick(self, x):
        """``x`` at these rows where it varies along the layout axis, else ``x`` itself."""
        if self.rows is None:
            return x
        x = np.asarray(x)
        return np.take(x, self.rows, axis=self.axis) if x.ndim >= -self.axis and x.shape[self.axis] == self.n else x


def broadcast_view(x, shape: tuple) -> np.ndarray:
    """``np.broadcast_to(x, shape)``: a read-only view; of an array already of that shape, made without numpy's
    Python-level checks (a single point broadcasts every op of its step, each of one element)."""
    if type(x) is np.ndarray and x.shape == shape:
        view = x.view()
        view.flags.writeable = False
        return view
    return np.broadcast_to(x, shape)


def shape_one(values) -> tuple:
    """``np.broadcast_shapes`` of values that each hold one element (ones, as many as the most axes), without
    its per-call cost (a single point's kernel calls and terms)."""
    return (1,) * max([v.ndim for v in values if isinstance(v, np.ndarray)], default=0)


def full_one(shape: tuple, value, dtype=float) -> np.ndarray:
    """``np.full(shape, value, dtype)`` (the same cast of ``value``) without its Python-level wrapper: a single
    point fills several one-element arrays at every kernel call."""
    out = np.empty(shape, dtype)
    out.fill(value)
    return out


def broadcast_shapes_of(shapes) -> tuple:
    """``np.broadcast_shapes(*shapes)`` of a few short shapes, in Python (the same result and the same
    ValueError where they do not broadcast)."""
    ndim = max(map(len, shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, ndim - len(s)):
            if d != 1:
                if out[i] != 1 and out[i] != d:
                    return np.broadcast_shapes(*shapes)   # (raises numpy's own error)
                out[i] = d
    return tuple(out)


def put_rows(full, part: np.ndarray, rows: np.ndarray, axis: int, n_rows: int) -> np.ndarray:
    """A copy of ``full`` (broadcast to ``part``'s shape with ``n_rows`` along ``axis``) holding ``part`` at
    ``rows`` of ``axis`` (negative)."""
    at = part.ndim + axis
    full = np.asarray(full, float)
    out = np.empty(np.broadcast_shapes(full.shape, part.shape[:at] + (n_rows,) + part.shape[at + 1:]))
    np.copyto(out, full)   # (into an array made first: two thirds of np.array's work on a broadcast view)
    set_rows(out, part, rows, axis)
    return out


def set_rows(out: np.ndarray, part, rows: np.ndarray, axis: int) -> None:
    """``out[(Ellipsis, rows) + (slice(None),) * (-axis - 1)] = part`` for increasing ``rows`` (np.flatnonzero's):
    the same cells get the same values. Rows that run without a gap (a strategy's layouts are neighbours) are
    one slice (a copy); else, where ``axis`` is the last of ``out`` but length-1 axes and ``part`` has the
    picked shape (or one element) and ``out``'s type, a one-dimensional index assignment per leading index
    (half the work of the general indexing, which handles the rest)."""
    at = out.ndim + axis
    tail = (slice(None),) * (-axis - 1)
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1:
        out[(Ellipsis, slice(rows[0], rows[-1] + 1)) + tail] = part
        return
    lead, n = math.prod(out.shape[:at]), out.shape[at]
    if (math.prod(out.shape[at + 1:]) != 1 or not out.flags.c_contiguous or not isinstance(part, np.ndarray)
            or part.dtype != out.dtype or (part.size != 1 and part.shape != out.shape[:at] + (len(rows),) + out.shape[at + 1:])):
        out[(Ellipsis, rows) + tail] = part
        return
    flat = out.reshape(lead, n)
    values = part.reshape(()) if part.size == 1 else part.reshape(lead, len(rows))
    for j in range(lead):
        flat[j][rows] = values if part.size == 1 else values[j]


def rows_where(mask) -> Rows | None:
    """The rows ``mask`` holds (a mask over the layout axis, ``(layouts, 1)`` or ``(rows,)``): all rows where
    it is not a per-layout mask of at least MIN_ROWS rows (a single point is handled by :func:`select_rows`
    itself), holds them all or too few to split off; None where it holds none."""
    mask = np.asarray(mask, bool)
    if mask.ndim == 0 or mask.size != mask.shape[0] or mask.size < MIN_ROWS:
        return Rows()
    rows = np.flatnonzero(mask.ravel())
    if len(rows) == mask.size or len(rows) < MIN_ROWS:
        return Rows() if len(rows) else None
    return Rows(rows, -mask.ndim, mask.shape[0])


def select_rows(masks: Sequence, variants: Sequence[Callable[[Rows], np.ndarray]],
                default: Callable[[Rows], np.ndarray]) -> np.ndarray:
    """``np.select(masks, [v(all rows) for v in variants], default(all rows))``, each variant (and the default)
    priced only on the rows where it is chosen (a row takes the first mask that holds)."""
    masks = [np.asarray(m, bool) for m in masks]
    if all(m.size == 1 for m in masks):   # one layout (a single point): the first mask that holds, else the default
        options = list(variants) + [default]
        chosen = next((i for i, m in enumerate(masks) if m.item()), len(masks))
        if _CHOSEN_ONLY.get():   # only the variant taken is priced
            return _select_one(masks, [options[chosen](Rows())], 0)
        return _select_one(masks, [v(Rows()) for v in options], chosen)   # every variant priced, as below
    taken = np.zeros(np.broadcast_shapes(*(m.shape for m in masks)), bool)
    options = []   # (the cells that take it, its rows, its value there), for each option some cell takes
    for mask, variant in zip(masks + [None], list(variants) + [default]):
        chosen = ~taken if mask is None else mask & ~taken
        rows = rows_where(chosen)
        if rows is not None:
            options.append((chosen, rows, np.asarray(variant(rows), float)))
        if mask is not None:
            taken = taken | mask
    return _chosen_cells(masks, options)


def _chosen_cells(masks: list[np.ndarray], options: list) -> np.ndarray:
    """np.select's array for :func:`select_rows`: each option's value written at the cells that take it (every
    cell is taken by exactly one option), not spread over a zero array per option first and then selected.
    The shape and type np.select gives of each value spread over every row (zero elsewhere) as float64.
    A value that does not vary along its rows broadcasts over them."""
    def whole(rows: Rows, value: np.ndarray) -> tuple:   # the value's shape spread over every row
        if rows.rows is None or value.ndim < -rows.axis or value.shape[rows.axis] != len(rows.rows):
            return value.shape
        at = value.ndim + rows.axis
        return value.shape[:at] + (rows.n,) + value.shape[at + 1:]

    out = np.empty(np.broadcast_shapes(*(m.shape for m in masks), *(whole(r, v) for _, r, v in options)))
    for chosen, rows, value in options:
        if rows.rows is None:   # priced on every row: its cells where it is chosen
            np.copyto(out, value, where=chosen)
        else:
            set_rows(out, value, rows.rows, rows.axis)
    return out


def _select_one(masks: list[np.ndarray], values: list, chosen: int) -> np.ndarray:
    """``values[chosen]`` (the value np.select takes where every mask holds one element) broadcast to the shape
    and type np.select gives over ``masks`` and ``values``, without its per-call work."""
    values = [np.asarray(v, float) for v in values]
    shape = broadcast_shapes_of([m.shape for m in masks] + [v.shape for v in values])
    return np.array(broadcast_view(values[chosen], shape))


class PatchedRows:
    """An array equal to ``base`` (broadcast) except at some rows of the layout axis, which hold ``patch``.

    The exposed KVP combine of a step varies with the context only on the Helix layouts that pipeline it
    with HOP-B (a tenth of a sweep's layouts); kept in two parts, ``+`` and ``*`` apply to each part (the
    other operand picked at the patched rows), and the context axis is filled in once, by ``np.asarray``,
    not at every step of the sum. Each cell gets the operations it would get on the whole array, in the
    same order, so the same bits."""

    __array_ufunc__ = None   # ``array + patched`` and ``array * patched`` come to the reflected operators

    def __init__(self, base, patch: np.ndarray, rows: Rows, owned: bool = False) -> None:
        self.base, self.patch, self.rows = np.asarray(base), np.asarray(patch), rows
        self.owned = owned   # base is an array made by this object's arithmetic (nothing else holds it)

    @property
    def shape(self) -> tuple:
        at = self.patch.ndim + self.rows.axis
        whole = self.patch.shape[:at] + (self.rows.n,) + self.patch.shape[at + 1:]
        return np.broadcast_shapes(self.base.shape, whole)

    def _apply(self, op, other, reflected: bool) -> "PatchedRows":
        if isinstance(other, PatchedRows):
            if other.rows is not self.rows and not np.array_equal(other.rows.rows, self.rows.rows):
                return NotImplemented
            pair = ((self.base, other.base), (self.patch, other.patch))
        else:
            pair = ((self.base, other), (self.patch, self.rows.pick(other)))
        (b, ob), (p, op_) = pair
        if self.owned:   # arrays of our own: the result written into them, this object spent (see _into)
            base, patch = self._into(op, b, ob, reflected), self._into(op, p, op_, reflected)
            self.base = self.patch = None
            return PatchedRows(base, patch, self.rows, True)
        return (PatchedRows(op(ob, b), op(op_, p), self.rows, True) if reflected
                else PatchedRows(op(b, ob), op(p, op_), self.rows, True))

    @staticmethod
    def _into(op, mine: np.ndarray, other, reflected: bool) -> np.ndarray:
        """``op(other, mine)`` (reflected) or ``op(mine, other)``, written into ``mine`` where it has the result's
        shape and type (the same values: elementwise, each cell read before it is written), else a new array.
        Only an owned object's arrays come here: no other name holds them (an ``x`` whose arithmetic made
        ``y`` is spent, its arrays now ``y``'s; using it again fails, never gives numbers)."""
        args = (other, mine) if reflected else (mine, other)
        if (mine.flags.writeable and mine.shape == np.broadcast_shapes(mine.shape, np.shape(other))
                and mine.dtype == np.result_type(mine, other)):
            return op(*args, out=mine)
        return op(*args)

    def __add__(self, other):
        return self._apply(np.add, other, False)

    def __radd__(self, other):
        return self._apply(np.add, other, True)

    def __mul__(self, other):
        return self._apply(np.multiply, other, False)

    def __rmul__(self, other):
        return self._apply(np.multiply, other, True)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        r = self.rows
        if (self.owned and self.base.shape == self.shape and self.base.dtype == float and self.base.flags.writeable
                and self.patch.ndim == self.base.ndim):   # a whole array of our own: the patch written into it
            set_rows(self.base, self.patch, r.rows, r.axis)
            whole = self.base
            self.owned = False   # the caller holds it now: later arithmetic makes new arrays
        else:
            whole = put_rows(self.base, np.asarray(self.patch, float), r.rows, r.axis, r.n)
        return whole if dtype is None else whole.astype(dtype, copy=False)
