"""The "Projection" panel: a 2-D map (UMAP / PCA / t-SNE) of 5,000 test codes that you hover for
thumbnails and click to decode; two picks give linear and spherical interpolation strips; a second
model's map can sit beside the first; the codes export for TensorBoard's Embedding Projector.
"""
from __future__ import annotations

import html
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from .. import latents, plotting, projection
from ..checkpoints import CheckpointError, short_name
from .inpage import page_code, server_functions, template
from .point_map import latent_prop, payload, point_map
from .store import Store
from .panel import Panel, explanation
from .validate import page_errors, whole

NONE = "(none)"
METHOD_KEYS = {label: key for key, label in projection.METHODS.items()}  # "UMAP" -> "umap"
STEPS = 9

EXPLANATION = r"""
### How to read the map
Each dot is one of 5,000 test images, placed by a 2-D projection of its code $z=f_\phi(x)$ and coloured by
its true class (the model never saw the labels). **PCA** keeps the two directions of largest variance: distances
are honest but clusters overlap. **t-SNE** matches neighbour probabilities,
$\min_Y \mathrm{KL}(P\,\|\,Q)$ with Gaussian $p_{j\mid i}$ in the latent and Student-t $q_{ij}$ on the map: local
neighbourhoods are kept, global distances and cluster sizes are not. **UMAP** builds a fuzzy $k$-nearest-neighbour
graph of the codes and lays it out with a cross-entropy objective: similar local faithfulness, more of the global
layout, and much faster.

**Trustworthiness** (Venna & Kaski, 2001) measures whether map neighbours are real neighbours:
$$T(k)=1-\frac{2}{nk(2n-3k-1)}\sum_{i=1}^{n}\sum_{j\in U_k(i)}\big(r(i,j)-k\big),$$
where $U_k(i)$ are the points among $i$'s $k$ nearest on the map but not in the latent space and $r(i,j)$ is $j$'s
rank among $i$'s latent neighbours. 1 = no invented neighbours; around 0.5 = random.

**Linear probe:** a logistic regression $p(y\mid z)=\operatorname{softmax}(Wz+b)$ fitted on train-split codes and
scored on test-split codes: how much class information a *linear* read-out finds in the latent.

**Interpolation** between picks A and B: linear $z_t=(1-t)z_A+tz_B$, and spherical (slerp)
$z_t=\frac{\sin((1-t)\Omega)}{\sin\Omega}z_A+\frac{\sin(t\Omega)}{\sin\Omega}z_B$ with
$\cos\Omega=\frac{z_A\cdot z_B}{\lVert z_A\rVert\lVert z_B\rVert}$. In high dimensions Gaussian codes
concentrate near a shell $\lVert z\rVert\approx\sqrt{D}$; the straight line cuts through the low-norm middle,
the great circle stays near the shell (see the $|z|$ curves).
"""


def map_stats(store: Store, name: str, p: projection.Projection) -> str:
    """The caption under a map: trustworthiness, linear probe, number of images, where the map came from."""
    m = store.metrics(name)
    probe = (f"linear probe **{m['linear_probe']:.1%}** ({m['probe_train']:,} train → {m['probe_test']:,} "
             f"test codes)" if "linear_probe" in m else
             f"linear probe not measured yet: `{store.zoo.info(name)['command']} --evaluate-only`")
    source = {"shipped": "shipped with the checkpoint", "cache": "from the disk cache",
              "computed": f"computed in {p.seconds:.1f} s, now cached"}[p.source]
    return (f"**{short_name(name)}** · {p.label} trustworthiness **{p.trustworthiness:.3f}** "
            f"(k={projection.TRUST_NEIGHBORS}) · {probe} · {len(p.coords):,} test images · {source}")


CLASS = "class"  # the "Colour by" choice that colours the map by the dataset's class label


def colour_choices(store: Store, name: str | None) -> list[str]:
    """What a map of ``name``'s codes can be coloured by: its class, and each labelled factor of its dataset."""
    from .. import datasets

    if not name:
        return [CLASS]
    try:
        return [CLASS] + list(datasets.get(store.dataset_of(name)).factors)
    except (CheckpointError, ValueError):
        return [CLASS]


