"""The "Model zoo" panel: every generative model of a dataset side by side, from the same seed.

One row per model: 8 samples, and an interpolation through its latent (autoencoders: the straight line
between the codes of two test images; the GAN: the great circle between two prior codes; diffusion: the
great circle between two starting noises x_T, each decoded by deterministic DDIM). Under it, the comparison
table that :mod:`explorer.zoo_table` reads from the checkpoints' cards. Rendered results are cached by
(dataset, seed), so a seed drawn once comes back instantly.
"""
from __future__ import annotations

import io
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import gradio as gr
import numpy as np
import torch

from .. import diffusion, latents, plotting, zoo_table
from ..checkpoints import CONFIG, WEIGHTS, CheckpointError
from . import study_view
from .inpage import page_code
from .store import Store
from .panel import Panel, explanation
from .validate import valid_seed

N_SAMPLES = 8        # samples per model row
N_PATH = 8           # interpolation frames per row, both ends included
DDIM_STEPS = {"pixel": 25, "latent": 50}  # pixel DDPM: ~2.4 ms per image-step on 2 CPU cores
SAMPLE_ETA = 1.0     # the diffusion rows' samples: DDIM eta = 1 (the shipped pixel models' eta = 0 samples
                     # carry blotchy high-noise errors at any step count); interpolations need eta = 0
CACHE = 32           # rendered (dataset, seed) views kept
# Where the VAE rows draw their samples: the prior N(0, I), or the mixture fitted to their aggregate posterior
# (aggregate_prior.json beside the weights, `python -m explorer.studies sampling --ship`); the other families
# sample as they always do (the AE and DAE from their own fitted priors).
PRIOR, AGGREGATE = "prior N(0, I)", "aggregate posterior q(z)"
SOURCES = (PRIOR, AGGREGATE)

EXPLANATION = r"""
### What the latent is, family by family
| family | the latent $z$ | trained by | samples by |
|---|---|---|---|
| **AE** | the code $z=f_\phi(x)$, deterministic | reconstruction only | a Gaussian fitted to the training codes afterwards: nothing made the codes fill a known shape |
| **VAE** | the posterior mean of $q_\phi(z\mid x)=\mathcal N(\mu,\sigma^2)$ | the ELBO: reconstruction $+\ \mathrm{KL}(q_\phi(z\mid x)\,\Vert\,\mathcal N(0,I))$ | decoding $z\sim\mathcal N(0,I)$, the prior the KL pulled the codes towards |
| **VAE + PatchGAN** | as the VAE | the ELBO plus a patch discriminator's verdict on its reconstructions (GAMIX-VAE's texture term, weighted as in VQGAN) | as the VAE: the term sharpens the decoder, not the prior |
| **GMM-VAE** | as the VAE | the ELBO with a learned mixture-of-Gaussians prior | picking a component, then a code from it: clusters by design |
| **DAE** (decoupled) | the code of an encoder trained in stage 1 through a deliberately *weak* decoder | stage 1: encoder + weak decoder; stage 2: the real decoder on the frozen codes | a Gaussian mixture fitted to the codes (or latent diffusion over them) |
| **Joint AE** (DAE's baseline) | the same networks' code | encoder and real decoder together, same budget | the same mixture / latent diffusion |
| **GAN** (DCGAN) | a prior code $z\sim\mathcal N(0,I)$ | a generator against a discriminator; no encoder, so a real image has no code | decoding $z\sim\mathcal N(0,I)$ |
| **DDPM** (pixel) | the starting noise $x_T$, as big as the image | predicting the noise added to images | running the reverse chain from $x_T\sim\mathcal N(0,I)$ |
| **Latent diffusion** | the starting noise over an autoencoder's 16-D codes | the same, on standardised codes | the chain in code space, then the autoencoder's decoder |

**Why the DAE:** Hu et al. (2023) argue that a latent space that is *simpler* (easier to model) makes a better
generator, even at a small cost in reconstruction. Training the encoder first through a weak decoder keeps its
codes simple; the real decoder comes second. Compare its rows with the jointly trained baseline: the same
networks, the same budget, a different latent.

**Diffusion has a latent too.** With $\eta=0$ the DDIM update (Song et al. 2021, Eq. 12) adds no fresh noise,
so the sampler is a fixed map $x_T\mapsto x_0$ (a discretised probability-flow ODE): every starting noise names
one image, and nearby noises give similar images. The interpolation rows walk the great circle (slerp) between
two $x_T$: in 784 dimensions Gaussian noise lies near the shell $\lVert x_T\rVert\approx\sqrt{784}=28$, and the
straight line would pass through low-norm noise the network never saw. With $\eta>0$ (or DDPM) new noise enters
at every step and $x_T$ no longer determines the image.

**Reading the table:** FID is lower-is-better and only meaningful next to its floor (real test images against
real train images at the same $N$). Reconstruction error exists only where there is an encoder. Sampling time:
an autoencoder or GAN decodes once; a diffusion model evaluates its network once per step (50 for the FID).
"""


