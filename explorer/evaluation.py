"""How every checkpoint is scored: test-set metrics per family, the FID recipe (seeded samples against the
test set, with the real-vs-real floor at the same N) and the classifier it uses. The training loop calls
:func:`evaluate_checkpoint` when a run ends; :func:`reevaluate` rescores a shipped checkpoint in place.

    python -m explorer.training vae-16 --dataset fashion-mnist --evaluate-only
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from . import cards, checkpoints, data, latents, metrics


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu} ({os.cpu_count()} cores), {torch.get_num_threads()} torch thread(s)"



def evaluate_checkpoint(model, family: str, dataset: str, root=None, n_fid: int = 5000,
                        iw_samples: int = 100, iw_images: int = 1000) -> dict:
    """Test-set metrics for a freshly trained model (see metrics.py for the conventions)."""
    test = data.load(dataset, "test")
    xt, yt = test.floats(), test.labels
    if family == "ddpm":
        return evaluate_diffusion(model, dataset, root)
    if family == "classifier":
        out = {"test_accuracy": metrics.classifier_accuracy(model, xt, yt), "test_images": len(xt)}
        if getattr(model, "factor_heads", None) and test.factors is not None:  # a factor classifier: each head
            probs = [torch.cat(p) for p in zip(*(model.predict_factors(xt[i:i + 500]) for i in range(0, len(xt), 500)))]
            out["factor_accuracy"] = {name: round(float((p.argmax(-1).cpu() == test.factors[:, j]).float().mean()), 4)
                                      for j, (name, p) in enumerate(zip(test.spec.factors, probs))}
        return out
    out = {"test_images": len(xt)}
    if model.has_encoder:  # a GAN only decodes
        out["test_mse"] = metrics.reconstruction_mse(model, xt)
        k = min(2000, len(xt))
        rec = torch.cat([model.reconstruct(xt[i:i + 500]).cpu() for i in range(0, k, 500)])
        out["recon_sharpness"] = round(metrics.relative_sharpness(rec, xt[:k]), 4)
        out.update(linear_probe(model, dataset, xt, yt))
    out.update(model.extra_metrics(xt))
    if model.is_variational:  # k decodes per image: fewer images for larger ones (a 64x64x3 decode is ~16x a 28x28)
        n_iw = iw_images if xt[0].numel() <= 784 else max(100, iw_images // 5)
        out.update(metrics.elbo_and_iwae(model, xt[:n_iw], k=iw_samples))
    clf = classifier(dataset, root, next(model.parameters()).device)
    if clf is not None:
        out.update(recipe_fid(model, family, clf, xt, data.load(dataset, "train").floats(), n_fid))
    return out


SAMPLE_SEED, FLOOR_SEED = 1234, 4321  # every model's FID samples, and the floor's train subset


def recipe_samples(model, family: str, n: int, cfg: dict | None = None) -> tuple[torch.Tensor, float]:
    """(n samples (n, C, H, W) on the CPU, seconds): how every checkpoint is scored. Diffusion models use
    ``cfg`` (default DIFFUSION_EVAL) with class-balanced labels; the others ``sample`` in batches of 500."""
    g = torch.Generator().manual_seed(SAMPLE_SEED)
    t0 = time.perf_counter()
    if family == "ddpm":
        cfg = cfg or DIFFUSION_EVAL
        labels = torch.arange(n) % model.config.classes  # class-balanced, like the test set
        samples = torch.cat([model.sample(len(y), steps=cfg["steps"], sampler=cfg["sampler"], eta=cfg["eta"],
                                          guidance=cfg["guidance"], labels=y, generator=g).cpu()
                             for y in labels.split(cfg["batch"])])
    else:
        samples = torch.cat([model.sample(min(500, n - i), generator=g).cpu() for i in range(0, n, 500)])
    return samples, time.perf_counter() - t0


GRID_FILE, GRID_SIDE = "samples.png", 8  # every generative checkpoint keeps an 8 x 8 grid of its samples


def sampler_name(model, cfg: dict) -> str:
    """How a diffusion model's recipe samples, for cards: e.g. "ddim-50 eta=0.0 guidance=1.0 trailing" (the
    timestep spacing is named when the chain is shorter than T)."""
    spaced = f" {model.config.sampling_spacing}" if cfg["steps"] < model.config.timesteps else ""
    return f"{cfg['sampler']}-{cfg['steps']} eta={cfg['eta']} guidance={cfg['guidance']}{spaced}"


def sample_grid(model, family: str, dataset: str, root=None) -> tuple[torch.Tensor, dict]:
    """The first GRID_SIDE**2 samples of the FID recipe (:func:`recipe_samples`: the same seed and sampler;
    diffusion models with labels 0, 1, ..., 9, 0, ... in reading order), not picked, and what the card says
    about them. A class-conditional model's samples are also checked by this dataset's classifier:
    ``off_class`` counts those whose requested class gets p < 0.5: a neighbouring class or textured clutter (the
    share benchmarks/x0_clipping.py calls "clutter")."""
    n = GRID_SIDE ** 2
    samples, _ = recipe_samples(model, family, n)
    info = {"n": n, "seed": SAMPLE_SEED}
    if family == "ddpm":
        c = DIFFUSION_EVAL
        info["sampler"] = sampler_name(model, c)
        clf = classifier(dataset, root, "cpu")
        if clf is not None and model.config.classes:
            info["off_class"] = int(metrics.off_class(clf, samples, torch.arange(n) % model.config.classes).sum())
    return samples, info


def grid_png(samples: torch.Tensor, path, side: int = GRID_SIDE, pad: int = 2, scale: int | None = None) -> None:
    """Save ``side * side`` images (n, C, H, W) in [0, 1] as one PNG: white gaps of ``pad`` pixels, every
    pixel drawn ``scale`` x ``scale`` (nearest; default 2 for images up to 32 px, else 1) so the grid reads on a projector."""
    import numpy as np
    from PIL import Image

    scale = scale or (2 if samples.shape[-1] <= 32 else 1)  # 64 px faces are large enough as they are
    x = latents.display(samples[:side * side].clamp(0, 1))
    x = x.reshape(side, side, *x.shape[1:])  # (r, c, h, w[, 3])
    rest = ((0, 0),) * (x.ndim - 4)
    mosaic = latents.tile(np.pad(x, ((0, 0), (0, 0), (pad, 0), (pad, 0)) + rest, constant_values=1.0))
    mosaic = np.pad(mosaic, ((0, pad), (0, pad)) + rest, constant_values=1.0)  # the gap after the last row and column
    image = Image.fromarray(np.round(mosaic * 255).astype(np.uint8))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    if image.mode == "RGB":  # colour grids: a 256-colour palette keeps the repository small (~3x smaller PNG)
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, optimize=True)


def write_sample_grid(model, family: str, dataset: str, directory, root=None) -> dict:
    """Draw :func:`sample_grid`, save it as ``samples.png`` in the checkpoint's folder and put a "## Sample grid"
    section that shows it into the card (replaced, never appended twice). Returns the grid's info."""
    samples, info = sample_grid(model, family, dataset, root)
    grid_png(samples, Path(directory) / GRID_FILE)
    how = (f"{info['sampler']}, labels 0-9 repeating in reading order" if family == "ddpm" else
           "drawn as the model samples (`model.sample`)")
    section = (f"## Sample grid\n![{info['n']} samples]({GRID_FILE})\n\n"
               f"The first {info['n']} samples of the FID recipe (seed {info['seed']}; {how}), not picked.")
    if "off_class" in info:
        section += (f" The classifier gives the requested class p < 0.5 for {info['off_class']} of {info['n']}: "
                    "off-class samples, a neighbouring class (a shirt asked to be a T-shirt) or textured clutter.")
    cards.update_section(directory, "## Sample grid", section + "\n")
    return info


