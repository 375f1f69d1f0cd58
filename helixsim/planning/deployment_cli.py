"""The ``helixsim plan --isl N --osl M`` branch: whole-deployment planning from the command line."""

from __future__ import annotations

import json

import click

from ..errors import SpecError
from . import deployment_report as dr


def run_deployment(plan_file, model, hardware, context, users, floor, max_gpus, weights, kv_cache, price, max_batch,
                   calibration, out, as_json, isl, osl, max_ttft_s) -> None:
    if plan_file:
        raise SpecError("command line", "--plan", "whole-deployment planning (--isl/--osl) takes flags only for now")
    if context is not None:
        raise SpecError("command line", "--context", "--context is decode-only planning; with --isl/--osl leave it out")
    for value, flag in ((model, "--model"), (tuple(hardware) or None, "--hardware"), (users, "--users"),
                        (floor, "--min-tokens-per-s-user"), (isl, "--isl"), (osl, "--osl"),
                        (max_ttft_s, "--max-ttft-s")):
        if value is None:
            raise SpecError("command line", flag, "required for whole-deployment planning (--isl/--osl)")
    plan = dr.plan_deployment(model, tuple(hardware), isl, osl, users, floor, max_ttft_s, prices=price,
                              weights=weights, kv_cache=kv_cache, max_gpus_per_instance=max_gpus,
                              max_batch=max_batch or 4096, calibration=calibration)
    written = dr.write(plan, out) if out is not None else []
    if as_json:
        click.echo(json.dumps(plan.to_json(), indent=2))
        for p in written:
            click.echo(f"wrote {p}", err=True)
        return
    click.echo(dr.text(plan))
    for p in written:
        click.echo(f"wrote {p}")
