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

# Presentation mode (?present=1, see explorer/ui/__init__.py) draws server-rendered figures' texts this much larger,
# as the page's own canvases are (LSX.fs in web/lsx.js: 1.6 times, never under 18 px).
PRESENT_TEXT_SCALE = 1.6


def presenting(request=None) -> bool:
    """Whether the page that sent the current event is in presentation mode: its URL (the request's Referer;
    the page keeps ?present=1 in it while presenting) says so. False outside an event or without a Referer."""
    from urllib.parse import parse_qs, urlsplit

    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None) or {}
    referer = headers.get("referer", "") if hasattr(headers, "get") else ""
    values = parse_qs(urlsplit(referer).query).get("present", [])
    return bool(values) and values[-1].lower() in ("1", "true", "on")


def presentation_scale() -> float:
    """The text scale of figures rendered for the current event (explorer.plotting.scale_source)."""
    return PRESENT_TEXT_SCALE if presenting() else 1.0


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
