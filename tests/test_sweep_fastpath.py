"""The sweep's fast path (issue 14) against one configuration priced alone.

A sweep prices a chunk as a grid of (layout, batch) x contexts, the context-free terms once per
(layout, batch), the interval's four replays stacked in one pass, HOP-B only on the rows that can
pipeline, each kernel shape once per kernel object, and the capacity-edge rows in a second, flat
pass. A configuration priced alone (:func:`helixsim.api.evaluate_columns` on one layout, one batch,
one context: no grid, no row subsets, no shared shapes) goes through none of that, so every column
of every sampled row must agree to 1e-12 (relative), for several models and both kernel models.
"""

from __future__ import annotations

import numpy as np
import pytest

from helixsim.api import evaluate_columns, kernels_for
from helixsim.layout import STRATEGIES, LayoutArrays
from helixsim.precision import Precision
from helixsim.search import SearchSpace, search
from helixsim.specs.registry import load_hardware, load_model

GB200 = load_hardware("gb200-nvl72")
#: six contexts: more than search.FOLD_EDGES, so the capacity edges are priced in their own flat pass
CONTEXTS = (65_536, 131_072, 262_144, 1_000_000, 2_000_000, 4_000_000)
CASES = [
    ("deepseek-r1", Precision(weights="fp4", kv_cache="fp4"), None),            # MLA, MoE (the paper study)
    ("deepseek-r1", Precision(weights="fp4", kv_cache="fp4"), "none"),          # the same on the roofline
    ("llama-3.1-405b", Precision(weights="fp4", kv_cache="fp8"), None),         # GQA, dense
    ("gpt-oss-120b", Precision(), None),                                        # sliding-window layers
]


@pytest.mark.parametrize("model_name,prec,calibration", CASES)
def test_sweep_rows_equal_configurations_priced_alone(model_name, prec, calibration):
    model = load_model(model_name)
    space = SearchSpace(max_gpus=16, pp=(1, 2), hopb=(True, False), max_batch=256, contexts=CONTEXTS)
    table = search(model, GB200, space, prec, calibration=calibration)
    rng = np.random.default_rng(14)
    # Helix rows whose attention HOP-B shortened (their HOP-B-off twin differs): the pipelined rows
    keys = ["kvp", "tpa", "dp", "tpf", "ep", "pp", "batch", "context"]
    helix = table[(table["strategy"].astype(str) == "helix").to_numpy() & (table["kvp"] > 1).to_numpy()].reset_index()
    twins = helix[helix["hopb"]].merge(helix[~helix["hopb"]], on=keys, suffixes=("", "_off"))
    piped = twins.loc[twins["attention_ms"] != twins["attention_ms_off"], "index"].to_numpy()
    if model_name == "gpt-oss-120b":
        assert len(piped)   # this study has rows where HOP-B pays
    sample = np.concatenate([rng.choice(len(table), 24, replace=False),
                             rng.choice(piped, min(8, len(piped)), replace=False)]).astype(int)
    sample = np.concatenate([sample, [int(np.argmax(table["batch"].to_numpy() == table["max_batch"].to_numpy()))]])
    k = kernels_for(GB200, calibration=calibration)
    floats = [c for c in table.columns if table[c].dtype.kind == "f"]
    assert {"ttl_ms", "ttl_ms_lo", "ttl_ms_hi", "extrapolated_fraction", "attention_ms", "attn_comm_ms"} <= set(floats)
    for i in sample:
        row = table.iloc[int(i)]
        lay = LayoutArrays(*(np.array([STRATEGIES.index(str(row["strategy"]))])
                             if f == "strategy" else np.array([row[f]]) for f in LayoutArrays.__dataclass_fields__))
        alone = evaluate_columns(model, GB200, lay, int(row["batch"]), int(row["context"]), prec, kernels=k)
        for c in floats:
            assert alone[c][0] == pytest.approx(row[c], rel=1e-12, abs=1e-300), (model_name, c, row["label"])
        for c in ("n_gpus", "max_batch", "feasible"):
            assert alone[c][0] == row[c], (model_name, c, row["label"])
