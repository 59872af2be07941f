"""Gradio only: one module per panel, each with ``build(store)``; ``build_app`` assembles the tabs."""
from __future__ import annotations

import gradio as gr

from . import attributes, dae, diffusion, latent_grid, projection, zoo
from .inpage import serve_runtime
from .store import Store

CSS = """
.pixelated img, #latent-grid img { image-rendering: pixelated; }
#decoded img, #diff-frame img { object-fit: contain; }
footer { display: none !important; }
#zoo-table td { word-break: normal; }
"""



def build_app(store: Store, title: str = "Latent Space Explorer") -> gr.Blocks:
    """The whole app as a Blocks (not launched). Heavy work happens in handlers, not here."""
    serve_runtime()  # the one static folder: the pinned onnxruntime-web files
    with gr.Blocks(title=title, delete_cache=(300, 900)) as demo:
        gr.Markdown(f"# {title}\nSee how autoencoders, VAEs and their relatives organise their latent space.")
        panels = {}
        with gr.Tabs():
            with gr.Tab("Latent grid", id="latent-grid-tab"):
                panels["latent_grid"] = latent_grid.build(store)
            with gr.Tab("Projection", id="projection-tab") as proj_tab:
                panels["projection"] = projection.build(store)
            with gr.Tab("Attribute vectors", id="attributes-tab") as attr_tab:
                panels["attributes"] = attributes.build(store)
            with gr.Tab("Diffusion", id="diffusion-tab") as diff_tab:
                panels["diffusion"] = diffusion.build(store)
            with gr.Tab("DAE vs baseline", id="dae-tab") as dae_tab:
                panels["dae"] = dae.build(store)
            with gr.Tab("Model zoo", id="zoo-tab") as zoo_tab:
                panels["zoo"] = zoo.build(store)
        fn, inputs, outputs, opts = panels["projection"].open_event
        proj_tab.select(fn, inputs, outputs, api_name=False, **opts)  # maps load when the tab is opened
        event = attr_tab.select(lambda: None, None, None, api_name=False, show_progress="hidden")
        for fn, inputs, outputs, opts in panels["attributes"].open_events:  # fill the panel when first opened
            event = event.then(fn, inputs, outputs, api_name=False, **opts)
        fn, inputs, outputs, opts = panels["diffusion"].open_event
        diff_tab.select(fn, inputs, outputs, api_name=False, **opts)  # the forward view when the tab opens
        for tab, key in ((dae_tab, "dae"), (zoo_tab, "zoo")):  # fill each panel when its tab is first opened
            fn, inputs, outputs, opts = panels[key].open_event
            tab.select(fn, inputs, outputs, api_name=False, **opts)
        lg = panels["latent_grid"]
        if lg.initial:  # the default model's plane, map and decoder spec; the page decodes from there
            demo.load(*lg.initial, api_name=False, concurrency_id="model")
        demo.unload(store.sessions.on_unload)  # a closed tab frees what it left in the session cache
    demo.panels = panels
    return demo


__all__ = ["Store", "build_app", "CSS"]
