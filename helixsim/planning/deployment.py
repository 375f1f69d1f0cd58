"""Whole-deployment planning: prefill and decode, disaggregated against aggregated serving.

Given input and output lengths (``isl``, ``osl``), ``users`` concurrent users, a floor of
tokens/s/user and a TTFT limit, for each hardware system:

**Disaggregated.** The decode pool is the decode planner's choice at the mean KV length
``isl + osl / 2`` (:func:`helixsim.planning.selection.select`), one instance per ``batch``
users. The prefill pool runs prefill instances of a tp/ep layout times a context-parallel
width (:mod:`helixsim.cost.prefill`); among those whose TTFT (prefill + KV transfer to the
decode instance, :func:`helixsim.serving.kv_transfer_ms`) meets the limit and that fit in HBM,
the one needing the fewest prefill GPUs is taken. Users run in a closed loop, so prompts arrive
at ``rate = users / (TTFT + osl / tokens_per_s_user)`` per second; Little's law alone would
give ``ceil(rate x prefill_s)`` instances, at which the queue grows without bound, so the pool
is the smallest whose mean M/D/c queue wait (:mod:`helixsim.planning.queueing`) keeps the mean
TTFT, wait included, under the limit (sized at the rate without the wait, the highest).

**Aggregated.** Every decode configuration of the same search also prefills its own users'
prompts on its GPUs (a prefill at the same per-GPU sharding: tp over the instance's attention
GPUs), with TPOT and TTFT of :mod:`helixsim.serving` under TensorRT-LLM's scheduler (mixed
prefill/decode passes, overlap scheduling: TTFT = prefill + the running decodes' share of its
passes + 1.5 iterations of wait). The configuration with the most output tokens/s/GPU that meets
the floor, the TTFT limit and HBM is taken.

**Costs.** ``cost_per_m_tokens_prefill`` is the prefill pool's dollars per million *input*
tokens, ``cost_per_m_tokens_decode`` the decode pool's per million *output* tokens (the
input/output split of API prices); ``cost_per_m_output_tokens`` is the whole deployment's
dollars per million output tokens, which decides between disaggregated and aggregated
(aggregated GPU time is split by the share of each iteration spent prefilling).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..api import kernels_for
from ..layout import STRATEGIES, LayoutArrays, valid_mask
from ..prefill import DEFAULT_CHUNK_TOKENS, evaluate_prefill, prefill_calibration
from ..refine import refine_for_floor
from ..search import SearchSpace, search
from ..backends import DEFAULT_BACKEND
from ..serving import (absorbed_decode_ms, aggregated_tpot_ms, kv_transfer_ms, mixed_pass_extra_ms,
                       prefill_ms_per_token, scheduler_for, scheduler_wait_iterations, ttft_ms)
from .queueing import instances_for_wait, mdc_mean_wait_s
from ..ttft_interval import attention_doublings, prefill_attention_top_isl, ttft_interval_ms
from .selection import select

TP, EP = STRATEGIES.index("tp"), STRATEGIES.index("ep")
#: Largest prefill instance searched: cp x layout GPUs (context parallelism may span racks).
MAX_PREFILL_GPUS = 512


@dataclass(frozen=True)
class PoolChoice:
    layout: str
    gpus_per_instance: int
    instances: int
    gpus: int


@dataclass(frozen=True)
class DeploymentOption:
    kind: str                          # "disaggregated" | "aggregated"
    prefill: PoolChoice | None
    decode: PoolChoice
    ttft_s: float
    prefill_s: float
    kv_transfer_s: float
    tokens_per_s_user: float
    prefill_gpus: int
    decode_gpus: int
    total_gpus: int
    pd_ratio: str
    cost_per_m_tokens_prefill: float   # USD per million input tokens
    cost_per_m_tokens_decode: float    # USD per million output tokens
    cost_per_m_output_tokens: float    # whole deployment, USD per million output tokens
    extrapolated: bool
    queue_wait_s: float = 0.0          # mean wait for a prefill instance (disaggregated, M/D/c), in ttft_s
    ttft_s_lo: float = float("nan")    # 80 % interval of ttft_s, with the request path (helixsim/ttft_interval.py)
    ttft_s_hi: float = float("nan")
    tokens_per_s_user_lo: float = float("nan")   # 80 % interval: the decode step's (helixsim.uncertainty)
    tokens_per_s_user_hi: float = float("nan")


def tokens_per_s_user_interval(tps_user: float, row) -> dict:
    """The decode step's 80 % interval carried to tokens/s/user (ttl / ttl_hi .. ttl / ttl_lo of the chosen row)."""
    ttl, lo, hi = (float(row.get(k, float("nan"))) for k in ("ttl_ms", "ttl_ms_lo", "ttl_ms_hi"))
    return {"tokens_per_s_user_lo": tps_user * ttl / hi, "tokens_per_s_user_hi": tps_user * ttl / lo}


