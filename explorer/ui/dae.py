"""The "DAE vs baseline" panel: the Decoupled Autoencoder (two-stage training, arXiv 2307.08283) side by
side with the same encoder and decoder trained jointly: reconstructions of the same test images, samples
from each latent's generators with the same seeds, both latent maps, the multi-seed metric table and the
training curves; "Train live" trains both from scratch in under a minute for a lecture.
"""
from __future__ import annotations

import json

import gradio as gr
import numpy as np
import torch

from .. import dae_study, plotting, projection, studies
from ..checkpoints import CheckpointError
from .point_map import payload, point_map
from .projection import map_latent, map_value, pick_view
from . import study_view
from .store import Store
from .panel import Panel, explanation
from .validate import number, page_errors, valid_seed

SHIPPED, LIVE = "Shipped checkpoints", "Live run"
SHOW = 8                         # test images and samples per row
LIVE_TRAIN = 4000                # live runs train on the first 4,000 shipped test images ...
MIN_BUDGET, MAX_BUDGET = 10, 50  # ... for this many seconds (evaluation adds ~5-10 s)
LIVE_CONFIG = {"latent_dim": 16, "channels": 16, "hidden": 256}

EXPLANATION = r"""
### Two stages instead of one
A latent generative model (a mixture, a diffusion model, a GAN) is only as good as the latent it has to model.
Trained **jointly**, a powerful decoder lets the encoder hide detail in fine, tangled variations of the code:
reconstructions are sharp, but the code distribution is complicated, and the generator fitted to it struggles.

The **Decoupled Autoencoder** (Hu et al. 2023, *Complexity Matters: Rethinking the Latent Space for Generative
Modeling*, arXiv 2307.08283) splits training:

1. **Stage 1.** Encoder $f_\phi$ + a deliberately **weak** decoder $\tilde g$ (here 4 channels instead of 16, a
   64-unit MLP, dropout 0.25): $\min_{\phi,\tilde g}\;\mathbb E_x\big[-\log p_{\tilde g}(x\mid f_\phi(x))\big]$.
   A weak decoder can only use coarse, smoothly varying structure of the code, so the encoder puts the image's
   main factors there and the latent stays simple.
2. **Stage 2.** Freeze $f_\phi$; train the real decoder $g_\theta$ on the fixed codes:
   $\min_{\theta}\;\mathbb E_x\big[-\log p_{g_\theta}(x\mid f_\phi(x))\big]$.

The paper's argument: the quality of a two-stage generative model is bounded by how hard the latent distribution is
to learn (they measure it by a distance between latent and data distributions that depends on the generator's
complexity), and a weaker stage-1 decoder lowers that complexity at little cost in reconstruction, because the
strong stage-2 decoder recovers the detail. **The baseline** here trains the same encoder and real decoder jointly
for the same number of epochs, on the same data, with the same 16-D latent. Both latents get the same two
generators: a 10-component Gaussian mixture (the quick one) and latent diffusion (an MLP denoiser, DDIM-50).

**How simple is a latent?** The mixture's held-out log-likelihood per dimension of the standardised test codes: a
standard Gaussian scores $-\tfrac12\log(2\pi e)=-1.42$; higher means the codes are more concentrated, i.e. easier
to model. The latent diffusion model's held-out noise-prediction error says the same from the other generator.
"""


