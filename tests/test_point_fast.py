"""The single-point fast path (helixsim.calibration.point and helixsim.fastpoint) prices exactly what
the vectorised path prices.

Reference: the same ``simulate_point`` with every fast path switched off
(``helixsim.calibration.point.vectorised()``), i.e. the vectorised sweep code on arrays of length one.
Every number of the result (step time, interval, breakdown, memory, throughput) must agree to 1e-12
relative; strings and flags exactly. The cases cover MLA, GQA, sliding-window, DSA and linear-attention
models, dense and MoE FFNs, every strategy, pipeline stages, HOP-B on and off, the five systems, the
three serving frameworks, calibrated, roofline and ideal kernel models, MTP, two-batch overlap, EPLB,
batches from one to beyond what fits and contexts inside and beyond the measured KV lengths.
"""

from __future__ import annotations

import math

import pytest

from helixsim.api import simulate_point
from helixsim.calibration import point, point_comm
from helixsim.errors import SpecError
from helixsim.layout import Layout
from helixsim.precision import Precision

FP4 = Precision(weights="fp4", kv_cache="fp4")
FP8 = Precision(weights="fp8", kv_cache="fp8")
BF16 = Precision(weights="bf16", kv_cache="bf16")

# (model, hardware, layout, precision, extra simulate_point arguments)
CASES = [
    ("deepseek-r1", "gb200-nvl72", Layout("helix", kvp=16, tpf=2, ep=8), FP4, {}),
    ("deepseek-r1", "gb200-nvl72", Layout("helix", kvp=8, tpf=1, ep=8, hopb=False), FP4, {"mtp": 3}),
    ("deepseek-r1", "gb200-nvl72", Layout("ep", dp=32, ep=32), FP4, {"two_batch_overlap": True, "eplb": True}),
    ("deepseek-r1", "gb300-nvl72", Layout("medha-ep", kvp=4, tpa=1, tpf=1, ep=4), FP4, {}),
    ("deepseek-r1", "b200-hgx", Layout("ep", dp=8, ep=8), FP8, {"backend": "sglang", "mtp": 1}),
    ("deepseek-r1", "h200-hgx", Layout("tp", tpa=8, tpf=1, ep=8), FP8, {"backend": "vllm"}),
    ("deepseek-r1", "gb200-nvl72", Layout("tp", tpa=4, tpf=4, pp=2), FP8, {}),
    ("llama-3.1-405b", "gb200-nvl72", Layout("helix", kvp=8, tpa=8, tpf=64), Precision(kv_cache="fp8"), {}),
    ("llama-3.1-405b", "h100-hgx", Layout("tp", tpa=8, tpf=8), FP8, {"backend": "sglang"}),
    ("llama-3.1-70b", "b200-hgx", Layout("medha", kvp=4, tpa=2, tpf=2), BF16, {"backend": "vllm"}),
    ("qwen3-235b-a22b", "gb200-nvl72", Layout("helix", kvp=2, tpa=4, tpf=1, ep=8), FP8, {}),
    ("gpt-oss-120b", "h200-hgx", Layout("ep", dp=4, ep=4), FP4, {"backend": "vllm"}),
    ("deepseek-v3.2", "gb200-nvl72", Layout("helix", kvp=8, tpf=1, ep=8), FP8, {}),
    ("qwen3.5-397b-a17b", "gb300-nvl72", Layout("helix", kvp=4, tpa=2, tpf=1, ep=8), FP8, {}),
    ("mixtral-8x22b", "b200-hgx", Layout("tp", tpa=8, tpf=1, ep=8), FP8, {"mtp": 2}),
    ("gpt-oss-120b", "gb200-nvl72", Layout("helix", kvp=2, tpa=4, tpf=1, ep=8), FP4, {"backend": "sglang"}),
    ("qwen3.5-397b-a17b", "h200-hgx", Layout("tp", tpa=8, tpf=1, ep=8), FP8, {"backend": "vllm", "mtp": 3}),
    ("deepseek-r1", "b200-hgx", Layout("ep", dp=8, ep=8), FP4, {"backend": "sglang", "eplb": True, "mtp": 3}),
]
BATCHES = (1, 6, 64, 1024)
CONTEXTS = (1_000, 300_000, 4_000_000)
KERNELS = ({}, {"calibration": "none"}, {"ideal": True})


