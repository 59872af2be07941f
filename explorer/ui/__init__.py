"""Gradio only: one module per panel, each with ``build(store)``; ``build_app`` assembles the tabs."""
from __future__ import annotations

import os

import gradio as gr

from .. import plotting
from . import attributes, dae, diffusion, http_api, latent_grid, projection, url_state, zoo
from .panel import chain, presentation_scale
from .store import Store
from .sessions import lazy_session_configs


CSS = """
.pixelated img { image-rendering: pixelated; }
#diff-frame img { object-fit: contain; }
footer { display: none !important; }
#zoo-table td { word-break: normal; }
"""  # presentation mode and the layouts that survive zoom: web/present.css, loaded once as a file (head())

# Presentation mode, one switch: ?present=1 in the URL or the header's toggle. This script (in the page's <head>,
# before the app renders) puts the class lsx-present on the document's root, which present.css and the page
# code's canvas text (LSX.fs in web/lsx.js) follow; window.lsxPresent(on) flips it and keeps the URL in step
# (replaceState: a view setting, not a step for the back button), so a slide can link to the mode.
HEAD_SCRIPT = """<script>
(() => {
  const root = document.documentElement;
  root.classList.toggle('lsx-present', /[?&]present=(1|true|on)\\b/.test(location.search));
  window.lsxPresent = (want) => {
    const on = want === undefined ? !root.classList.contains('lsx-present') : !!want;
    root.classList.toggle('lsx-present', on);
    const url = new URL(location.href);
    if (on) url.searchParams.set('present', '1'); else url.searchParams.delete('present');
    if (url.href !== location.href) history.replaceState(history.state, '', url);
    window.dispatchEvent(new Event('resize'));
    return on;
  };
})();
</script>"""


def head() -> str:
    """The page's <head> additions: the presentation-mode switch and web/present.css, served from /web/ like the
    panels' files (versioned URL, kept by the browser) rather than copied into every page's config."""
    from .inpage import web_url

    return HEAD_SCRIPT + f'\n<link rel="stylesheet" href="{web_url("present.css")}">'



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
    plotting.scale_source = presentation_scale  # figures drawn for a presenting page get larger text
    lazy_session_configs()  # a new session (each scripted API call is one) costs ~0.1 ms, not ~40 (sessions.py)
    with gr.Blocks(title=title, delete_cache=(300, 900)) as demo:
        shown = dataset_names(store)
        with gr.Row(equal_height=True, elem_id="lsx-header"):
            gr.Markdown(f"# {title}\nSee how autoencoders, VAEs and their relatives organise their latent space.",
                        elem_id="lsx-title")
            present = gr.Checkbox(False, label="Presentation mode", elem_id="lsx-present-toggle", scale=0,
                                  min_width=240, info="large type, one screen per panel (or add ?present=1)")
            dataset = gr.Dropdown(shown, value=shown[0] if shown else None, label="Dataset", scale=0, min_width=220,
                                  elem_id="dataset-menu", visible=len(shown) > 1,
                                  info="every panel shows this dataset's models")
        # the switch lives in the page: no server round trip (head()'s window.lsxPresent)
        present.input(None, [present], None, js="(on) => { window.lsxPresent && window.lsxPresent(on); }")
        demo.load(None, None, [present], js="() => document.documentElement.classList.contains('lsx-present')")
        panels = {}
        with gr.Tabs(overflow_behavior="wrap"):  # never hide a tab behind a "⋯" menu (narrow or zoomed windows)
            for key, label, tab_id, module in PANELS:
                with gr.Tab(label, id=tab_id) as tab:
                    panels[key] = panel = module.build(store)
                chain(tab.select, panel.opens)   # fill the panel when its tab is opened
                chain(demo.load, panel.loads)    # what the first page shows at once
        demo.switch_dataset = wire_dataset_menu(store, dataset, panels)
        url_state.wire(demo, panels)  # ?model= opens on that model (the page keeps the rest: web/lsx.js, LSX.state)
        def closed(request: gr.Request):  # Gradio injects the request only into an annotated parameter
            store.sessions.drop(store.sessions.key_of(request))
        demo.unload(closed)  # a closed tab frees what it left in the session cache
    demo.panels = panels
    # plain routes beside Gradio's API (app.py hands them to launch: app_kwargs={"routes": demo.routes}): the
    # decode route, and the page's code and runtime as static files (inpage.web_files)
    demo.routes = http_api.routes(store, panels["latent_grid"]) + http_api.web_routes()
    return demo


def dataset_names(store: Store) -> list[str]:
    """Datasets with checkpoints in the zoo, in the registry's order (Fashion-MNIST first)."""
    from .. import datasets

    have = {n.split("/", 1)[0] for n in store.zoo.available()}
    return [d for d in datasets.names() if d in have] + sorted(have - set(datasets.names()))


def filter_models(names: list[str], dataset: str) -> list[str]:
    return [n for n in names if n.split("/", 1)[0] == dataset]


def wire_dataset_menu(store: Store, menu: gr.Dropdown, panels: dict):
    """The one control that switches the app to a dataset: every panel's model menu keeps that dataset's models
    (and picks its first, which fills the panel), the zoo's dataset follows. Panels declare their menus as
    ``model_choices`` [(dropdown, names_fn)] and the zoo its ``dataset_menu``. Returns the menu's handler."""
    targets = [(c, fn) for p in panels.values() for c, fn in getattr(p, "model_choices", [])]
    zoo_menu = [p.dataset_menu for p in panels.values() if getattr(p, "dataset_menu", None) is not None]

    def switch(dataset):
        out = []
        for _, fn in targets:
            names = filter_models(fn(), dataset)
            out.append(gr.Dropdown(choices=names, value=names[0] if names else None, allow_custom_value=True))
        return out + [gr.update(value=dataset) for _ in zoo_menu]

    menu.change(switch, [menu], [c for c, _ in targets] + zoo_menu, api_name="switch_dataset",
                show_progress="hidden")
    first = menu.value
    if first:  # the menus start on the first dataset's models only; scripts may still name any model
        for c, fn in targets:
            c.allow_custom_value = True
            names = filter_models(fn(), first)
            c.choices = [(n, n) for n in names]
            if c.value not in names:
                c.value = names[0] if names else None
    return switch


__all__ = ["Store", "build_app", "CSS", "head"]
