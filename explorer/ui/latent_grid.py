"""The "Latent grid" panel: a decoded grid over a latent plane, the encoded test set
as a map, and sliders / clicks / prior samples that decode live.

For a 2-D model the plane is the latent space itself (sliders z1, z2). For a
higher-dimensional one it is spanned by the top principal directions of its test
codes (sliders PC1..PC6, the rest of z held fixed).
"""
from __future__ import annotations


import gradio as gr
import numpy as np
import torch

from .. import latents, plotting
from .inpage import pack, to_uint8
from .store import MAP_RANGE, Store
from .panel import Panel, explanation
from .standalone import write_page
from .validate import number, page_errors, valid_seed, whole

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


class LatentGridPanel(Panel):
    """The panel's logic, separate from its widgets so tests can call it directly."""

    def __init__(self, store: Store):
        self.store = store
        self._seq = 0

    # Each browser session's current point (model, slider values, residual), kept in the app's session
    # cache (freed when the tab closes): the page tells the server its final point after every drag.
    def _remember(self, request, name, values, residual):
        self.store.sessions.put(self.store.sessions.key_of(request), "point", "latent_grid",
                                (name, np.array(values, np.float64)[:N_SLIDERS], residual))

    def _point(self, request):
        """(model, values, residual) last shown to this session, or None."""
        return self.store.sessions.get(self.store.sessions.key_of(request), "point", "latent_grid")

    def _recall(self, request, name):
        """(values, residual) last shown to this session for ``name``; the codes' centre if none."""
        point = self._point(request)
        if point is not None and point[0] == name:
            return point[1].copy(), point[2]
        return self.centre(name), None

    def centre(self, name) -> np.ndarray:
        """Slider values at the centre of ``name``'s codes (its plane's origin)."""
        values = np.zeros(N_SLIDERS)
        center = self._view(name).plane.center_
        values[:len(center)] = center
        return values

    # ---- helpers
    def _view(self, name):
        if not name:
            raise gr.Error("Pick a model first.")
        with page_errors():
            return self.store.view(name)

    def _rect(self, view, span):
        lo, hi = view.plane.bounds(span)
        return (lo[0], lo[1], hi[0], hi[1])

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
        """Slider values -> decoded uint8 image (H, W) or (H, W, 3)."""
        return self.decode_code(name, self._z(self._view(name), values, residual))

    def decode_code(self, name, z) -> np.ndarray:
        """One code (1, D) -> decoded uint8 image (H, W) or (H, W, 3) (onnxruntime when built, else PyTorch)."""
        return to_uint8(self.store.decoders.decode(name, z))[0]

    def _info(self, name, values, residual=None):
        view = self._view(name)
        z = self._z(view, values, residual)[0]
        shown = ", ".join(f"{v:+.2f}" for v in z[:8]) + (", ..." if len(z) > 8 else "")
        return f"**z** ({view.latent_dim}-D) = [{shown}]"

    # ---- what the page gets: everything it needs to decode and draw without asking again
    def page_model(self, name, request=None) -> dict:
        """The component's value for model ``name``: its plane (mean, components, centre, scale, slider
        limits), the map of encoded test images on it, the classes' colours, the starting point, and
        the decoder spec (the page fetches the ONNX once; ``sha`` None means: decode on the server)."""
        view = self._view(name)
        plane = view.plane
        limits = self._limits(view)
        digits = [_digits(lo, hi) for lo, hi in limits]
        values = self._clip(view, plane.center_)
        residual = np.zeros(view.latent_dim)
        prior = self.is_prior(view)
        if prior:
            # the first prior sample, off-plane part included: a typical code (the centre of N(0, I) in 64-D is
            # far from the shell of norm ~sqrt(D) where the samples lie, and decodes to a faint image)
            values = self._clip(view, view.coords[0])
            residual = plane.residual(view.codes[:1])[0]
        self._remember(request, name, list(values), residual.tolist())
        with page_errors():
            spec = self.store.decoders.spec(name)
        colors = plotting.class_colors(len(view.classes) - prior)
        if prior:  # the classifier's unsure samples in grey
            colors = np.vstack([colors, (0.72, 0.72, 0.72, 1.0)])
        k = len(plane.components_)
        return {
            "name": name, "dim": view.latent_dim, "k": k, "identity": bool(plane.is_identity_),
            "axes": plane.axis_names(), "evr": np.round(plane.explained_variance_ratio_, 4).tolist(),
            "mean": plane.mean_.tolist(), "components": plane.components_.tolist(),
            "center": plane.center_.tolist(), "scale": plane.scale_.tolist(),
            "limits": limits.tolist(), "digits": digits, "lims": [list(map(float, l)) for l in view.lims],
            # packed (base64 float32 / uint8): Gradio copies every component's props on each event, and
            # 15,000 JSON numbers made every event in the app slower (0.3-1 s per click measured)
            "map": {"n": len(view.coords), "x": pack(view.coords[:, 0], np.float32),
                    "y": pack(view.coords[:, 1], np.float32), "c": pack(view.labels, np.uint8)},
            "classes": list(view.classes),
            "map_title": (f"{len(view.coords):,} prior samples z ~ N(0, I), by the classifier's class of their image: "
                          "hover to preview, click or drag to move the point") if prior else None,
            "colors": ["#%02x%02x%02x" % tuple(int(255 * c) for c in rgba[:3]) for rgba in colors],
            "point": {"values": values.tolist(), "residual": residual.tolist(), "seq": 0, "name": name},
            "decoder": spec,
        }

    @staticmethod
    def is_prior(view) -> bool:
        """A view of prior samples (a model without an encoder), not of encoded test images."""
        from .store import UNSURE

        return bool(view.classes) and view.classes[-1].startswith(UNSURE.split("{")[0])

    def models(self) -> list[str]:
        """Encoder models (2-D first), then prior-only ones (the DCGAN, through a plane of its prior samples)."""
        return self.store.encoder_models() + self.store.prior_models()

    def headline(self, name) -> str:
        view = self._view(name)
        if self.is_prior(view):
            return (f"**{name}** has no encoder: the map shows {len(view.coords):,} of its prior samples, and the sliders "
                    f"move along the top {len(view.plane.components_)} principal directions of their "
                    f"{view.latent_dim}-D codes.")
        kind = "its two latent axes" if view.plane.is_identity_ else \
            f"the top {len(view.plane.components_)} principal directions of its {view.latent_dim}-D codes"
        return f"**{name}**: sliders move along {kind}."

    # ---- event handlers
    def on_model(self, name, request: gr.Request = None):
        """Model chosen: (the component's new value, the headline)."""
        return gr.HTML(value=self.page_model(name, request)), self.headline(name)

    def on_commit(self, name, evt: gr.SelectData, request: gr.Request = None):
        """The page's final point after a drag, a slide or a click: checked and kept for this session."""
        view = self._view(name)
        point = evt.value if isinstance(evt.value, dict) else {}
        raw = point.get("values")
        k = len(view.plane.components_)
        if not isinstance(raw, list) or len(raw) != k:
            raise gr.Error(f"expected {k} slider values")
        values = self._clip(view, np.array([number(v, f"Slider {i + 1}") for i, v in enumerate(raw)]))
        residual = None
        remembered = self._point(request)
        if remembered is not None and remembered[0] == name:
            residual = remembered[2]
        full = np.zeros(N_SLIDERS)
        full[:k] = values
        self._remember(request, name, full, residual)
        return self._info(name, full, residual)

    def api_decode(self, name, a, b):
        """The /decode endpoint: the image at coordinates (a, b) of the plane, other axes at the centre."""
        values, _ = self._recall(None, name)
        values[0], values[1] = number(a, "a"), number(b, "b")
        return self.decode_coords(name, values)

    def on_sample(self, name, span, seed, temperature, request: gr.Request = None):
        """A prior sample: (its decoded image, for the API; the point for the page to move to and decode)."""
        view = self._view(name)
        g = torch.Generator().manual_seed(valid_seed(seed))  # per request: never the process-wide seed
        temperature = number(temperature, "Temperature", *TEMPERATURE)
        z = self.store.model(name).sample_latent(1, generator=g, temperature=temperature).cpu().numpy()
        coords = view.plane.transform(z)[0]
        residual = view.plane.residual(z)[0].tolist()
        values = np.zeros(N_SLIDERS)
        values[:len(coords)] = self._clip(view, coords)
        image = self.decode_code(name, z)
        self._remember(request, name, values, residual)
        self._seq += 1
        point = {"name": name, "values": values[:len(coords)].tolist(), "residual": residual, "seq": self._seq}
        return image, gr.HTML(point=point)

    def standalone(self, name, request: gr.Request = None) -> str:
        """Write this model's map, decoder and the runtime into one HTML file that works from disk."""
        model = self.page_model(name, None)
        point = self._point(request)
        if point is not None and point[0] == name:
            model["point"] = {"name": name, "values": list(point[1][:model["k"]]),
                              "residual": list(point[2]) if point[2] is not None else None, "seq": 0}
        with page_errors():
            return str(write_page(self.store, model))