def _flat(d: dict, prefix: str = ""):
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def _points() -> list[dict]:
    out = []
    for model, hw, layout, prec, extra in CASES:
        for i, (batch, context) in enumerate((b, c) for b in BATCHES for c in CONTEXTS):
            kernels = KERNELS[i % len(KERNELS)] if i % 4 == 3 else {}   # mostly calibrated (the slow path)
            try:
                r = simulate_point(model, hw, layout, batch=batch, context=context, precision=prec,
                                   **extra, **kernels)
            except SpecError as err:   # a case the model refuses (e.g. a layout too wide) is not a point
                out.append(("refused", str(err)))
                continue
            out.append(dict(_flat(r.to_json_dict())))
    return out


@pytest.fixture(scope="module")
def both():
    with point.vectorised():
        reference = _points()
    return reference, _points()


def test_fast_point_equals_vectorised_path(both):
    reference, fast = both
    assert len(reference) == len(fast) == len(CASES) * len(BATCHES) * len(CONTEXTS)
    priced = [r for r in reference if isinstance(r, dict)]
    assert len(priced) >= 0.9 * len(reference)    # the cases are real points, not refusals
    compared = 0
    for ref, got in zip(reference, fast):
        if not isinstance(ref, dict):
            assert got == ref
            continue
        assert got.keys() == ref.keys()
        for key, want in ref.items():
            have = got[key]
            if isinstance(want, float):
                if math.isnan(want):
                    assert math.isnan(have), key
                else:
                    assert have == pytest.approx(want, rel=1e-12, abs=1e-300), (key, ref["model"], ref["batch"])
                compared += 1
            else:
                assert have == want, key
    assert compared > 3000


def test_the_cases_reach_the_calibrated_tables_and_beyond(both):
    """The comparison is not vacuous: calibrated points, roofline points, extrapolated points, infeasible ones."""
    reference, _ = both
    priced = [r for r in reference if isinstance(r, dict)]
    models = {r["kernel_model.attention"] for r in priced}
    assert any(m.startswith("calibration:") for m in models) and "roofline" in models and "ideal" in models
    assert any(r["extrapolated_fraction"] > 0 for r in priced)
    assert any(not r["feasible"] for r in priced) and any(r["feasible"] for r in priced)
    assert {r["backend.name"] for r in priced} == {"trtllm", "sglang", "vllm"}


@pytest.mark.parametrize("mtp, tbo", [(0, False), (2, True)])
def test_a_one_configuration_grid_prices_as_the_vectorised_path(mtp, tbo):
    """A sweep of one configuration laid out on a 2-D grid (layouts x contexts) also takes the one-point
    path (one element, shape (1, 1)); every column equals the vectorised path's."""
    import dataclasses

    import numpy as np

    from helixsim.api import evaluate_columns, kernels_for, resolve_hardware, resolve_model
    from helixsim.layout import LayoutArrays

    model, hw = resolve_model("deepseek-r1"), resolve_hardware("gb200-nvl72")
    flat = LayoutArrays.from_layout(Layout("ep", dp=8, ep=8, pp=2))
    grid = LayoutArrays(**{f.name: getattr(flat, f.name)[:, None] for f in dataclasses.fields(flat)})
    args = (model, hw, grid, np.array([[16]]), np.array([[8192]]), FP8)

    def columns():
        return evaluate_columns(*args, kernels=kernels_for(hw), mtp=mtp, two_batch_overlap=tbo)

    with point.vectorised():
        want = columns()
    got = columns()
    assert got.keys() == want.keys()
    for key in want:
        assert np.shape(got[key]) == np.shape(want[key]) == (1,), key
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=0, err_msg=key)


