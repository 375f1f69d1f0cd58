"""HOP-B (Helix Overlap Pipeline - Batch-wise) as an explicit two-stream event schedule.

Source: [P] Bhatia et al., arXiv 2507.07120v1, §2.1.3 and Fig. 3: as soon as attention
for one request finishes, its All-to-All starts while attention for the next request
runs. Without HOP-B, communication and computation execute strictly sequentially
([P §3.3]). Fig. 3: 8 requests x (2 compute + 1.2 comm units): 25.6 units -> "17".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike


class HopbSchedule(NamedTuple):
    """Per-request start/end times on the compute and comm streams, plus the makespan."""

    makespan: float
    compute_start: np.ndarray
    compute_end: np.ndarray
    comm_start: np.ndarray
    comm_end: np.ndarray


def hopb_schedule(compute_units: ArrayLike, comm_units: ArrayLike) -> HopbSchedule:
    """Simulate HOP-B with one compute stream and one communication stream ([P §2.1.3]).

    Request i's compute starts when request i-1's compute ends (back to back from 0).
    Request i's comm starts once its own compute has finished and the comm stream is
    free (request i-1's comm has finished). Makespan = end of the last event.
    """
    compute = np.asarray(compute_units, dtype=np.float64).reshape(-1)
    comm = np.asarray(comm_units, dtype=np.float64).reshape(-1)
    if compute.shape != comm.shape:
        raise ValueError(f"need one comm duration per request: {compute.shape} vs {comm.shape}")
    if (compute < 0).any() or (comm < 0).any():
        raise ValueError("durations must be non-negative")
    n = compute.size
    c_start, c_end = np.zeros(n), np.zeros(n)
    m_start, m_end = np.zeros(n), np.zeros(n)
    compute_free = comm_free = 0.0
    for i in range(n):
        c_start[i] = compute_free
        c_end[i] = compute_free = c_start[i] + compute[i]
        m_start[i] = max(c_end[i], comm_free)
        m_end[i] = comm_free = m_start[i] + comm[i]
    makespan = float(max(compute_free, comm_free))
    return HopbSchedule(makespan, c_start, c_end, m_start, m_end)


def no_overlap_time(compute_units: ArrayLike, comm_units: ArrayLike) -> float:
    """HOP-B off: all compute, then all communication, strictly sequential ([P §3.3])."""
    return float(np.sum(compute_units) + np.sum(comm_units))
