"""The capacity-planning example of README.md and docs/plan.md, and docs/plan-report.png.

All three come from one run of the documented command::

    helixsim plan --model deepseek-r1 --hardware gb200-nvl72 --hardware gb300-nvl72 --hardware b200-hgx \\
        --context 1000000 --users 1024 --min-tokens-per-s-user 50
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from . import figure, generator

ARGS = dict(model="deepseek-r1", hardware=("gb200-nvl72", "gb300-nvl72", "b200-hgx"), context=1_000_000,
            users=1024, min_tokens_per_s_user=50.0)


@lru_cache(maxsize=1)
def example():
    from ..plan import plan

    return plan(ARGS["model"], list(ARGS["hardware"]), ARGS["context"], ARGS["users"], ARGS["min_tokens_per_s_user"])


@generator("plan-example")
def plan_example() -> str:
    """The report's recommendation and side-by-side comparison, as the report writes them."""
    from ..planning.report_blocks import Para
    from ..planning.report_content import _comparison_table, recommendation_text
    from ..planning.report_markdown import to_markdown

    result = example()
    return to_markdown([Para(recommendation_text(result)), _comparison_table(result)])


def _points(frame) -> dict:
    if frame is None or not len(frame):
        return {"tokens_per_s_user": [], "tokens_per_s_gpu": []}
    d = frame.sort_values("tokens_per_s_user")
    return {"tokens_per_s_user": [float(v) for v in d["tokens_per_s_user"]],
            "tokens_per_s_gpu": [float(v) for v in d["tokens_per_s_gpu"]]}


def draw_plan_report(numbers: dict, path: Path) -> None:
    """One panel per system: the Helix and best-baseline frontiers, the floor, the chosen layout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = numbers["systems"]
    fig, axes = plt.subplots(1, len(systems), figsize=(5.2 * len(systems), 4.6), squeeze=False, constrained_layout=True)
    for ax, s in zip(axes[0], systems):
        for name, color, marker in (("Helix", "tab:blue", "o"), ("Best baseline", "tab:orange", "s")):
            f = s["frontiers"][name]
            ax.plot(f["tokens_per_s_user"], f["tokens_per_s_gpu"], color=color, marker=marker, markersize=3,
                    linewidth=1.6, label=f"{name} frontier")
        ax.axvline(numbers["floor"], color="crimson", linestyle="--", linewidth=1.5,
                   label=f"floor {numbers['floor']:g} tok/s/user")
        c = s["chosen"]
        if c is not None:
            ax.scatter([c["tokens_per_s_user"]], [c["tokens_per_s_gpu"]], marker="*", s=260, color="gold",
                       edgecolor="black", zorder=5, label=f"chosen: {c['label']}")
        title = s["hardware"] + (f": ${s['cost_per_m_tokens']:.2f}/M tokens, {s['total_gpus']:,} GPUs"
                                 if s["cost_per_m_tokens"] is not None else ": misses the floor")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("tokens/s/user")
        ax.set_ylabel("tokens/s/GPU")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(numbers["title"], fontsize=11)
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)


@figure("plan-report", "docs/plan-report.png", draw_plan_report)
def plan_report_numbers() -> dict:
    result = example()
    systems = []
    for h in result.per_hardware:
        pool = h.main_pool
        chosen = None
        if pool.choice is not None:
            cfg = pool.choice.config
            chosen = {"label": f"{cfg.strategy} {cfg.label} b{cfg.batch}", "tokens_per_s_user": cfg.tokens_per_s_user,
                      "tokens_per_s_gpu": cfg.tokens_per_s_gpu}
        systems.append({"hardware": h.hardware, "chosen": chosen, "cost_per_m_tokens": h.cost_per_m_tokens,
                        "total_gpus": h.total_gpus,
                        "frontiers": {k: _points(pool.frontiers.get(k)) for k in ("Helix", "Best baseline")}})
    return {"title": f"helixsim plan: {result.model}, {ARGS['users']:,} users, context {ARGS['context']:,}",
            "floor": ARGS["min_tokens_per_s_user"], "systems": systems}
