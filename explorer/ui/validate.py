"""Widget values checked on the server, and checkpoint errors turned into messages in the page.

Every number a panel receives (sliders, seeds, steps, indices, strengths, budgets) goes through these,
so NaN, infinities, fractions and out-of-range values get a message naming the widget, whatever client
sent them (Gradio enforces only a slider's own bounds).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..checkpoints import CheckpointError


@contextmanager
def page_errors():
    """Inside a handler: a CheckpointError (its message names the command that rebuilds the
    checkpoint) becomes a gr.Error, shown in the page while the server keeps serving."""
    import gradio as gr

    try:
        yield
    except CheckpointError as err:
        raise gr.Error(str(err)) from err


def number(value, what: str, lo: float | None = None, hi: float | None = None) -> float:
    """A widget value as a float, or a gr.Error naming ``what``: not a number, not finite, or (with
    ``lo``/``hi``) outside [lo, hi], where NaN and inf count as outside."""
    import gradio as gr

    try:
        value = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{what} must be a number, got {value!r}") from None
    if lo is not None and hi is not None:
        if not lo <= value <= hi:
            raise gr.Error(f"{what} must be between {lo:g} and {hi:g}, got {value:g}")
    elif not np.isfinite(value):
        raise gr.Error(f"{what} must be a finite number, got {value}")
    return value


def whole(value, what: str, lo: int, hi: int) -> int:
    """A widget value as an int in [lo, hi], or a gr.Error naming ``what`` (not a number, NaN, a
    fraction, or out of range)."""
    import gradio as gr

    x = number(value, what, lo, hi)
    if x != int(x):
        raise gr.Error(f"{what} must be a whole number between {lo} and {hi}, got {x:g}")
    return int(x)


def valid_seed(value) -> int:
    """A seed widget's value as an int in [0, 2^63), or a gr.Error."""
    import gradio as gr

    try:
        value = int(value)
    except (TypeError, ValueError, OverflowError):
        raise gr.Error("Seed must be a whole number.") from None
    if not 0 <= value < 2 ** 63:
        raise gr.Error("Seed must be between 0 and 2^63 - 1.")
    return value
