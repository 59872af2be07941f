"""The "Latent grid" panel: a decoded grid over a latent plane, the encoded test set
as a map, and sliders / clicks / prior samples that decode live.

For a 2-D model the plane is the latent space itself (sliders z1, z2). For a
higher-dimensional one it is spanned by the top principal directions of its test
codes (sliders PC1..PC6, the rest of z held fixed).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import gradio as gr
import numpy as np
import torch

from .. import latents, plotting
from .store import MAP_RANGE, Store, number, page_errors, valid_seed, whole

N_SLIDERS = 6
SLIDER_RANGE = MAP_RANGE  # sliders span the codes' centre +- 4 standard deviations along their axis
GRID_N, SPAN, TEMPERATURE = (3, 30), (0.5, 4.0), (0.1, 2.0)  # widget ranges, checked again on the server

EXPLANATION = r"""
### What you are looking at
An **autoencoder** compresses an image $x$ into a code $z = f_\phi(x)$ and decodes it back,
$\hat x = g_\theta(z)$. The map shows the codes of test images, coloured by class; the grid decodes
evenly spaced points of the same plane; the sliders and clicks decode one point live.

A **VAE** (Kingma & Welling, 2014) makes the code a distribution $q_\phi(z\mid x)=\mathcal N(\mu_\phi(x),
\operatorname{diag}\sigma^2_\phi(x))$ with prior $p(z)=\mathcal N(0,I)$, and maximises the evidence lower bound

$$\log p_\theta(x)\;\ge\;\mathrm{ELBO}(x)=\mathbb E_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big]
-D_{\mathrm{KL}}\big(q_\phi(z\mid x)\,\|\,p(z)\big).$$

The KL term pulls every code towards the prior, which is why a VAE's map is round and gap-free and why
decoding *any* point of the grid gives a plausible image, unlike a plain autoencoder's. For a Gaussian
posterior it has a closed form,
$D_{\mathrm{KL}}=\tfrac12\sum_j\big(\mu_j^2+\sigma_j^2-1-\log\sigma_j^2\big)$.

**Reparameterization trick.** Sampling $z\sim q_\phi(z\mid x)$ is not differentiable in $\phi$; writing

$$z=\mu_\phi(x)+\sigma_\phi(x)\odot\varepsilon,\qquad \varepsilon\sim\mathcal N(0,I)$$

moves the randomness into $\varepsilon$, so gradients flow through $\mu$ and $\sigma$.

The **GMM-VAE** (after GAMIX-VAE, arXiv 2309.13160) lets $q_\phi(z\mid x)=\sum_k\pi_k\,\mathcal N(\mu_k,\sigma_k^2)$
be a mixture; its KL has no closed form and is estimated by one reparameterized draw per component,
$\sum_k \pi_k\,[\log q(z_k\mid x)-\log p(z_k)]$, plus a penalty that stops component variances collapsing.

