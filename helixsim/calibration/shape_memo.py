"""Each distinct kernel shape priced once: the vectorised kernel methods of
:class:`helixsim.calibration.kernels.CalibratedKernels` are wrapped by :func:`unique_args`, which codes
every array argument, finds the distinct shapes of a call without sorting where it can (a presence table
for whole numbers over a narrow range, else a hash table), and looks shapes priced by earlier calls up
in a per-method :class:`ShapeMemo`. Also the grouping of table queries that share their knots
(:func:`query_groups`)."""

from __future__ import annotations

import numpy as np

from ..call_weights import times_factor
from ..cost.rows import broadcast_shapes_of


def distinct_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes shaped like ``values``, distinct values): whole numbers over a narrow range through a presence
    table (sorted, as numpy's sort gives them), else through a hash table (pandas.factorize, linear time) for
    large arrays and numpy's sort for small ones."""
    flat = values.ravel()
    found = _distinct_integers(flat) if flat.size > 32 else None
    if found is not None:
        return found[0].reshape(values.shape), found[1].astype(values.dtype)
    if flat.size > 4096:
        import pandas as pd

        codes, uniq = pd.factorize(flat, use_na_sentinel=False)
        return codes.reshape(values.shape), np.asarray(uniq, values.dtype)
    codes, uniq = _sorted_codes(flat)
    return codes.reshape(values.shape), uniq


def _sorted_codes(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(flat, return_inverse=True)``, (codes, sorted distinct values), without its per-call cost on the
    small arrays a table query codes (the same sort, mask and running count; a NaN left to np.unique)."""
    perm = flat.argsort()
    aux = flat[perm]
    if aux.size == 0 or aux[-1] != aux[-1]:   # empty, or NaN sorted last: numpy's own handling of them
        uniq, codes = np.unique(flat, return_inverse=True)
        return codes, uniq
    mask = np.empty(aux.shape, dtype=bool)
    mask[:1] = True
    np.not_equal(aux[1:], aux[:-1], out=mask[1:])
    codes = np.empty(aux.shape, dtype=np.intp)
    codes[perm] = np.cumsum(mask) - 1
    return codes, aux[mask]


def _distinct_integers(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, sorted distinct values) of whole numbers spanning a range not much wider than the array,
    through a presence table (a few linear numpy passes, cheaper than hashing); None for anything else."""
    lo, hi = np.minimum.reduce(flat), np.maximum.reduce(flat)   # (flat.min(), flat.max() without their wrappers)
    if not (hi - lo <= 4 * flat.size and abs(lo) <= 2 ** 52 and abs(hi) <= 2 ** 52):   # (a NaN or inf fails too)
        return None
    if hi == lo:   # one value (a column a query does not vary): what the table below gives, without it
        if lo >= 0 and hi <= 4 * flat.size:
            if flat.dtype.kind == "f" and lo != int(lo):
                return None
            return np.zeros(flat.size, dtype=np.intp), np.array([int(lo)], dtype=np.intp)
        return np.zeros(flat.size, dtype=np.intp), np.zeros(1, dtype=np.intp) + lo
    if lo >= 0 and hi <= 4 * flat.size:   # (the table indexed by the values themselves: no shifted copy)
        offset, lo = flat, 0
    else:
        offset = flat - lo
    whole = offset.astype(np.intp, copy=False)
    if offset.dtype.kind == "f" and not (whole == offset).all():   # integer arrays are whole already
        return None
    seen = np.zeros(int(hi - lo) + 1, dtype=bool)
    seen[whole] = True
    present = seen.nonzero()[0]
    slot = np.empty(len(seen), dtype=np.intp)
    slot[present] = np.arange(len(present))
    return slot.take(whole), present + lo


def query_groups(columns: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse) of the distinct rows of equal-length ``columns``: one row of each group and each
    row's group (the queries of a table that differ only along its axis share their knot latencies)."""
    if n <= 1:   # one query (a single point): nothing to group
        return np.arange(n), np.zeros(n, dtype=np.intp)
    if n <= 16:   # a few queries: each its own group (finding the groups costs more than pricing them apart)
        return np.arange(n), np.arange(n)
    key = np.zeros(n, dtype=np.int64)
    space, varying = 1, []
    for col in columns:
        codes, uniq = distinct_codes(col)
        space *= len(uniq)
        if space >= 2 ** 62:
            return np.arange(n), np.arange(n)
        key = key * len(uniq) + codes
        if len(uniq) > 1:
            varying.append(codes)
    if len(varying) <= 1:   # one column varies: its codes are the keys, each present (what coding them gives)
        inverse, groups = (varying[0] if varying else np.zeros(n, dtype=np.intp)), space
    else:
        inverse, uniq_key = distinct_codes(key)
        groups = len(uniq_key)
    first = np.zeros(groups, dtype=np.intp)
    first[inverse[::-1]] = np.arange(n)[::-1]
    return first, inverse


def shape_size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


class ShapeMemo:
    """Prices of the kernel shapes already priced by one method with one set of fixed arguments.

    Each argument column maps its distinct values to stable ids (in order of first sight); a shape is
    the mixed-radix number of its ids (``radix`` per column), kept sorted beside its price, so a
    lookup is a binary search per distinct shape of the call, never a re-pricing."""

    def __init__(self, columns: int) -> None:
        self.radix = 1 << (62 // max(columns, 1))
        self.known = [np.zeros(0) for _ in range(columns)]     # sorted distinct values per column
        self.ids = [np.zeros(0, np.int64) for _ in range(columns)]
        self.keys = np.zeros(0, np.int64)
        self.prices = np.zeros(0)

    def column_ids(self, j: int, values: np.ndarray) -> np.ndarray | None:
        """Stable ids of ``values`` (distinct, NaN-free) in column j; None when the column is full."""
        known, ids = self.known[j], self.ids[j]
        if not len(known):   # the column's first values: ids in their order (what the merge below gives them)
            if len(values) > self.radix:
                return None
            order = np.argsort(values, kind="stable")
            self.known[j], self.ids[j] = values[order], order
            return np.arange(len(values))
        pos = np.minimum(np.searchsorted(known, values), len(known) - 1)
        found = known[pos] == values
        if found.all():   # (nothing new: the positions found are those of the values)
            return ids[pos]
        new = values[~found]
        if len(known) + len(new) > self.radix:
            return None
        if len(new):
            order = np.argsort(np.concatenate([known, new]), kind="stable")
            self.known[j] = np.concatenate([known, new])[order]
            self.ids[j] = np.concatenate([ids, np.arange(len(known), len(known) + len(new))])[order]
            known, ids = self.known[j], self.ids[j]
        return ids[np.searchsorted(known, values)]

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        found = (self.keys[pos] == keys) if len(self.keys) else np.zeros(len(keys), bool)
        return found, self.prices[pos] if len(self.keys) else np.zeros(len(keys))

    #: priced shapes kept at most per method (16 bytes each): beyond, the memo starts afresh, so a sweep whose
    #: shapes never repeat (attention over thousands of contexts) does not grow memory with its size
    LIMIT = 1 << 18

    def add(self, keys: np.ndarray, prices: np.ndarray) -> None:
        if len(self.keys) + len(keys) > self.LIMIT:
            self.keys, self.prices = self.keys[:0], self.prices[:0]
        if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():   # (new values' ids in order: keys sorted already)
            order = np.argsort(keys)
            keys, prices = keys[order], prices[order]
        # merged in key order (np.insert's result: each new key before the first larger old one; no key repeats)
        at = np.searchsorted(self.keys, keys) + np.arange(len(keys))
        old = np.ones(len(self.keys) + len(keys), dtype=bool)
        old[at] = False
        merged_keys, merged_prices = np.empty(len(old), self.keys.dtype), np.empty(len(old), self.prices.dtype)
        merged_keys[at], merged_prices[at] = keys, prices
        merged_keys[old], merged_prices[old] = self.keys, self.prices
        self.keys, self.prices = merged_keys, merged_prices


def unique_args(method):
    """Evaluate a vectorised kernel method once per distinct argument combination.

    A sweep asks for the same few shapes many thousands of times (layouts x batches x
    contexts share GEMM and collective shapes), and table interpolation costs far more per
    element than finding the distinct shapes. Each array argument is coded in its own
    (unbroadcast) shape, so an argument that varies only with the layout is coded once per
    layout, not once per context; the codes are combined into one integer per element, the
    distinct integers are found with a presence table (or a hash table when the code space is
    sparse; nothing is sorted), and each distinct shape is priced once per kernel object: shapes
    priced by an earlier call (an earlier chunk of the sweep) are looked up in a
    :class:`ShapeMemo`. Scalars and strings pass through unchanged.
    """
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        for a in args:
            if isinstance(a, np.ndarray) and a.size != 1 and a.ndim > 0:
                break
        else:   # scalars and one-element arrays: one shape (a single point)
            return method(self, *args, **kwargs)
        rows = repeated_rows(args, kwargs)
        if rows is not None:   # a grid whose rows repeat: priced on its distinct rows, then spread by row
            return _on_rows(self, distinct, args, kwargs, *rows)
        return distinct(self, *args, **kwargs)

    def distinct(self, *args, **kwargs):
        # a recording of this call (helixsim.uncertainty) asks for per-shape figures of its own: taken here, so
        # that a kernel method this one calls does not answer for it
        request = self.__dict__.get(RECORDING)
        if request is not None and request[0] == method.__name__:
            del self.__dict__[RECORDING]
            if any(isinstance(v, np.ndarray) and v.ndim > 0 for v in kwargs.values()):
                request = None   # (an array passed by keyword is not coded: the recording weighs the call itself)
        else:
            request = None
        names = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.ndim > 0]
        # integer arguments (batches, widths) are coded as they are (their distinct values become floats below)
        arrays = [args[i] if args[i].dtype.kind in "iuf" else np.asarray(args[i], float) for i in names]
        shape = broadcast_shapes_of([a.shape for a in arrays])
        size = shape_size(shape)
        if size < 64:
            return method(self, *args, **kwargs)
        key = np.zeros((), dtype=np.int64)
        values, space, varying = [], 1, 0
        for a in arrays:
            codes, uniq = distinct_codes(a)
            space *= len(uniq)
            if space >= 2 ** 62:  # keys would overflow: price every element
                return method(self, *args, **kwargs)
            key = key * len(uniq) + codes
            values.append(uniq.astype(float, copy=False))
            varying += len(uniq) > 1
        key = (key if key.shape == shape else np.broadcast_to(key, shape)).ravel()
        if varying <= 1:   # one argument varies: every one of its codes is present, the keys are the shapes
            uniq_key, inverse = np.arange(space), key
        elif space <= 4 * size:   # dense code space: a presence table finds the distinct keys in O(n)
            seen = np.zeros(space, dtype=bool)
            seen[key] = True
            uniq_key = seen.nonzero()[0]
            slot = np.empty(space, dtype=np.intp)
            slot[uniq_key] = np.arange(len(uniq_key))
            inverse = slot.take(key)   # (take: fancy indexing of a 1-D array without its index machinery)
        else:
            inverse, uniq_key = distinct_codes(key)
        codes = []
        rest = uniq_key
        for uniq in reversed(values):
            codes.append(rest % len(uniq))
            rest = rest // len(uniq)
        result = np.broadcast_to(_priced(self, method, args, kwargs, names, values, codes[::-1]), (len(uniq_key),))
        cells = result.take(inverse)
        if request is not None:   # the recording's figures of each distinct shape, spread as the prices are
            per_shape, uniform = request[1](_at_shapes(args, names, values, codes[::-1]), kwargs, result)
            self.__dict__[RECORDED] = spread(per_shape, uniform, inverse, cells).reshape(per_shape.shape[:-1] + shape)
        return cells.reshape(shape)

    return wrapper


def spread(per_shape: np.ndarray, uniform: list, inverse: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``np.take(per_shape, inverse, axis=-1)`` of a stack of per-shape figures (rows of float64 on a leading
    axis, from :func:`helixsim.call_weights.weighting_rows`), ``cells`` being the call's prices spread the same
    way: a row that is the price times one factor (``uniform[i]`` not None; a call inside the measured domain,
    or priced by the roofline throughout) is that product of the spread prices (the same product per cell as
    per shape, one pass of arithmetic instead of a gather), any other row gathered."""
    out = np.empty((len(per_shape), len(inverse)))
    for row, factor, into in zip(per_shape, uniform, out):
        if factor is None:
            row.take(inverse, out=into, mode="clip")   # (every index valid: clip clips none, and writes unbuffered)
        else:
            times_factor(cells, factor, into)
    return out


def repeated_rows(args: tuple, kwargs: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(first, inverse) of the distinct rows of a call over a 2-D grid (layouts x contexts: arguments shaped
    ``(rows, 1)``, ``(rows, columns)``, ``(1, columns)``, or scalars) whose rows repeat (layouts that share
    a batch, widths and KVP ask the same shapes at every context): ``first`` the first row of each distinct
    row, in row order, ``inverse`` each row's. Every argument that varies along the rows is checked to be
    bit for bit its first row's, so a row's cells are the same shapes (the same arguments) as that row's; None
    where there is no such grid or fewer than half its rows repeat."""
    arrays = [a for a in args if isinstance(a, np.ndarray) and a.ndim > 0]
    if not any(a.ndim == 2 for a in arrays) or any(a.ndim > 2 for a in arrays) or any(isinstance(v, np.ndarray) and v.ndim > 0 for v in kwargs.values()):
        return None
    shape = broadcast_shapes_of([a.shape for a in arrays])
    if len(shape) != 2 or shape[1] < 2 or shape[0] < 64:
        return None
    n = shape[0]
    by_row = [a for a in arrays if a.ndim == 2 and a.shape[0] == n]
    if any(a.dtype.kind not in "iuf" for a in by_row):
        return None
    # rows grouped by their first column (a guess for the wider arguments: checked below)
    first, inverse = query_groups([np.ascontiguousarray(a[:, 0]) for a in by_row], n)
    m = len(first)
    if 2 * m > n or m * shape[1] < 64:
        return None
    order = first.argsort()
    rank = np.empty(m, dtype=np.intp)
    rank[order] = np.arange(m)
    first, inverse = first[order], rank.take(inverse)
    for a in by_row:
        if a.shape[1] > 1 or a.dtype.kind == "f":   # (integer columns: their codes are their values)
            bits = a.view(np.int64) if a.dtype == np.float64 else a
            if not (bits.take(first, axis=0).take(inverse, axis=0) == bits).all():
                return None
    return first, inverse


def _on_rows(self, distinct, args: tuple, kwargs: dict, first: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """``distinct`` (the wrapped method's pricing) of the call on its distinct rows ``first``, each row's prices (and
    a recording's figures) then taken from its distinct row's, whole rows at a time."""
    n = len(inverse)
    sub = tuple(a.take(first, axis=0) if isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[0] == n else a
                for a in args)
    recorded = self.__dict__.pop(RECORDED, None)   # (none is left between calls: kept aside all the same)
    out = np.asarray(distinct(self, *sub, **kwargs))
    mine = self.__dict__.pop(RECORDED, None)
    if recorded is not None:
        self.__dict__[RECORDED] = recorded
    if out.ndim != 2 or out.shape[0] != len(first):   # (not priced as a grid: the whole call, as it came)
        return distinct(self, *args, **kwargs)
    if mine is not None:
        self.__dict__[RECORDED] = mine.take(inverse, axis=mine.ndim - 2)
    return out.take(inverse, axis=0)


#: kernel-object attributes of a recorded call (helixsim.uncertainty._Recorder): the request, (method name,
#: function of the call's arguments at its distinct shapes, its keyword arguments and its prices there, giving
#: an array whose last axis runs over those shapes), and the answer, that array spread over the call's cells
RECORDING, RECORDED = "_recording", "_recorded"


def _at_shapes(args: tuple, names: list[int], values: list[np.ndarray], codes: list[np.ndarray]) -> tuple:
    """The call's arguments at its distinct shapes: array argument ``names[j]`` as ``values[j][codes[j]]``."""
    call = list(args)
    for i, v, c in zip(names, values, codes):
        call[i] = v[c]
    return tuple(call)


def _priced(self, method, args: tuple, kwargs: dict, names: list[int], values: list[np.ndarray],
            codes: list[np.ndarray]) -> np.ndarray:
    """``method`` at the distinct shapes given per array argument ``names[j]`` as its distinct
    ``values[j]`` and one code per shape ``codes[j]``, through the kernel object's memo of priced shapes."""
    def price(rows):
        call = list(args)
        for i, v, c in zip(names, values, codes):
            call[i] = v[c if rows is None else c[rows]]
        n = len(codes[0]) if rows is None else len(rows)
        return np.broadcast_to(np.asarray(method(self, *call, **kwargs), float), (n,))

    fixed = tuple((i, a) for i, a in enumerate(args) if i not in names)
    tag = (method.__name__, fixed, tuple(sorted(kwargs.items())), self.moe_distribution)
    try:
        hash(tag)
    except TypeError:  # an unhashable fixed argument: no memo
        return price(None)
    if any(np.isnan(v).any() for v in values):
        return price(None)
    memo = self._memo.get(tag)
    if memo is None:
        memo = self._memo[tag] = ShapeMemo(len(values))
    key = np.zeros(len(codes[0]), dtype=np.int64)
    for j, (v, c) in enumerate(zip(values, codes)):
        ids = memo.column_ids(j, v)
        if ids is None:  # more distinct values in a column than the key has room for
            return price(None)
        key = key * memo.radix + ids[c]
    found, prices = memo.lookup(key)
    if not found.any():   # none priced before (a memo's first call): every shape priced as it comes
        new = price(None)
        memo.add(key, new)
        return new
    if not found.all():
        miss = (~found).nonzero()[0]
        new = price(miss)
        prices = prices.copy()
        prices[miss] = new
        memo.add(key[miss], new)
    return prices