def map_value(store: Store, name: str, method: str, progress=None, colour_by: str | None = None) -> tuple[dict, str]:
    """(the point map's value, its caption) for model ``name`` by ``method``, its points coloured by class or
    by one labelled factor (``colour_by``); shared by every panel that shows a model's map of its test codes
    (this one and the DAE panel)."""
    p = store.projection(name, method, progress)
    view = store.view(name)
    dataset = store.dataset_of(name)
    _, side = store.sprite(dataset)
    title = f"{short_name(name)}: {p.label} of {view.latent_dim}-D codes"
    labels, classes = view.labels, view.classes
    if colour_by and colour_by != CLASS:
        ds = store.dataset(dataset)
        try:
            labels, classes = ds.factor(colour_by).numpy(), list(ds.spec.factors[colour_by])
        except ValueError as err:
            raise gr.Error(str(err)) from None
        title += f", coloured by {colour_by}"
    value = payload(p.coords, labels, classes, title, (f"{p.label} 1", f"{p.label} 2"),
                    sprite_side=side, thumb=store.sprite_thumb(dataset))
    return value, map_stats(store, name, p)


def map_latent(store: Store, name: str) -> dict:
    """The point map's ``latent`` prop for model ``name``: its test codes (float16) and decoder spec, so the
    page decodes a clicked point, an interpolation or a slider position itself."""
    with page_errors():
        spec = store.decoders.spec(name)
    return latent_prop(store.view(name).codes, spec, short_name(name))