def build(store: Store) -> LatentGridPanel:
    """Lay out the panel inside the current Blocks context and wire its events."""
    from .inpage import page_code, server_functions

    panel = LatentGridPanel(store)
    names = panel.models()
    default = names[0] if names else None
    gr.Markdown("Drag the sliders, or click and drag on the map or the grid: the decoder turns that point of "
                "the latent space into an image as you move. Hover the map to preview what lies under the cursor.",
                elem_classes=["lsx-intro"])
    with gr.Row(equal_height=True):
        model = gr.Dropdown(names, value=default, label="Model", scale=3, elem_id="lg-model",
                            info="2-D models show their latent plane directly; 16-D ones through PCs; the DCGAN through PCs of its "
                                 "prior samples")
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, min_width=90, scale=1)
        temperature = gr.Slider(*TEMPERATURE, value=1.0, step=0.05, label="Temperature T (z = T * eps)", scale=2)
        with gr.Column(scale=2, min_width=200):
            sample_btn = gr.Button("Random sample from the prior", variant="primary")
            page_btn = gr.Button("Download as a page", size="sm", elem_id="lg-download")
    headline = gr.Markdown(None if names else
                           f"**No trained encoder models found in `{store.zoo.root}`.** Rebuild the shipped "
                           "ones with `python -m explorer.training all`, or point `--checkpoints` at a folder.",
                           elem_id="lg-headline")
    explorer = gr.HTML(value={"message": "Loading the model…"}, html_template='<div class="lsxg-host"></div>',
                       **page_code("latent_grid"), elem_id="latent-explorer",
                       server_functions=server_functions(store, store.decoders), apply_default_css=False,
                       point={})
    page_file = gr.File(label="A standalone page: open it in any browser, offline (map, decoder and runtime inside)",
                        visible=False, elem_id="lg-page")
    explanation("The ELBO and the reparameterization trick", EXPLANATION, open=True)
    # Scripting and test endpoints: the same decode on the server.
    decoded = gr.Image(visible=False, format="png", elem_id="lg-decoded-api")
    info = gr.Markdown(visible=False)
    api_decode, api_a, api_b = gr.Button(visible=False), gr.Number(visible=False), gr.Number(visible=False)
    span = gr.Number(2.5, visible=False)

    common = dict(concurrency_id="model")
    model.change(panel.on_model, [model], [explorer, headline], api_name="select_model", **common)
    # The page decodes every position itself; the server hears the final point only (kept per session).
    explorer.select(panel.on_commit, [model], [info], api_name=False, show_progress="hidden",
                    trigger_mode="always_last", **common)
    sample_btn.click(panel.on_sample, [model, span, seed, temperature], [decoded, explorer], api_name="sample",
                     show_progress="hidden", **common)
    page_btn.click(panel.standalone, [model], [page_file], api_name="standalone_page", **common).then(
        lambda: gr.File(visible=True), None, page_file, api_name=False)
    # One small decode (~1 ms): unqueued, so a script gets it in one request (POST /gradio_api/run/decode)
    # without the queue's bookkeeping and event stream; gradio_client and /gradio_api/call/decode still work.
    api_decode.click(panel.api_decode, [model, api_a, api_b], decoded, api_name="decode", queue=False)
    panel.model_choices = [(model, panel.models)]  # what the app's Dataset menu filters
    panel.components = dict(model=model, explorer=explorer, headline=headline, decoded=decoded, info=info)
    # the default model's plane, map and decoder spec when the page loads; the page decodes from there
    panel.loads = [(panel.on_model, [model], [explorer, headline], common)] if default else []
    return panel
