"""The ``helixsim plan --isl N --osl M`` branch: whole-deployment planning from the command line."""

from __future__ import annotations

import json

import click

from ..errors import SpecError
from . import deployment_report as dr
from . import deployment_spec as ds


def run_deployment(plan_file, model, hardware, context, users, floor, max_gpus, weights, kv_cache, price, max_batch,
                   calibration, out, as_json, isl, osl, max_ttft_s) -> None:
    lengths = None
    if plan_file:
        if isl is not None or osl is not None:
            raise SpecError("command line", "--isl", "with --plan the lengths come from the file's 'lengths'")
        spec = ds.load_deployment_file(plan_file)
        lengths = [(c.isl, c.osl, c.share) for c in spec.lengths]
        model, hardware = model or spec.model, tuple(hardware) or spec.hardware
        users, floor = users if users is not None else spec.users, floor if floor is not None else spec.min_tokens_per_s_user
        max_ttft_s = max_ttft_s if max_ttft_s is not None else spec.max_ttft_s
        weights, kv_cache, price = weights or spec.weights, kv_cache or spec.kv_cache, price or spec.price
        max_gpus, max_batch = max_gpus or spec.max_gpus_per_instance, max_batch or spec.max_batch
        isl = osl = 0     # stand-ins: the classes carry the lengths
    if context is not None:
        raise SpecError("command line", "--context", "--context is decode-only planning; with --isl/--osl leave it out")
    for value, flag in ((model, "--model"), (tuple(hardware) or None, "--hardware"), (users, "--users"),
                        (floor, "--min-tokens-per-s-user"), (isl, "--isl"), (osl, "--osl"),
                        (max_ttft_s, "--max-ttft-s")):
        if value is None:
            raise SpecError("command line", flag, "required for whole-deployment planning (--isl/--osl)")
    plan = dr.plan_deployment(model, tuple(hardware), isl, osl, users, floor, max_ttft_s, prices=price,
                              weights=weights, kv_cache=kv_cache, max_gpus_per_instance=max_gpus,
                              max_batch=max_batch or 4096, calibration=calibration, lengths=lengths)
    written = dr.write(plan, out) if out is not None else []
    from ..trained_window import warn_for

    # a request's KV reaches its prompt plus its output: that is the context the model must hold
    longest = [i + o for i, o, _ in lengths] if lengths else [isl + osl]
    warnings = warn_for(model, longest)     # printed once the plan has succeeded
    if as_json:
        doc = plan.to_json()
        doc["warnings"] = list(doc.get("warnings", [])) + warnings
        click.echo(json.dumps(doc, indent=2))
        for p in written:
            click.echo(f"wrote {p}", err=True)
        return
    click.echo(dr.text(plan))
    for p in written:
        click.echo(f"wrote {p}")
