"""``helixsim`` command line: a thin shell over :mod:`helixsim.api`.

Every user error ends as one line on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys

import click

from . import __version__
from .backends import BACKENDS
from .cli_common import Interrupted, Terminated, precision_from, precision_options, user_errors
from .errors import SpecError
from .layout import STRATEGIES, Layout, infer_ffn_widths
from .safe_io import short
from .specs.registry import builtin_names, load_hardware, load_model
from .units import TOKENS


@click.group()
@click.version_option(__version__, prog_name="helixsim")
def main() -> None:
    """Analytical roofline and Pareto simulator for LLM decode (Helix parallelism)."""


@main.command("list")
@user_errors
def list_cmd() -> None:
    """Show the built-in hardware systems and models."""
    click.echo("hardware:")
    for name in builtin_names("hardware"):
        hw = load_hardware(name)
        click.echo(f"  {name:<14} {hw.description}")
    click.echo("models:")
    for name in builtin_names("models"):
        m = load_model(name)
        click.echo(f"  {name:<16} {m.attention.type.upper():<4} {'MoE' if m.ffn.moe else 'dense':<6}"
                   f" {m.total_params() / 1e9:7.1f}B total, {m.active_params() / 1e9:6.1f}B active  ({m.hf_id})")




@main.command()
@click.option("--model", required=True, help="built-in name, model YAML or Hugging Face config.json")
@click.option("--hardware", required=True, help="built-in name or hardware YAML")
@click.option("--strategy", required=True, type=click.Choice(STRATEGIES))
@click.option("--kvp", type=int, default=1, show_default=True, help="KV (sequence) parallel width")
@click.option("--tpa", type=int, default=1, show_default=True, help="attention tensor-parallel width")
@click.option("--dp", type=int, default=1, show_default=True, help="attention data-parallel width (strategy ep)")
@click.option("--tpf", type=int, default=None,
              help="FFN tensor-parallel width [default: what the layout rule tpf x ep = kvp x tpa x dp leaves]")
@click.option("--ep", type=int, default=None,
              help="expert-parallel width [default: 1, or kvp x tpa x dp / tpf; strategy ep: kvp x tpa x dp]")
@click.option("--pp", type=int, default=1, show_default=True, help="pipeline stages")
@click.option("--batch", type=int, required=True, help="concurrent requests in the decode instance")
@click.option("--context", type=TOKENS, required=True, help="KV length per request, tokens (131072, 128k, 128Ki, 1M)")
@click.option("--no-hopb", is_flag=True, help="turn HOP-B overlap off")
@click.option("--ideal", is_flag=True, help="textbook roofline: peaks, no efficiencies, floors or overheads")
@click.option("--calibration", type=click.Path(dir_okay=True), default=None, help="calibration file to use")
@click.option("--backend", type=click.Choice(BACKENDS), default="trtllm", show_default=True,
              help="serving framework whose measured kernels price the step (falls back to trtllm's)")
@click.option("--mtp", type=int, default=0, show_default=True,
              help="MTP speculative decoding: draft tokens per request and step")
@click.option("--mtp-acceptance", default=None,
              help="comma-separated per-position acceptance rates [default: DeepSeek-R1's, helixsim/cost/mtp.py]")
@click.option("--two-batch-overlap", is_flag=True,
              help="ep layouts: two micro-batches, one's all-to-alls hidden behind the other's compute")
@click.option("--eplb", is_flag=True,
              help="MoE routed as after expert load balancing (measured for TensorRT-LLM's wide-EP kernel)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@precision_options
@user_errors
def point(model, hardware, strategy, kvp, tpa, dp, tpf, ep, pp, batch, context, no_hopb, ideal, calibration,
          backend, mtp, mtp_acceptance, two_batch_overlap, eplb, as_json, **kw) -> None:
    """Simulate one decode step of one configuration."""
    from .api import simulate_point

    tpf, ep = infer_ffn_widths(strategy, kvp * tpa * dp, tpf, ep)
    layout = Layout(strategy, kvp=kvp, tpa=tpa, dp=dp, tpf=tpf, ep=ep, pp=pp, hopb=not no_hopb)
    acceptance = None if mtp_acceptance is None else mtp_acceptance.split(",")
    prec = precision_from(kw, backend, load_hardware(hardware), model)
    result = simulate_point(model, hardware, layout, batch, context, prec, ideal=ideal,
                            calibration=calibration, backend=backend, mtp=mtp, acceptance=acceptance,
                            two_batch_overlap=two_batch_overlap, eplb=eplb)
    from .trained_window import warn_for

    warnings = warn_for(model, [context])
    if as_json:
        click.echo(json.dumps({**result.to_json_dict(), "warnings": warnings}, indent=2))
        return
    click.echo(f"{result.model} on {result.hardware}, {result.strategy} {layout.label()} "
               f"({result.n_gpus} GPUs), batch {result.batch}, context {result.context:,}")
    click.echo(f"  precision: weights {prec.weights}, KV cache {prec.kv_cache}, activations {prec.activations}")
    click.echo(f"  TTL {result.ttl_ms:.3f} ms   {result.tokens_per_s_user:.1f} tok/s/user   "
               f"{result.tokens_per_s_gpu:.2f} tok/s/GPU"
               + (f"   (MTP {mtp}: {result.mtp['accepted_tokens_per_step']:.2f} tokens per step)" if mtp else ""))
    click.echo(f"  80 % interval {result.ttl_ms_lo:.3f}-{result.ttl_ms_hi:.3f} ms, "
               f"{100 * result.extrapolated_fraction:.0f} % of the step priced outside the measured kernel domain")
    click.echo(f"  memory {result.memory_per_gpu_gb:.1f} GB/GPU, largest batch that fits {result.max_batch}"
               + ("" if result.feasible else f"   INFEASIBLE: {result.infeasible_reason}"))
    for key, value in result.breakdown_ms.items():
        share = 100.0 * value / result.ttl_ms if result.ttl_ms else 0.0
        click.echo(f"    {key:<10} {value:10.4f} ms  {share:5.1f} %  {result.kernel_model.get(key, '')}")


class _Progress:
    """A progress bar on stderr once a sweep has ``threshold`` steps or more (quiet otherwise)."""

    def __init__(self, label: str, threshold: int = 300_000):
        self.label, self.threshold, self.bar, self.done = label, threshold, None, 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None and total >= self.threshold:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        if self.bar is not None:
            self.bar.update(done - self.done)
            self.done = done
            if done >= total:
                self.bar.__exit__(None, None, None)
                self.bar, self.done = None, 0


@main.command()
@click.argument("sweep_file")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--calibration", type=click.Path(), default=None, help="calibration file to use")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True,
              help="table format (provenance: Parquet metadata and provenance.json)")
@click.option("--workers", type=click.IntRange(min=1, max=1024), default=1, show_default=True,
              help="local processes pricing chunks (same tables, byte for byte, whatever the number)")
@click.option("--scheduler", default=None, help="address of a Dask distributed scheduler (tcp://host:8786)")
@user_errors
def sweep(sweep_file, out_dir, calibration, fmt, workers, scheduler) -> None:
    """Run a sweep (built-in name or YAML path): full table, frontiers and plots into --out."""
    from pathlib import Path

    from .outputs import mapped, staged_output
    from .sweep import load_sweep, stream_sweep

    spec, path = load_sweep(sweep_file)
    out, lines = Path(out_dir), []
    with staged_output(out) as stage:  # the whole set appears at the end, or nothing does
        for res, written in stream_sweep(spec, path, stage, fmt, calibration, workers, scheduler,
                                         progress=_Progress(f"pricing {spec.name}", threshold=20)):
            lines.append(f"{res.model}: {res.configurations:,} configurations ({res.feasible:,} fit in memory) "
                         f"in {res.seconds:.2f} s")
            for (hw_name, ctx), fronts in res.facets.items():
                for name, fr in fronts.items():
                    lines.append(f"  {hw_name} {ctx:>9,}  {name:<16} frontier {len(fr):3d} points, max "
                                 f"{fr['tokens_per_s_user'].max():8.1f} tok/s/user, max "
                                 f"{fr['tokens_per_s_gpu'].max():8.2f} tok/s/GPU")
            lines += [f"  wrote {mapped(p, stage, out)}" for p in written]
    click.echo("\n".join(lines))
    from .trained_window import warn_for

    for m in spec.models:  # once the run has succeeded (a failed run prints its one error line only)
        warn_for(m, spec.contexts)


@main.command()
@click.option("--model", default=None, help="model to draw (default: the paper's Figure 1 set-up)")
@click.option("--hardware", default="gb200-nvl72", show_default=True)
@click.option("--preset", type=click.Choice(["paper", "blog"]), default="paper", show_default=True,
              help="paper Figure 1 (GQA, FP4) or TensorRT-LLM blog Figure 1 (MLA, FP8); ignored with --model")
@click.option("--batch", type=click.IntRange(min=1, max=10**15), default=8, show_default=True)
@click.option("--context", type=TOKENS, default=1_000_000, show_default=True,
              help="KV length per request, tokens (131072, 128k, 128Ki, 1M)")
@click.option("--bytes-param", type=click.FloatRange(min=0, min_open=True, max=64), default=0.5, show_default=True,
              help="bytes per weight and KV element (with --model)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@user_errors
def roofline(model, hardware, preset, batch, context, bytes_param, out_dir) -> None:
    """Draw the three DRAM-read panels of the paper's Figure 1 for any model and hardware."""
    from pathlib import Path

    from .plots import plot_roofline
    from .roofline import RooflineSetup, figure1_panels
    from .outputs import mapped, staged_output
    from .sweep import atomic_write_text

    if not bytes_param == bytes_param:  # click's FloatRange lets NaN through
        raise SpecError("--bytes-param", "", "must be a number in (0, 64], got nan")
    final = Path(out_dir)
    if model:
        setup = RooflineSetup.from_model(load_model(model), load_hardware(hardware), batch, context, bytes_param)
        # not Path.stem: Path("llama-3.1-70b").stem is "llama-3", the same as llama-3.1-405b's
        tags = [Path(n).name.removesuffix(".json").removesuffix(".config").removesuffix(".yaml").removesuffix(".yml")
                for n in (model, hardware)]
        stem = f"roofline-{tags[0]}-{tags[1]}"
    else:
        setup = RooflineSetup.paper_fig1() if preset == "paper" else RooflineSetup.blog_fig1()
        stem = f"{preset}-fig1-roofline"
    panels = figure1_panels(setup)
    written = []
    with staged_output(final) as out:
        for name, frame in panels.items():
            atomic_write_text(out / f"{stem}-{name}.csv", frame.to_csv(index=False, float_format="%.6g"))
            written.append(out / f"{stem}-{name}.csv")
        written += plot_roofline(panels, setup, out / stem)
        written = [mapped(p, out, final) for p in written]
    for p in written:
        click.echo(f"wrote {p}")


