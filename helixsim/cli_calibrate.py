"""``helixsim calibrate`` (fit efficiency tables from measured kernels) and ``helixsim bench`` (measure them with
PyTorch). Registered on the group by :mod:`helixsim.cli`."""

from __future__ import annotations

import click

from .cli_common import user_errors
from .errors import SpecError
from .safe_io import short
from .specs.registry import load_hardware


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="measured kernel tables laid out as <dir>/<family>.csv.gz (or <dir>/<system>/...)")
@click.option("--hardware", required=True, help="the system the data were measured on")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="where to write the fitted tables [default: ./calibration-<hardware>]")
@user_errors
def calibrate(data_dir, hardware, out_dir) -> None:
    """Fit per-kernel efficiency tables from measured microbenchmarks (use with --calibration DIR)."""
    from pathlib import Path

    from .calibration.fit import fit_calibration, save_calibration
    from .outputs import staged_output

    hw = load_hardware(hardware)
    if not Path(data_dir).is_dir():
        raise SpecError(short(data_dir, 200), "--data", "not a directory")
    cal = fit_calibration(Path(data_dir), hw)
    out = Path(out_dir or f"calibration-{hw.name}")
    with staged_output(out) as stage:  # no half-written calibration (a 0-byte table, no calibration.json)
        save_calibration(cal, stage)
    click.echo(f"wrote calibration of {hw.name} to {out} (use: --calibration {out})")


@click.command()
@click.argument("kernel", metavar="KERNEL")   # checked by run_bench: helixsim.bench loads only for this command
@click.option("--out", required=True, type=click.Path(),
              help="table to write: DIR/<family>.csv.gz (what calibrate --data DIR reads), or a directory")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default=None, help="[default: cuda if available]")
@click.option("--dtype", "dtypes", multiple=True,
              help="bf16, fp8 (GEMM/MoE math, attention KV cache) or bf16, fp16, int8 (collectives); "
                   "repeat or comma-separate [default: bf16 and fp8; bf16 for moe and collectives]")
@click.option("--shapes", type=click.Choice(["small", "full"]), default=None,
              help="tiny CPU-sized grid or the decode-relevant grid [default: full on cuda, small on cpu]")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="untimed calls per shape")
@click.option("--iters", type=click.IntRange(min=1), default=50, show_default=True,
              help="timed calls per shape (the median is recorded)")
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="replay CUDA graphs of the kernels (no launch gaps)")
@click.option("--append", is_flag=True, help="merge into an existing table (rows with the same shape are replaced)")
@user_errors
def bench(kernel, out, device, dtypes, shapes, warmup, iters, cuda_graphs, append) -> None:
    """Measure KERNEL (gemm, attention, mla_attention, moe, allreduce or alltoall) with PyTorch and write a
    calibration table (needs helixsim[bench]; collectives: torchrun)."""
    from .bench import run_bench

    result = run_bench(kernel, out, device=device, dtypes=dtypes, shapes=shapes, warmup=warmup, iters=iters,
                       cuda_graphs=cuda_graphs, append=append, log=lambda line: click.echo(line, err=True))
    if result is None:   # a torchrun rank other than 0
        return
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {result.path} ({result.rows} rows) and {result.conditions_path}")