@dataclass
class Row:
    """One model's row of the grid."""

    name: str
    label: str
    family: str | None
    samples: np.ndarray | None = None   # (N_SAMPLES, 28, 28) in [0, 1]
    path: np.ndarray | None = None      # (N_PATH, 28, 28) in [0, 1]
    path_kind: str = ""                 # "lerp between the codes of test images A and B", ...
    path_tag: str = ""                  # the same, short, for the grid
    error: str | None = None            # why the row is missing (names the rebuild command)
    seconds: float = 0.0
    pending: bool = False               # still being sampled (a placeholder in a partial view)
    sampled_from: str = ""              # AGGREGATE when a VAE row's samples come from its aggregate posterior


@dataclass
class View:
    """The rendered grid of one (dataset, seed)."""

    dataset: str
    seed: int
    rows: list
    pair: tuple                          # indices of the two test images the encoder rows interpolate between
    pair_images: np.ndarray              # (2, 28, 28)
    pixels: np.ndarray                   # the figure, (H, W, 3) uint8
    caption: str
    seconds: float
    complete: bool = True                # False: a partial view, some rows still being sampled


def _images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) tensor -> float (N, H, W) or (N, H, W, 3) numpy in [0, 1]."""
    return latents.display(x.detach().float().clamp(0, 1))


def _slerp_path(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """n points on the great circle from a to b (any shape), float32."""
    path = latents.slerp(a.flatten().double().numpy(), b.flatten().double().numpy(), np.linspace(0, 1, n))
    return torch.from_numpy(path).float().reshape(n, *a.shape)


class ZooPanel(Panel):
    """The panel's logic, callable without widgets (tests use it directly)."""

    def __init__(self, store: Store):
        self.store = store
        self._views: OrderedDict = OrderedDict()
        self._rows: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    # ---- what is in the zoo
    def datasets(self) -> list[str]:
        return zoo_table.datasets(self.store.zoo)

    def default_dataset(self) -> str | None:
        names = self.datasets()
        return "fashion-mnist" if "fashion-mnist" in names else (names[0] if names else None)

    def models(self, dataset: str) -> list[str]:
        return zoo_table.generative_models(self.store.zoo, dataset)

    def _stamp(self, name: str) -> tuple:
        """Changes when a checkpoint's files do, so a rebuilt model is redrawn."""
        directory = self.store.zoo.path(name)
        out = []
        for f in (WEIGHTS, CONFIG):
            try:
                out.append(os.stat(directory / f).st_mtime_ns)
            except OSError:
                out.append(-1)
        return tuple(out)

    def pair(self, dataset: str, seed: int) -> tuple[int, int]:
        """Two test images of different classes, picked by the seed."""
        labels = self.store.dataset(dataset).labels.numpy()
        rng = np.random.default_rng(seed)
        i = int(rng.integers(len(labels)))
        others = np.flatnonzero(labels != labels[i])
        j = int(others[rng.integers(len(others))]) if len(others) else (i + 1) % len(labels)
        return i, j

    # ---- one model's row
    def row(self, name: str, seed: int, pair: tuple[int, int], source: str = PRIOR) -> Row:
        """The model's samples and interpolation for this seed (cached), or its error."""
        key = (name, seed, pair, self._stamp(name), source)
        if key in self._rows:
            self._rows.move_to_end(key)
            return self._rows[key]
        row = self._compute_row(name, seed, pair, source)
        self._rows[key] = row
        while len(self._rows) > CACHE * 12:
            self._rows.popitem(last=False)
        return row

    def _compute_row(self, name: str, seed: int, pair: tuple[int, int], source: str = PRIOR) -> Row:
        t0 = time.perf_counter()
        try:
            info = self.store.zoo.info(name)
            label, _ = zoo_table.describe(info)
            row = Row(name, label, info["family"])
        except (CheckpointError, ValueError, OSError) as err:
            return Row(name, name.split("/", 1)[-1], None, error=str(err))
        try:
            model = self.store.model(name)
            family = info["family"]
            g = torch.Generator().manual_seed(seed)  # per request: never the process-wide seed
            ts = np.linspace(0, 1, N_PATH)
            if family == "ddpm":
                space = info["config"].get("space", "pixel")
                steps = min(DDIM_STEPS[space], model.config.timesteps)
                classes = torch.arange(N_SAMPLES) % model.config.classes              # labels 0..7
                row.samples = _images(model.sample(N_SAMPLES, steps=steps, sampler="ddim", eta=SAMPLE_ETA,
                                                   labels=classes, generator=g))
                shape = tuple(model.sample_shape)
                ends = diffusion.randn((2, *shape), g)  # two starting noises, after the samples' draws
                x_T = _slerp_path(ends[0], ends[1], N_PATH)                            # (N_PATH, *shape)
                row.path = _images(model.sample(N_PATH, steps=steps, sampler="ddim", eta=0.0, x_T=x_T))  # uncond.
                row.path_kind = "slerp between two starting noises x_T, deterministic DDIM"
                row.path_tag = "slerp of x_T,\nDDIM eta = 0"
            elif model.exports_decoder:  # the autoencoders and the GAN: codes decoded in one pass
                prior = self.store.zoo.aggregate_prior(name) if source == AGGREGATE and model.is_variational else None
                if prior is not None:
                    row.samples = _images(model.decode(prior.sample(N_SAMPLES, g)))
                    row.sampled_from = AGGREGATE
                else:
                    row.samples = _images(model.sample(N_SAMPLES, generator=g))
                if not model.has_encoder:
                    ends = model.sample_latent(2, generator=g).cpu()
                    z = _slerp_path(ends[0], ends[1], N_PATH)
                    row.path_kind = "slerp between two prior codes"
                    row.path_tag = "slerp of\nprior codes"
                else:
                    x = self.store.dataset(info["dataset"]).floats()[list(pair)]  # (2, C, H, W)
                    codes = model.encode(x).cpu().double().numpy()                 # (2, D)
                    z = torch.from_numpy(latents.lerp(codes[0], codes[1], ts)).float()
                    row.path_kind = "lerp between the codes of test images A and B"
                    row.path_tag = "lerp of the\ncodes of A, B"
                row.path = _images(model.decode(z))
            else:
                row.error = f"family {family!r} is not shown in the zoo"
        except CheckpointError as err:
            row.error = str(err)
        except (RuntimeError, ValueError, KeyError, TypeError) as err:  # a checkpoint that loads but fails
            cmd = info.get("command") or f"python -m explorer.training {name.split('/', 1)[-1]}"
            row.error = f"{name} failed to sample ({type(err).__name__}: {err}). Rebuild it with `{cmd}`."
        row.seconds = time.perf_counter() - t0
        return row

    # ---- the whole grid
    def _slow(self, name: str) -> bool:
        """Pixel-space diffusion: the rows that take seconds (a UNet evaluation per step)."""
        try:
            info = self.store.zoo.info(name)
        except (CheckpointError, ValueError, OSError):
            return False
        return info["family"] == "ddpm" and info["config"].get("space", "pixel") == "pixel"

    def views(self, dataset: str, seed: int, source: str = PRIOR):
        """Yield the grid for (dataset, seed): from the cache at once, else first with the quick rows (the
        pixel-space diffusion rows still being sampled), then complete. The complete view is cached."""
        if dataset not in self.datasets():
            raise gr.Error(f"No generative models of {dataset!r} in {self.store.zoo.root}.")
        names = self.models(dataset)
        if source not in SOURCES:
            raise gr.Error(f"Sample VAEs from one of {list(SOURCES)}, not {source!r}.")
        key = (dataset, seed, tuple((n, self._stamp(n)) for n in names), source, plotting.text_scale())
        with self._lock:
            if key in self._views:
                self._views.move_to_end(key)
                yield self._views[key]
                return
        t0 = time.perf_counter()
        pair = self.pair(dataset, seed)
        slow = [n for n in names if self._slow(n)]
        pending = None
        with self._lock:  # one model at a time; the row cache makes a concurrent request for this seed reuse rows
            if slow and not all((n, seed, pair, self._stamp(n), source) in self._rows for n in slow):
                quick = {n: self.row(n, seed, pair, source) for n in names if n not in slow}
                pending = [quick.get(n) or self._pending(n) for n in names]
        if pending is not None:  # never yield while holding the lock
            yield self._render(dataset, seed, pair, pending, time.perf_counter() - t0)
        with self._lock:
            rows = [self.row(n, seed, pair, source) for n in names]
        view = self._render(dataset, seed, pair, rows, time.perf_counter() - t0)
        with self._lock:
            self._views[key] = view
            while len(self._views) > CACHE:
                self._views.popitem(last=False)
        yield view

    def view(self, dataset: str, seed: int, source: str = PRIOR) -> View:
        """The complete grid for (dataset, seed, where VAEs sample from); computed once, then cached."""
        view = None
        for view in self.views(dataset, seed, source):
            pass
        return view

    def _pending(self, name: str) -> Row:
        try:
            label, _ = zoo_table.describe(self.store.zoo.info(name))
        except (CheckpointError, ValueError, OSError):
            label = name.split("/", 1)[-1]
        return Row(name, label, "ddpm", pending=True)

    def _render(self, dataset: str, seed: int, pair: tuple, rows: list, seconds: float) -> View:
        ds = self.store.dataset(dataset)
        pair_images = latents.display(ds.floats()[list(pair)])
        notes = [f"sampling ({DDIM_STEPS['pixel']} DDIM steps per image)…" if r.pending else self._short_error(r)
                 for r in rows]
        fig = plotting.zoo_grid(
            [f"{r.label}\n{r.name.split('/', 1)[-1]}" + ("  · from q(z)" if r.sampled_from else "") for r in rows],
            [r.samples for r in rows], [r.path for r in rows],
            notes=notes, note_colors=["0.35" if r.pending else "firebrick" for r in rows],
            tags=[r.path_tag for r in rows],
            titles=(f"{N_SAMPLES} samples, seed {seed}", "interpolation through the latent  (A → B)"),
            header=(f"test images A, B\n#{pair[0]} {ds.classes[int(ds.labels[pair[0]])]}, "
                    f"#{pair[1]} {ds.classes[int(ds.labels[pair[1]])]}",
                    [pair_images[0]] + [None] * (N_PATH - 2) + [pair_images[1]]))
        view = View(dataset, seed, rows, pair, pair_images, plotting.Raster.pixels_of(fig), "", seconds)
        view.complete = not any(r.pending for r in rows)
        view.caption = self.caption(view, ds.classes)
        return view

    @staticmethod
    def _short_error(row: Row) -> str | None:
        if not row.error:
            return None
        cmd = row.error.rsplit("Rebuild it with ", 1)
        return "unavailable: rebuild with " + cmd[1].rstrip(".") if len(cmd) == 2 else "unavailable (see below)"

    @staticmethod
    def caption(view: View, classes: list[str]) -> str:
        a, b = view.pair
        shown = ", ".join(classes[i % len(classes)] for i in range(N_SAMPLES))
        times = ", ".join(f"{r.name.split('/', 1)[-1]} {r.seconds:.2f} s" for r in view.rows if not r.error)
        lines = [
            f"**Seed {view.seed}**: every row draws its {N_SAMPLES} samples from "
            f"`torch.Generator().manual_seed({view.seed})`, so the grid comes back identical for the same seed. "
            f"Diffusion rows are class-conditional: their samples get the labels 0–{N_SAMPLES - 1} ({shown}), "
            f"guidance 1, DDIM with {DDIM_STEPS['pixel']} steps in pixel space and {DDIM_STEPS['latent']} in latent "
            f"space and eta = {SAMPLE_ETA:g} (fresh noise at every step, also drawn from the seed; the table's FID "
            f"uses DDIM-50 with eta = 0).",
            f"**Interpolations**: the autoencoders (AE, VAE, GMM-VAE, DAE, joint baseline) decode the straight "
            f"line (lerp) between the codes of test images A = #{a} and B = #{b} (top row; each row's ends are the "
            f"model's reconstructions of them). The GAN has no encoder: it follows the great circle (slerp) "
            f"between two prior codes. The diffusion models slerp between two starting noises x_T and run the "
            f"same DDIM from each, unconditional and with eta = 0: then the sampler is a fixed map from noise to "
            f"image, so x_T is a latent too (the blotches some pixel-space frames show are eta = 0's: the network's "
            f"errors at high noise are never corrected by fresh noise).",
            (f"Drawn in {view.seconds:.1f} s ({times}); this seed is now cached." if view.complete else
             f"**Sampling the pixel-space diffusion models** ({DDIM_STEPS['pixel']} DDIM steps per image, "
             f"about a second each on a CPU)…"),
        ]
        aggregate = [r.name.split("/", 1)[-1] for r in view.rows if r.sampled_from]
        if aggregate:
            lines.insert(1, f"**Samples from the aggregate posterior** (rows marked \"from q(z)\"): {', '.join(aggregate)} "
                            "decode codes drawn from a 10-Gaussian mixture fitted to where their training images' codes "
                            "are, not from the prior N(0, I). Compare with the prior: the prior's regions that no "
                            "image's posterior covers decode to blur (classifier-FID roughly halves; see the "
                            "`gamix-vae-16` card).")
        for r in view.rows:
            if r.error:
                lines.append(f"⚠️ **{r.name}**: {r.error}")
        return "\n\n".join(lines)

    def table(self, dataset: str) -> str:
        """The comparison table, read from the cards on every call (it is cheap), as Markdown."""
        return zoo_table.markdown(zoo_table.table(self.store.zoo, dataset), dataset)

    # ---- handlers
    def draw(self, dataset, seed, source=PRIOR):
        """Yield (grid pixels, caption, table) for the widgets' dataset and seed: at once from the cache, else
        the quick rows first and then the complete grid. Bad values give a gr.Error."""
        seed = valid_seed(seed)
        if not dataset:
            dataset = self.default_dataset()
            if dataset is None:
                raise gr.Error(f"No generative checkpoints in {self.store.zoo.root}: train one with "
                               "`python -m explorer.training vae-16 --dataset fashion-mnist`.")
        table = self.table(str(dataset))
        for view in self.views(str(dataset), seed, source or PRIOR):
            yield view.pixels, view.caption, table

    def page_grid(self, dataset, seed, source=PRIOR) -> dict:
        """The grid for the page to draw (web/zoo_grid.js): row labels as text and every image as its own small
        PNG (data URL), so the labels read at any size and a click enlarges one image. The complete view, from
        the cache (draw has just made it)."""
        import base64

        from PIL import Image

        def png(im):
            if im is None:
                return None
            a = (np.clip(np.asarray(im, np.float64), 0, 1) * 255).round().astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format="png", compress_level=1)
            return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

        seed = valid_seed(seed)
        dataset = dataset or self.default_dataset()
        if not dataset:
            return {}
        view = self.view(str(dataset), seed, source or PRIOR)
        ds = self.store.dataset(view.dataset)
        a, b = view.pair
        return {
            "dataset": view.dataset, "seed": view.seed,
            "titles": [f"{N_SAMPLES} samples, seed {view.seed}", "interpolation through the latent (A → B)"],
            "pair": {"label": f"test images A = #{a} ({ds.classes[int(ds.labels[a])]}), "
                              f"B = #{b} ({ds.classes[int(ds.labels[b])]})",
                     "images": [png(view.pair_images[0]), png(view.pair_images[1])]},
            "rows": [{"name": r.name, "label": r.label, "model": r.name.split("/", 1)[-1],
                      "from": "from q(z)" if r.sampled_from else "", "tag": r.path_tag,
                      "note": self._short_error(r) or "",
                      "samples": [png(x) for x in r.samples] if r.samples is not None else [],
                      "path": [png(x) for x in r.path] if r.path is not None else []} for r in view.rows],
        }

    def on_page_grid(self, dataset, seed, source=PRIOR):
        if self.default_dataset() is None:
            return gr.skip()
        return gr.HTML(value=self.page_grid(dataset, seed, source))

    def new_seed(self, seed):
        """The seed after this one (a 'next' button that stays reproducible)."""
        try:
            return (int(seed) + 1) % 2 ** 31
        except (TypeError, ValueError, OverflowError):
            return 0

    def on_open(self, dataset, seed, source=PRIOR):
        """The tab was opened: the grid (from the cache after the first time); nothing to do in an empty zoo,
        whose caption already says how to train a model."""
        if self.default_dataset() is None:
            yield gr.skip(), gr.skip(), gr.skip()
            return
        yield from self.draw(dataset, seed, source)

    def ablation(self, dataset=None) -> tuple:
        """The GAMIX-VAE ablation shipped with ``dataset``'s gamix-vae-16 (``python -m explorer.studies ... gamix``):
        its table and sigma chart."""
        pixels, text = study_view.view(self.store.zoo.root, "gamix", dataset if dataset in self.datasets() else None)
        return gr.Image(value=pixels, visible=pixels is not None), text

    def warm(self) -> None:
        """Draw the default dataset at seed 0, so the first visitor's tab opens from the cache."""
        dataset = self.default_dataset()
        if dataset:
            self.view(dataset, 0)