@main.command()
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="write tables and figures here")
@click.option("--json", "as_json", is_flag=True, help="print the simulated metrics as JSON")
@click.option("--calibration", type=click.Path(), default=None,
              help="calibration directory; 'none' for the uncalibrated roofline with default efficiencies")
@click.option("--ideal", is_flag=True, help="textbook roofline: peaks, no efficiencies, floors or overheads")
@user_errors
def reproduce(out_dir, as_json, calibration, ideal) -> None:
    """Run the Helix paper's studies and print paper claim vs simulated value."""
    from pathlib import Path

    from .reproduce import claims_table, reproduce as run_reproduction
    from .outputs import mapped, staged_output
    from .sweep import atomic_write_text

    paths = []
    with staged_output(Path(out_dir)) if out_dir else contextlib.nullcontext() as out:
        rep = run_reproduction(out, calibration=calibration, ideal=ideal or None)
        if out is not None:
            atomic_write_text(out / "reproduce.json", json.dumps(rep.metrics, indent=2) + "\n")
            atomic_write_text(out / "reproduce.md", claims_table(rep) + "\n")
            paths = [mapped(p, out, Path(out_dir)) for p in rep.paths]
    if as_json:
        click.echo(json.dumps(rep.metrics, indent=2))
        return
    click.echo(claims_table(rep))
    for p in paths:
        click.echo(f"wrote {p}")


