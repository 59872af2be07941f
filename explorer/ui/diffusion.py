"""The "Diffusion" panel: forward noising under two schedules, step-by-step denoising you can watch,
stop and scrub afterwards (DDPM / DDIM, eta, guidance), GIF/MP4 export, and pixel vs latent side by side.

Handlers are thin: widgets -> one explorer call -> image. Each run draws its noise from its own
``torch.Generator`` (seeded from the widget), never the process-wide seed.

The reverse process runs in the student's page (web/diffusion.js): the server sends the model's spec once
(:class:`PageModels`: schedule, sampling settings, the eps network's ONNX, built at first use by
``export.build_unet``) and hears nothing during a run. Without WebAssembly, or while the ONNX is being built,
the page says so and the server controls below it run the chain on the server as before.
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from dataclasses import dataclass

import gradio as gr
import numpy as np
import torch

from .. import data, diffusion, export, plotting, schedules
from ..checkpoints import CheckpointError
from ..models.diffusion import DDPMConfig
from .inpage import Builds, file_b64, pack, to_uint8
from .store import Store
from .panel import LATEX, Panel, explanation
from .validate import number, page_errors, valid_seed, whole

T_FORWARD = 1000                 # the forward-process view uses both schedules at T = 1000
MAX_BATCH = 16
MAX_GUIDANCE = 6.0               # the guidance slider's range; beyond it samples saturate
MAX_FRAMES = 250                 # frames kept per run for the scrubber and the GIF
SCALE = 3                        # nearest-neighbour upscaling of the 28x28 tiles in the frames
UNCONDITIONAL, EACH_CLASS = "unconditional (null label)", "each class in turn"

EXPLANATION = r"""
### Forward process
Noise is added in $T$ small Gaussian steps, $q(x_t\mid x_{t-1})=\mathcal N(\sqrt{1-\beta_t}\,x_{t-1},\,\beta_t I)$.
Their composition has a closed form (Ho et al. 2020, Eq. 4), which is what the t slider shows:

$$q(x_t\mid x_0)=\mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\;(1-\bar\alpha_t)\,I\big),\qquad
\bar\alpha_t=\prod_{s\le t}(1-\beta_s),\qquad x_t=\sqrt{\bar\alpha_t}\,x_0+\sqrt{1-\bar\alpha_t}\,\varepsilon .$$

The **linear** schedule (Ho et al.) grows $\beta_t$ from $10^{-4}$ to $0.02$; the **cosine** schedule
(Nichol & Dhariwal 2021) sets $\bar\alpha_t=f(t)/f(0)$, $f(t)=\cos^2\!\big(\tfrac{t/T+s}{1+s}\tfrac{\pi}{2}\big)$,
$s=0.008$, with $\beta_t$ clipped at $0.999$. Linear destroys a 28x28 image long before $t=T$ (its log-SNR
falls fast and stays low); cosine spends more steps at medium noise. The log-SNR is
$\log\big(\bar\alpha_t/(1-\bar\alpha_t)\big)$.

