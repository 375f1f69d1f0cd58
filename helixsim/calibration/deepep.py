"""SGLang's measured DeepEP low-latency dispatch and combine (the decode all-to-all of expert parallelism).

SGLang decodes expert-parallel MoE layers with DeepEP's low-latency kernels
(``--moe-a2a-backend deepep``; ``--deepep-mode auto`` picks low-latency for decode
batches). The calibration data measure them on each system
(``<system>/sglang/deepep_low_latency.csv.gz``, shipped raw as
``hardware/calibration/<hw>/sglang/deepep_low_latency.csv.gz``): the time of one
dispatch and one combine per ``num_token`` tokens on the rank, for a model's
(hidden size, top-k, expert count). Their bandwidth columns show the payloads SGLang
sends: ``dispatch_bandwidth_gbps x dispatch_avg_t_us`` is num_token x top-k x hidden
x ~1.03 bytes (FP8 with its per-128 scales), the combine twice that (BF16), so the
measured times already carry the formats SGLang uses, whatever the step asks for.

Model (:meth:`DeepEPLowLatency.time_ms`):

- only a measured (hidden size, top-k) pair is priced, from the rows of the model's
  own expert count where that was measured (DeepSeek's 256, Kimi-K2's 384 at
  7168 x 8), else from the median over the measured counts at each token count
  (the payload is tokens x top-k x hidden whatever the expert count; the counts
  measured differ by up to 15 %, dispatch at 16 tokens on B200);
- between measured token counts: linear in log2(time) against log2(tokens);
  below the smallest, held (the kernel's latency floor); above the largest,
  continued linearly in tokens with the slope of the last measured interval
  (bandwidth-bound; flagged as extrapolation by the step's domain check);
- the table has no EP column (one node, ``node_num`` 1): a rank sends its
  tokens' top-k copies whatever the EP width, so the measured time is used for
  every EP width inside the NVLink domain (at EP 2 only half the copies leave the
  GPU, so it is an upper bound there). Wider groups fall back to TensorRT-LLM's
  model (:class:`helixsim.backends.BackendKernels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "deepep_low_latency.csv.gz"
PHASE_COLUMN = {"dispatch": "dispatch_avg_t_us", "combine": "combine_avg_t_us"}


@dataclass(frozen=True)
class DeepEPLowLatency:
    """Measured DeepEP low-latency times: (hidden, top-k) -> expert count (0: the median over the
    measured counts) -> (token counts, {phase: microseconds})."""

    curves: dict

    def time_ms(self, phase: str, tokens, hidden: int, top_k: int, num_experts: int = 0) -> np.ndarray:
        """One ``phase`` (dispatch or combine) for ``tokens`` tokens on the rank, ms; NaN where
        (hidden, top_k) was not measured; 0 for no tokens."""
        tok = np.asarray(tokens, float)
        by_experts = self.curves.get((int(hidden), int(top_k)))
        if by_experts is None:
            return np.full(tok.shape, np.nan)
        known, us = by_experts.get(int(num_experts), by_experts[0])
        return np.where(tok > 0, interpolate_us(known, us[phase], tok) * 1e-3, 0.0)


def interpolate_us(known_tokens: np.ndarray, known_us: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Measured time at ``tokens``: log-log interpolation inside the measured counts, the first value
    below them, linear in tokens (the last interval's slope) above them."""
    x, y = np.log2(known_tokens), np.log2(known_us)
    q = np.log2(np.clip(tokens, known_tokens[0], known_tokens[-1]))
    inside = np.exp2(np.interp(q, x, y))
    if len(known_tokens) < 2:
        return inside
    slope = max((known_us[-1] - known_us[-2]) / (known_tokens[-1] - known_tokens[-2]), 0.0)
    beyond = known_us[-1] + slope * (tokens - known_tokens[-1])
    return np.where(tokens > known_tokens[-1], beyond, inside)


def load(folder: Path | None) -> DeepEPLowLatency | None:
    """The measured table in ``folder`` (a framework's calibration folder), or None where it has none."""
    if folder is None or not (Path(folder) / FILE).is_file():
        return None
    import pandas as pd

    df = pd.read_csv(Path(folder) / FILE)
    cols = ["hidden_size", "num_topk", "num_experts", "num_token"] + list(PHASE_COLUMN.values())
    df = df[cols].apply(pd.to_numeric, errors="coerce").dropna()
    df = df[(df[cols] > 0).all(axis=1)]
    curves = {}

    def curve(rows):
        med = rows.groupby("num_token")[list(PHASE_COLUMN.values())].median().sort_index()
        return med.index.to_numpy(float), {p: med[c].to_numpy(float) for p, c in PHASE_COLUMN.items()}

    for (hidden, top_k), g in df.groupby(["hidden_size", "num_topk"]):
        curves[(int(hidden), int(top_k))] = {0: curve(g), **{int(e): curve(ge) for e, ge in g.groupby("num_experts")}}
    return DeepEPLowLatency(curves) if curves else None