@main.command()
@click.option("--e2e", "e2e_file", type=click.Path(dir_okay=False), default=None,
              help="CSV of measured serving runs (decode TPOT) to predict")
@click.option("--kernels", "kernels_dir", type=click.Path(file_okay=False), default=None,
              help="directory of measured kernel tables (<family>.csv.gz) to predict")
@click.option("--hardware", default=None, help="system of the --kernels data")
@click.option("--ideal", is_flag=True, help="predict with the textbook roofline instead")
@click.option("--calibration", type=click.Path(), default=None)
@click.option("--dp-batch", type=click.Choice(["rank", "instance"]), default="rank", show_default=True,
              help="--e2e: whether decode_batch counts requests per attention-DP rank or per instance")
@click.option("--json", "as_json", is_flag=True, help="print the error summary as JSON")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="write per-row predictions (CSV)")
@user_errors
def validate(e2e_file, kernels_dir, hardware, ideal, calibration, dp_batch, as_json, out_file) -> None:
    """Predict measured kernels (--kernels) or serving runs (--e2e) and report the error."""
    from pathlib import Path

    from .sweep import atomic_write_text

    if bool(e2e_file) == bool(kernels_dir):
        raise SpecError("command line", "--e2e/--kernels", "give exactly one of --e2e FILE or --kernels DIR")
    if out_file and not Path(out_file).parent.is_dir():  # refused before the predictions, not after
        raise SpecError(short(out_file, 200), "--out", "its folder does not exist")
    if e2e_file:
        from .validation import validate_e2e

        result = validate_e2e(Path(e2e_file), ideal=ideal, calibration=calibration, dp_batch=dp_batch)
        rows, summary = result.rows, result.summary
    else:
        if not hardware:
            raise SpecError("command line", "--hardware", "required with --kernels")
        from .calibration.validate import kernel_error_report, kernel_predictions

        from .api import kernels_for

        k = kernels_for(load_hardware(hardware), ideal, calibration)
        summary = kernel_error_report(Path(kernels_dir), k)
        rows = kernel_predictions(Path(kernels_dir), k) if out_file else None
    if out_file and rows is not None:
        from .outputs import staged_output

        target = Path(out_file)
        if not target.parent.is_dir():
            raise SpecError(short(out_file, 200), "--out", "its folder does not exist")
        with staged_output(target.parent) as stage:  # the table and its plot appear together
            atomic_write_text(stage / target.name, rows.to_csv(index=False, float_format="%.6g"))
            if e2e_file:
                from .plots import plot_predicted_vs_measured

                ok = rows["predicted_tpot_ms"].notna()
                plot_predicted_vs_measured(rows.loc[ok, "measured_tpot_ms"], rows.loc[ok, "predicted_tpot_ms"],
                                           stage / target.stem, "Decode time per output token",
                                           groups=rows.loc[ok, "model" if "model" in rows else "system"])
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(_error_table(summary))


