"""Tests for the HOP-B event schedule (helixsim/reference/hopb.py).

Expected values: paper Fig. 3 ([P §2.1.3]: "25.6 units" without HOP-B, "17 units" with,
i.e. 2 + 7*2 + 1.2 = 17.2). The event schedule checks the cost model's closed form
c + (n-1) max(c, m) + m (helixsim/cost/terms.py, shared/reference/helix_paper.md §3.7).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helixsim.cost.terms import hopb_makespan as hopb_makespan_closed_form
from helixsim.reference.hopb import hopb_schedule, no_overlap_time

FAST = settings(max_examples=40, deadline=None)
durations = st.floats(0, 10, allow_nan=False, allow_infinity=False)


def test_paper_figure_3():
    compute, comm = [2.0] * 8, [1.2] * 8
    sched = hopb_schedule(compute, comm)
    assert sched.makespan == pytest.approx(17.2)
    assert no_overlap_time(compute, comm) == pytest.approx(25.6)
    assert hopb_makespan_closed_form(2.0, 1.2, 8) == pytest.approx(17.2)
    # Request 0's A2A starts as soon as its attention ends, while request 1 computes.
    assert sched.comm_start[0] == pytest.approx(2.0) and sched.compute_start[1] == pytest.approx(2.0)


def test_comm_bound_pipeline():
    # m > c: c + n*m (helix_paper.md §3.7): 1 + 4*3 = 13.
    assert hopb_schedule([1] * 4, [3] * 4).makespan == pytest.approx(13.0)
    assert hopb_makespan_closed_form(1.0, 3.0, 4) == pytest.approx(13.0)


def test_empty_and_mismatched():
    assert hopb_schedule([], []).makespan == 0.0
    assert hopb_makespan_closed_form(2.0, 1.0, 0) == 0.0
    with pytest.raises(ValueError):
        hopb_schedule([1, 2], [1])


@FAST
@given(n=st.integers(1, 64), c=durations, m=durations)
def test_equal_chunks_match_closed_form(n, c, m):
    sched = hopb_schedule(np.full(n, c), np.full(n, m))
    assert sched.makespan == pytest.approx(float(hopb_makespan_closed_form(c, m, n)), rel=1e-9, abs=1e-9)


@FAST
@given(st.lists(st.tuples(durations, durations), min_size=1, max_size=30))
def test_schedule_invariants(chunks):
    compute = np.array([c for c, _ in chunks])
    comm = np.array([m for _, m in chunks])
    s = hopb_schedule(compute, comm)
    eps = 1e-9
    # One compute stream, back to back from 0.
    assert s.compute_start[0] == 0
    np.testing.assert_allclose(s.compute_start[1:], s.compute_end[:-1])
    # Comm waits for its own compute and for the previous comm (one comm stream).
    assert (s.comm_start >= s.compute_end - eps).all()
    assert (s.comm_start[1:] >= s.comm_end[:-1] - eps).all()
    np.testing.assert_allclose(s.comm_end - s.comm_start, comm, atol=eps)
    # Bounds: never worse than no overlap, never better than either stream alone.
    assert s.makespan <= no_overlap_time(compute, comm) + eps
    assert s.makespan >= compute.sum() + comm[-1] - eps
    assert s.makespan >= compute[0] + comm.sum() - eps
