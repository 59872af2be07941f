"""Gradio only: one module per panel, each with ``build(store)``; ``build_app`` assembles the tabs."""
from __future__ import annotations

import gradio as gr

from . import attributes, diffusion, latent_grid, projection
from .store import Store

CSS = """
.pixelated img, #latent-grid img { image-rendering: pixelated; }
#decoded img, #diff-frame img { object-fit: contain; }
footer { display: none !important; }
"""

UPCOMING = {
    "DAE vs baseline": "The two-stage Decoupled Autoencoder (arXiv 2307.08283) measured against joint training.",
    "Model zoo": "AE, VAE, GMM-VAE, GAN, DDPM, latent diffusion and DAE side by side, with one metric table.",
}


def build_app(store: Store, title: str = "Latent Space Explorer") -> gr.Blocks:
    """The whole app as a Blocks (not launched). Heavy work happens in handlers, not here."""
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
            for name, text in UPCOMING.items():
                with gr.Tab(name):
                    gr.Markdown(f"**Coming next.** {text}")
        fn, inputs, outputs, opts = panels["projection"].open_event
        proj_tab.select(fn, inputs, outputs, api_name=False, **opts)  # maps load when the tab is opened
        event = attr_tab.select(lambda: None, None, None, api_name=False, show_progress="hidden")
        for fn, inputs, outputs, opts in panels["attributes"].open_events:  # fill the panel when first opened
            event = event.then(fn, inputs, outputs, api_name=False, **opts)
        fn, inputs, outputs, opts = panels["diffusion"].open_event
        diff_tab.select(fn, inputs, outputs, api_name=False, **opts)  # the forward view when the tab opens
        lg = panels["latent_grid"]
        if lg.initial:  # the decoded point first, then the map and grid
            point, plots = lg.initial
            demo.load(*point, api_name=False, concurrency_id="model").then(
                *plots, api_name=False, concurrency_id="model")
    demo.panels = panels
    return demo


__all__ = ["Store", "build_app", "CSS"]
