"""The trained-window warning: a context longer than the model's published window is simulated, not refused.

A checkpoint is trained (or rope-scaled) for a maximum context, the Hugging Face config's
``max_position_embeddings`` (DeepSeek-R1: 163,840 tokens). Helix studies deliberately go to
1M tokens and beyond, where the cost model still holds (KV reads grow linearly) but the model's
quality is not established; so the commands say so in one line (stderr, and a ``warnings``
entry in --json) and carry on.
"""

from __future__ import annotations

from typing import Iterable

import click


def trained_window_warnings(model, contexts: Iterable[int]) -> list[str]:
    """One line per model whose ``max_context_tokens`` is below the largest of ``contexts``; empty
    when the model carries no window or every context is within it."""
    window = getattr(model, "max_context_tokens", None)
    if window is None:
        return []
    over = [int(c) for c in contexts if int(c) > window]
    if not over:
        return []
    return [f"context {max(over):,} tokens exceeds {model.name}'s trained window of {window:,} tokens "
            "(max_context_tokens): simulated as asked, but the model is not known to work at this length"]


def echo_warnings(warnings: Iterable[str]) -> None:
    """Print each warning as one ``warning: ...`` line on stderr."""
    for w in warnings:
        click.echo(f"warning: {w}", err=True)


def warn_for(model_ref, contexts: Iterable[int]) -> list[str]:
    """Resolve ``model_ref`` (name, YAML, config.json or spec), print its trained-window warnings on
    stderr and return them (for a ``warnings`` entry in --json)."""
    from .api import resolve_model

    lines = trained_window_warnings(resolve_model(model_ref), contexts)
    echo_warnings(lines)
    return lines