def ttft_interval_s(ttft_s: float, attention_ms: float, extrapolated: bool, isl: int, k, pcal, model,
                    prec) -> tuple[float, float]:
    """80 % interval of a planned TTFT (s): :func:`helixsim.ttft_interval.ttft_interval_ms` for the framework
    the planner prices (TensorRT-LLM), the prefill attention widened where it left the measured lengths."""
    d = attention_doublings(isl, prefill_attention_top_isl(k, pcal, model, prec))
    lo, hi = ttft_interval_ms(np.array([ttft_s * 1e3]), np.array([attention_ms if extrapolated else 0.0]),
                              np.atleast_1d(d), DEFAULT_BACKEND)
    return float(lo[0]) / 1e3, float(hi[0]) / 1e3


def prefill_candidates(model, hw, max_gpus: int = MAX_PREFILL_GPUS) -> tuple[LayoutArrays, np.ndarray]:
    """tp layouts (FFN as tp, or as ep for MoE) on 1..NVLink-domain GPUs (powers of two), times cp."""
    widths = [w for w in (1, 2, 4, 8, 16, 32, 64) if w <= hw.nvlink_domain_gpus]
    rows = []
    for w in widths:
        splits = [(w, 1)] + ([(1, w)] if model.ffn.moe and w > 1 else [])
        for tpf, ep in splits:
            for cp in (1, 2, 4, 8, 16, 32, 64):
                if w * cp <= max_gpus:
                    rows.append((TP, 1, w, 1, tpf, ep, 1, False, cp))
    arr = np.array(rows, dtype=np.int64)
    lay = LayoutArrays(*(arr[:, i] for i in range(7)), hopb=arr[:, 7].astype(bool))
    ok = valid_mask(lay, model)
    return LayoutArrays(*(getattr(lay, f)[ok] for f in LayoutArrays.__dataclass_fields__)), arr[ok, 8]


def _label(a: LayoutArrays, i: int, cp: int | None = None) -> str:
    text = (f"{STRATEGIES[int(a.strategy[i])]} {a.kvp[i]}x{a.tpa[i]}x{a.dp[i]}={a.tpf[i]}x{a.ep[i]}"
            + (f" pp{a.pp[i]}" if a.pp[i] > 1 else ""))
    return text + (f" x cp{cp}" if cp and cp > 1 else "")


def _ratio(p: int, d: int) -> str:
    g = math.gcd(p, d) or 1
    return f"{p // g}:{d // g}"