class ProjectionPanel(Panel):
    """The panel's logic, callable without widgets (tests use it directly)."""

    def __init__(self, store: Store):
        self.store = store

    def default(self) -> str | None:
        models = self.models()
        return next((m for m in models if m.endswith("/vae-16")), models[0] if models else None)

    def warm(self) -> None:
        """Prepare the default map (codes, shipped projection, thumbnails) so the tab opens fast."""
        name = self.default()
        if name:
            self.map_value(name, "umap")
            self.store.sprite(self.store.dataset_of(name))

    def models(self) -> list[str]:
        names = self.store.encoder_models()
        # 16-D models first: their maps are the interesting ones (a 2-D code is its own map)
        return sorted(names, key=lambda n: (self._dim(n) <= 2, n))

    def _dim(self, name: str) -> int:
        try:
            return int(self.store.zoo.info(name)["config"].get("latent_dim", 0))
        except CheckpointError:
            return 0

    def partners(self, name: str) -> list[str]:
        """Models that can be compared with ``name``: same dataset, so the same 5,000 images."""
        try:
            ds = self.store.dataset_of(name)
        except CheckpointError:
            return [NONE]
        out = [NONE]
        for n in self.models():
            try:
                if n != name and self.store.dataset_of(n) == ds:
                    out.append(n)
            except CheckpointError:
                continue
        return out

    def stats(self, name: str, p: projection.Projection) -> str:
        return map_stats(self.store, name, p)

    def map_value(self, name: str, method: str, progress=None, colour_by: str | None = None) -> tuple[dict, str]:
        return map_value(self.store, name, method, progress, colour_by)

    # --- handlers ------------------------------------------------------------------------------

    def on_open(self, name: str, method_label: str, compare: str, shown: dict | None, colour_by: str = CLASS,
                progress=gr.Progress()):
        """(Re)draw the map(s). ``shown`` is what this session's page already has, so switching
        tabs or methods resends neither the maps, the ~1 MB thumbnail sprite nor the codes needlessly.
        Each map carries its model's codes (float16) and decoder spec in its ``latent`` prop: the page
        decodes clicks and interpolations itself; a hidden compare map carries none."""
        method = METHOD_KEYS.get(method_label)
        if method is None:
            raise gr.Error(f"unknown projection method {method_label!r}")
        shown = dict(shown or {})
        say = (lambda f, text: progress(f, desc=text))
        outputs = []
        for slot, model in (("a", name), ("b", compare)):
            if slot == "b" and (not model or model == NONE):
                hide = gr.HTML(latent={}) if shown.pop("b-latent", None) else gr.skip()
                outputs += [hide, "", gr.Column(visible=False)]
                shown.pop("b", None)
                continue
            key = (model, method, colour_by or CLASS)
            if shown.get(slot) == list(key):
                outputs += [gr.skip(), gr.skip(), gr.Column(visible=True)]
                continue
            try:
                value, stats = self.map_value(model, method, say, colour_by)
                latent = map_latent(self.store, model) if shown.get(f"{slot}-latent") != model else None
            except (CheckpointError, gr.Error) as err:
                msg = err.message if isinstance(err, gr.Error) else str(err)
                outputs += [gr.HTML(value={"message": f"{model}: unavailable"}, latent={}), f"⚠️ {msg}",
                            gr.Column(visible=True)]
                shown.pop(slot, None)
                shown.pop(f"{slot}-latent", None)
                continue
            ds = self.store.dataset_of(model)
            update = {"value": value, "sel": []}
            if latent is not None:
                update["latent"] = latent
                shown[f"{slot}-latent"] = model
            if shown.get(f"{slot}-ds") != ds:
                update["sprite"] = self.store.sprite(ds)[0]
                shown[f"{slot}-ds"] = ds
            shown[slot] = list(key)
            outputs += [gr.HTML(**update), stats, gr.Column(visible=True)]
        return [outputs[0], outputs[1], outputs[3], outputs[4], outputs[5], shown]

    def on_model(self, name: str):
        partners = self.partners(name)
        return gr.Dropdown(choices=partners, value=NONE), gr.Dropdown(choices=colour_choices(self.store, name),
                                                                      value=CLASS)

    def _picks(self, name: str, picks: list) -> list:
        n = len(self.store.view(name).codes)
        picks = [None if p is None else whole(p, "Test image index", 0, n - 1) for p in (picks or [])][-2:]
        if not picks or picks[-1] is None:
            raise gr.Error(f"pick a test image index between 0 and {n - 1}")
        return picks

    @torch.no_grad()
    def details(self, name: str, compare: str, picks: list) -> tuple[np.ndarray, str]:
        """(original and reconstructions side by side, upscaled; text with their names and the code)
        for the newest of ``picks`` = [A or None, B] (dataset indices). Pure numpy: ~ms, no plotting."""
        models = [name] + ([compare] if compare and compare != NONE else [])
        view = self.store.view(name)
        i = self._picks(name, picks)[-1]
        x = self.store.dataset(self.store.dataset_of(name)).floats()[i:i + 1]
        images = [latents.display(x)[0]] + [latents.display(self.store.model(m).reconstruct(x).clamp(0, 1))[0]
                                            for m in models]
        scale = max(1, 168 // x.shape[-1])  # 6x for 28 px, 2x for 64 px
        row = plotting.upscale(latents.tile(np.stack(images)[None], pad=2)[:, :-2], scale)  # (H, k*(W+2) - 2) x scale
        z = view.codes[i]
        text = (f"**#{i} {view.classes[int(view.labels[i])]}**: original, then "
                + ", ".join(f"{short_name(m)} reconstruction" for m in models) + ".\n\n"
                f"Code under {short_name(name)} ({len(z)}-D, |z| = {np.linalg.norm(z):.2f}): "
                "`[" + ", ".join(f"{v:+.2f}" for v in z) + "]`")
        return row, text

    @torch.no_grad()
    def strips(self, name: str, compare: str, picks: list) -> np.ndarray | None:
        """Linear and slerp interpolation strips A -> B for each shown model with their |z| curves;
        None until two different points are picked."""
        picks = self._picks(name, picks)
        if len(picks) < 2 or picks[0] is None or picks[0] == picks[1]:
            return None
        models = [name] + ([compare] if compare and compare != NONE else [])
        view = self.store.view(name)
        a, b = picks
        ts = np.linspace(0, 1, STEPS)
        rows, norms = {}, {}
        for m in models:
            codes = self.store.view(m).codes
            model = self.store.model(m)
            for kind, path in (("linear", latents.lerp), ("slerp", latents.slerp)):
                zs = path(codes[a], codes[b], ts)  # (STEPS, D)
                xs = latents.display(model.decode(torch.as_tensor(zs, dtype=torch.float32)).clamp(0, 1))
                label = kind if len(models) == 1 else f"{short_name(m)}\n{kind}"
                rows[label] = xs
                norms[label.replace("\n", " ")] = np.linalg.norm(zs, axis=1)
        title = f"A = #{a} ({view.classes[int(view.labels[a])]}) → B = #{b} ({view.classes[int(view.labels[b])]})"
        return plotting.Raster.pixels_of(plotting.interpolation_strips(rows, ts, norms, title))

    def on_select(self, name: str, compare: str, evt: gr.SelectData) -> list:
        """The page's picks [A or None, B] (dataset indices), checked and kept for this session. The page
        has already decoded and drawn them; nothing goes back to it."""
        picks = evt.value if isinstance(evt.value, list) else [None, evt.index]
        with page_errors():
            return self._picks(name, picks)

    def api_pick(self, name: str, compare: str, a: float | None, b: float):
        """The same as clicking points A (optional) and B; for scripts and tests."""
        picks = [None if a is None or a < 0 else int(a), int(b)]
        row, text = self.details(name, compare, picks)
        return row, text, self.strips(name, compare, picks)

    def export(self, name: str) -> str:
        with page_errors():
            view = self.store.view(name)
        ds = self.store.dataset(self.store.dataset_of(name))
        out = Path(tempfile.mkdtemp(prefix="lsx-export-")) / f"{name.replace('/', '-')}-projector.zip"
        projection.export_projector(out, view.codes, view.labels, view.classes, ds.images.numpy(),
                                    name=short_name(name))
        return str(out)


def pick_view(elem_id: str, group: str, kind: str, store: Store, message: str) -> gr.HTML:
    """The page's view of a pick in the maps of ``group``: the clicked image and its reconstructions,
    decoded in the page (web/pick_view.js); with ``kind="projection"`` also the interpolation strips,
    their |z| curves and a t slider. It decodes through LSX (lsx.js), which falls back to the server
    functions given here when the page cannot."""
    # group and kind are written into the template too: a component in a hidden column or tab may get only
    # the props that later updates carry (Gradio 6.31)
    html_template = (template("pick_view.html").replace("@GROUP@", html.escape(group, quote=True))
                     .replace("@KIND@", html.escape(kind, quote=True)))
    return gr.HTML(value={"message": message}, html_template=html_template, **page_code("pick_view"),
                   elem_id=elem_id, apply_default_css=False,
                   server_functions=server_functions(store, store.decoders), group=group, kind=kind, steps=STEPS)


def build(store: Store) -> ProjectionPanel:
    panel = ProjectionPanel(store)
    models = panel.models()
    default = panel.default()
    with gr.Row(equal_height=False):
        model = gr.Dropdown(models, value=default, label="Model", scale=2, elem_id="proj-model")
        method = gr.Radio(list(METHOD_KEYS), value="UMAP", label="Projection", scale=2, elem_id="proj-method")
        compare = gr.Dropdown(panel.partners(default) if default else [NONE], value=NONE, scale=2,
                              label="Compare with (same test images)", elem_id="proj-compare")
        colour = gr.Dropdown(colour_choices(store, default), value=CLASS, label="Colour by", scale=1,
                             elem_id="proj-colour", info="class, or a labelled factor")
        export_btn = gr.Button("Export for TensorBoard Projector", scale=1, size="md")
    shown = gr.State({})
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=360):
            map_a = point_map("proj-map-a", group="proj")
            stats_a = gr.Markdown(elem_id="proj-stats-a")
        with gr.Column(scale=5, min_width=360, visible=False) as col_b:
            map_b = point_map("proj-map-b", group="proj")
            stats_b = gr.Markdown(elem_id="proj-stats-b")
        with gr.Column(scale=5, min_width=340):
            gr.Markdown("**Hover** a point for its image, **click** to decode it; click a second point for the "
                        "interpolation A → B. Everything below is decoded in your browser.", elem_classes=["lsx-intro"])
            view = pick_view("proj-view", "proj", "projection", store, "Click a point on the map.")
            export_file = gr.File(label="Projector export (tensors.tsv, metadata.tsv, sprite.png, config)",
                                  visible=False, elem_id="proj-export")
    explanation("What the map shows, and the formulas", EXPLANATION, open=False)
    # The scripted /pick endpoint's outputs: the server's own decode of a pick (not shown in the page)
    row = gr.Image(visible=False, format="png", elem_id="proj-detail")
    code = gr.Markdown(visible=False, elem_id="proj-code")
    strips = gr.Image(visible=False, format="png", elem_id="proj-strips")

    open_outputs = [map_a, stats_a, map_b, stats_b, col_b, shown]
    open_inputs = [model, method, compare, shown, colour]
    common = dict(concurrency_id="projection", concurrency_limit=1)
    panel.opens = [(panel.on_open, open_inputs, open_outputs, common)]
    method.change(panel.on_open, open_inputs, open_outputs, api_name="project", **common)
    compare.change(panel.on_open, open_inputs, open_outputs, api_name=False, **common)
    colour.change(panel.on_open, open_inputs, open_outputs, api_name=False, **common)
    model.change(panel.on_model, model, [compare, colour], api_name=False).then(
        panel.on_open, open_inputs, open_outputs, api_name=False, **common)
    picks = gr.State([])
    for m in (map_a, map_b):  # the page decodes and draws a pick itself; the server only keeps it
        m.select(panel.on_select, [model, compare], picks, api_name=False, show_progress="hidden",
                 trigger_mode="always_last", concurrency_limit=None)
    export_btn.click(panel.export, model, export_file, api_name="export_projector").then(
        lambda: gr.File(visible=True), None, export_file, api_name=False)
    # scripting endpoint: the same as clicking A then B on the map, decoded on the server
    api_btn, a_in, b_in = gr.Button(visible=False), gr.Number(visible=False), gr.Number(visible=False)
    api_btn.click(panel.api_pick, [model, compare, a_in, b_in], [row, code, strips], api_name="pick",
                  concurrency_id="model")
    panel.model_choices = [(model, panel.models)]
    panel.components = dict(model=model, method=method, compare=compare, map_a=map_a, map_b=map_b, view=view)
    return panel
