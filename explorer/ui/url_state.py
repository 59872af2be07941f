"""The server's half of the state in the URL (the page's half is LSX.state in web/lsx.js): when a page opens with
``?model=<name>``, every panel's model menu that offers that model starts on it (the page then reads the rest,
such as ``point`` or ``picks``, itself; a panel that needs the server for its part reads ``query``, as the Attribute
vectors panel does for its groups and input). A slide can so link straight to a prepared example."""
from __future__ import annotations

import gradio as gr


def query(request) -> dict:
    """The page's URL query of an event (Gradio's client sends the page's query with every event it queues)."""
    try:
        return dict(request.query_params) if request is not None else {}
    except (AttributeError, TypeError):
        return {}


def model_menus(panels: dict) -> list:
    """[(dropdown, names_fn)] of every panel (each declares its model menus as ``model_choices``)."""
    return [(c, fn) for p in panels.values() for c, fn in getattr(p, "model_choices", [])]


def wire(demo: gr.Blocks, panels: dict) -> None:
    menus = model_menus(panels)
    if not menus:
        return

    def opened(request: gr.Request):
        name = query(request).get("model")
        return [gr.Dropdown(value=name) if name and name in fn() else gr.skip() for _, fn in menus]

    demo.load(opened, None, [c for c, _ in menus], api_name=False, show_progress="hidden")
