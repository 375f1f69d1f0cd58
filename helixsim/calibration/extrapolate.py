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

from .shape_memo import query_groups as distinct_rows

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

    def once(c: Mapping[str, np.ndarray]) -> np.ndarray:
        n = len(c[spec.axis])

        def roof_fn(xs, pts):
            return spec.roof(roof, {**const, **{k: v[pts] for k, v in c.items()}, spec.axis: xs})

        near = [c[k] if k in c else np.full(n, np.nan) for k in spec.near]
        rep = group([v for k, v in c.items() if k != spec.axis], n) if group is not None else None
        return table.predict(cat, near, [c[k] for k in spec.num], c[spec.axis],
                             roof_fn if spec.mode == "efficiency" else None, rep=rep)

    column = NON_DECREASING_IN.get(spec.name)
    if column is None or not len(cols[spec.axis]):
        return once(cols)
    q = np.asarray(cols[column], float)
    other = np.asarray(cols[WITH[spec.name]], float) if spec.name in WITH else None
    lower = []   # (queries, the same at measured head count h) for every h below some query's own
    for h in np.sort(table.column_values(cat, column).astype(float)):
        ok = q > h
        if other is not None:   # a TP split of the query's heads: h = q / 2^j, at least one KV head
            split = np.log2(np.maximum(q, 1e-300) / h)
            ok &= (other * h / np.maximum(q, 1e-300) >= 1.0 - 1e-9) & (np.abs(split - np.round(split)) < 1e-9)
        idx = np.nonzero(ok)[0]
        if not len(idx):
            continue
        sub = {k: np.asarray(v)[idx] for k, v in cols.items()}
        sub[column] = np.full(len(idx), h)
        if other is not None:
            sub[WITH[spec.name]] = other[idx] * h / q[idx]
        lower.append((idx, sub))
    if not lower:
        return once(cols)
    # the queries and every head count's lowered ones priced in one table query, each distinct query once (a
    # price depends on the query's own columns alone: the lowered queries of a sweep's layouts repeat each other
    # and its own queries), then the envelope taken head count by head count, in increasing order
    every = {k: np.concatenate([np.asarray(v)] + [sub[k] for _, sub in lower]) for k, v in cols.items()}
    first, inverse = distinct_rows(list(every.values()), len(every[spec.axis]))
    prices = once({k: v[first] for k, v in every.items()})[inverse]
    out, at = prices[:len(q)], len(q)
    for idx, _ in lower:
        out[idx] = np.fmax(out[idx], prices[at:at + len(idx)])
        at += len(idx)
    return out