*Temperature* scales prior samples, $z=T\varepsilon$: below 1 gives typical, blander images; above 1 rarer,
stranger ones. The map shows the plane's first two axes; for codes with more than two dimensions those are
principal directions (PCs), and the sliders move the code along the top six.
"""


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy())[0, 0]  # (28, 28)


def _bounds(center: float, scale: float) -> tuple[float, float]:
    """Slider limits centre +- SLIDER_RANGE sd, rounded outwards to two significant digits of the half-width."""
    half = SLIDER_RANGE * scale
    digits = int(1 - np.floor(np.log10(half))) if half > 0 else 1
    step = 10.0 ** -digits
    lo, hi = np.floor((center - half) / step) * step, np.ceil((center + half) / step) * step
    return round(float(lo), max(digits, 0)), round(float(hi), max(digits, 0))


def _digits(lo: float, hi: float) -> int:
    """Decimals of a slider over [lo, hi] with about 400 steps."""
    return max(int(-np.floor(np.log10((hi - lo) / 400))), 0)


class LatentGridPanel:
    """The panel's logic, separate from its widgets so tests can call it directly."""

    def __init__(self, store: Store):
        self.store = store
        # Each browser session's current point (model, slider values, residual), so a slider drag
        # sends only its own value: fewer inputs per event is measurably faster in Gradio.
        self._points: OrderedDict = OrderedDict()
        self._points_lock = threading.Lock()

    def _remember(self, request, name, values, residual):
        if request is None or not getattr(request, "session_hash", None):
            return
        with self._points_lock:
            self._points[request.session_hash] = (name, np.array(values, np.float64)[:N_SLIDERS], residual)
            self._points.move_to_end(request.session_hash)
            while len(self._points) > 2000:
                self._points.popitem(last=False)

    def _point(self, request):
        """(model, values, residual) last shown to this session, or None."""
        with self._points_lock:
            return self._points.get(getattr(request, "session_hash", None))

    def _session_model(self, request):
        point = self._point(request)
        if point is None:
            raise gr.Error("Pick a model first (or reload the page).")
        return point[0]

    def _recall(self, request, name):
        """(values, residual) last shown to this session for ``name``; the codes' centre if none."""
        point = self._point(request)
        if point is not None and point[0] == name:
            return point[1].copy(), point[2]
        values = np.zeros(N_SLIDERS)
        center = self._view(name).plane.center_
        values[:len(center)] = center
        return values, None

    # ---- helpers
    def _view(self, name):
        if not name:
            raise gr.Error("Pick a model first.")
        with page_errors():
            return self.store.view(name)

    def _rect(self, view, span):
        lo, hi = view.plane.bounds(span)
        return (lo[0], lo[1], hi[0], hi[1])

    def map_raster(self, name, span):
        view = self._view(name)
        span = number(span, "Grid range", *SPAN)

        def render():
            names = view.plane.axis_names()
            return plotting.latent_scatter(
                view.coords, view.labels, view.classes, axis_names=names[:2], rect=self._rect(view, span),
                lims=view.lims, title="Encoded test set: click a point to decode it")
        return self.store.raster(("map", name, round(span, 3)), render)

    def grid_raster(self, name, n, span):
        view = self._view(name)
        n, span = whole(n, "Grid size", *GRID_N), number(span, "Grid range", *SPAN)

        def render():
            images = latents.decode_grid(self.store.model(name), view.plane, n, span)
            x0, y0, x1, y1 = self._rect(view, span)
            # cell centres sit at the grid points: extend the extent by half a cell each side
            hx, hy = (x1 - x0) / max(n - 1, 1) / 2, (y1 - y0) / max(n - 1, 1) / 2
            names = view.plane.axis_names()
            return plotting.image_grid(latents.tile(images), (x0 - hx, x1 + hx, y0 - hy, y1 + hy),
                                       axis_names=names[:2], title=f"{n}x{n} decoded grid: click a cell")
        return self.store.raster(("grid", name, n, round(span, 3)), render)

    def _limits(self, view):
        """(k, 2) slider bounds."""
        return np.array([_bounds(c, s) for c, s in zip(view.plane.center_, view.plane.scale_)])

    def _clip(self, view, coords):
        """Coordinates clipped to the sliders' bounds and rounded to their steps."""
        lim = self._limits(view)
        k = len(coords)
        clipped = np.clip(coords, lim[:k, 0], lim[:k, 1])
        return np.array([round(float(v), _digits(lo, hi)) for v, (lo, hi) in zip(clipped, lim[:k])])

    @staticmethod
    def _z(view, values, residual=None) -> np.ndarray:
        """Slider values (+ the part of z off the plane, when it fits this model) -> z (1, D)."""
        k = len(view.plane.components_)
        vals = np.array([number(v, f"Slider {i + 1}") for i, v in enumerate(values[:k])], dtype=np.float64)
        res = None if residual is None or len(residual) != view.latent_dim else np.asarray(residual)
        return view.plane.inverse_transform(vals[None], res)

    def decode_coords(self, name, values, residual=None) -> np.ndarray:
        """Slider values -> decoded uint8 (28, 28) image."""
        z = self._z(self._view(name), values, residual)
        return _to_uint8(self.store.model(name).decode(torch.as_tensor(z, dtype=torch.float32)))

    def _marked_map(self, name, span, c1, c2):
        return self.map_raster(name, span).with_marker(float(c1), float(c2))

    def _info(self, name, values, residual=None):
        view = self._view(name)
        z = self._z(view, values, residual)[0]
        shown = ", ".join(f"{v:+.2f}" for v in z[:8]) + (", ..." if len(z) > 8 else "")
        return f"**z** ({view.latent_dim}-D) = [{shown}]"

    def _slider_updates(self, view, values):
        names = view.plane.axis_names()
        k = len(names)
        ups = []
        for i in range(N_SLIDERS):
            if i >= k:
                ups.append(gr.update(visible=False, value=0.0, minimum=-1.0, maximum=1.0))
                continue
            lo, hi = _bounds(view.plane.center_[i], view.plane.scale_[i])
            label = names[i] if view.plane.is_identity_ else \
                f"{names[i]} ({view.plane.explained_variance_ratio_[i]:.0%} of variance)"
            digits = _digits(lo, hi)  # a round step and rounded values: no 0.0130000000000002
            ups.append(gr.update(visible=True, minimum=lo, maximum=hi, step=10.0 ** -digits,
                                 value=round(float(values[i]), digits), label=label))
        return ups

    # ---- event handlers
    def on_model_point(self, name, request: gr.Request = None):
        """Model chosen: the decoded centre point, its info and the sliders (fast; plots follow)."""
        view = self._view(name)
        centre = np.zeros(N_SLIDERS)
        centre[:len(view.plane.center_)] = view.plane.center_
        res = np.zeros(view.latent_dim).tolist()
        kind = "its two latent axes" if view.plane.is_identity_ else \
            f"the top {len(view.plane.components_)} principal directions of its {view.latent_dim}-D codes"
        head = f"**{name}**: sliders move along {kind}."
        self._remember(request, name, centre, res)
        return (self.decode_coords(name, centre, res), res, self._info(name, centre, res), head,
                *self._slider_updates(view, centre))

    def on_model(self, name, n, span, request: gr.Request = None):
        """Everything a model change shows: (map, grid, decoded, residual, info, headline, *sliders)."""
        point = self.on_model_point(name, request)
        centre = self._view(name).plane.center_
        grid, marked = self.on_grid(name, n, span, *centre[:2])
        return (marked, grid, *point)

    def slide_axis(self, axis: int):
        """The live-drag handler of slider ``axis``: value -> image. The model and the other coordinates
        come from what this session was last shown, so the event carries one input, like the floor app."""
        def on_slide_axis(value, request: gr.Request = None):
            name = self._session_model(request)
            values, residual = self._recall(request, name)
            values[axis] = float(value)
            image = self.decode_coords(name, values, residual)
            self._remember(request, name, values, residual)
            return image
        return on_slide_axis

    def api_decode(self, name, a, b):
        """The /decode endpoint: the image at coordinates (a, b) of the plane, other axes at the centre."""
        values, _ = self._recall(None, name)
        values[0], values[1] = number(a, "a"), number(b, "b")
        return self.decode_coords(name, values)

    def on_release(self, name, span, residual, *values, request: gr.Request = None):
        self._remember(request, name, values, residual)
        return (self.decode_coords(name, values, residual), self._marked_map(name, span, values[0], values[1]),
                self._info(name, values, residual))

    def on_grid(self, name, n, span, *values):
        return self.grid_raster(name, n, span).pixels, self._marked_map(name, span, values[0], values[1])

    def _click(self, raster, name, span, residual, values, index, request=None):
        view = self._view(name)
        point = raster.to_data(*index)
        if point is None:
            raise gr.Error("Click inside the plot area.")
        values = list(values)
        values[0], values[1] = (float(v) for v in self._clip(view, np.array(point)))
        self._remember(request, name, values, residual)
        return (self.decode_coords(name, values, residual), self._marked_map(name, span, values[0], values[1]),
                self._info(name, values, residual), values[0], values[1])

    def on_map_click(self, name, span, residual, *values, evt: gr.SelectData, request: gr.Request = None):
        return self._click(self.map_raster(name, span), name, span, residual, values, evt.index, request)

    def on_grid_click(self, name, n, span, residual, *values, evt: gr.SelectData, request: gr.Request = None):
        return self._click(self.grid_raster(name, n, span), name, span, residual, values, evt.index, request)

    def on_sample(self, name, span, seed, temperature, request: gr.Request = None):
        view = self._view(name)
        g = torch.Generator().manual_seed(valid_seed(seed))  # per request: never the process-wide seed
        temperature = number(temperature, "Temperature", *TEMPERATURE)
        z = self.store.model(name).sample_latent(1, generator=g, temperature=temperature).cpu().numpy()
        coords = view.plane.transform(z)[0]
        residual = view.plane.residual(z)[0].tolist()
        values = np.zeros(N_SLIDERS)
        values[:len(coords)] = self._clip(view, coords)
        image = _to_uint8(self.store.model(name).decode(torch.as_tensor(z, dtype=torch.float32)))
        self._remember(request, name, values, residual)
        return (image, self._marked_map(name, span, values[0], values[1]), residual,
                self._info(name, list(coords), residual),
                *[gr.update(value=float(v)) for v in values])


