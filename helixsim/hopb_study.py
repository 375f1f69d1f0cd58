"""HOP-B layout by layout: what one layer's attention and all-to-all take with and without it.

Full-attention layers only (neither of the paper's models has sliding-window layers).

For each Helix configuration (rows of a sweep table) it prices, per layer and
with the same kernel model as the sweep:

* ``lockstep_us``: attention over the whole micro-batch as one kernel, then
  one batched all-to-all (HOP-B off; paper Fig. 3, upper timeline), of which
  ``lockstep_a2a_us`` is the all-to-all;
* ``chunks``, ``attention_chunk_us``, ``a2a_chunk_us``: HOP-B's per-request
  chunks, each priced as a kernel or collective of that size, with its fixed
  cost (:func:`helixsim.cost.step.hopb_chunks_ms`);
* ``pipelined_us``: the two-stream pipeline c + (n-1) max(c, m) + m
  (the lockstep time where kvp = 1: no all-to-all to hide);
* ``hopb_ttl_change``: (pipelined - lockstep) x layers / TTL, the fraction of
  the decode step HOP-B would add (positive) or save (negative) if it were
  forced on. The step model uses HOP-B only where it saves time;
* ``even_split_ttl_change``: the same with the paper's Figure 3 arithmetic
  applied to the batched kernels, c = attention / n and m = all-to-all / n
  (every fixed cost divided among the chunks, as no real chunk can): what
  HOP-B would be worth if chunks cost their share of the batched exchange.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .api import kernels_for, resolve_hardware, resolve_model
from .cost import step
from .cost import terms as t
from .layout import STRATEGIES, LayoutArrays

COLUMNS = ("chunks", "attention_chunk_us", "a2a_chunk_us", "lockstep_us", "lockstep_a2a_us", "pipelined_us",
           "hopb_ttl_change", "even_split_ttl_change")


def hopb_chunks(rows: pd.DataFrame, model, hardware, precision, ideal: bool = False,
                calibration=None) -> pd.DataFrame:
    """``rows`` (Helix configurations with layout, batch and context columns) with :data:`COLUMNS` added."""
    m, hw = resolve_model(model), resolve_hardware(hardware)
    k = kernels_for(hw, ideal, calibration)
    n = len(rows)
    col = {f: rows[f].to_numpy(np.int64) for f in ("kvp", "tpa", "dp", "tpf", "ep", "pp", "batch", "context")}
    a = LayoutArrays(strategy=np.full(n, STRATEGIES.index("helix")), kvp=col["kvp"], tpa=col["tpa"], dp=col["dp"],
                     tpf=col["tpf"], ep=col["ep"], pp=col["pp"], hopb=np.ones(n, bool))
    s = step.step_shapes(m, a, col["batch"])
    ctx = col["context"]
    attn = step.attention_ms(k, m, s, a.kvp, ctx, precision, sliding=False)
    combine = step.kvp_combine_ms(k, m, s, a.kvp, precision)
    c, mm = step.hopb_chunks_ms(k, m, s, a.kvp, ctx, precision, sliding=False)
    lockstep = attn + combine
    piped = np.where(a.kvp > 1, t.hopb_makespan(c, mm, s.attn_batch), lockstep)  # kvp = 1: nothing to exchange
    n_req = np.maximum(s.attn_batch, 1)
    split = np.where(a.kvp > 1, t.hopb_makespan(attn / n_req, combine / n_req, n_req), lockstep)
    layers = m.num_layers * s.layers_factor
    out = rows.copy()
    out["chunks"] = s.attn_batch
    out["attention_chunk_us"] = c * 1e3
    out["a2a_chunk_us"] = mm * 1e3
    out["lockstep_us"] = lockstep * 1e3
    out["lockstep_a2a_us"] = combine * 1e3
    out["pipelined_us"] = piped * 1e3
    ttl = rows["ttl_ms"].to_numpy(float)
    out["hopb_ttl_change"] = (piped - lockstep) * layers / ttl
    out["even_split_ttl_change"] = (split - lockstep) * layers / ttl
    return out
