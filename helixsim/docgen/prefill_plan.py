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


@generator("prefill-example")
def prefill_example() -> str:
    """One 1M-token DeepSeek-R1 prefill: ``helixsim prefill --model deepseek-r1 --hardware gb200-nvl72
    --strategy tp --tpa 8 --isl 1000000 --cp 8 --weights fp4 --dense-weights fp8``."""
    from ..layout import Layout
    from ..precision import Precision
    from ..prefill import simulate_prefill

    r = simulate_prefill("deepseek-r1", "gb200-nvl72", Layout("tp", tpa=8, tpf=8), 1_000_000, cp=8,
                         precision=Precision(weights="fp4", dense_weights="fp8"))
    attention_gpu_s = r.breakdown_ms["attention"] / 1e3 * r.n_gpus
    return (f"TTFT {r.ttft_ms / 1e3:.1f} s on {r.n_gpus} GPUs, {100 * r.breakdown_ms['attention'] / r.ttft_ms:.0f} % "
            f"of it causal attention (about {attention_gpu_s:,.0f} GPU-seconds of attention)"
            + (", extrapolated beyond the measured prompt lengths." if r.extrapolated else "."))
