"""What every ``helixsim`` command shares: one-line user errors (exit 2), the interrupt signals, and the
precision flags (``--weights``, ``--kv-cache`` ...) with their defaults."""

from __future__ import annotations

import functools
import sys

import click

from .errors import SpecError
from .precision import DTYPES, Precision, default_weights
from .safe_io import short


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) inside a command."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` and staging clean-up runs."""


def user_errors(func):
    """Turn SpecError (and unreadable/unwritable paths) into ``error: ...`` and exit 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            for key in ("out_dir", "out_file", "out"):
                if isinstance(kwargs.get(key), str) and not kwargs[key].strip():
                    raise SpecError("--out", "", "must not be empty (it would write into the working directory)")
            return func(*args, **kwargs)
        except SpecError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except BrokenPipeError:
            raise  # click's main() exits quietly on a closed pipe
        except KeyboardInterrupt:
            raise Interrupted() from None  # past click, which would print a blank line first
        except OSError as err:
            name = short(getattr(err, "filename", None) or "", 200)
            click.echo(f"error: {name}: {err.strerror or err.__class__.__name__}", err=True)
            sys.exit(2)

    return wrapper


def precision_options(func):
    options = [
        click.option("--weights", type=click.Choice(DTYPES), default=None,
                     help="weight format [default: fp4 where the GPU has FP4 tensor cores, else fp8; as plan and sweep]"),
        click.option("--kv-cache", type=click.Choice(DTYPES), default=None,
                     help="KV-cache format [default: the --backend's for the weights: fp8 for trtllm; bf16 for "
                          "sglang and vllm (helixsim/backends.py)]"),
        click.option("--activations", type=click.Choice(DTYPES), default="bf16", show_default=True,
                     help="activation and communication format"),
        click.option("--attention-math", type=click.Choice(DTYPES), default=None,
                     help="attention tensor-core format [default: fp8 for an fp8/fp4 cache, else bf16]"),
        click.option("--dense-weights", type=click.Choice(DTYPES), default=None,
                     help="format of the non-expert linear layers [default: as --weights]"),
        click.option("--attention-weights", type=click.Choice(DTYPES), default=None,
                     help="format of the attention input projections (MLA: q_a/kv_a, q_b, kv_b) [default: as "
                          "--dense-weights; NVIDIA's FP4 DeepSeek-R1 checkpoints: bf16]"),
        click.option("--o-proj-weights", type=click.Choice(DTYPES), default=None,
                     help="format of the attention output projection wo [default: as --dense-weights; "
                          "nvidia/DeepSeek-R1-FP4 (v1): bf16, the -v2 checkpoints: fp4]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def precision_from(kw: dict, backend: str = "trtllm", hw=None, model: str | None = None) -> Precision:
    """The precision of the flags; weights default by :func:`helixsim.precision.default_weights` of ``hw``,
    the KV cache by the framework's default for ``model``'s checkpoint (:func:`helixsim.backends.default_kv_cache`)."""
    from .backends import default_kv_cache

    weights = kw.pop("weights") or (default_weights(hw) if hw is not None else "fp8")
    kv = kw.pop("kv_cache")
    return Precision(weights=weights, kv_cache=kv or default_kv_cache(backend, weights, model), activations=kw.pop("activations"),
                     attention_math=kw.pop("attention_math"), dense_weights=kw.pop("dense_weights"),
                     attention_weights=kw.pop("attention_weights"), o_proj_weights=kw.pop("o_proj_weights"))


def draft_counts(text: str) -> tuple[int, ...]:
    """``--mtp 0,3``: the MTP draft counts a plan searches (0..16 each)."""
    try:
        out = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SpecError("command line", "--mtp", f"expected comma-separated whole numbers, got {text[:40]!r}") from None
    if not all(0 <= n <= 16 for n in out):
        raise SpecError("command line", "--mtp", f"must be 0..16 draft tokens each, got {text[:40]!r}")
    return out