### Reverse process
A network $\varepsilon_\theta(x_t,t,y)$ is trained to predict the noise: $\min\;\lVert\varepsilon-\varepsilon_\theta(x_t,t,y)\rVert^2$.
From it, $\hat x_0=(x_t-\sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$ is the **predicted $x_0$**
(right half of each frame). **DDPM** samples the posterior (Ho et al., Eqs. 6-7)

$$q(x_{t-1}\mid x_t,x_0)=\mathcal N(\tilde\mu_t,\tilde\beta_t I),\quad
\tilde\mu_t=\tfrac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\hat x_0+\tfrac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\quad
\tilde\beta_t=\tfrac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t .$$

**DDIM** (Song et al. 2021, Eq. 12) jumps between any two timesteps, so 50 steps can replace 1000:

$$x_{t'}=\sqrt{\bar\alpha_{t'}}\,\hat x_0+\sqrt{1-\bar\alpha_{t'}-\sigma_t^2}\;\varepsilon_\theta+\sigma_t z,\qquad
\sigma_t=\eta\sqrt{\tfrac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_{t'}}} .$$

$\eta=0$ is deterministic (same seed, same image); $\eta=1$ over all $T$ steps is exactly DDPM.
In the DDIM paper, $\eta=0$ degrades gracefully as steps fall and $\eta=1$ quickly. The chart below shows what our models do: the linear-schedule model's $\eta=0$ curve is the flattest (+21% from 50 to 10 steps, against +51% for $\eta=1$) and the latent model is better with $\eta=0$ at every step count, but both pixel models are still better with $\eta=1$ in absolute terms: their $\eta=0$ samples keep the network's errors at high noise, which the stochastic chain corrects.

### Classifier-free guidance
One network learns both $\varepsilon_\theta(x_t,t,y)$ and, with the label dropped 10% of the time,
$\varepsilon_\theta(x_t,t,\varnothing)$. Sampling uses
$\tilde\varepsilon=\varepsilon_\theta(x_t,\varnothing)+w\,\big(\varepsilon_\theta(x_t,y)-\varepsilon_\theta(x_t,\varnothing)\big)$:
$w=0$ ignores the class, $w=1$ is the plain conditional model, $w>1$ exaggerates the class (Ho & Salimans 2021).

### Latent diffusion
The same DDPM run on the 16-D codes of a trained VAE (standardised), decoded by that VAE
(Rombach et al. 2022): far cheaper per step, limited by the VAE's decoder.
"""


def _mosaic(images: np.ndarray, pad: int = 1, scale: int = SCALE) -> np.ndarray:
    """uint8 (N, h, w) or (N, h, w, 3) -> one near-square mosaic, upscaled ``scale`` times, white gaps."""
    n, h, w = images.shape[:3]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    canvas = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *images.shape[3:]), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = im
    return canvas.repeat(scale, 0).repeat(scale, 1)


def _frame(x_t: np.ndarray, x0: np.ndarray, gap: int = 4) -> np.ndarray:
    """x_t mosaic | predicted-x_0 mosaic, side by side, at 1 px per pixel: uint8 (H, W). The page scales it
    up crisply (CSS pixelated), so each streamed frame is a ~1 ms PNG instead of ~15 ms at 3x; the
    GIF and MP4 exports upscale by SCALE."""
    a, b = _mosaic(x_t, scale=1), _mosaic(x0, scale=1)
    return np.concatenate([a, np.full((a.shape[0], gap, *a.shape[2:]), 255, np.uint8), b], axis=1)


# Concurrent sampling runs (and comparisons): half the cores, so the rest always serve the light events.
RUN_SLOTS = max(1, (os.cpu_count() or 2) // 2)


@dataclass
class Run:
    """One finished (or stopped) reverse run kept for the scrubber and the GIF."""

    name: str
    steps: list          # the timesteps of the kept frames (-1 = the final sample)
    frames: list         # uint8 (H, W) frames
    info: str


class PageModels:
    """Per app: what the page needs to sample a diffusion model itself, building missing UNets in the background."""

    def __init__(self, store: Store):
        self.store = store
        self._builds = Builds(lambda name: export.build_unet(self.store.zoo, name), "export unet")
        self._failed = self._builds.failed  # name -> why its build failed
        self._b64: dict = {}
        self._same_vae: dict = {}

    def _vae_is_the_checkpoints(self, name: str, config) -> bool:
        """Whether the VAE stored inside latent model ``name`` is checkpoint ``config.vae`` (whose ONNX decoder the
        page runs): compared weight by weight once per pair of weight files."""
        zoo = self.store.zoo
        try:
            key = (name, export.weights_sha256(zoo, name), export.weights_sha256(zoo, config.vae))
        except (CheckpointError, OSError, ValueError):
            return False
        if key not in self._same_vae:
            mine, theirs = self.store.model(name).vae.state_dict(), self.store.model(config.vae).state_dict()
            self._same_vae[key] = set(mine) == set(theirs) and all(torch.equal(mine[k].cpu(), theirs[k].cpu())
                                                                   for k in mine)
        return self._same_vae[key]

    def spec(self, name: str) -> dict:
        """{name, sha (None: sample on the server), space, shape (model space), image_shape, T, ab (alpha_bar_t,
        float32 base64), classes, nul, clip, spacing, decoder (latent: the VAE's decoder spec), mean/std (latent:
        the codes' standardisation, base64), note, building}."""
        zoo = self.store.zoo
        config = DDPMConfig(**zoo.info(name)["config"])
        model = self.store.model(name)
        spec = {"name": name, "sha": None, "space": config.space, "shape": list(model.sample_shape),
                "image_shape": [int(v) for v in config.image_shape], "T": int(config.timesteps),
                "ab": pack(model.schedule.alphas_cumprod.float().cpu().numpy(), np.float32),
                "classes": list(data.class_names(zoo.info(name)["dataset"])), "nul": int(model.null_label),
                "clip": model.clip, "spacing": config.sampling_spacing, "decoder": None, "note": ""}
        if config.space == "latent":
            spec["mean"] = pack(model.code_mean.float().cpu().numpy(), np.float32)
            spec["std"] = pack(model.code_std.float().cpu().numpy(), np.float32)
            if not (config.vae in zoo.available() and self._vae_is_the_checkpoints(name, config)):
                spec["note"] = f"its codes' decoder is not the shipped {config.vae or 'VAE'}"
                return spec
            spec["decoder"] = self.store.decoders.spec(config.vae)
            if not spec["decoder"].get("sha"):
                spec["note"], spec["building"] = spec["decoder"]["note"], bool(spec["decoder"].get("building"))
                return spec
        try:
            path = export.unet_cached(zoo, name)
        except (OSError, CheckpointError, ValueError) as err:
            path, spec["note"] = None, f"its ONNX could not be read ({type(err).__name__})"
        if path is not None:
            spec["sha"] = export.weights_sha256(zoo, name)
        elif name in self._failed:
            spec["note"] = f"building its in-page network failed ({self._failed[name]})"
        else:
            self.build_later(name)
            spec["building"] = True
            spec["note"] = f"its in-page network is being built (`python -m explorer.export {name}`)"
        return spec

    def build_later(self, name: str) -> None:
        self._builds.start(name)

    def unet_b64(self, name: str, sha: str | None = None) -> str:
        return file_b64(self._b64, self.store.zoo, name, export.unet_cached(self.store.zoo, name), sha, "network")

    def server_functions(self):
        """The page's calls (without the queue), besides the decoders' (inpage.server_functions): the spec
        (polled while a UNet is built) and the UNet's bytes (once per model and browser). They answer
        {"error": message} instead of raising."""
        store = self.store

        def known(data):
            name = (data or {}).get("name")
            if not isinstance(name, str) or name not in store.zoo.available("ddpm"):
                raise ValueError(f"unknown diffusion model {name!r}")
            return name

        def diffusion_spec(data):
            try:
                return self.spec(known(data))
            except (ValueError, TypeError, CheckpointError, AttributeError) as err:
                return {"error": str(err)}

        def unet_bytes(data):
            try:
                return {"onnx": self.unet_b64(known(data), (data or {}).get("sha"))}
            except (ValueError, CheckpointError, OSError, AttributeError) as err:
                return {"error": str(err)}

        return [diffusion_spec, unet_bytes]


class DiffusionPanel(Panel):
    def __init__(self, store: Store):
        self.store = store
        self._schedules = {n: schedules.make_schedule(n, T_FORWARD) for n in schedules.NAMES}
        self._curves = None
        self._images = {}
        self._gif_dir = tempfile.mkdtemp(prefix="lse-diffusion-")
        self.page_models = PageModels(store)

    def warm(self) -> None:
        """Build every diffusion model's in-page network (ONNX) that is missing, before a visitor asks."""
        for name in self.model_names():
            try:
                if export.unet_cached(self.store.zoo, name) is None:
                    export.build_unet(self.store.zoo, name)
            except Exception as err:  # noqa: BLE001 - the page says why and samples on the server
                self.page_models._failed[name] = type(err).__name__

    def page_value(self, name):
        """Model chosen (or the tab opened): the in-page sampler's spec, as the component's new value."""
        if not name:
            return gr.HTML(value={"message": "No diffusion model."})
        try:
            return gr.HTML(value=self.page_models.spec(name))
        except (CheckpointError, ValueError, TypeError, OSError) as err:
            return gr.HTML(value={"name": name, "sha": None, "note": f"the model could not be read ({err})",
                                  "message": str(err)})

    def standalone(self, name) -> str:
        """This model's UNet, sampler and runtime in one HTML file that denoises from disk, offline."""
        from .standalone import write_diffusion_page

        self._model(name)  # a readable error for no model or a broken checkpoint
        with page_errors():
            try:
                return str(write_diffusion_page(self.store, self.page_models, name))
            except (ValueError, export.ExportError) as err:  # e.g. a latent model whose codes' decoder cannot be inlined
                raise gr.Error(f"No page for {name}: {err}") from err

    # ---- models and data
    def model_names(self) -> list[str]:
        """Diffusion checkpoints, pixel ones first."""
        names = self.store.zoo.available("ddpm")
        space = {}
        for n in names:
            try:
                space[n] = self.store.zoo.info(n)["config"].get("space", "pixel")
            except CheckpointError:
                space[n] = "?"
        return sorted(names, key=lambda n: (space[n] != "pixel", n))

    def _model(self, name):
        if not name:
            raise gr.Error("No diffusion model: train one with `python -m explorer.training ddpm-cosine`.")
        with page_errors():
            return self.store.model(name)

    def _dataset(self, name=None) -> str:
        if name:
            try:
                return self.store.zoo.info(name)["dataset"]
            except CheckpointError:
                pass
        return "fashion-mnist"

    def images(self, dataset: str):
        if dataset not in self._images:
            self._images[dataset] = data.load_assets(dataset)
        return self._images[dataset]

    # ---- forward process
    def curves(self):
        """(base pixels, rasters of the two axes), rendered once."""
        if self._curves is None:
            ts = np.arange(1, T_FORWARD + 1)
            fig = plotting.schedule_curves(
                ts, {n: s.alphas_cumprod.double().numpy() for n, s in self._schedules.items()},
                {n: s.log_snr.double().numpy() for n, s in self._schedules.items()})
            self._curves = [plotting.Raster.from_figure(fig, ax) for ax in fig.axes]
        return self._curves

    def forward(self, index, t, seed, dataset="fashion-mnist"):
        """Image ``index`` of the shipped test subset noised to step t (0 = clean) under both schedules,
        with the same noise; returns (linear x_t, cosine x_t, curves with a marker at t, caption)."""
        ds = self.images(dataset)
        index, t = whole(index, "Test image index", 0, len(ds) - 1), whole(t, "t", 0, T_FORWARD)
        x0 = ds.floats()[index:index + 1] * 2 - 1                                        # (1, C, H, W) in [-1, 1]
        noise = diffusion.randn(x0.shape, torch.Generator().manual_seed(valid_seed(seed)))  # the same eps for both
        out, caption = [], []
        for name, s in self._schedules.items():
            x_t = x0 if t == 0 else diffusion.q_sample(s, x0, t - 1, noise)
            up = max(2, 224 // x0.shape[-1])  # 8x for 28 px, 3x for 64 px
            out.append(to_uint8((x_t + 1) / 2)[0].repeat(up, 0).repeat(up, 1))
            if t:
                ab = s.alphas_cumprod[t - 1].item()
                caption.append(f"{name}: ᾱ_t = {ab:.4f}, log-SNR = {s.log_snr[t - 1].item():+.2f}")
        rasters = self.curves()
        pixels = rasters[0].pixels.copy()
        for r in rasters:
            plotting.vline(pixels, r, max(t, 1))
        label = ds.classes[int(ds.labels[index])]
        text = f"Test image {index} ({label}), t = {t}" + (": " + "; ".join(caption) if caption else " (clean)")
        return out[0], out[1], pixels, text

    # ---- reverse process
    def _labels(self, label, n, classes):
        if label == UNCONDITIONAL:
            return None
        if label == EACH_CLASS:
            return [i % len(classes) for i in range(n)]
        if label not in classes:
            raise gr.Error(f"Unknown class {label!r}.")
        return classes.index(label)

    @staticmethod
    def _check(steps, batch, seed, model):
        seed = valid_seed(seed)
        steps = whole(steps, "Steps", 1, model.config.timesteps)
        batch = whole(batch, "Batch", 1, MAX_BATCH)
        return steps, batch, seed

    def frames(self, name, sampler, steps, eta, label, guidance, seed, batch, spacing=None):
        """Generator of (frame, caption, step) while sampling; the building block of :meth:`run`.
        ``spacing``: the timesteps a chain of fewer than T steps visits (``diffusion.timesteps``; None: the
        model's own, ``config.sampling_spacing``)."""
        model = self._model(name)
        steps, batch, seed = self._check(steps, batch, seed, model)
        spacing = str(spacing or model.config.sampling_spacing).lower()
        if spacing not in diffusion.SPACINGS:
            raise gr.Error(f"Timesteps must be one of {', '.join(diffusion.SPACINGS)}, not {spacing!r}.")
        eta, guidance = number(eta, "eta", 0, 1), number(guidance, "The guidance scale", 0, MAX_GUIDANCE)
        sampler = "ddpm" if str(sampler).lower().startswith("ddpm") else "ddim"
        classes = self.images(self._dataset(name)).classes
        labels = self._labels(label, batch, classes)
        g = torch.Generator().manual_seed(seed)  # per request: never the process-wide seed
        t0 = time.perf_counter()
        last = None
        for step in model.sample_progressive(batch, steps=steps, sampler=sampler, eta=eta,
                                             guidance=guidance, labels=labels, generator=g, spacing=spacing):
            frame = _frame(to_uint8(model.to_image(step.x_t)), to_uint8(model.to_image(step.pred_x0)))
            elapsed = time.perf_counter() - t0
            last = step
            yield frame, (f"step {step.index + 1}/{steps}, t = {step.t + 1}, {elapsed:.1f} s "
                          f"(x_t left, predicted x_0 right)"), step.t
        final = to_uint8(model.to_image(last.prev_sample))
        elapsed = time.perf_counter() - t0
        yield _frame(final, final), (f"**done**: {steps} {sampler.upper()} steps"
                                     + (f", eta = {eta:g}" if sampler == "ddim" else "")
                                     + (f", {spacing} timesteps" if steps < model.config.timesteps else "")
                                     + f", guidance {guidance:g}, {elapsed:.2f} s for {batch} image(s) "
                                       f"({1000 * elapsed / batch:.0f} ms per image)"), -1

    def run(self, name, sampler, steps, eta, label, guidance, seed, batch, spacing=None,
            request: gr.Request = None):
        """The Run button: streams (frame, caption, scrubber) and keeps the frames for the scrubber."""
        stride = max(1, int(np.ceil(int(steps) / MAX_FRAMES)))
        run = Run(name, [], [], "")
        for i, (frame, caption, t) in enumerate(self.frames(name, sampler, steps, eta, label, guidance, seed, batch,
                                                            spacing)):
            if i % stride == 0 or t == -1:  # kept as they come, so a stopped run can be scrubbed too
                run.steps.append(t)
                run.frames.append(frame)
            if i == 0:
                self._remember(request, run)
            run.info = caption
            yield frame, caption, gr.update()
        yield gr.update(), run.info, self.scrub_range(request)

    def scrub_range(self, request: gr.Request = None):
        """The scrubber spanning this session's last run (after it ends or is stopped)."""
        run = self._last_run(request)
        if run is None or not run.frames:
            return gr.update()
        n = len(run.frames)  # the scrubber reads frame numbers 1..n, as the caption does ("frame k/n")
        return gr.update(minimum=1, maximum=max(n, 2), value=n, interactive=True)

    # Each session's last run lives in the app's session cache: another student's run never evicts it,
    # and closing the tab frees it. Calls without a session (the Python API) share one "_" slot.
    def _remember(self, request, run: Run):
        self.store.sessions.put(self.store.sessions.key_of(request) or "_", "run", "last", run)

    def _last_run(self, request) -> Run | None:
        return self.store.sessions.get(self.store.sessions.key_of(request) or "_", "run", "last")

    def _run(self, request) -> Run:
        run = self._last_run(request)
        if run is None:
            raise gr.Error("Press Run first: the scrubber moves through the last run's stored steps.")
        return run

    def scrub(self, k, request: gr.Request = None):
        """Frame number k (1..n, the scrubber's and the caption's numbering) of this session's last run, without
        recomputing."""
        run = self._run(request)
        k = int(np.clip(int(k) - 1, 0, len(run.frames) - 1))
        t = run.steps[k]
        return run.frames[k], (f"frame {k + 1}/{len(run.frames)}: " +
                               ("the final sample" if t == -1 else f"t = {t + 1} (x_t left, predicted x_0 right)"))

    def export(self, kind: str, request: gr.Request = None) -> str:
        """The last run as an animated GIF or an MP4 (a file path for gr.File), the final sample held 1.5 s."""
        run = self._run(request)
        key = "".join(ch for ch in (getattr(request, "session_hash", None) or "run") if ch.isalnum())[:32]
        path = os.path.join(self._gif_dir, f"diffusion-{key}.{kind}")
        try:
            plotting.save_animation([f.repeat(SCALE, 0).repeat(SCALE, 1) for f in run.frames], path)
        except (RuntimeError, ValueError, OSError) as err:
            raise gr.Error(f"Could not write the {kind.upper()}: {err}") from err
        return path

    def gif(self, request: gr.Request = None) -> str:
        """The last run as an animated GIF."""
        return self.export("gif", request)

    def mp4(self, request: gr.Request = None) -> str:
        """The last run as an H.264 MP4."""
        return self.export("mp4", request)

    def on_model(self, name, steps):
        """Model chosen: the steps slider spans 1..T of that model, and the timestep spacing is its own."""
        if not name:  # a dataset without diffusion models
            return gr.update(), gr.update()
        try:
            config = DDPMConfig(**self.store.zoo.info(name)["config"])
            T, spacing = int(config.timesteps), config.sampling_spacing
        except (CheckpointError, TypeError, ValueError):
            return gr.update(maximum=1000), gr.update()
        return gr.update(maximum=T, value=min(int(steps), T), label=f"Steps (<= T = {T})"), gr.update(value=spacing)

    def on_model_classes(self, name):
        """The class menu of the chosen model's dataset (Fashion-MNIST's garments, the faces' mouths...)."""
        if not name:
            return gr.update()
        classes = self.images(self._dataset(name)).classes
        return gr.update(choices=[EACH_CLASS, UNCONDITIONAL, *classes], value=EACH_CLASS)

    def tradeoff(self):
        """(chart pixels or None, caption) from the tradeoff.json files shipped beside the checkpoints."""
        results, names = [], []
        for name in self.model_names():
            path = self.store.zoo.path(name) / "tradeoff.json"
            if path.is_file():
                try:
                    results.append(json.loads(path.read_text()))
                except ValueError:
                    continue
                names.append(name)
        if not results:
            return None, ("No trade-off measurements shipped yet: `python benchmarks/diffusion_tradeoff.py` "
                          "computes them (minutes on a GPU, hours on a CPU).")
        # keyed by the measurements themselves: a re-measured file is charted afresh without a restart
        pixels = self.store.raster(("diffusion-tradeoff", json.dumps(results, sort_keys=True)),
                                   lambda: plotting.fid_vs_steps(results)).pixels
        lines = [f"- **{r['model']}**{self._weights_note(name, r)}: N = {r['fid_n']}, floor {r['fid_floor']:.2f}, "
                 f"{r.get('spacing', 'leading')} timesteps (chains shorter than T); " +
                 ", ".join(f"{row['steps']} steps eta={row['eta']:g}: {row['fid']:.1f}" for row in r["rows"]
                           if row["steps"] in (10, 50, 1000)) for name, r in zip(names, results)]
        return pixels, ("Classifier-FID of class-balanced samples (guidance 1, fixed seed) against the test set, "
                        "with the real-vs-real floor at the same N. eta=1 over fewer steps is the respaced DDPM "
                        "chain; at 1000 steps it is DDPM.\n" + "\n".join(lines))

    def _weights_note(self, name: str, result: dict) -> str:
        """Which weights checkpoint ``name``'s tradeoff.json was measured on, and a warning when they are not
        the shipped ones."""
        note = f" ({result['epochs']}-epoch weights)" if result.get("epochs") else ""
        sha = result.get("weights_sha256")
        try:
            current = export.weights_sha256(self.store.zoo, name) if sha else sha
        except OSError:  # weights missing: the model itself reports that when chosen
            current = None
        if sha and sha != current:
            note += (" - **measured on other weights than these**: `python benchmarks/diffusion_tradeoff.py "
                     f"--models {name}` re-measures them")
        return note

    def forward_image(self, dataset: str, index) -> dict:
        """Test image ``index`` of ``dataset`` for the page's forward view: {index, label, shape, pixels (planar
        uint8, base64)}."""
        ds = self.images(dataset)
        index = whole(index, "Test image index", 0, len(ds) - 1)
        x = ds.floats()[index]                                                      # (C, H, W) in [0, 1]
        pixels = x.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
        return {"index": index, "label": ds.classes[int(ds.labels[index])], "shape": list(x.shape),
                "pixels": base64.b64encode(pixels.tobytes()).decode()}

    def forward_spec(self, dataset: str) -> dict:
        """What the page's forward view needs once: both schedules' alpha_bar_t, the chart of their curves (PNG)
        with each axes' pixel box and x range, and the first test image."""
        import io

        from PIL import Image

        rasters = self.curves()
        png = io.BytesIO()
        Image.fromarray(rasters[0].pixels).save(png, format="PNG")
        return {"dataset": dataset, "n_images": len(self.images(dataset)), "T": T_FORWARD,
                "ab": {n: pack(s.alphas_cumprod.float().numpy(), np.float32) for n, s in self._schedules.items()},
                "chart": base64.b64encode(png.getvalue()).decode(),
                "axes": [[*map(float, r.bbox), *map(float, r.xlim)] for r in rasters],
                "image": self.forward_image(dataset, 0)}

    def on_open_page(self, name):
        """The tab was opened: the page's forward view (its spec) and the trade-off chart."""
        return gr.HTML(value=self.forward_spec(self._dataset(name))), *self.tradeoff()

    def forward_functions(self):
        """The forward view's one call (no queue): a test image by index."""
        def forward_image(data):
            try:
                dataset = str((data or {}).get("dataset") or "fashion-mnist")
                if dataset not in data_module_names():
                    raise ValueError(f"unknown dataset {dataset!r}")
                return self.forward_image(dataset, (data or {}).get("index"))
            except (ValueError, TypeError, gr.Error) as err:
                return {"error": str(err)}
        return [forward_image]

    def on_open(self, index, t, seed):
        """The tab was opened: the forward view and the trade-off chart."""
        return (*self.forward(index, t, seed), *self.tradeoff())

    def compare(self, pixel_name, latent_name, steps, eta, label, seed, batch, request: gr.Request = None):
        """Pixel vs latent diffusion: same seed, DDIM steps, eta and labels; both samples and times."""
        out = []
        eta = number(eta, "eta", 0, 1)
        for name in (pixel_name, latent_name):
            model = self._model(name)
            n_steps, n, s = self._check(steps, batch, seed, model)
            labels = self._labels(label, n, self.images(self._dataset(name)).classes)
            t0 = time.perf_counter()
            x = model.sample(n, steps=n_steps, sampler="ddim", eta=eta, labels=labels,
                             generator=torch.Generator().manual_seed(s))
            dt = time.perf_counter() - t0
            spaced = f", {model.config.sampling_spacing} timesteps" if n_steps < model.config.timesteps else ""
            out += [_mosaic(to_uint8(x)), f"**{name}**: {n_steps} DDIM steps (eta = {eta:g}{spaced}), {dt:.2f} s, "
                                        f"{1000 * dt / n:.0f} ms per image"]
        return tuple(out)


def data_module_names() -> list[str]:
    """The datasets the forward view may show."""
    from ..datasets import names

    return list(names())


def build(store: Store) -> DiffusionPanel:
    """Lay out the panel inside the current Blocks context and wire its events."""
    from .inpage import MOUNT, page_code, server_functions

    panel = DiffusionPanel(store)
    names = panel.model_names()
    pixel = [n for n in names if "ldm" not in n.split("/")[-1]] or names
    latent = [n for n in names if n not in pixel] or names
    dataset = panel._dataset(names[0] if names else None)
    classes = data.class_names(dataset)
    n_images = len(panel.images(dataset))

    gr.Markdown("## Forward process: noising an image\nPick a test image and a step t; the same noise "
                "$\\varepsilon$ is added under both schedules.", latex_delimiters=LATEX)
    # computed in the page from the closed form (web/diffusion.js, diffusion_forward); the server sends a test image
    # when the index changes
    forward_page = gr.HTML(value={}, html_template='<div class="lsxf-host"></div>', elem_id="diff-forward",
                           head=page_code("diffusion")["head"], js_on_load=MOUNT.format(panel="diffusion_forward"),
                           server_functions=panel.forward_functions(), apply_default_css=False)
    # the same view on the server: the API's diffusion_forward (and scripts); not shown
    with gr.Row(equal_height=False, visible=False):
        with gr.Column(scale=2, min_width=240):
            f_index = gr.Slider(0, n_images - 1, value=0, step=1, label="Test image #", elem_id="diff-image")
            f_t = gr.Slider(0, T_FORWARD, value=250, step=1, label="t (0 = clean, 1000 = pure noise)",
                            elem_id="diff-t")
            f_seed = gr.Number(0, label="Noise seed", precision=0, minimum=0)
        f_lin = gr.Image(label="linear", interactive=False, format="png", height=230,
                         elem_id="diff-xt-linear", elem_classes=["pixelated"], scale=1, min_width=170)
        f_cos = gr.Image(label="cosine", interactive=False, format="png", height=230,
                         elem_id="diff-xt-cosine", elem_classes=["pixelated"], scale=1, min_width=170)
        f_curves = gr.Image(label="ᾱ_t and log-SNR", show_label=False, interactive=False, format="png",
                            scale=4, elem_id="diff-curves")
    f_caption = gr.Markdown(elem_id="diff-forward-caption", visible=False)

    # presentation mode: the reverse process (Run beside the frame) comes first, the forward view below it
    gr.Markdown("## Reverse process: denoising, step by step", elem_classes=["lsx-first"])
    with gr.Row(equal_height=False, elem_classes=["lsx-first"]):
        model = gr.Dropdown(names, value=names[0] if names else None, label="Model", elem_id="diff-model", scale=4,
                            info="pixel-space UNet (linear / cosine schedule) or latent diffusion over VAE codes")
        page_btn = gr.Button("Download as a page", size="sm", elem_id="diff-download", scale=1, min_width=160)
    page_file = gr.File(label="A standalone page: open it in any browser, offline (UNet, sampler and runtime inside)",
                        visible=False, elem_id="diff-page-file")
    # the reverse process in the page (web/diffusion.js); the server hears nothing during a run
    in_page = gr.HTML(value={"message": "Open the tab to load the model…"}, html_template='<div class="lsxd-host"></div>',
                      **page_code("diffusion"), elem_id="diff-inpage", apply_default_css=False, elem_classes=["lsx-first"],
                      server_functions=server_functions(store, store.decoders) + panel.page_models.server_functions())
    # the same on the server: the fallback (no WebAssembly, the ONNX not built yet) and the API; the page hides
    # this column while it runs the model itself
    with gr.Column(elem_id="diff-server", elem_classes=["lsx-first"]):
      with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=280):
            sampler = gr.Radio(["DDIM", "DDPM"], value="DDIM", label="Sampler")
            first_steps, first_spacing = panel.on_model(names[0], 50) if names else ({}, {})
            T = first_steps.get("maximum", 1000)
            steps = gr.Slider(1, T, value=min(50, T), step=1, label=f"Steps (<= T = {T})", elem_id="diff-steps")
            eta = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="eta (DDIM; 0 = deterministic, 1 = DDPM-like)",
                            info="0: deterministic, the same seed gives the same image; 1: cleanest samples at 50+ steps")
            label = gr.Dropdown([EACH_CLASS, UNCONDITIONAL, *classes], value=EACH_CLASS, label="Class")
            guidance = gr.Slider(0.0, MAX_GUIDANCE, value=1.0, step=0.25, elem_id="diff-guidance",
                                 label="Guidance scale w (0 = ignore class, 1 = conditional)")
            spacing = gr.Radio(list(diffusion.SPACINGS),
                               value=first_spacing.get("value", diffusion.DEFAULT_SPACING),
                               label="Timesteps (fewer steps than T)",
                               elem_id="diff-spacing",
                               info="trailing: start at T-1, where x_T is pure noise (Lin et al. 2024; the pixel "
                                    "models' default); leading: start one stride below T (the latent models'). "
                                    "Try the cosine model at 10 steps with each.")
            with gr.Row():
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, min_width=80)
                batch = gr.Slider(1, MAX_BATCH, value=16, step=1, label="Batch", min_width=120, elem_id="diff-batch")
            with gr.Row():
                run_btn = gr.Button("Run on the server", variant="primary", elem_id="diff-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="diff-stop")
        with gr.Column(scale=5):
            gr.Markdown("x_t (left) and predicted x_0 (right)", elem_classes=["diff-frame-heads"])
            frame = gr.Image(show_label=False, interactive=False, format="png",
                             elem_id="diff-frame", elem_classes=["pixelated"], height=380)
            status = gr.Markdown(None if names else
                                 f"**No diffusion checkpoints in `{store.zoo.root}`.** Train one with "
                                 "`python -m explorer.training ddpm-cosine --dataset fashion-mnist`.",
                                 elem_id="diff-status")
            scrub = gr.Slider(1, 2, value=1, step=1, label="Scrub through the stored steps (frame number)",
                              interactive=False, elem_id="diff-scrub")
            with gr.Row():
                gif_btn = gr.Button("Export GIF", elem_id="diff-gif-btn")
                mp4_btn = gr.Button("Export MP4", elem_id="diff-mp4-btn")
                gif_file = gr.File(label="Animation", interactive=False, elem_id="diff-gif")

    gr.Markdown("## Pixel vs latent: same seed, steps, eta and class (DDIM)")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=260):
            cmp_pixel = gr.Dropdown(pixel, value=pixel[0] if pixel else None, label="Pixel model")
            cmp_latent = gr.Dropdown(latent, value=latent[0] if latent else None, label="Latent model")
            cmp_btn = gr.Button("Compare", elem_id="diff-compare")
        with gr.Column(scale=2):
            cmp_a = gr.Image(label="pixel", interactive=False, format="png", elem_classes=["pixelated"], height=260)
            cmp_a_text = gr.Markdown()
        with gr.Column(scale=2):
            cmp_b = gr.Image(label="latent", interactive=False, format="png", elem_classes=["pixelated"], height=260)
            cmp_b_text = gr.Markdown()

    gr.Markdown("## Trade-off: quality against steps")
    with gr.Row(equal_height=False):
        tradeoff_img = gr.Image(label="FID vs steps", show_label=False, interactive=False, format="png", scale=3,
                                elem_id="diff-tradeoff")
        tradeoff_text = gr.Markdown(elem_id="diff-tradeoff-text")

    explanation("The equations: forward marginal, posterior, DDIM update, guidance", EXPLANATION, open=True)

    # Sampling runs (a DDIM-20 run of 4 images is ~1.3 s of CPU) get their own slots, half the cores: the
    # other half always serves the light events (a pick, an upload, a model change) of everyone else.
    runs = dict(concurrency_id="diffusion", concurrency_limit=RUN_SLOTS)
    forward_inputs = [f_index, f_t, f_seed]
    forward_outputs = [f_lin, f_cos, f_curves, f_caption]
    for s in (f_index, f_t):
        s.input(panel.forward, forward_inputs, forward_outputs, api_name=False, trigger_mode="always_last",
                show_progress="hidden")
    f_seed.submit(panel.forward, forward_inputs, forward_outputs, api_name=False)
    # a stable endpoint for scripts and tests
    api_fwd = gr.Button(visible=False)
    api_fwd.click(panel.forward, forward_inputs, forward_outputs, api_name="diffusion_forward")

    model.change(panel.page_value, [model], [in_page], api_name=False, show_progress="hidden").then(
        panel.on_model, [model, steps], [steps, spacing], api_name=False, show_progress="hidden").then(
        panel.on_model_classes, [model], [label], api_name=False, show_progress="hidden")
    page_btn.click(panel.standalone, [model], [page_file], api_name="diffusion_standalone_page").then(
        lambda: gr.File(visible=True), None, page_file, api_name=False)
    run_inputs = [model, sampler, steps, eta, label, guidance, seed, batch, spacing]
    run_event = run_btn.click(panel.run, run_inputs, [frame, status, scrub], api_name="diffusion_run",
                              show_progress="hidden", **runs)
    stop_btn.click(panel.scrub_range, None, scrub, cancels=[run_event], api_name=False, show_progress="hidden")
    scrub.input(panel.scrub, [scrub], [frame, status], api_name="diffusion_scrub", trigger_mode="always_last",
                show_progress="hidden")
    gif_btn.click(panel.gif, None, gif_file, api_name="diffusion_gif")
    mp4_btn.click(panel.mp4, None, gif_file, api_name="diffusion_mp4")
    cmp_btn.click(panel.compare, [cmp_pixel, cmp_latent, steps, eta, label, seed, batch],
                  [cmp_a, cmp_a_text, cmp_b, cmp_b_text], api_name="diffusion_compare", **runs)
    panel.model_choices = [(model, panel.model_names), (cmp_pixel, lambda: [n for n in panel.model_names()
                                                                               if n in pixel]),
                           (cmp_latent, lambda: [n for n in panel.model_names() if n in latent])]
    panel.components = dict(forward=forward_inputs, forward_outputs=forward_outputs, model=model, run=run_btn,
                            stop=stop_btn, frame=frame, status=status, scrub=scrub, in_page=in_page)
    panel.opens = [(panel.page_value, [model], [in_page], dict(show_progress="hidden")),
                   (panel.on_open_page, [model], [forward_page, tradeoff_img, tradeoff_text],
                    dict(show_progress="hidden"))]
    return panel
