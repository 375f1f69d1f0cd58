"""``helixsim plan``: a decode fleet (hardware, layout, batch, GPUs, cost) for U users at X tokens/s/user, or with
``--isl/--osl`` the whole deployment (prefill and decode pools). Registered on the group by :mod:`helixsim.cli`."""

from __future__ import annotations

import json

import click

from .cli_common import draft_counts, user_errors
from .errors import SpecError
from .precision import DTYPES
from .units import TOKENS


@click.command("plan")
@click.option("--plan", "plan_file", default=None, type=click.Path(dir_okay=False),
              help="plan YAML (flags given as well override its keys)")
@click.option("--model", default=None, help="built-in name, model YAML or Hugging Face config.json")
@click.option("--hardware", multiple=True, help="system to compare (repeat for several)")
@click.option("--context", type=TOKENS, default=None,
              help="KV length per request, tokens (131072, 128k, 128Ki, 1M; a mix: use --plan)")
@click.option("--users", type=int, default=None, help="concurrent users to serve")
@click.option("--min-tokens-per-s-user", type=float, default=None, help="interactivity floor per user")
@click.option("--max-gpus-per-instance", type=int, default=None,
              help="GPU budget of one decode instance [default: the NVLink domain, capped at 64]")
@click.option("--weights", type=click.Choice(DTYPES), default=None,
              help="weight format [default: fp4 where the GPU has FP4, else fp8]")
@click.option("--kv-cache", type=click.Choice(DTYPES), default=None, help="KV-cache format [default: fp8]")
@click.option("--price", type=click.Path(dir_okay=False), default=None,
              help="price YAML, USD per GPU-hour per system [default: built-in illustrative list]")
@click.option("--no-hopb", is_flag=True, default=None, help="turn HOP-B overlap off")
@click.option("--max-batch", type=int, default=None, help="largest batch per instance searched [default: 4096]")
@click.option("--no-sensitivity", is_flag=True, default=None, help="skip the sensitivity re-plans")
@click.option("--mtp", "mtp_drafts", default=None,
              help="MTP draft tokens to search, comma-separated (0,1,3; DeepSeek-R1's acceptance) [default: 0]")
@click.option("--calibration", type=click.Path(), default=None, help="calibration file to use")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="write report.md and a self-contained report.html here")
@click.option("--json", "as_json", is_flag=True, help="print the recommendation as JSON")
@click.option("--isl", type=TOKENS, default=None,
              help="input (prompt) tokens: plan the whole deployment, prefill and decode pools (with --osl)")
@click.option("--osl", type=TOKENS, default=None, help="output tokens per request, e.g. 8192 or 8k (with --isl)")
@click.option("--max-ttft-s", type=float, default=None, help="time-to-first-token limit, seconds (with --isl)")
@user_errors
def plan_cmd(plan_file, model, hardware, context, users, min_tokens_per_s_user, max_gpus_per_instance, weights,
             kv_cache, price, no_hopb, max_batch, no_sensitivity, mtp_drafts, calibration, out_dir, as_json, isl, osl,
             max_ttft_s) -> None:
    """Plan a decode fleet: hardware, layout, batch, GPUs and cost per million tokens for U users at X tok/s.

    With --isl/--osl: size the whole deployment (prefill and decode pools, disaggregated against
    aggregated serving, TTFT under --max-ttft-s); --context stays decode-only planning."""
    from dataclasses import replace as _replace
    from pathlib import Path

    from .outputs import check_out_dir, mapped, staged_output
    from .plan import PlanSpec, load_plan_file, plan_from_spec

    if out_dir:
        check_out_dir(Path(out_dir))  # an unwritable --out is refused before the planning work
    from .planning.deployment_spec import is_deployment_file

    if isl is not None or osl is not None or max_ttft_s is not None or (plan_file and is_deployment_file(plan_file)):
        from .planning.deployment_cli import run_deployment
        from .sweep import prepare_out_dir

        out = prepare_out_dir(Path(out_dir)) if out_dir else None
        run_deployment(plan_file, model, hardware, context, users, min_tokens_per_s_user, max_gpus_per_instance,
                       weights, kv_cache, price, max_batch, calibration, out, as_json, isl, osl, max_ttft_s)
        return
    flags = {"model": model, "hardware": tuple(hardware) or None, "context": context, "users": users,
             "min_tokens_per_s_user": min_tokens_per_s_user, "max_gpus_per_instance": max_gpus_per_instance,
             "weights": weights, "kv_cache": kv_cache, "price": price, "max_batch": max_batch,
             "hopb": False if no_hopb else None, "sensitivity": False if no_sensitivity else None,
             "mtp": None if mtp_drafts is None else draft_counts(mtp_drafts)}
    given = {k: v for k, v in flags.items() if v is not None}
    if plan_file:
        spec, source = load_plan_file(plan_file), str(plan_file)
        if "context" in given:
            given["context_mix"] = None
        spec = _replace(spec, **given)
    else:
        source = "command line"
        for key, flag in (("model", "--model"), ("hardware", "--hardware"), ("context", "--context"),
                          ("users", "--users"), ("min_tokens_per_s_user", "--min-tokens-per-s-user")):
            if key not in given:
                raise SpecError("command line", flag, "required (or give --plan FILE)")
        spec = PlanSpec(**given)
    result = plan_from_spec(spec, source, calibration=calibration)
    from .trained_window import echo_warnings

    written = []
    if out_dir:
        from .report import write_report

        with staged_output(Path(out_dir)) as stage:
            written = [mapped(p, stage, Path(out_dir)) for p in write_report(result, stage)]
    echo_warnings(result.warnings)  # once the report is written (a failed run prints its one error line only)
    if as_json:
        click.echo(json.dumps(result.recommendation(), indent=2))
        for p in written:
            click.echo(f"wrote {p}", err=True)
        return
    from .report import recommendation_text

    click.echo(recommendation_text(result).replace("**", ""))
    for h in result.per_hardware:
        if h.meets_floor:
            c = h.main_pool.choice.config
            cost = "cost unavailable (no price)" if h.cost_per_m_tokens is None else f"${h.cost_per_m_tokens:,.2f}/M tokens"
            mix = len(h.pools) > 1
            click.echo(f"  {h.hardware:<14} {c.strategy:<6} {c.label:<16} batch {c.batch:<5} x{h.instances:<5} "
                       f"{h.total_gpus:>6,} GPUs used {h.billed_gpus:>6,} billed  {h.tokens_per_s_user:7.1f} tok/s/user  "
                       + (f"{h.fleet_tokens_per_s_gpu:8.1f} tok/s/GPU (fleet)" if mix else f"{c.tokens_per_s_gpu:8.1f} tok/s/GPU")
                       + f"  {cost}"
                       + (f"  ({len(h.pools)} context pools; layout of the largest shown)" if mix else ""))
        else:
            c = next((p.closest for p in h.pools if not p.meets_floor and p.closest), None)
            click.echo(f"  {h.hardware:<14} misses the floor; closest achievable "
                       + (f"{c.tokens_per_s_user:.1f} tok/s/user ({c.strategy} {c.label}, batch {c.batch})" if c
                          else f"(nothing fits in memory on up to {h.max_gpus_per_instance} GPUs per instance)"))
    for p in written:
        click.echo(f"wrote {p}")