def floor_images(train_x: torch.Tensor, n: int) -> torch.Tensor:
    """The N train images every model's real-vs-real FID floor is measured with (``randperm``, FLOOR_SEED)."""
    return train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(FLOOR_SEED))[:n]]


def recipe_fid(model, family: str, clf, test_x: torch.Tensor, train_x: torch.Tensor, n: int,
               cfg: dict | None = None) -> dict:
    """Classifier-FID of ``recipe_samples`` against the first N test images, with the real-vs-real floor
    (N train images, the same for every model at the same N) and the sampling time per image."""
    n = min(n, len(test_x), len(train_x))
    samples, seconds = recipe_samples(model, family, n, cfg)
    out = metrics.fid_with_floor(clf, samples, test_x[:n], floor_images(train_x, n))
    out["sample_sharpness"] = round(metrics.relative_sharpness(samples, test_x[:n]), 4)
    out.update({"sample_ms_per_image": round(1000 * seconds / n, 3),
                "sample_hardware": hardware(str(next(model.parameters()).device))})
    if family == "ddpm":
        c = cfg or DIFFUSION_EVAL
        out["fid_sampler"] = sampler_name(model, c)
    return out


def aggregate_posterior_fid(model, clf, test_x: torch.Tensor, train_x: torch.Tensor, n: int,
                            components: int = 10) -> tuple[dict, latents.AggregatePrior]:
    """Sampling from the aggregate posterior instead of the prior: one draw z ~ q(z|x) per training image, a
    ``components``-Gaussian mixture (full covariances, :class:`explorer.latents.AggregatePrior`) fitted to those
    codes, and N codes from it decoded. Its classifier-FID is measured as :func:`recipe_fid` measures prior
    samples (same test images, floor, seed). Returns (the figures, the fitted prior).
    A VAE whose aggregate posterior leaves holes in N(0, I) decodes those holes into blur when sampled from
    the prior; sampling where the codes are closes that gap (as the DAE's and the AE's fitted priors do)."""
    n = min(n, len(test_x), len(train_x))
    g = torch.Generator().manual_seed(SAMPLE_SEED)
    prior = latents.AggregatePrior.fit_model(model, train_x, g, components)
    z = prior.sample(n, g)
    samples = torch.cat([model.decode(z[i:i + 500]).cpu() for i in range(0, n, 500)])
    out = metrics.fid_with_floor(clf, samples, test_x[:n], floor_images(train_x, n))
    return {"fid": out["fid"], "fid_floor": out["fid_floor"], "fid_n": n, "components": components,
            "sample_sharpness": round(metrics.relative_sharpness(samples, test_x[:n]), 4)}, prior


