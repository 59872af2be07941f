"""Gradio only: one module per panel, each with ``build(store)``; ``build_app`` assembles the tabs."""
from __future__ import annotations

import os

import gradio as gr

from . import attributes, dae, diffusion, http_api, latent_grid, projection, zoo
from .panel import chain
from .store import Store
from .sessions import lazy_session_configs

CSS = """
.pixelated img { image-rendering: pixelated; }
#diff-frame img { object-fit: contain; }
footer { display: none !important; }
#zoo-table td { word-break: normal; }
"""



# (key in demo.panels, tab label, tab id, module with build(store) -> Panel), in tab order
PANELS = [("latent_grid", "Latent grid", "latent-grid-tab", latent_grid),
          ("projection", "Projection", "projection-tab", projection),
          ("attributes", "Attribute vectors", "attributes-tab", attributes),
          ("diffusion", "Diffusion", "diffusion-tab", diffusion),
          ("dae", "DAE vs baseline", "dae-tab", dae),
          ("zoo", "Model zoo", "zoo-tab", zoo)]


# Gradio's queue keeps the last GRADIO_ANALYTICS_MAX_EVENTS events (default 10,000) and, after every event, by
# default rebuilds a pandas summary of all of them for its monitoring page and the API page's timings: about
# 11% of the server's busy time under one /decode client after 500 events, growing with every event kept.
# Here the summary is rebuilt every 100 events, over the last 2,000. An environment variable set by the user wins.
QUEUE_ANALYTICS = {"GRADIO_ANALYTICS_CACHE_FREQUENCY": "100", "GRADIO_ANALYTICS_MAX_EVENTS": "2000"}


def build_app(store: Store, title: str = "Latent Space Explorer") -> gr.Blocks:
    """The whole app as a Blocks (not launched). Heavy work happens in handlers, not here."""
    for var, value in QUEUE_ANALYTICS.items():  # read by the queue when the Blocks is created
        os.environ.setdefault(var, value)
    lazy_session_configs()  # a new session (each scripted API call is one) costs ~0.1 ms, not ~40 (sessions.py)
    with gr.Blocks(title=title, delete_cache=(300, 900)) as demo:
        gr.Markdown(f"# {title}\nSee how autoencoders, VAEs and their relatives organise their latent space.")
        panels = {}
        with gr.Tabs():
            for key, label, tab_id, module in PANELS:
                with gr.Tab(label, id=tab_id) as tab:
                    panels[key] = panel = module.build(store)
                chain(tab.select, panel.opens)   # fill the panel when its tab is opened
                chain(demo.load, panel.loads)    # what the first page shows at once
        def closed(request: gr.Request):  # Gradio injects the request only into an annotated parameter
            store.sessions.drop(store.sessions.key_of(request))
        demo.unload(closed)  # a closed tab frees what it left in the session cache
    demo.panels = panels
    # plain routes beside Gradio's API (app.py hands them to launch: app_kwargs={"routes": demo.routes}): the
    # decode route, and the page's code and runtime as static files (inpage.web_files)
    demo.routes = http_api.routes(store, panels["latent_grid"]) + http_api.web_routes()
    return demo


__all__ = ["Store", "build_app", "CSS"]