def plan_disaggregated(model, hw, prec, table, lengths, users: int, floor: float, max_ttft_s: float,
                       price: float, calibration=None) -> DeploymentOption | None:
    """``lengths``: (isl, osl, share of the users) classes; one class is the plain --isl/--osl plan."""
    row = select(table, floor)
    if row is None:
        return None
    k = kernels_for(hw, False, calibration)
    pcal = prefill_calibration(hw, False, calibration)
    dec = LayoutArrays(np.array([STRATEGIES.index(row["strategy"])]),
                       *(np.array([int(row[f])]) for f in ("kvp", "tpa", "dp", "tpf", "ep", "pp")),
                       np.array([bool(row["hopb"])]))
    dec_gpus, batch, tps_user = int(row["n_gpus"]), int(row["batch"]), float(row["tokens_per_s_user"])
    lay, cp = prefill_candidates(model, hw)
    isl = np.array([c[0] for c in lengths], float)[:, None]
    osl = np.array([c[1] for c in lengths], float)[:, None]
    share = np.array([c[2] for c in lengths], float)[:, None] / sum(c[2] for c in lengths)
    per_class = [evaluate_prefill(model, hw, lay, int(n), 1, DEFAULT_CHUNK_TOKENS, cp, prec, k, pcal) for n in isl[:, 0]]
    n_pf = per_class[0]["n_gpus"]
    same = n_pf + dec_gpus <= hw.nvlink_domain_gpus
    pf = np.stack([r["ttft_ms"] for r in per_class]) / 1e3                            # [classes, candidates] s
    xfer = np.stack([kv_transfer_ms(k, model, dec, n_pf, int(n), prec, same) for n in isl[:, 0]]) / 1e3
    ttft0 = pf + xfer
    worst = ttft0.max(axis=0)
    ok = np.logical_and.reduce([r["feasible"] for r in per_class]) & (worst <= max_ttft_s)
    if not ok.any():
        return None
    # prompts per second per class, closed loop, at the TTFT without queueing (the highest rate: sizes
    # conservatively); the pool serves the classes' mixture of prefill times first come, first served, and
    # is the smallest whose mean M/D/c (M/G/c for a mix) queue wait fits the slack under the limit
    rates = users * share / (ttft0 + osl / tps_user)
    total = rates.sum(axis=0)
    mean_s = (rates * pf).sum(axis=0) / total
    scv = np.maximum((rates * pf ** 2).sum(axis=0) / total / mean_s ** 2 - 1.0, 0.0)
    inst = np.where(ok, instances_for_wait(total, mean_s, np.maximum(max_ttft_s - worst, 0.0), service_scv=scv), -1)
    ok = ok & (inst > 0)
    if not ok.any():
        return None
    cost = np.where(ok, n_pf * inst, np.inf)                      # prefill GPUs
    i = int(np.lexsort((worst, cost))[0])
    p_inst = int(inst[i])
    wait_s = float(mdc_mean_wait_s(p_inst, total[i], mean_s[i], scv[i]))
    run = users * share[:, 0] / (ttft0[:, i] + wait_s + osl[:, 0] / tps_user)   # the rates the deployment runs at
    in_rate, out_rate = float((run * isl[:, 0]).sum()), float((run * osl[:, 0]).sum())
    d_inst = max(1, math.ceil(users / batch))
    p_gpus, d_gpus = p_inst * int(n_pf[i]), d_inst * dec_gpus
    usd_s = price / 3600.0
    j = int(np.argmax(ttft0[:, i]))    # the class whose prompt sets the TTFT
    lo, hi = ttft_interval_s(float(worst[i]) + wait_s, float(per_class[j]["attention"][i]),
                             bool(per_class[j]["extrapolated"][i]), int(isl[j, 0]), k, pcal, model, prec)
    return DeploymentOption(
        kind="disaggregated", ttft_s_lo=lo, ttft_s_hi=hi,
        prefill=PoolChoice(_label(lay, i, int(cp[i])), int(n_pf[i]), p_inst, p_gpus),
        decode=PoolChoice(f"{row['strategy']} {row['label']}", dec_gpus, d_inst, d_gpus),
        ttft_s=float(worst[i]) + wait_s, prefill_s=float(mean_s[i]), kv_transfer_s=float(xfer[:, i].max()),
        tokens_per_s_user=tps_user, queue_wait_s=wait_s, **tokens_per_s_user_interval(tps_user, row),
        prefill_gpus=p_gpus, decode_gpus=d_gpus, total_gpus=p_gpus + d_gpus, pd_ratio=_ratio(p_gpus, d_gpus),
        cost_per_m_tokens_prefill=p_gpus * usd_s / in_rate * 1e6,
        cost_per_m_tokens_decode=d_gpus * usd_s / out_rate * 1e6,
        cost_per_m_output_tokens=(p_gpus + d_gpus) * usd_s / out_rate * 1e6,
        extrapolated=bool(np.logical_or.reduce([r["extrapolated"] for r in per_class])[i]))