def linear_probe(model, dataset: str, xt: torch.Tensor, yt: torch.Tensor) -> dict:
    """Linear-probe accuracy of the model's codes (train split -> test split), see metrics.py; none for a
    dataset of one class (a folder of images without subfolders, explorer/folders.py)."""
    train = data.load(dataset, "train")
    if len(train.labels.unique()) < 2:
        return {}

    def codes(x):
        return torch.cat([model.encode(x[i:i + 1000]).cpu() for i in range(0, len(x), 1000)]).numpy()

    return metrics.linear_probe_accuracy(codes(train.floats()), train.labels.numpy(), codes(xt), yt.numpy())


# How diffusion checkpoints are scored: DDIM-50 (eta = 0) samples, class-balanced labels, guidance 1
# (the plain conditional model), at a fixed N small enough for minutes on a CPU (the floor is given
# at the same N). The trade-off chart over samplers and step counts is a separate script.
DIFFUSION_EVAL = {"n": 2000, "steps": 50, "sampler": "ddim", "eta": 0.0, "guidance": 1.0, "batch": 250}


def classifier(dataset: str, root, device):
    """This dataset's classifier from ``root``'s zoo, else from the shipped one; None when neither has it."""
    for zoo in (checkpoints.Zoo(root), checkpoints.Zoo()):
        if f"{dataset}/classifier" in zoo.available():
            return zoo.load(f"{dataset}/classifier", device=device)
    return None


def evaluate_diffusion(model, dataset: str, root=None, **overrides) -> dict:
    """Held-out eps-MSE, and classifier-FID of DIFFUSION_EVAL samples with its floor and the time per image."""
    cfg = {**DIFFUSION_EVAL, **overrides}
    test = data.load(dataset, "test")
    xt, yt = test.floats(), test.labels
    k = min(2000, len(xt))
    out = {"test_eps_mse": model.eps_mse(xt[:k], yt[:k], torch.Generator().manual_seed(1234)), "eps_mse_images": k}
    clf = classifier(dataset, root, next(model.parameters()).device)
    if clf is not None:
        out.update(recipe_fid(model, "ddpm", clf, xt, data.load(dataset, "train").floats(), cfg["n"], cfg))
    return out


def reevaluate(name: str, root=None) -> dict:
    """Recompute a checkpoint's test metrics and rewrite its metrics.json and card. The weights do not
    change, so what other tools added stays: the Model zoo's "zoo" block, and the card's sections past
    the test metrics (the zoo comparison, the DAE study)."""
    zoo = checkpoints.Zoo(root)
    info = zoo.info(name)
    model = zoo.load(name)
    results = evaluate_checkpoint(model, info["family"], info["dataset"], root)
    directory = zoo.path(name)
    kept = {k: v for k, v in info.get("metrics", {}).items() if k == "zoo"}
    cards.write_metrics(directory, {**results, **kept})
    meta = {k: info[k] for k in ("dataset", "preset", "command", "training")}
    cards.rewrite_card(directory, cards.model_card(name, info["family"], info["config"], meta, results))
    return results
