"""Physical constraints a calibrated price keeps where the measurements do not.

Decode attention beyond the longest measured KV length (131,072 tokens) is
continued from the edge of the data as a straight line in tokens, at the
marginal rate (bytes or FLOPs per second) of the last measured doubling and
never faster than the roofline's peak rate (:meth:`.table.SweepTable.knot_values`,
``upper == "linear"``): time is continuous at the edge and linear beyond it.

The measured kernels are not monotone in the number of heads per GPU: at
batch 8 and 131,071 cached tokens GB200's MLA kernel takes 0.144 ms with 32
heads and 0.122 ms with 64 (the kernel tiles them differently), and carried
to 1M tokens that difference made 64 heads per GPU a quarter faster than 32.
A kernel with more heads does at least the work of one with fewer (the same
KV read, more math), so :func:`predict_family` prices a decode-attention
query at the slowest of its own interpolated price and the prices at every
measured head count below it: never faster per GPU with more heads per GPU.
For GQA the query and KV heads are lowered together, as a TP split divides
both (by powers of two, keeping the model's group size), down to one KV head.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .shape_memo import distinct_codes, query_groups as distinct_rows

#: family -> num column along which a price must not decrease (enforced at query time)
NON_DECREASING_IN: dict[str, str] = {"mla_decode_attention": "num_heads", "gqa_decode_attention": "num_heads"}
#: columns lowered in proportion with it (GQA: the KV heads, keeping the model's group size)
WITH: dict[str, str] = {"gqa_decode_attention": "num_key_value_heads"}


def predict_family(table, spec, cat: tuple, cols: Mapping[str, np.ndarray], const: Mapping[str, object],
                   roof, group=None) -> np.ndarray:
    """Latency (ms) of flat query columns ``cols`` (``near``, ``num`` and axis columns, plus any the roofline
    needs; ``const``: scalars for the roofline) from ``table``, with the envelope of the module docstring.
    ``group(columns, n)``, if given, returns the (first, inverse) rows sharing everything but the axis,
    which the table then prices once (:meth:`.table.SweepTable.predict`, ``rep``)."""

    def once(c: Mapping[str, np.ndarray], rep=None) -> np.ndarray:
        n = len(c[spec.axis])

        def roof_fn(xs, pts):
            return spec.roof(roof, {**const, **{k: v[pts] for k, v in c.items()}, spec.axis: xs})

        near = [c[k] if k in c else np.full(n, np.nan) for k in spec.near]
        if rep is None and group is not None:
            rep = _groups(group, [v for k, v in c.items() if k != spec.axis], n)
        return table.predict(cat, near, [c[k] for k in spec.num], c[spec.axis],
                             roof_fn if spec.mode == "efficiency" else None, rep=rep)

    column = NON_DECREASING_IN.get(spec.name)
    if column is None or not len(cols[spec.axis]):
        return once(cols)
    return _envelope(table, spec, cat, cols, column, once)


def _envelope(table, spec, cat: tuple, cols: Mapping[str, np.ndarray], column: str, once) -> np.ndarray:
    """:func:`predict_family` of a family priced non-decreasing in ``column``: each query at the slowest of its
    own price and its prices at every measured value of ``column`` below its own (module docstring), taken head
    count by head count in increasing order.

    A lowered query differs from its own only in ``column`` (and the column lowered with it), so the lowering
    is done once per distinct query configuration (everything but the axis), not per query: the configurations,
    their lowered ones, and each configuration once among them, then each distinct (configuration, axis value)
    priced once in one table query (a price depends on the query's own columns alone, so the prices are the
    same numbers as query by query)."""
    axis = spec.axis
    n = len(cols[axis])
    keys = [k for k in cols if k != axis]
    g_first, g_inv = _groups(distinct_rows, [np.asarray(cols[k]) for k in keys], n)
    conf = {k: np.asarray(cols[k])[g_first] for k in keys}     # each query configuration once
    q = np.asarray(conf[column], float)
    with_col = WITH.get(spec.name)
    other = np.asarray(conf[with_col], float) if with_col is not None else None
    lower = []   # (configurations, their columns at measured head count h) for every h below some query's own
    for h in np.sort(table.column_values(cat, column).astype(float)):
        ok = q > h
        if other is not None:   # a TP split of the query's heads: h = q / 2^j, at least one KV head
            split = np.log2(np.maximum(q, 1e-300) / h)
            ok &= (other * h / np.maximum(q, 1e-300) >= 1.0 - 1e-9) & (np.abs(split - np.round(split)) < 1e-9)
        idx = np.nonzero(ok)[0]
        if not len(idx):
            continue
        sub = {k: v[idx] for k, v in conf.items()}
        sub[column] = np.full(len(idx), h)
        if other is not None:
            sub[with_col] = other[idx] * h / q[idx]
        lower.append((ok, sub))
    if not lower:
        return once(cols, (g_first, g_inv))
    # every configuration (own and lowered) once: u_first/u_inv over them; each lowered one's place among them
    every = {k: np.concatenate([conf[k]] + [sub[k] for _, sub in lower]) for k in keys}
    varying = [k for k in keys if not _one_value(cols[k]) or k in (column, with_col)]
    u_first, u_inv = _groups(distinct_rows, [every[k] for k in varying], len(every[keys[0]]))
    # the queries to price: each query at its own configuration, then at each lowered one (rows ``rows_h``)
    x_codes, x_values = distinct_codes(np.asarray(cols[axis]))
    conf_of, rows_of = [u_inv[g_inv]], []
    at = len(q)
    for ok, sub in lower:
        rows = np.nonzero(ok[g_inv])[0]
        place = np.cumsum(ok) - 1                      # a lowered configuration's index among those of h
        conf_of.append(u_inv[at + place[g_inv[rows]]])
        rows_of.append(rows)
        at += len(sub[column])
    conf_all = np.concatenate(conf_of)
    x_all = np.concatenate([x_codes] + [x_codes[rows] for rows in rows_of])
    # each distinct (configuration, axis value) once
    point_of, points = distinct_codes(conf_all * len(x_values) + x_all)
    p_conf, p_x = points // len(x_values), points % len(x_values)
    c = {k: every[k][u_first][p_conf] for k in keys}
    c[axis] = x_values[p_x]
    p_first = np.empty(len(u_first), dtype=np.intp)
    p_first[p_conf[::-1]] = np.arange(len(points))[::-1]
    prices = once(c, (p_first, p_conf))[point_of]
    out, at = prices[:n], n
    for rows in rows_of:
        out[rows] = np.fmax(out[rows], prices[at:at + len(rows)])
        at += len(rows)
    return out


def _one_value(v) -> bool:
    """Whether flat column ``v`` is one value spread (a zero-stride view, as a query's scalar argument comes)."""
    return v.ndim == 1 and len(v) > 1 and v.strides[0] == 0


def _groups(group, columns: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``group(columns, n)`` (the (first, inverse) rows equal in every column), a column of one value left out
    (it splits no group); with none left, one group."""
    # (a column of labels, as a validation frame passes them, by its codes among its distinct labels)
    columns = [v if v.dtype.kind in "biuf" else np.unique(v, return_inverse=True)[1].ravel()
               for v in columns if not _one_value(v)]
    if not columns and n:
        return np.zeros(1, dtype=np.intp), np.zeros(n, dtype=np.intp)
    if len(columns) == 1 and n > 16:   # one column: its own distinct values are the groups
        inverse, values = distinct_codes(columns[0])
        first = np.zeros(len(values), dtype=np.intp)
        first[inverse[::-1]] = np.arange(n)[::-1]
        return first, inverse
    return group(columns, n)