def test_each_measured_candidate_equals_the_vectorised_one():
    """Below the fastest-kernel choice (where a losing candidate does not show in a step): every measured
    collective and MoE all-to-all candidate of the one-query path equals the vectorised method, inside and
    beyond the measured GPU counts and EP sizes (gb200-nvl72: DeepEP measured at EP 4 only)."""
    import numpy as np

    from helixsim.api import kernels_for, resolve_hardware
    from helixsim.calibration.kernels import NCCL_OPS_INV

    k = kernels_for(resolve_hardware("gb200-nvl72"))
    checked = 0
    for op in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all"):
        for family, cat in k._collective_kernels(op):
            for n in (2.0, 3.0, 8.0, 24.0, 64.0, 72.0):
                for nbytes in (512.0, 3e5, 7e7, 5e9):
                    with point.vectorised():
                        want = k._collective_candidate(family, cat, np.array([n]), np.array([nbytes]))[0]
                    got = point_comm._collective_candidate_one(k, family, cat, n, nbytes, NCCL_OPS_INV)
                    assert got == pytest.approx(want, rel=1e-12, nan_ok=True), (family, cat, n, nbytes)
                    checked += 1
    for family in ("moe_alltoall", "moe_alltoall_nvlink"):
        for cat in k._table(family).categories():
            for ep in (2.0, 4.0, 16.0, 64.0, 72.0):
                for tok in (1.0, 37.0, 3000.0, 1e6):
                    wire = tok * 8 * 7168 * 0.5625
                    with point.vectorised():
                        want = k._a2a_candidate(family, cat, np.array([tok]), 7168, 8, np.array([ep]),
                                                np.array([wire]))[0]
                    got = point_comm._a2a_candidate_one(k, family, cat, tok, 7168, 8, ep, wire)
                    assert got == pytest.approx(want, rel=1e-12, nan_ok=True), (family, cat, ep, tok)
                    checked += 1
    assert checked > 500


def test_each_call_s_excursion_in_floats_equals_the_vectorised_one():
    """The single point's domain check (:func:`helixsim.calibration.domain.excursion_one`, floats) gives, for
    every kernel call of a spread of steps (MLA, GQA, DSA, linear attention, MoE, every collective, DeepEP),
    the roofline flag and the doublings beyond the measured domain of :func:`excursion_doublings`."""
    import numpy as np

    from helixsim.api import kernels_for, resolve_hardware, resolve_model
    from helixsim.calibration.domain import excursion_doublings, excursion_one
    from helixsim.cost.step import decode_step
    from helixsim.layout import LayoutArrays
    from helixsim.uncertainty import KERNEL_METHODS

    calls = []

    class Asking:
        def __init__(self, k):
            self._k = k

        def __getattr__(self, name):
            attr = getattr(self._k, name)
            if name not in KERNEL_METHODS:
                return attr

            def call(*args, **kwargs):
                calls.append((self._k, name, args, kwargs))
                return attr(*args, **kwargs)

            return call

    for model, hw, layout, prec, extra in CASES:
        k = kernels_for(resolve_hardware(hw), backend=extra.get("backend", "trtllm"))
        for batch, context in ((1, 1_000), (64, 4_000_000)):
            decode_step(Asking(k), resolve_model(model), LayoutArrays.from_layout(layout), np.asarray(batch),
                        np.asarray(context), prec, q_len=np.asarray(1 + extra.get("mtp", 0)))
    outside = 0
    for k, name, args, kwargs in calls:
        roof, d = excursion_doublings(k, name, args, kwargs)
        one_roof, one_d = excursion_one(k, name, args, kwargs)
        assert one_roof == bool(np.asarray(roof).item()), (name, args)
        want = float(np.asarray(d).item())
        assert one_d == want or (math.isnan(one_d) and math.isnan(want)), (name, args)
        outside += want > 0
    assert len(calls) > 500 and outside > 20   # calls inside and beyond the measured domain


def test_an_ordered_sum_of_one_element_arrays_equals_the_array_loop():
    """The single point's sum of per-op terms in floats (uncertainty._ordered_sum_one) gives the value, shape
    and dtype of the array loop, bit for bit: zeros skipped, -0.0, NaN, infinities, integers, mixed axes."""
    import numpy as np

    from helixsim.uncertainty import _ordered_sum_arrays, _ordered_sum_one

    rng = np.random.default_rng(14)
    pool = [0.0, -0.0, 1.5, 1e-300, 3e8, np.nan, np.inf, -np.inf, 0.1, 0.2, 0.3]
    checked = 0
    for _ in range(400):
        values = []
        for _ in range(rng.integers(0, 8)):
            ndim = int(rng.integers(1, 3))   # (the array loop takes arrays of at least one axis)
            if rng.random() < 0.15:
                values.append(np.full((1,) * ndim, int(rng.integers(0, 3))))
            else:
                values.append(np.full((1,) * ndim, pool[rng.integers(len(pool))] * rng.choice([1.0, 3.7])))
        with np.errstate(invalid="ignore"):   # (inf - inf)
            want, got = _ordered_sum_arrays(values), _ordered_sum_one(values)
        assert got.shape == want.shape and got.dtype == want.dtype, values
        assert got.tobytes() == want.tobytes() or (np.isnan(want).all() and np.isnan(got).all()), values
        checked += 1
    assert checked == 400