def build(store: Store) -> ZooPanel:
    """Lay out the panel inside the current Tab and wire its events."""
    panel = ZooPanel(store)
    names = panel.datasets()
    dataset0 = panel.default_dataset()
    gr.Markdown("Every generative model of one dataset, side by side: samples from the **same seed**, a walk "
                "through each model's latent, and their numbers from the model cards.", elem_classes=["lsx-intro"])
    with gr.Row(equal_height=True):
        dataset = gr.Dropdown(names, value=dataset0, label="Dataset", visible=len(names) > 1, scale=2,
                              elem_id="zoo-dataset", min_width=160)
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, scale=2, min_width=100, elem_id="zoo-seed",
                         info="the same seed gives the same grid")
        source = gr.Radio(list(SOURCES), value=PRIOR, label="VAEs sample from", scale=3, min_width=260,
                          elem_id="zoo-source", info="the aggregate posterior: where the training codes are")
        with gr.Column(scale=1, min_width=140):
            draw = gr.Button("Redraw", variant="primary", size="md", elem_id="zoo-draw")
            nxt = gr.Button("Next seed", size="md", elem_id="zoo-next")
    # the grid drawn in the page (labels as text, every image enlargeable: web/zoo_grid.js); the same grid as one
    # figure stays for the API (/zoo_draw) and, while pixel-space diffusion rows are still sampling, the page
    page_grid = gr.HTML(value={}, html_template='<div class="lsxz-host"></div>', **page_code("zoo_grid"),
                        elem_id="zoo-page-grid", apply_default_css=False)
    grid = gr.Image(label="Samples and latent interpolations, one row per model", show_label=False,
                    interactive=False, format="png", elem_id="zoo-grid", buttons=["download", "fullscreen"])
    caption = gr.Markdown(None if dataset0 else
                          f"**No generative checkpoints in `{store.zoo.root}`.** Train one with "
                          "`python -m explorer.training vae-16 --dataset fashion-mnist`.", elem_id="zoo-caption")
    gr.Markdown("### Comparison")
    table = gr.Markdown(elem_id="zoo-table")
    with gr.Accordion("GAMIX-VAE ablation: which of its parts helps (several seeds)", open=False,
                      elem_id="zoo-ablation"):
        gr.Markdown("The plain 16-D VAE, with the PatchGAN term, with the mixture posterior, and both (GAMIX-VAE, "
                    "arXiv 2309.13160), on the same networks, epochs and data; the mixture arms also without the "
                    "anti-collapse regulariser. The chart: each component's sigma per epoch (near 0: collapsed).")
        ablation_text = gr.Markdown(elem_id="zoo-ablation-text")
        ablation_img = gr.Image(label="Component sigma per epoch", show_label=False, interactive=False,
                                elem_id="zoo-ablation-chart", buttons=["download", "fullscreen"])
    explanation("What each family's latent is, and how to read the table", EXPLANATION, open=False)

    inputs, outputs = [dataset, seed, source], [grid, caption, table]
    common = dict(concurrency_id="model", show_progress="minimal")

    def paged(event):  # once the grid is complete, the page draws it and the figure steps aside
        return event.success(panel.on_page_grid, inputs, page_grid, api_name=False, show_progress="hidden").success(
            lambda: gr.Image(visible=False), None, grid, api_name=False, show_progress="hidden")

    paged(draw.click(panel.draw, inputs, outputs, api_name="zoo_draw", **common))
    paged(seed.submit(panel.draw, inputs, outputs, api_name=False, **common))
    paged(dataset.change(panel.draw, inputs, outputs, api_name=False, **common))
    paged(source.input(panel.draw, inputs, outputs, api_name=False, **common))
    paged(nxt.click(panel.new_seed, seed, seed, api_name=False, show_progress="hidden").then(
        panel.draw, inputs, outputs, api_name=False, **common))
    panel.dataset_menu = dataset  # the app's Dataset menu sets it
    panel.components = dict(dataset=dataset, seed=seed, source=source, draw=draw, next=nxt, grid=grid,
                            caption=caption, table=table)
    panel.opens = [(panel.on_open, inputs, outputs, common),
                   (panel.on_page_grid, inputs, [page_grid], {"show_progress": "hidden"}),
                   (lambda: gr.Image(visible=False), [], [grid], {"show_progress": "hidden"}),
                   (panel.ablation, [dataset], [ablation_img, ablation_text], {"show_progress": "hidden"})]
    dataset.change(panel.ablation, [dataset], [ablation_img, ablation_text], api_name=False, show_progress="hidden")
    return panel
