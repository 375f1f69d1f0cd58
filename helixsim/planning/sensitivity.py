"""Sensitivity: the scenarios re-planned with one input changed, and one row per scenario."""

from __future__ import annotations

from .results import HardwarePlan, SensitivityRow, cheapest

SENSITIVITY = (
    ("context x2", "every context doubled", {"context": 2.0}),
    ("context x0.5", "every context halved", {"context": 0.5}),
    ("users x2", "twice the concurrent users", {"users": 2.0}),
    ("floor +25%", "interactivity floor raised by 25 %", {"floor": 1.25}),
    ("floor -25%", "interactivity floor lowered by 25 %", {"floor": 0.75}),
)


def _sensitivity_row(name: str, change: str, per_hw: list[HardwarePlan]) -> SensitivityRow:
    w = cheapest(per_hw)
    return SensitivityRow(
        scenario=name, change=change,
        cost_per_m_tokens={h.hardware: h.cost_per_m_tokens for h in per_hw},
        total_gpus={h.hardware: h.billed_gpus for h in per_hw},
        winner=w.hardware if w else None,
        winner_strategy=w.main_pool.choice.config.strategy if w else None,
        winner_label=w.main_pool.choice.config.label if w else None,
        winner_batch=w.main_pool.choice.config.batch if w else None,
    )

