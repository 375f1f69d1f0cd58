"""The four interval weightings of one recorded kernel call, row by row (:mod:`helixsim.uncertainty`).

A row that is the call's time times one factor in every cell (a call priced by the roofline throughout, or
inside the measured domain throughout) is described by that factor instead of written out, so a wrapper that
spreads a call's per-shape figures over its cells (:func:`helixsim.calibration.shape_memo.spread`) forms the
row from the spread time with one multiply, the same product per cell, instead of gathering it.
"""

from __future__ import annotations

import numpy as np


def weighting_rows(t: np.ndarray, roof: np.ndarray, d: np.ndarray, w: float) -> tuple[np.ndarray, list]:
    """(stack, uniform): :func:`helixsim.uncertainty._weightings`, except that a row which is the time times
    one factor in every cell (``uniform[i]``: (negated, factor), the row being ``(-t if negated else t) *
    factor``; None for a row written out) is left unwritten. A call priced by the roofline throughout, or inside the measured domain
    throughout, weighs its time by constants (its roofline mask is one value, its d +0.0 in every cell), so
    whoever spreads the stack over many cells forms those rows from the spread time, the same products."""
    out = np.empty((4,) + np.broadcast_shapes(t.shape, roof.shape, d.shape))
    # weightings' formulas, each written straight into its slot (the same operations in the same order, so
    # the same bits, without a temporary per step of the arithmetic: the attention call spans the whole grid)
    zero = d.size > 0 and plus_zeros(d)   # d +0.0 in every cell: each widening factor expm1(+-w 0) is one zero
    uniform = [_one_value(roof), None, None, None]
    law = ~roof & (d.flat[0] > 0 if zero else d > 0)
    uniform[1] = _one_value(law)
    if uniform[0] is None:
        np.multiply(t, roof, out=out[0])
    if uniform[1] is None:
        np.multiply(t, law, out=out[1])
    for i, sign in ((2, 1.0), (3, -1.0)):   # t * (e^(w d) - 1) and -t * (e^(-w d) - 1)
        if zero:   # (formed once, of +0.0: expm1 of a zero is that zero, in any implementation)
            uniform[i] = (i == 3, np.expm1(np.multiply(sign * w, 0.0)))
            continue
        factor = out[i]
        np.multiply(sign * w, d, out=factor)
        np.expm1(factor, out=factor)
        np.multiply(t if i == 2 else -t, factor, out=factor)
    return out, [u if u is None or type(u) is tuple else (False, u) for u in uniform]


def times_factor(t: np.ndarray, factor: tuple, out: np.ndarray) -> np.ndarray:
    """A uniform row of :func:`weighting_rows`: ``(-t if negated else t) * factor`` written into ``out``."""
    negated, value = factor
    return np.multiply(np.negative(t) if negated else t, value, out=out)


def _one_value(mask: np.ndarray):
    """The value of a boolean array holding one value in every cell (a numpy bool), else None."""
    if mask.ndim == 0:
        return mask[()]
    if mask.size == 0:
        return None
    first = mask.flat[0]
    return first if (mask.all() if first else not mask.any()) else None


def plus_zeros(a: np.ndarray) -> bool:
    """True where float64 ``a`` holds +0.0 in every cell (no bit set: -0.0 and NaN fail)."""
    return a.dtype == np.float64 and a.flags.c_contiguous and not a.view(np.int64).any()
