"""The whole-deployment example of docs/prefill.md: the text report of

    helixsim plan --model deepseek-r1 --hardware gb200-nvl72 --hardware gb300-nvl72 \\
        --isl 1000000 --osl 8192 --users 1024 --min-tokens-per-s-user 50 --max-ttft-s 60

(about 10 s)."""

from __future__ import annotations

from . import generator


@generator("prefill-plan")
def prefill_plan() -> str:
    from ..planning import deployment_report as dr

    plan = dr.plan_deployment("deepseek-r1", ("gb200-nvl72", "gb300-nvl72"), 1_000_000, 8192, 1024, 50.0, 60.0)
    return "```\n" + dr.text(plan) + "\n```"