class DAEPanel(Panel):
    """The panel's logic, callable without widgets (tests use it directly)."""

    def __init__(self, store: Store):
        self.store = store

    # ---- which checkpoints ------------------------------------------------------------------
    def pair(self) -> tuple[str, str]:
        """(DAE, joint baseline) checkpoint names of one dataset; the shipped pair when present."""
        zoo = self.store.zoo
        modes = {}
        for name in zoo.available("dae"):
            try:
                modes[name] = zoo.info(name)["config"].get("mode")
            except CheckpointError:
                continue
        for d in (n for n, m in modes.items() if m == "decoupled"):
            partner = f"{d}-joint"
            if modes.get(partner) == "joint":
                return d, partner
        dae = [n for n, m in modes.items() if m == "decoupled"]
        joint = [n for n, m in modes.items() if m == "joint"]
        if not dae or not joint:
            raise gr.Error("No DAE / baseline pair among the checkpoints. Build them with "
                           "`python -m explorer.studies run dae` and `python -m explorer.studies summary dae --ship`, "
                           "or use Train live.")
        return dae[0], joint[0]

    def generators(self, name: str) -> str | None:
        """The latent diffusion checkpoint trained on ``name``'s codes, if any."""
        for ldm in self.store.zoo.available("ddpm"):
            try:
                if self.store.zoo.info(ldm)["config"].get("vae") == name:
                    return ldm
            except CheckpointError:
                continue
        return None

    def study(self) -> dict | None:
        dae, _ = self.pair()
        path = self.store.zoo.path(dae) / studies.DAE.result_file
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def sweep(self) -> tuple:
        """The shipped sweep (``python -m explorer.studies ... dae-sweep``): its chart and what it says."""
        try:
            dataset = self.store.dataset_of(self.pair()[0])
        except (gr.Error, CheckpointError):
            dataset = None  # no pair: the study's own dataset (the panel's status says how to build the pair)
        pixels, text = study_view.view(self.store.zoo.root, "dae-sweep", dataset)
        return gr.Image(value=pixels, visible=pixels is not None), text

    # ---- the data each source shows ---------------------------------------------------------
    def _source(self, source: str, live) -> dict:
        """Models and test images for ``source``: {"dae", "joint", "x", "offset", "dataset", "ldm"}."""
        if source == LIVE:
            if live is None:
                raise gr.Error("No live run yet in this session: press Train live (or show the shipped checkpoints).")
            ds = self.store.dataset("fashion-mnist")
            return {"dae": live.models["dae"], "joint": live.models["joint"], "x": ds.floats()[LIVE_TRAIN:],
                    "offset": LIVE_TRAIN, "dataset": "fashion-mnist", "ldm": {}}
        d, j = self.pair()
        with page_errors():
            models = {"dae": self.store.model(d), "joint": self.store.model(j)}
            dataset = self.store.dataset_of(d)
        ldm = {arm: self.generators(n) for arm, n in (("dae", d), ("joint", j))}
        return {**models, "x": self.store.dataset(dataset).floats(), "offset": 0, "dataset": dataset,
                "ldm": {k: v for k, v in ldm.items() if v}}

    @torch.no_grad()
    def reconstructions(self, source: str, seed: int, live=None, src: dict | None = None) -> np.ndarray:
        """The same SHOW test images (picked by ``seed``): originals, the weak stage-1 decoder's view, the DAE
        and the joint baseline. ``src``: what ``_source`` gave, when the caller has it already."""
        src = src or self._source(source, live)
        x = src["x"]
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:SHOW]
        xb = x[idx]
        rows = {"original": xb[:, 0].numpy(),
                "DAE stage 1\n(weak decoder)": src["dae"].reconstruct_aux(xb).cpu()[:, 0].numpy(),
                "DAE\n(real decoder)": src["dae"].reconstruct(xb).cpu()[:, 0].numpy(),
                "joint\nbaseline": src["joint"].reconstruct(xb).cpu()[:, 0].numpy()}
        mse = {k: float(((torch.as_tensor(v) - xb[:, 0]) ** 2).mean()) for k, v in list(rows.items())[1:]}
        rows = {(k if k == "original" else f"{k}\nMSE {mse[k]:.4f}"): v for k, v in rows.items()}
        title = f"{SHOW} held-out test images (seed {seed}): MSE per pixel over these {SHOW}"
        return plotting.Raster.pixels_of(plotting.interpolation_strips(rows, np.arange(SHOW), None, title))

    @torch.no_grad()
    def samples(self, source: str, seed: int, live=None, steps: int = 50, src: dict | None = None) -> np.ndarray:
        """Samples of each latent's generators, each row drawn with the same seed."""
        src = src or self._source(source, live)
        rows = {}
        for arm, label in (("dae", "DAE"), ("joint", "joint")):
            g = torch.Generator().manual_seed(seed)
            rows[f"{label}\n+ mixture"] = src[arm].sample(SHOW, generator=g).cpu()[:, 0].numpy()
        for arm, label in (("dae", "DAE"), ("joint", "joint")):
            name = src["ldm"].get(arm)
            if name:
                with page_errors():
                    ldm = self.store.model(name)
                g = torch.Generator().manual_seed(seed)
                labels = torch.arange(SHOW) % ldm.config.classes
                rows[f"{label} + latent\ndiffusion"] = ldm.sample(SHOW, steps=steps, sampler="ddim", eta=0.0,
                                                                  labels=labels, generator=g).cpu()[:, 0].numpy()
        extra = (f"; diffusion: DDIM-{steps}, classes 0-{SHOW - 1}" if src["ldm"] else
                 "" if source == SHIPPED else "; live runs fit only the mixture")
        title = f"Seed {seed} in every row{extra}"
        return plotting.Raster.pixels_of(plotting.interpolation_strips(rows, np.arange(SHOW), None, title))

    def table(self, source: str, live=None) -> str:
        if source == LIVE:
            if live is None:
                return "No live run yet: press **Train live**."
            return live_table(live)
        study = self.study()
        if study is None:
            d, _ = self.pair()
            return (f"No multi-seed study found beside `{d}`. Run `python -m explorer.studies run dae` and "
                    "`python -m explorer.studies summary dae --ship`.")
        note = f"\n\n{study['note']}" if study.get("note") else ""
        return "#### Metrics of the shipped study\n" + studies.table_markdown(study) + note

    def curves(self, source: str, live=None) -> np.ndarray:
        if source == LIVE:
            if live is None:
                return None
            def per_step(h):
                return (np.array([e["step"] for e in h]), _smooth(np.array([e["mse"] for e in h])),
                        np.array([e["stage"] for e in h]))

            curves, boundary = _stage_curves({arm: [per_step(live.history[arm])] for arm in ("dae", "joint")})
            return plotting.Raster.pixels_of(plotting.training_curves(
                curves, xlabel="step", boundary=boundary,
                title=f"Live run: training MSE (smoothed), {live.steps} steps each"))
        study = self.study()
        if study is None:
            return None
        runs = {arm: [(np.array([e["epoch"] for e in h]), np.array([e["mse"] for e in h]),
                       np.array([e.get("stage", 0) for e in h])) for h in hist.values()]
                for arm, hist in study["history"].items()}
        curves, boundary = _stage_curves(runs)
        n = len(study["seeds"])
        title = f"Training MSE per epoch (running mean over batches), {n} seed{'s' if n != 1 else ''}"
        return plotting.Raster.pixels_of(plotting.training_curves(curves, boundary=boundary, title=title))

    # ---- the latent maps --------------------------------------------------------------------
    def maps(self, source: str, live=None) -> list:
        """[(payload, caption, latent)] for the DAE and the baseline: shipped UMAP maps (or PCA), with each
        model's codes and decoder spec for the page to decode clicks; PCA of a live run's codes, which the
        page cannot decode (the live models exist only in this server's session), so no latent."""
        out = []
        if source == LIVE:
            if live is None:
                return [({"message": "Train live to see its maps"}, "", {}), ({"message": ""}, "", {})]
            ds = self.store.dataset("fashion-mnist")
            x, labels = ds.floats()[LIVE_TRAIN:], ds.labels.numpy()[LIVE_TRAIN:]
            _, side = self.store.sprite("fashion-mnist")
            for arm, label in (("dae", "DAE"), ("joint", "joint baseline")):
                codes = live.models[arm].encode(x).cpu().numpy()
                coords = projection.project(codes, "pca")
                value = payload(coords, labels, ds.classes, f"live {label}: PCA of 16-D codes", ("PC 1", "PC 2"),
                                sprite_side=side, thumb=self.store.sprite_thumb("fashion-mnist"),
                                index=np.arange(LIVE_TRAIN, LIVE_TRAIN + len(x)))
                out.append((value, f"{len(x):,} held-out images (not trained on)", {}))
            return out
        for name in self.pair():
            # the shipped UMAP when there is one; else PCA, which takes milliseconds (UMAP would take ~a minute)
            method = "umap" if any((self.store.zoo.path(name) / "projections").glob("umap-*.npz")) else "pca"
            try:
                value, stats = map_value(self.store, name, method)
                latent = map_latent(self.store, name)
            except (CheckpointError, gr.Error) as err:
                msg = err.message if isinstance(err, gr.Error) else str(err)
                value, stats, latent = {"message": f"{name}: unavailable"}, f"⚠️ {msg}", {}
            out.append((value, stats, latent))
        return out

    @torch.no_grad()
    def details(self, source: str, index: int, live=None) -> tuple[np.ndarray, str]:
        """A clicked test image (dataset index): the original and the three reconstructions."""
        src = self._source(source, live)
        lo, hi = src["offset"], src["offset"] + len(src["x"]) - 1
        index = int(number(index, "Test image index", lo, hi))
        i = index - lo
        x = src["x"][i:i + 1]
        images = [x[0, 0].numpy(), src["dae"].reconstruct_aux(x)[0, 0].cpu().numpy(),
                  src["dae"].reconstruct(x)[0, 0].cpu().numpy(), src["joint"].reconstruct(x)[0, 0].cpu().numpy()]
        titles = ["original", "DAE stage 1", "DAE", "joint"]
        classes = self.store.dataset(src["dataset"]).classes
        label = classes[int(self.store.dataset(src["dataset"]).labels[index])]
        return (plotting.Raster.pixels_of(plotting.image_row(images, titles)), f"Test image #{index} ({label})")

    # ---- handlers ---------------------------------------------------------------------------
    def on_open(self, source: str, seed, live):
        """Fill the panel: the images, table and curves first, then the two maps (which encode the test set)."""
        seed = valid_seed(seed)
        try:
            self.pair() if source == SHIPPED else None
        except gr.Error as err:
            yield (None, None, f"⚠️ {err.message}", None, gr.skip(), "", gr.skip(), "", gr.skip(), gr.skip())
            return
        src = self._source(source, live)  # models and images, looked up once for both image panels
        quick = (self.reconstructions(source, seed, live, src=src), self.samples(source, seed, live, src=src),
                 self.table(source, live), self.curves(source, live))
        yield quick + (gr.skip(),) * 4 + (gr.Image(value=None, visible=False), "")
        (va, ca, la), (vb, cb, lb) = self.maps(source, live)
        sprite = self.store.sprite("fashion-mnist" if source == LIVE else self.store.dataset_of(self.pair()[0]))[0]
        # the last update carries everything, so an API call's result is the whole panel
        yield quick + (gr.HTML(value=va, sprite=sprite, sel=[], latent=la), ca,
                       gr.HTML(value=vb, sprite=sprite, sel=[], latent=lb), cb, gr.skip(), gr.skip())

    def warm(self) -> None:
        """Encode both models' test codes, load their maps and the thumbnails, so the tab opens fast."""
        try:
            self.maps(SHIPPED)
            self.store.sprite(self.store.dataset_of(self.pair()[0]))
        except gr.Error:
            pass  # no pair: the panel says how to build one

    def on_seed(self, source: str, seed, live):
        seed = valid_seed(seed)
        src = self._source(source, live)
        return self.reconstructions(source, seed, live, src=src), self.samples(source, seed, live, src=src)

    def on_train(self, budget, seed, progress=gr.Progress()):
        budget = number(budget, "Training budget (seconds)", MIN_BUDGET, MAX_BUDGET)
        seed = valid_seed(seed)
        ds = self.store.dataset("fashion-mnist")
        x = ds.floats()
        clf = self.store.classifier("fashion-mnist")
        progress(0.0, desc="starting")
        run = dae_study.train_live(x[:LIVE_TRAIN], x[LIVE_TRAIN:], budget_s=budget, seed=seed,
                                   config=LIVE_CONFIG, classifier=clf,
                                   progress=lambda f, text: progress(f, desc=text))
        m = run.metrics
        status = (f"Live run done: {run.steps} steps per model; joint {m['joint']['seconds']:.0f} s, DAE "
                  f"{m['dae']['seconds']:.0f} s of training (the DAE's stage 2 skips the encoder's backward pass).")
        return run, gr.Radio(value=LIVE), status, gr.skip(), gr.skip()

    def on_select(self, source: str, live, evt: gr.SelectData):
        """A map click. Shipped checkpoints: the page has decoded it with both models already (pick view);
        the server only checks the index. A live run's models live in this session only: the server
        decodes the click, with the weak stage-1 decoder too."""
        if source == LIVE:
            image, text = self.details(source, evt.index, live)
            return gr.Image(value=image, visible=True), text
        n = len(self.store.dataset(self.store.dataset_of(self.pair()[0])).labels)
        number(evt.index, "Test image index", 0, n - 1)
        return gr.skip(), gr.skip()


