"""What every panel gives ``build_app``: one shape, so the app loops over panels with no special cases.

A panel module has ``build(store) -> Panel``, called inside its tab. The returned object declares

    opens   events run in order when its tab is selected (fill the panel the first time it is shown)
    loads   events run in order when the page loads (only the first tab needs any)
    warm()  work done once in the app's warm-up thread before the first visitor asks

Each event is ``(fn, inputs, outputs, options)``; options are passed to Gradio's event method
(``api_name=False`` is added: these are page plumbing, not API endpoints).
"""
from __future__ import annotations

import gradio as gr

# KaTeX delimiters for every panel's Markdown: $$...$$ on a line of its own, $...$ inline.
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


class Panel:
    opens: list = []
    loads: list = []

    def warm(self) -> None:
        """Prepare what the panel shows first (nothing by default)."""


def chain(trigger, events) -> None:
    """Wire ``events`` to run one after another after ``trigger`` (e.g. ``tab.select``, ``demo.load``)."""
    if not events:
        return
    fn, inputs, outputs, opts = events[0]
    event = trigger(fn, inputs, outputs, api_name=False, **opts)
    for fn, inputs, outputs, opts in events[1:]:
        event = event.then(fn, inputs, outputs, api_name=False, **opts)


def explanation(title: str, text: str, open: bool = False) -> gr.Markdown:
    """The panel's accordion of formulas and reading notes (``text`` is Markdown with LaTeX)."""
    with gr.Accordion(title, open=open, elem_classes=["lsx-explain"]):  # folded away in presentation mode
        return gr.Markdown(text, latex_delimiters=LATEX)
