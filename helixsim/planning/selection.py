"""Selection: the configuration with the most tokens/s/GPU at the floor, its runner-ups, the searches."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ..precision import Precision
from ..search import SearchSpace, frontiers, search
from ..specs.hardware import HardwareSpec
from ..specs.model import ModelSpec
from .costing import Config, billed_gpus_per_row, deploy
from .inputs import ContextShare
from .results import PoolPlan, RunnerUp


def split_users(users: int, contexts: Sequence[ContextShare]) -> list[int]:
    """Users per context: ceil(users * weight / sum of weights), so no pool is under-provisioned."""
    total = sum(c.weight for c in contexts)
    return [max(1, math.ceil(users * c.weight / total - 1e-9)) for c in contexts]


def _best(rows: pd.DataFrame) -> Optional[pd.Series]:
    """Highest tokens/s/GPU; ties: higher tokens/s/user, then fewer GPUs."""
    if rows.empty:
        return None
    order = np.lexsort((rows["n_gpus"].to_numpy(), -rows["tokens_per_s_user"].to_numpy(),
                        -rows["tokens_per_s_gpu"].to_numpy()))
    return rows.iloc[order[0]]


def _fastest(rows: pd.DataFrame) -> Optional[pd.Series]:
    if rows.empty:
        return None
    order = np.lexsort((-rows["tokens_per_s_gpu"].to_numpy(), -rows["tokens_per_s_user"].to_numpy()))
    return rows.iloc[order[0]]


def select(table: pd.DataFrame, floor: float) -> Optional[pd.Series]:
    """The chosen row: max tokens/s/GPU among feasible rows with tokens/s/user >= floor."""
    ok = table[table["feasible"].to_numpy(bool) & (table["tokens_per_s_user"].to_numpy() >= floor)]
    return _best(ok)


def billed_gpu_s_per_token(table: pd.DataFrame, hw: HardwareSpec, users: int) -> np.ndarray:
    """Billed GPU-seconds per output token of each configuration serving ``users``: the GPUs of the
    whole racks or nodes its ceil(users / batch) instances occupy, over users x tokens/s/user. Cost
    per token is this times the system's price (one price per system), so the smallest is cheapest."""
    return billed_gpus_per_row(table, hw, users) / (int(users) * table["tokens_per_s_user"].to_numpy(float))


def select_billed(table: pd.DataFrame, floor: float, hw: HardwareSpec, users: int) -> Optional[pd.Series]:
    """The cheapest configuration serving ``users`` at the floor, billed in whole racks or nodes:
    least billed GPU-seconds per token among feasible rows with tokens/s/user >= floor; ties: more
    tokens/s/GPU, more tokens/s/user, fewer GPUs."""
    ok = table[table["feasible"].to_numpy(bool) & (table["tokens_per_s_user"].to_numpy() >= floor)]
    if ok.empty:
        return None
    order = np.lexsort((ok["n_gpus"].to_numpy(), -ok["tokens_per_s_user"].to_numpy(),
                        -ok["tokens_per_s_gpu"].to_numpy(), billed_gpu_s_per_token(ok, hw, users)))
    return ok.iloc[order[0]]


def _runner_up(strategy: str, table: pd.DataFrame, floor: float, winner: Config, hw: HardwareSpec,
               users: int, price: Optional[float]) -> RunnerUp:
    sub = table[table["strategy"] == strategy]
    row = select_billed(sub, floor, hw, users)
    if row is None:
        far = _fastest(sub[sub["feasible"].to_numpy(bool)])
        return RunnerUp(strategy, None, Config.from_row(far) if far is not None else None, None, None, None, None)
    cfg = Config.from_row(row)
    mine, theirs = cfg.gpu_ms_per_token(), winner.gpu_ms_per_token()
    excess = {k: mine[k] - theirs[k] for k in mine}
    term = max(excess, key=excess.get)
    lose = excess[term] > 0 and cfg.tokens_per_s_gpu < winner.tokens_per_s_gpu
    return RunnerUp(strategy, cfg, None, winner.tokens_per_s_gpu / cfg.tokens_per_s_gpu,
                    term if lose else None, excess[term] if lose else None,
                    deploy(cfg, hw, users, price).cost_per_m_tokens, billed_cost_ratio(cfg, winner, hw, users))