def test_measured_kernel_lists_kept_per_calibration_equal_those_formed_afresh():
    """The lists of measured kernels a call may run (kept per calibration: point.per_calibration) are those
    the methods form afresh, for every framework, routing (EPLB switches it on the same calibration), format
    and op; a changed routing or framework is not served an earlier list."""
    from helixsim.api import kernels_for, resolve_hardware
    from helixsim.calibration.kernels import CalibratedKernels
    from helixsim.cost.wideep import use_eplb_routing

    checked = 0
    for hw in ("gb200-nvl72", "h200-hgx", "b200-hgx"):
        for backend in ("trtllm", "sglang", "vllm"):
            for eplb in (False, True):
                k = kernels_for(resolve_hardware(hw), backend=backend)
                if eplb:
                    use_eplb_routing(k)
                moe = k._table("moe")
                for dtype in ("bf16", "fp8", "fp4"):
                    if moe is not None:
                        for fmt in ("nvfp4", "mxfp4"):
                            fresh = CalibratedKernels._moe_kernels.__wrapped__(k, moe, dtype, fmt)
                            assert k._moe_kernels(moe, dtype, fmt) == tuple(fresh), (hw, backend, eplb, dtype, fmt)
                            checked += 1
                    for phase in ("dispatch", "combine"):
                        fresh = CalibratedKernels._a2a_kernels.__wrapped__(k, phase, dtype)
                        assert k._a2a_kernels(phase, dtype) == tuple(fresh), (hw, backend, phase, dtype)
                        checked += 1
                for op in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p"):
                    assert k._collective_kernels(op) == tuple(CalibratedKernels._collective_kernels.__wrapped__(k, op))
                    checked += 1
    assert checked > 200


def test_points_of_one_configuration_share_priced_kernel_calls():
    """A kernel call priced for one point is found, not priced again, by the next point of the same
    configuration (uncertainty_point.shared_memo: a context sweep at one batch reuses every GEMM, collective
    and MoE price); what the next point returns is still what the vectorised path returns."""
    from helixsim.api import kernels_for, resolve_hardware
    from helixsim.uncertainty import shipped_rule
    from helixsim.uncertainty_point import shared_memo

    layout = Layout("helix", kvp=8, tpf=2, ep=4)

    def one(context):
        return dict(_flat(simulate_point("deepseek-r1", "gb200-nvl72", layout, batch=23, context=context,
                                         precision=FP4).to_json_dict()))

    memo = shared_memo(kernels_for(resolve_hardware("gb200-nvl72")), shipped_rule().per_doubling)
    one(17_000)
    before = len(memo)
    got = one(2_900_000)
    added = len(memo) - before
    assert 0 < added <= 8   # the attention and its KVP combine are new; the rest is found
    with point.vectorised():
        want = one(2_900_000)
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
        else:
            assert got[key] == value, key


def test_corners_in_floats_equal_the_table_s_own():
    """The single point's interpolation corners found in floats (point._corners_floats: the sweeps and weights
    around a query, used for the head counts of an attention envelope) are the table's vectorised
    :meth:`_corners`, bit for bit, for every table of two calibrations, at measured values, between them,
    beyond both edges and where no corner is measured (the nearest sweep)."""
    import numpy as np

    from helixsim.api import kernels_for, resolve_hardware

    rng = np.random.default_rng(14)
    checked = 0
    for hw in ("gb200-nvl72", "h200-hgx"):
        k = kernels_for(resolve_hardware(hw))
        for table in k.calibration.tables.values():
            for cat in table.categories()[:4]:
                group = table._group(tuple(cat))
                for sub in group.subs[:3]:
                    d = len(sub.luniq)
                    lo = np.array([u[0] for u in sub.luniq]) - 2.0
                    hi = np.array([u[-1] for u in sub.luniq]) + 2.0
                    q = rng.uniform(lo, hi, size=(12, d))
                    q[:4] = [[rng.choice(u) for u in sub.luniq] for _ in range(4)]   # on measured values
                    want = table._corners(sub, q)
                    got = point._corners_floats(table, sub, q)
                    assert got[0].dtype == want[0].dtype and got[0].shape == want[0].shape, table.family
                    assert np.array_equal(got[0], want[0]), (table.family, cat)
                    assert got[1].tobytes() == want[1].tobytes(), (table.family, cat)
                    checked += 1
    assert checked > 40
