"""``helixsim prefill``: time to first token of one prefill configuration.

Built by :func:`make_prefill_command` and registered on the CLI group by :mod:`helixsim.cli`
(which passes its shared error handling and precision options, so this module never imports
:mod:`helixsim.cli`, which may be running as ``__main__``).
"""

from __future__ import annotations

import json

import click

from .backends import BACKENDS
from .layout import STRATEGIES, Layout, infer_ffn_widths
from .units import TOKENS

OPTIONS = [
    click.option("--model", required=True, help="built-in name, model YAML or Hugging Face config.json"),
    click.option("--hardware", required=True, help="built-in name or hardware YAML"),
    click.option("--strategy", required=True, type=click.Choice(STRATEGIES),
                 help="layout strategy (prefill runs tp or ep; sequence sharding is --cp)"),
    click.option("--kvp", type=int, default=1, show_default=True, help="must be 1 for prefill (use --cp)"),
    click.option("--tpa", type=int, default=1, show_default=True, help="attention tensor-parallel width"),
    click.option("--dp", type=int, default=1, show_default=True, help="attention data-parallel width (strategy ep)"),
    click.option("--tpf", type=int, default=None,
                 help="FFN tensor-parallel width [default: from the strategy's rule tpf x ep = tpa x dp]"),
    click.option("--ep", type=int, default=None,
                 help="expert-parallel width [default: from the strategy's rule tpf x ep = tpa x dp]"),
    click.option("--pp", type=int, default=1, show_default=True, help="pipeline stages"),
    click.option("--cp", type=int, default=1, show_default=True,
                 help="context-parallel width: the prompt split in cp sequence shards (ring attention, pass-KV)"),
    click.option("--isl", type=TOKENS, required=True, help="prompt (input) length, tokens (8192, 128k, 1M)"),
    click.option("--requests", type=int, default=1, show_default=True, help="prompts prefilled together"),
    click.option("--chunk", type=TOKENS, default=None, help="tokens per forward pass (chunked prefill) [default: 8192]"),
    click.option("--backend", type=click.Choice(BACKENDS), default="trtllm", show_default=True,
                 help="serving framework whose measured kernels (GEMM, MoE, prefill attention) price the prefill"),
    click.option("--ideal", is_flag=True, help="textbook roofline: peaks, no efficiencies, floors or overheads"),
    click.option("--calibration", type=click.Path(dir_okay=True), default=None, help="calibration to use"),
    click.option("--json", "as_json", is_flag=True, help="print one JSON object"),
]


def make_prefill_command(user_errors, precision_options, precision_from) -> click.Command:
    """The ``prefill`` command with the CLI's error handling and precision options."""

    def prefill(model, hardware, strategy, kvp, tpa, dp, tpf, ep, pp, cp, isl, requests, chunk, backend, ideal,
                calibration, as_json, **kw) -> None:
        """Time to first token: prefill of --isl tokens, op by op, with memory per GPU."""
        from .errors import SpecError
        from .prefill import simulate_prefill

        if kvp != 1:
            raise SpecError("command line", "--kvp", "prefill shards the sequence with --cp; --kvp must be 1")
        tpf, ep = infer_ffn_widths(strategy, tpa * dp, tpf, ep)
        layout = Layout(strategy, kvp=1, tpa=tpa, dp=dp, tpf=tpf, ep=ep, pp=pp, hopb=False)
        r = simulate_prefill(model, hardware, layout, isl, cp=cp, requests=requests, chunk=chunk,
                             precision=precision_from(kw, backend), ideal=ideal, calibration=calibration,
                             backend=backend)
        from .trained_window import warn_for

        warnings = warn_for(model, [isl])
        if as_json:
            click.echo(json.dumps({**r.to_json_dict(), "warnings": warnings}, indent=2))
            return
        click.echo(f"{r.model} on {r.hardware}, {r.strategy} {layout.label()} x cp{r.cp} ({r.n_gpus} GPUs), "
                   f"{r.requests} x {r.isl:,} tokens, chunks of {r.chunk_tokens:,}")
        click.echo(f"  TTFT {r.ttft_ms:.2f} ms (80 % interval {r.ttft_ms_lo:.2f}-{r.ttft_ms_hi:.2f})   "
                   f"{r.tokens_per_s_gpu:,.0f} prompt tok/s/GPU   "
                   f"memory {r.memory_per_gpu_gb:.1f} GB/GPU" + ("" if r.feasible else "   DOES NOT FIT"))
        for key, value in r.breakdown_ms.items():
            share = 100.0 * value / r.ttft_ms if r.ttft_ms else 0.0
            click.echo(f"    {key:<10} {value:12.3f} ms  {share:5.1f} %")
        for note in r.notes:
            click.echo(f"  note: {note}")

    func = precision_options(user_errors(prefill))
    for option in reversed(OPTIONS):
        func = option(func)
    return click.command("prefill")(func)