def _stage_curves(runs: dict) -> tuple[dict, float | None]:
    """``runs``: {arm: [(xs, mse, stage per point), ...]} -> (curves for plotting.training_curves, with the
    DAE split into its two stages; the x between its stages, or None)."""
    curves, boundary = {}, None
    for arm, items in runs.items():
        for xs, ys, stage in items:
            if arm != "dae":
                curves.setdefault("joint baseline", []).append((xs, ys))
                continue
            for st, label in ((1, "DAE stage 1 (weak decoder)"), (2, "DAE stage 2 (real decoder)")):
                curves.setdefault(label, []).append((xs[stage == st], ys[stage == st]))
            if (stage == 1).any() and (stage == 2).any():
                boundary = (xs[stage == 1][-1] + xs[stage == 2][0]) / 2
    return curves, boundary


def _smooth(y: np.ndarray, k: int = 9) -> np.ndarray:
    """Running mean over k batches (shorter at the start)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    for i in range(len(y)):
        lo = max(0, i - k + 1)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def live_table(live) -> str:
    d, j = live.metrics["dae"], live.metrics["joint"]
    rows = [("held-out reconstruction MSE", "test_mse", "{:.4f}"),
            ("mixture held-out log-lik / dim (higher: simpler)", "gmm_loglik", "{:.3f}"),
            ("FID, mixture samples", "fid", "{:.1f}"),
            ("training steps (batch 128)", "steps", "{}"),
            ("training time (s)", "seconds", "{:.1f}")]
    text = "#### Metrics of the live run (one seed)\n| metric | DAE (two stages) | joint baseline |\n|---|---|---|\n"
    for label, key, fmt in rows:
        if key in d and key in j:
            text += f"| {label} | {fmt.format(d[key])} | {fmt.format(j[key])} |\n"
    if "stage1_test_mse" in d:
        text += f"\nThe weak stage-1 decoder alone reconstructs with MSE {d['stage1_test_mse']:.4f}.\n"
    if "fid" in d:
        text += (f"\nFID: classifier-FID of {d['fid_n']} mixture samples against {d['fid_n']} held-out images; "
                 f"real-vs-real floor {d['fid_floor']:.1f}.")
    text += (f" Trained on {live.train_images:,} shipped test images, evaluated on the other {live.test_images:,}. "
             "A minute of training shows the mechanics, not the final numbers: see the shipped table for those.")
    return text


def build(store: Store) -> DAEPanel:
    panel = DAEPanel(store)
    with gr.Row(equal_height=True):
        source = gr.Radio([SHIPPED, LIVE], value=SHIPPED, label="Show", scale=3, elem_id="dae-source")
        seed = gr.Number(value=0, precision=0, label="Seed (test images and samples)", scale=1, minimum=0,
                         elem_id="dae-seed")
        redraw = gr.Button("New images", scale=1)
        budget = gr.Slider(MIN_BUDGET, MAX_BUDGET, value=40, step=5, label="Live training budget (s)", scale=2,
                           elem_id="dae-budget")
        train = gr.Button("Train live", variant="primary", scale=1, elem_id="dae-train")
    live = gr.State(None)
    status = gr.Markdown(elem_id="dae-status")
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("#### Reconstructions of the same test images")
            recon = gr.Image(label="Reconstructions of the same test images", show_label=False, interactive=False,
                             elem_id="dae-recon", buttons=["download"])
        with gr.Column():
            gr.Markdown("#### Samples from each latent's generators")
            samples = gr.Image(label="Samples from each latent's generators", show_label=False, interactive=False,
                               elem_id="dae-samples", buttons=["download"])
    gr.Markdown("#### The two latent spaces: the same test images' codes, coloured by class",
                elem_classes=["lsx-first"])
    with gr.Row(equal_height=False, elem_id="dae-maps", elem_classes=["lsx-first"]):  # first when presenting
        with gr.Column(scale=5, min_width=320):
            map_a = point_map("dae-map-a", group="dae")
            stats_a = gr.Markdown()
        with gr.Column(scale=5, min_width=320):
            map_b = point_map("dae-map-b", group="dae")
            stats_b = gr.Markdown()
        with gr.Column(scale=3, min_width=260):
            gr.Markdown("**Hover** a point for its image, **click** it to decode it with both models.",
                        elem_classes=["lsx-intro"])
            pick_view("dae-view", "dae", "dae", store, "Click a point on either map: both models decode "
                      "that test image's code in your browser.")
            picked = gr.Image(label="Clicked test image (decoded on the server)", show_label=False,
                              interactive=False, elem_id="dae-picked", buttons=[], visible=False)
            picked_text = gr.Markdown(elem_id="dae-picked-text")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            table = gr.Markdown(elem_id="dae-table")
        with gr.Column(scale=1):
            gr.Markdown("#### Training curves")
            curves = gr.Image(label="Training curves", show_label=False, interactive=False, elem_id="dae-curves",
                              buttons=["download"])
    with gr.Accordion("Where does decoupling help? The sweep over the stage-1 decoder's capacity", open=True):
        gr.Markdown("Each point trains a DAE whose stage-1 decoder is weaker or stronger (left to right; at the right "
                    "it has the real decoder's architecture, so stage 1 is joint training), for two stage-2 lengths; "
                    "the dashed lines are the joint baseline with the same total epochs. Bands: ±1 sd over seeds.")
        sweep_img = gr.Image(label="DAE sweep", show_label=False, interactive=False, elem_id="dae-sweep",
                             buttons=["download", "fullscreen"])
        sweep_text = gr.Markdown(elem_id="dae-sweep-text")
    explanation("The two stages, and why a weaker decoder can give a better latent", EXPLANATION, open=True)

    common = dict(concurrency_id="model")
    outputs = [recon, samples, table, curves, map_a, stats_a, map_b, stats_b, picked, picked_text]
    panel.opens = [(panel.on_open, [source, seed, live], outputs, common),
                   (panel.sweep, [], [sweep_img, sweep_text], {"show_progress": "hidden"})]
    source.input(panel.on_open, [source, seed, live], outputs, api_name="dae_show", **common)
    for trigger in (redraw.click, seed.submit):
        trigger(panel.on_seed, [source, seed, live], [recon, samples], api_name=False, **common)
    train.click(panel.on_train, [budget, seed], [live, source, status, recon, samples], api_name="dae_train_live",
                concurrency_id="train", concurrency_limit=1).then(
        panel.on_open, [source, seed, live], outputs, api_name=False, **common)
    for m in (map_a, map_b):
        m.select(panel.on_select, [source, live], [picked, picked_text], api_name=False, show_progress="hidden",
                 **common)
    # scripting endpoints: new images for a seed; decode a test image by index
    api_btn, index_in = gr.Button(visible=False), gr.Number(visible=False)
    api_btn.click(panel.on_seed, [source, seed, live], [recon, samples], api_name="dae_images", **common)
    api_pick = gr.Button(visible=False)
    api_pick.click(lambda s, i, lv: panel.details(s, i, lv), [source, index_in, live], [picked, picked_text],
                   api_name="dae_pick", **common)
    return panel