def build(store: Store) -> LatentGridPanel:
    """Lay out the panel inside the current Blocks context and wire its events."""
    panel = LatentGridPanel(store)
    names = store.encoder_models()
    default = names[0] if names else None
    gr.Markdown("Drag the sliders or click the map or the grid: the decoder turns that point of the "
                "latent space into an image, live.")
    with gr.Row(equal_height=False):
        model = gr.Dropdown(names, value=default, label="Model", scale=3,
                            info="2-D models show their latent plane directly; 16-D ones through PCs")
        n = gr.Slider(*GRID_N, value=15, step=1, label="Grid size n (n x n)", scale=2)
        span = gr.Slider(*SPAN, value=2.5, step=0.1, label="Grid range (+- standard deviations)", scale=2)
    headline = gr.Markdown(None if names else
                           f"**No trained encoder models found in `{store.zoo.root}`.** Rebuild the shipped "
                           "ones with `python -m explorer.training all`, or point `--checkpoints` at a folder.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=9):
            with gr.Row(equal_height=False):
                map_img = gr.Image(label="Encoded test set", show_label=False, interactive=False, format="png",
                                   scale=5, buttons=["download"], elem_id="latent-map")
                grid_img = gr.Image(label="Decoded grid", show_label=False, interactive=False, format="png",
                                    scale=4, buttons=["download"], elem_id="latent-grid")
            with gr.Group():
                with gr.Row(equal_height=True):
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, min_width=100, scale=1)
                    temperature = gr.Slider(*TEMPERATURE, value=1.0, step=0.05, label="Temperature T (z = T * eps)",
                                            scale=2)
                    sample_btn = gr.Button("Random sample from the prior", variant="primary", scale=2)
        with gr.Column(scale=3, min_width=260):
            gr.Markdown("**Decoded at the marked point**")
            decoded = gr.Image(label="Decoded at the marked point", show_label=False, interactive=False,
                               format="png", height=260, buttons=["download"], elem_id="decoded",
                               elem_classes=["pixelated"])
            info = gr.Markdown(elem_id="z-info")
            sliders = [gr.Slider(-3, 3, value=0.0, label=f"z{i + 1}", visible=i < 2,
                                 elem_id=f"z-slider-{i + 1}") for i in range(N_SLIDERS)]
    residual = gr.State([])
    with gr.Accordion("The ELBO and the reparameterization trick", open=True):
        gr.Markdown(EXPLANATION, latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                                   {"left": "$", "right": "$", "display": False}])

    common = dict(concurrency_id="model")
    point_outputs = [decoded, residual, info, headline, *sliders]
    plots = (panel.on_grid, [model, n, span, *sliders], [grid_img, map_img])
    model.change(panel.on_model_point, [model], point_outputs, api_name="select_model", **common).then(
        *plots, api_name=False, **common)
    # Gradio injects SelectData / Request only into parameters before a *args, so the handlers that
    # take all six sliders get explicit signatures here.
    def release(name, span_, res, v1, v2, v3, v4, v5, v6, request: gr.Request):
        return panel.on_release(name, span_, res, v1, v2, v3, v4, v5, v6, request=request)

    def map_click(name, span_, res, v1, v2, v3, v4, v5, v6, evt: gr.SelectData, request: gr.Request):
        return panel.on_map_click(name, span_, res, v1, v2, v3, v4, v5, v6, evt=evt, request=request)

    def grid_click(name, n_, span_, res, v1, v2, v3, v4, v5, v6, evt: gr.SelectData, request: gr.Request):
        return panel.on_grid_click(name, n_, span_, res, v1, v2, v3, v4, v5, v6, evt=evt, request=request)

    assert N_SLIDERS == 6, "the wrappers above spell out six sliders"
    for i, s in enumerate(sliders):
        # one 28x28 decode (~0.5 ms): kept out of the shared "model" group so drags never queue
        # behind a grid render
        s.input(panel.slide_axis(i), [s], decoded, api_name=False,
                trigger_mode="always_last", show_progress="hidden")
        s.release(release, [model, span, residual, *sliders], [decoded, map_img, info],
                  api_name=False, trigger_mode="always_last", show_progress="hidden", **common)
    for widget in (n, span):
        widget.release(panel.on_grid, [model, n, span, *sliders], [grid_img, map_img], api_name=False,
                       trigger_mode="always_last", show_progress="minimal", **common)
    click_outputs = [decoded, map_img, info, sliders[0], sliders[1]]
    map_img.select(map_click, [model, span, residual, *sliders], click_outputs, api_name=False,
                   show_progress="hidden", **common)
    grid_img.select(grid_click, [model, n, span, residual, *sliders], click_outputs, api_name=False,
                    show_progress="hidden", **common)
    sample_btn.click(panel.on_sample, [model, span, seed, temperature],
                     [decoded, map_img, residual, info, *sliders], api_name="sample", **common)
    # A stable endpoint for scripts and tests: decode a point given by the first two coordinates.
    api_decode, api_a, api_b = gr.Button(visible=False), gr.Number(visible=False), gr.Number(visible=False)
    api_decode.click(panel.api_decode, [model, api_a, api_b], decoded, api_name="decode", **common)
    panel.components = dict(model=model, n=n, span=span, map=map_img, grid=grid_img, decoded=decoded,
                            sliders=sliders, residual=residual, info=info, headline=headline)
    panel.initial = ((panel.on_model_point, [model], point_outputs), plots) if default else None
    return panel