def billed_cost_ratio(cfg: Config, reference: Config, hw: HardwareSpec, users: int) -> float:
    """``cfg``'s billed cost per token over ``reference``'s on the same system and users (the price
    cancels): their billed GPUs over their tokens/s."""
    a, b = deploy(cfg, hw, users, 1.0), deploy(reference, hw, users, 1.0)
    return a.cost_per_m_tokens / b.cost_per_m_tokens


class _Planner:
    """Runs searches once per (hardware, context, batch cap) and plans pools from them."""

    def __init__(self, model: ModelSpec, strategies: tuple[str, ...], hopb: bool, max_batch: int,
                 calibration=None, mtp: tuple[int, ...] = (0,)):
        self.model = model
        self.mtp = tuple(mtp)
        self.strategies = strategies
        self.hopb = hopb
        self.max_batch = max_batch
        self.calibration = calibration
        self._cache: dict = {}

    def table(self, hw: HardwareSpec, budget: int, context: int, users: int, prec: Precision) -> pd.DataFrame:
        cap = int(min(self.max_batch, users))
        key = (hw.name, budget, context, cap, prec)
        if key not in self._cache:
            space = SearchSpace(strategies=self.strategies, max_gpus=budget, hopb=(self.hopb,), max_batch=cap,
                                contexts=(int(context),), mtp=self.mtp)
            t = search(self.model, hw, space, prec, calibration=self.calibration)
            if "label" not in t.columns:
                t["label"] = pd.Series([], dtype=object)
            self._cache[key] = t
        return self._cache[key]

    def refined(self, hw: HardwareSpec, budget: int, context: int, users: int, prec: Precision,
                floor: float) -> pd.DataFrame:
        """:meth:`table` with the largest batch meeting ``floor`` found between grid batches, and the batches
        where ``users`` need one instance fewer (:func:`helixsim.refine.refine_for_floor`)."""
        key = ("refined", hw.name, budget, context, int(min(self.max_batch, users)), prec, float(floor))
        if key not in self._cache:
            from ..api import kernels_for
            from ..refine import refine_for_floor

            self._cache[key] = refine_for_floor(self.model, hw, self.table(hw, budget, context, users, prec), prec,
                                                floor, kernels_for(hw, False, self.calibration), users=users,
                                                billed_gpus=lambda t: billed_gpus_per_row(t, hw, users))
        return self._cache[key]

    def pool(self, hw: HardwareSpec, budget: int, prec: Precision, share: ContextShare, users: int,
             floor: float, price: Optional[float], detail: bool = True) -> PoolPlan:
        table = self.refined(hw, budget, share.context, users, prec, floor)
        row = select_billed(table, floor, hw, users)
        choice = closest = other = None
        margin = None
        family = ""
        runner_ups: list[RunnerUp] = []
        if row is None:
            far = _fastest(table[table["feasible"].to_numpy(bool)])
            closest = Config.from_row(far) if far is not None else None
        else:
            cfg = Config.from_row(row)
            choice = deploy(cfg, hw, users, price)
            family = "Helix" if cfg.strategy == "helix" else "baseline"
            members = [s for s in self.strategies if s != "helix"] if cfg.strategy == "helix" else ["helix"]
            o = select_billed(table[table["strategy"].isin(members)], floor, hw, users)
            if o is not None:  # the margin in billed cost per token (>= 1: the winner is the cheapest)
                other = Config.from_row(o)
                margin = billed_cost_ratio(other, cfg, hw, users)
            if detail:
                runner_ups = [_runner_up(s, table, floor, cfg, hw, users, price)
                              for s in self.strategies if s != cfg.strategy]
        fr = frontiers(table) if detail and len(table) else {}
        return PoolPlan(context=share.context, weight=share.weight, users=users, n_configurations=len(table),
                        choice=choice, closest=closest, family=family, other_family_best=other,
                        family_margin=margin, runner_ups=runner_ups, table=table, frontiers=fr)