def _error_table(summary: dict) -> str:
    """Absolute percentage errors as an aligned text table."""
    lines = [f"{'group':<28} {'n':>5} {'median %':>9} {'mean %':>9} {'p90 %':>9}"]

    def add(name, s):
        if s.get("n"):
            lines.append(f"{name:<28} {s['n']:>5} {s['median_ape']:>9.1f} {s['mean_ape']:>9.1f} {s['p90_ape']:>9.1f}")

    if "overall" in summary:
        add("overall", summary["overall"])
        for section in ("by_model", "by_system", "by_backend", "by_tier"):
            for name, s in summary.get(section, {}).items():
                add(f"{section[3:]}: {name}", s)
        if summary.get("ttft"):
            add("TTFT, concurrency <= 4", summary["ttft"])
        for item in summary.get("skipped", []):
            lines.append(f"skipped row {item['row']}: {item['reason']}")
    else:
        for name, s in summary.items():
            add(name, s)
    return "\n".join(lines)




from .cli_calibrate import bench, calibrate  # noqa: E402 - commands in their own modules
from .cli_plan import plan_cmd  # noqa: E402
from .cli_prefill import make_prefill_command  # noqa: E402

for _command in (plan_cmd, calibrate, bench):
    main.add_command(_command)

main.add_command(make_prefill_command(user_errors, precision_options, precision_from))


@main.command()
@click.option("--check", is_flag=True, help="only report what differs from the code (exit 1 if anything does)")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="repository whose README.md and docs/ to regenerate [default: this checkout]")
@user_errors
def docs(check, root) -> None:
    """Regenerate every generated part of README.md and docs/ and their figures (helixsim.docgen)."""
    from .docgen import main as docgen_main

    sys.exit(docgen_main((["--check"] if check else []) + (["--root", root] if root else [])))


def _on_sigterm(signum, frame):
    raise Terminated()


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point: click's usage errors become one line and exit 2, too; SIGINT and
    SIGTERM clean up (staged outputs removed) and exit 130 and 143. A closed pipe (``| head``) is left to
    click, which exits 1 without a word."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        main.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort as err:
        if isinstance(err.__cause__ or err.__context__, KeyboardInterrupt):
            click.echo("error: interrupted; outputs of this run were removed", err=True)
            sys.exit(130)
        click.echo("error: aborted", err=True)
        sys.exit(2)
    except (KeyboardInterrupt, Interrupted):
        click.echo("error: interrupted; outputs of this run were removed", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("error: terminated; outputs of this run were removed", err=True)
        sys.exit(143)
    except click.ClickException as err:
        ctx = getattr(err, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        click.echo(f"error: {where}{err.format_message()}".replace("\n", " "), err=True)
        sys.exit(2)
    except SystemExit:
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    run()