def plan_aggregated(model, hw, prec, table, isl: int, osl: int, users: int, floor: float, max_ttft_s: float,
                    price: float, calibration=None) -> DeploymentOption | None:
    t = table[table["feasible"].to_numpy(bool)]
    if t.empty:
        return None
    k = kernels_for(hw, False, calibration)
    pcal = prefill_calibration(hw, False, calibration)
    # the instance prefills a prompt on the GPUs its attention uses: sequence-sharded (helix, medha) or
    # head-sharded (tp) attention as tp over kvp x tpa GPUs, FFN over the same GPUs; under ep the
    # prompt's own DP rank (tpa GPUs) runs its attention and the expert grid its FFN
    is_ep = (t["strategy"] == "ep").to_numpy()
    width = (t["kvp"] * t["tpa"]).to_numpy(np.int64)
    ep_w = t["ep"].to_numpy(np.int64)
    codes = np.stack([np.where(is_ep, EP, TP), width, t["dp"].to_numpy(np.int64),
                      np.where(is_ep, t["tpf"].to_numpy(np.int64), width // ep_w), ep_w,
                      t["pp"].to_numpy(np.int64)], axis=1)
    uniq, inv = np.unique(codes, axis=0, return_inverse=True)
    one = np.ones(len(uniq), np.int64)
    lay = LayoutArrays(uniq[:, 0], one, uniq[:, 1], uniq[:, 2], uniq[:, 3], uniq[:, 4], uniq[:, 5],
                       np.zeros(len(uniq), bool))
    good = valid_mask(lay, model)
    if not good.any():
        return None
    pf = np.full(len(uniq), np.nan)
    extra = np.zeros(len(uniq), bool)
    sub = LayoutArrays(*(getattr(lay, f)[good] for f in LayoutArrays.__dataclass_fields__))
    r = evaluate_prefill(model, hw, sub, isl, 1, DEFAULT_CHUNK_TOKENS, 1, prec, k, pcal)
    lin = np.full(len(uniq), np.nan)
    attn_pf = np.full(len(uniq), np.nan)
    pf[good], extra[good], lin[good] = r["ttft_ms"], r["extrapolated"], r["ttft_ms"] - r["attention"]
    attn_pf[good] = r["attention"]
    prefill_ms = pf[inv.ravel()]
    batch = t["batch"].to_numpy(float)
    per_rank = np.ceil(batch / t["dp"].to_numpy(float))
    # the kernels are TensorRT-LLM's, and so is the scheduler (mixed batches, overlap)
    sched, decode, attn = scheduler_for(DEFAULT_BACKEND), t["ttl_ms"].to_numpy(float), t["attention_ms"].to_numpy(float)
    chunks, per_token = math.ceil(isl / DEFAULT_CHUNK_TOKENS), prefill_ms_per_token(lin[inv.ravel()], isl)
    tpot = aggregated_tpot_ms(decode, prefill_ms, per_rank, osl, chunks,
                              absorbed_decode_ms(decode, attn, sched.mixed_batches, per_rank, per_token))
    ttft = ttft_ms(prefill_ms, tpot, 0.0, scheduler_wait_iterations(sched.overlap),
                   mixed_pass_extra_ms(attn, per_rank, chunks, sched.mixed_batches, per_token))
    tps_user = 1000.0 / tpot
    ok = np.isfinite(tpot) & (tps_user >= floor) & (ttft <= max_ttft_s * 1e3)
    if not ok.any():
        return None
    per_gpu = np.where(ok, batch * tps_user / t["n_gpus"].to_numpy(float), -np.inf)
    i = int(np.argmax(per_gpu))
    row = t.iloc[i]
    n, b = int(row["n_gpus"]), int(row["batch"])
    inst = max(1, math.ceil(users / b))
    gpus = inst * n
    rate = users / (ttft[i] / 1e3 + osl / tps_user[i])
    share = 1.0 - float(t["ttl_ms"].iloc[i]) / float(tpot[i])   # time share of iterations spent prefilling
    usd_s = price / 3600.0
    lo, hi = ttft_interval_s(float(ttft[i]) / 1e3, float(attn_pf[inv.ravel()][i]), bool(extra[inv.ravel()][i]), isl,
                             k, pcal, model, prec)
    return DeploymentOption(
        kind="aggregated", prefill=None, ttft_s_lo=lo, ttft_s_hi=hi, decode=PoolChoice(f"{row['strategy']} {row['label']}", n, inst, gpus),
        ttft_s=float(ttft[i]) / 1e3, prefill_s=float(prefill_ms[i]) / 1e3, kv_transfer_s=0.0,
        tokens_per_s_user=float(tps_user[i]), **tokens_per_s_user_interval(float(tps_user[i]), row), prefill_gpus=0, decode_gpus=gpus, total_gpus=gpus, pd_ratio="shared",
        cost_per_m_tokens_prefill=gpus * share * usd_s / (rate * isl) * 1e6,
        cost_per_m_tokens_decode=gpus * (1.0 - share) * usd_s / (rate * osl) * 1e6,
        cost_per_m_output_tokens=gpus * usd_s / (rate * osl) * 1e6, extrapolated=bool(extra[inv.ravel()][i]))


@dataclass(frozen=True)
class HardwareDeployment:
    hardware: str
    price_per_gpu_hour: float
    disaggregated: DeploymentOption | None
    aggregated: DeploymentOption | None

    @property
    def best(self) -> DeploymentOption | None:
        opts = [o for o in (self.disaggregated, self.aggregated) if o is not None]
        return min(opts, key=lambda o: o.cost_per_m_output_tokens) if opts else None


def decode_context(lengths) -> int:
    """Mean KV length a decoding request sees over a length mix: each class's isl + osl / 2, weighted by
    the decode time it takes (share x osl)."""
    w = sum(c[2] * c[1] for c in lengths)
    return int(round(sum(c[2] * c[1] * (c[0] + c[1] / 2.0) for c in lengths) / w))


def plan_hardware(model, hw, prec, lengths, users: int, floor: float, max_ttft_s: float, price: float,
                  max_gpus: int, strategies=STRATEGIES, max_batch: int = 4096, calibration=None) -> HardwareDeployment:
    """``lengths``: (isl, osl, share) classes. Aggregated serving is planned for a single class only."""
    space = SearchSpace(strategies=tuple(strategies), max_gpus=max_gpus, hopb=(True,),
                        max_batch=int(min(max_batch, users)), contexts=(decode_context(lengths),))
    table = refine_for_floor(model, hw, search(model, hw, space, prec, calibration=calibration), prec, floor,
                             kernels_for(hw, False, calibration))
    rest = (users, floor, max_ttft_s, price, calibration)
    agg = plan_aggregated(model, hw, prec, table, lengths[0][0], lengths[0][1], *rest) if len(lengths) == 1 else None
    return HardwareDeployment(hw.name, price, plan_disaggregated(model, hw, prec, table, lengths, *rest), agg)


def option_dict(o: DeploymentOption | None) -> dict | None:
    return None if o is None else asdict(o)
