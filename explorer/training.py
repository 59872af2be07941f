"""One generic training loop over ``model(batch) -> (loss, logs)``, and the CLI.

    python -m explorer.training vae-2d --dataset fashion-mnist     # one shipped checkpoint
    python -m explorer.training all                                # every shipped checkpoint
    torchrun --nproc_per_node=2 -m explorer.training vae-16 --dataset fashion-mnist

Seeded; a progress bar shows the running loss; a ``resume.pt`` written after each
epoch lets an interrupted run continue (``--resume``); at the end the test set is
evaluated and checkpoint + metrics.json + model card are written. Under torchrun the
model is wrapped in DistributedDataParallel (gloo on CPU, nccl on GPU) and each
process sees its shard of every epoch; only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from . import checkpoints, data, metrics, models

# preset -> family, config, epochs, learning rate. Sized for minutes on 2 CPU cores.
PRESETS = {
    "classifier": ("classifier", {}, 5, 2e-3),
    "vae-2d": ("vae", {"latent_dim": 2}, 20, 2e-3),
    "ae-16": ("ae", {"latent_dim": 16}, 20, 2e-3),
    "vae-16": ("vae", {"latent_dim": 16}, 20, 2e-3),
    "gmm-vae-16": ("gmm-vae", {"latent_dim": 16, "components": 3}, 15, 2e-3),
    # vae-16 plus the PatchGAN texture term of GAMIX-VAE (models/vae.py), from epoch 2 on
    "vae-16-patchgan": ("vae", {"latent_dim": 16, "adv_weight": 0.5, "adv_start": 2}, 20, 2e-3),
    # Diffusion (models/diffusion.py): eps-prediction, class-conditional with label dropout, EMA weights.
    # The pixel UNets train in bfloat16 autocast (BF16_PRESETS): ~7 min per Fashion-MNIST epoch on one
    # AVX512-BF16 CPU thread (13 in float32); a GPU does an epoch in seconds.
    "ddpm-linear": ("ddpm", {"schedule": "linear"}, 10, 1e-3),
    "ddpm-cosine": ("ddpm", {"schedule": "cosine"}, 10, 1e-3),
    # latent diffusion over the standardised codes of this dataset's vae-16 checkpoint (stored inside)
    "ldm-vae-16": ("ddpm", {"space": "latent", "vae": "vae-16", "schedule": "cosine"}, 32, 1e-3),
    # Decoupled Autoencoder (models/dae.py): stage 1 with a weak decoder, stage 2 the real decoder on the
    # frozen codes; the baseline trains the same encoder and decoder jointly for the same epochs.
    "dae-16": ("dae", {"latent_dim": 16, "mode": "decoupled"}, 10, 2e-3),
    "dae-16-joint": ("dae", {"latent_dim": 16, "mode": "joint"}, 10, 2e-3),
    # their latent diffusion generators (the codes of the checkpoint named by "vae", stored inside)
    "ldm-dae-16": ("ddpm", {"space": "latent", "vae": "dae-16", "schedule": "cosine"}, 20, 1e-3),
    "ldm-dae-16-joint": ("ddpm", {"space": "latent", "vae": "dae-16-joint", "schedule": "cosine"}, 20, 1e-3),
    "dcgan": ("gan", {}, 15, 2e-4),
}
# Presets trained under bfloat16 autocast where the hardware has it, unless --no-bf16 (the shipped pixel DDPMs were)
BF16_PRESETS = {"ddpm-linear", "ddpm-cosine", "dcgan"}
# Every shipped checkpoint, in build order (each dataset's classifier first: the others' FID needs it).
SHIPPED = [("fashion-mnist", p) for p in ("classifier", "vae-2d", "ae-16", "vae-16", "vae-16-patchgan",
                                                 "gmm-vae-16", "ldm-vae-16",
                                                 "ddpm-cosine", "ddpm-linear", "dae-16", "dae-16-joint",
                                                 "ldm-dae-16", "ldm-dae-16-joint", "dcgan")] + \
          [("mnist-5k", "classifier"), ("mnist-5k", "vae-2d")]
# The small MNIST subset needs more passes for the same number of steps.
EPOCH_SCALE = {"mnist-5k": 6, "digits": 4}


def _dist():
    """(rank, world, device) from torchrun's environment; initialises the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


class EMA:
    """Exponential moving average of a model's trainable parameters (frozen ones and buffers follow the
    model), with the usual warm-up decay min(decay, (1 + n) / (10 + n)) after n updates."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.shadow = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, p in model.named_parameters():
            if k in self.shadow:
                self.shadow[k].lerp_(p.detach(), 1 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for k, p in model.named_parameters():
            if k in self.shadow:
                p.copy_(self.shadow[k])

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)


def _latent_source(config: dict, dataset: str, out) -> tuple[dict, torch.nn.Module | None]:
    """For a latent diffusion config: load the VAE it names (from ``out``'s zoo, else the shipped one)
    and put its family and config into the config, so the model is rebuilt from its config alone."""
    if config.get("space") != "latent":
        return config, None
    name = config.get("vae") or "vae-16"
    name = name if "/" in name else f"{dataset}/{name}"
    for zoo in ([checkpoints.Zoo(out)] if out else []) + [checkpoints.Zoo()]:
        if name in zoo.available():
            vae, info = zoo.load(name, device="cpu"), zoo.info(name)
            return {**config, "vae": name, "vae_family": info["family"], "vae_config": info["config"]}, vae
    raise checkpoints.CheckpointError(f"latent diffusion needs the checkpoint {name!r}; build it first with "
                                      f"`{checkpoints.rebuild_command(name)}`")


def train(preset: str, dataset: str = "fashion-mnist", epochs: int | None = None,
          out: str | os.PathLike | None = None, seed: int = 0, batch_size: int = 128,
          lr: float | None = None, limit: int | None = None, resume: bool = False,
          device: str | None = None, config: dict | None = None, evaluate: bool = True,
          progress: bool = True, command: str | None = None, stop_after: int | None = None,
          bf16: bool | None = None, init: str | os.PathLike | None = None) -> Path:
    """Train ``preset`` on ``dataset`` and write the checkpoint; returns its folder.

    ``limit`` caps the training images (tests), ``config`` overrides config fields,
    ``stop_after`` ends this run after that many epochs, leaving resume.pt (time-boxed runs).
    ``bf16`` runs forward and loss under bfloat16 autocast (weights, optimiser and EMA stay float32):
    about twice the speed on CPUs with AVX512-BF16 and on GPUs; None: on for BF16_PRESETS where the
    device computes bfloat16 natively.
    ``init`` continues training from an existing checkpoint of the same preset and config (a name such as
    ``fashion-mnist/ddpm-linear`` in the shipped zoo, or a folder): its weights start both the model and
    its moving average, and the card counts the earlier training into the totals.
    """
    from tqdm.auto import tqdm

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)} or 'all'")
    family, base_config, default_epochs, default_lr = PRESETS[preset]
    epochs = epochs or default_epochs * EPOCH_SCALE.get(dataset, 1)
    lr = lr or default_lr
    rank, world = _dist()
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if bf16 is None:  # the presets' default, where the hardware does bfloat16 natively (else it is slower)
        from .models.diffusion import bf16_native

        bf16 = preset in BF16_PRESETS and bf16_native(device)
    device_type = torch.device(device).type  # for autocast
    name = f"{dataset}/{preset}"
    out_dir = Path(out or checkpoints.ROOT) / dataset / preset
    command = command or checkpoints.rebuild_command(name)

    torch.manual_seed(seed)  # the CLI owns the process: seeding it globally is fine here
    train_ds = data.load(dataset, "train")
    x, y = train_ds.floats(), train_ds.labels
    if limit:
        x, y = x[:limit], y[:limit]
    model_config, vae = _latent_source({**base_config, **(config or {})}, dataset, out)
    model = models.build(family, model_config).to(device)
    if vae is not None:  # the latent model trains on the VAE's standardised codes, encoded once
        x = model.fit_codes(vae, x)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ema_decay = getattr(model.config, "ema_decay", 0.0)
    ema = EMA(model, ema_decay) if ema_decay else None
    earlier = None
    if init is not None:  # warm start: the model and its moving average begin at the checkpoint's weights
        earlier = _warm_start(model, init, family, model.config_dict())
        if ema is not None:
            ema = EMA(model, ema_decay)
            ema.updates = 10 ** 6  # no warm-up: the average starts from trained weights, not from noise
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=getattr(model, "adam_betas", (0.9, 0.999)))
    if hasattr(model, "stage_bounds"):  # staged training (the DAE): the cosine decay restarts at each stage
        sched = torch.optim.lr_scheduler.LambdaLR(opt, stage_cosine(model.stage_bounds(epochs)))
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr * 0.05)

    start_epoch, elapsed, history = 0, 0.0, []
    resume_path = out_dir / "resume.pt"
    if resume and resume_path.is_file():
        state = torch.load(resume_path, map_location="cpu", weights_only=True)  # no pickled code
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start_epoch, elapsed, history = state["epoch"], state["elapsed"], json.loads(state["history"])
        if rank == 0:
            print(f"resuming {name} at epoch {start_epoch}/{epochs}")

    train_model = model
    sampler = None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data.distributed import DistributedSampler

        train_model = DistributedDataParallel(model, device_ids=[device] if device.startswith("cuda") else None)
        sampler = DistributedSampler(TensorDataset(x, y), num_replicas=world, rank=rank, seed=seed)
    shuffle = torch.Generator()
    if sampler is None:
        sampler = torch.utils.data.RandomSampler(TensorDataset(x, y), generator=shuffle)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, sampler=sampler,
                        drop_last=len(x) > batch_size)

    for epoch in range(start_epoch, epochs):
        if stop_after is not None and epoch >= start_epoch + stop_after:
            if rank == 0:
                print(f"{name}: stopped after {stop_after} epoch(s); continue with --resume")
            return out_dir
        t0 = time.perf_counter()
        if hasattr(model, "begin_epoch"):  # e.g. the DAE enters stage 2 and freezes its encoder
            model.begin_epoch(epoch, epochs)
        model.train()
        shuffle.manual_seed(seed * 1000 + epoch)  # each epoch's order depends on (seed, epoch) only: resumable
        if world > 1:
            sampler.set_epoch(epoch)
        running: dict[str, float] = {}
        bar = tqdm(loader, desc=f"{name} {epoch + 1}/{epochs}", disable=not progress or rank != 0,
                   leave=False, dynamic_ncols=True)
        for step, (xb, yb) in enumerate(bar, 1):
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                loss, logs = train_model((xb.to(device), yb.to(device)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(model)
            for k, v in logs.items():  # exponential running mean for the bar
                running[k] = v if k not in running else 0.98 * running[k] + 0.02 * v
            if step % 10 == 0:
                bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()})
        sched.step()
        elapsed += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, **({"stage": model.stage} if hasattr(model, "stage_bounds") else {}),
                        **{k: round(v, 5) for k, v in running.items()}})
        if rank == 0:
            print(f"{name} epoch {epoch + 1}/{epochs} " +
                  " ".join(f"{k}={v:.4g}" for k, v in running.items()) + f" ({elapsed:.0f}s)", flush=True)
            out_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": torch.get_rng_state(), "epoch": epoch + 1, "elapsed": elapsed,
                        "history": json.dumps(history), **({"ema": ema.state_dict()} if ema else {})},
                       resume_path)

    model.eval()
    if ema is not None:  # ship the averaged weights: better samples than the last iterate
        ema.copy_to(model)
    if rank != 0:
        return out_dir
    dtype = checkpoints.ship_dtype(family)  # float16 parameters (classifiers float32): the repo's size budget
    checkpoints.round_params(model, dtype)  # so the prior is fitted and the metrics measured on what ships
    if hasattr(model, "fit_prior"):  # the AE samples from a Gaussian fitted to its training codes
        model.fit_prior(torch.cat([model.encode(x[i:i + 1000]) for i in range(0, len(x), 1000)]))
    meta = {"dataset": dataset, "preset": preset, "command": command,
            "training": {"epochs": epochs, "batch_size": batch_size * world, "lr": lr, "seed": seed,
                         "train_images": len(x), "processes": world, "wall_time_s": round(elapsed, 1),
                         "hardware": hardware(device), "torch": torch.__version__,
                         "parameters": params, "history": history,
                         **({"precision": "bfloat16 autocast"} if bf16 else {}),
                         **({"continued_from": earlier} if earlier else {}),
                         **({"ema_decay": ema_decay} if ema else {})}}
    checkpoints.save(model, out_dir, family, meta, dtype=dtype)
    results = evaluate_checkpoint(model, family, dataset, out) if evaluate else {}
    (out_dir / checkpoints.METRICS).write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / checkpoints.CARD).write_text(model_card(name, family, model.config_dict(), meta, results))
    resume_path.unlink(missing_ok=True)
    return out_dir


def _warm_start(model: torch.nn.Module, init, family: str, config: dict) -> dict:
    """Load checkpoint ``init`` (a zoo name or a folder) into ``model``, which must have the same family and
    config; returns what the card needs to count the earlier training: its command, epochs and time."""
    path = Path(init)
    if not path.is_dir():
        path = checkpoints.Zoo().path(str(init))  # a name such as fashion-mnist/ddpm-linear
    info = checkpoints.read_config(path, str(init))
    if info["family"] != family or info["config"] != json.loads(json.dumps(config)):
        raise ValueError(f"--init {init}: its family or config differs from this preset's "
                         f"({info['family']} {json.dumps(info['config'])}); a warm start needs the same model")
    model.load_state_dict(checkpoints.load_dir(path, "cpu", str(init)).state_dict())
    t = info.get("training", {})
    before = t.get("continued_from") or {}
    return {"command": info.get("command"), "epochs": t.get("epochs", 0) + before.get("epochs", 0),
            "wall_time_s": round(t.get("wall_time_s", 0) + before.get("wall_time_s", 0), 1),
            "hardware": t.get("hardware"), "lr": t.get("lr")}


def stage_cosine(bounds: list[int], floor: float = 0.05):
    """Learning-rate factor per epoch: a cosine from 1 to ``floor`` within each stage [a, b) of ``bounds``."""
    import math

    def factor(epoch: int) -> float:
        for a, b in zip(bounds, bounds[1:]):
            if a <= epoch < b:
                return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (epoch - a) / (b - a)))
        return floor

    return factor


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
        return {"test_accuracy": metrics.classifier_accuracy(model, xt, yt), "test_images": len(xt)}
    out = {"test_images": len(xt)}
    if getattr(model, "has_encoder", True):  # a GAN only decodes
        out["test_mse"] = metrics.reconstruction_mse(model, xt)
        k = min(2000, len(xt))
        rec = torch.cat([model.reconstruct(xt[i:i + 500]).cpu() for i in range(0, k, 500)])
        out["recon_sharpness"] = round(metrics.relative_sharpness(rec, xt[:k]), 4)
        out.update(linear_probe(model, dataset, xt, yt))
    if hasattr(model, "extra_metrics"):
        out.update(model.extra_metrics(xt))
    if model.is_variational:
        out.update(metrics.elbo_and_iwae(model, xt[:iw_images], k=iw_samples))
    clf = _classifier(dataset, root, next(model.parameters()).device)
    if clf is not None:
        out.update(recipe_fid(model, family, clf, xt, data.load(dataset, "train").floats(), n_fid))
    return out


SAMPLE_SEED, FLOOR_SEED = 1234, 4321  # every model's FID samples, and the floor's train subset


def recipe_samples(model, family: str, n: int, cfg: dict | None = None) -> tuple[torch.Tensor, float]:
    """(n samples (n, 1, 28, 28) on the CPU, seconds): how every checkpoint is scored. Diffusion models use
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
        out["fid_sampler"] = f"{c['sampler']}-{c['steps']} eta={c['eta']} guidance={c['guidance']}"
    return out


def linear_probe(model, dataset: str, xt: torch.Tensor, yt: torch.Tensor) -> dict:
    """Linear-probe accuracy of the model's codes (train split -> test split), see metrics.py."""
    train = data.load(dataset, "train")

    def codes(x):
        return torch.cat([model.encode(x[i:i + 1000]).cpu() for i in range(0, len(x), 1000)]).numpy()

    return metrics.linear_probe_accuracy(codes(train.floats()), train.labels.numpy(), codes(xt), yt.numpy())


# How diffusion checkpoints are scored: DDIM-50 (eta = 0) samples, class-balanced labels, guidance 1
# (the plain conditional model), at a fixed N small enough for minutes on a CPU (the floor is given
# at the same N). The trade-off chart over samplers and step counts is a separate script.
DIFFUSION_EVAL = {"n": 2000, "steps": 50, "sampler": "ddim", "eta": 0.0, "guidance": 1.0, "batch": 250}


def _classifier(dataset: str, root, device):
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
    clf = _classifier(dataset, root, next(model.parameters()).device)
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
    (directory / checkpoints.METRICS).write_text(json.dumps({**results, **kept}, indent=2) + "\n")
    meta = {k: info[k] for k in ("dataset", "preset", "command", "training")}
    card = model_card(name, info["family"], info["config"], meta, results)
    old = directory / checkpoints.CARD
    extra = _extra_sections(old.read_text()) if old.is_file() else ""
    old.write_text(card.rstrip("\n") + "\n" + (f"\n{extra}" if extra else ""))
    return results


def _extra_sections(card: str) -> str:
    """The "## " sections of a card that :func:`model_card` does not write, in order."""
    own = {"## Data", "## Training", "## Test metrics"}
    kept, keep = [], False
    for line in card.splitlines(keepends=True):
        if line.startswith("## "):
            keep = line.strip() not in own
        if keep:
            kept.append(line)
    return "".join(kept)


def model_card(name: str, family: str, config: dict, meta: dict, results: dict) -> str:
    t = meta["training"]
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in results.items())
    notes = {
        "fid": f"classifier-FID of {results.get('fid_n')} samples ({results.get('fid_sampler')}, class-balanced "
               "labels) against the test set, on this dataset's in-project classifier's penultimate features; "
               "`fid_floor` is real-vs-real (train vs test) at the same N" if "fid_sampler" in results else
               "classifier-FID of 5,000 prior samples against the test set, on this dataset's in-project "
               "classifier's penultimate features; `fid_floor` is real-vs-real (train vs test) at the same N",
        "linear_probe": f"accuracy of a logistic regression on standardised codes, fitted on "
                        f"{results.get('probe_train')} train-split codes, tested on {results.get('probe_test')} "
                        "test-split codes",
        "iw_nll": f"importance-weighted NLL (Burda et al.) with {results.get('iw_samples')} samples on the "
                  f"first {results.get('iw_images')} test images, nats per image, Bernoulli decoder",
    }
    notes["test_eps_mse"] = (f"the training loss (eps-prediction MSE per element) on the first "
                             f"{results.get('eps_mse_images')} test images at seeded random t")
    notes["sample_ms_per_image"] = f"sampling time for the FID samples on {results.get('sample_hardware')}"
    notes["prior_loglik_per_dim"] = ("held-out log-likelihood per latent dimension of the test codes under the "
                                     "Gaussian mixture fitted to the standardised training codes (nats; N(0, I) "
                                     "scores -1.419, higher = a simpler latent distribution)")
    notes["stage1_test_mse"] = "test reconstruction MSE of the weak stage-1 decoder on the same codes"
    notes["recon_sharpness"] = ("fine detail of the reconstructions of the first 2,000 test images relative to the "
                                "images themselves: the mean squared 3x3 Laplacian response, ratio (1 = as sharp, "
                                "below 1 = blurrier)")
    notes["sample_sharpness"] = "the same ratio for the FID samples against the FID's test images"
    explained = "\n".join(f"- `{k}`: {v}" for k, v in notes.items() if k in results)
    ema = f" Weights: exponential moving average, decay {t['ema_decay']}." if t.get("ema_decay") else ""
    if t.get("precision"):
        ema += f" Forward passes in {t['precision']} (float32 weights)."
    before = t.get("continued_from")
    if before:
        ema += (f"\n\nContinued from a checkpoint trained for {before['epochs']} epochs ({before['wall_time_s']:.0f} s on "
                f"{before['hardware']}, Adam lr {before['lr']}) by\n\n    {before['command']}\n\n"
                f"The warm start begins the model and its moving average at those weights. In total: "
                f"{before['epochs'] + t['epochs']} epochs, {before['wall_time_s'] + t['wall_time_s']:.0f} s of training.")
    return f"""# {name}

Family `{family}`, config `{json.dumps(config)}`, {t['parameters']:,} parameters.

## Data
`{meta['dataset']}` train split ({t['train_images']:,} images); metrics on its test split.

## Training
    {meta['command']}

{t['epochs']} epochs, batch {t['batch_size']}, Adam lr {t['lr']} with cosine decay, seed {t['seed']},
{t['processes']} process(es). Wall time {t['wall_time_s']:.0f} s on {t['hardware']} (torch {t['torch']}).{ema}

## Test metrics
| metric | value |
|---|---|
{rows}

{explained}
"""


def _rebuild_args(argv) -> list[str]:
    """The CLI arguments that determine the checkpoint: where it is written, threads and how the run was
    split into sessions (--resume, --stop-after) do not, so the card's command leaves them out."""
    drop_flag, drop_value = {"--resume"}, {"--out", "--threads", "--stop-after"}
    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in drop_flag or a.split("=", 1)[0] in drop_value:
            skip = a in drop_value
        else:
            args.append(a)
    return args


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m explorer.training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("preset", help=f"one of {sorted(PRESETS)}, 'all' (every shipped checkpoint, "
                                  "then assets), or 'assets' (the shipped test subsets)")
    p.add_argument("--dataset", default="fashion-mnist", choices=data.NAMES)
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="train on the first N images only")
    p.add_argument("--out", default=None, help="checkpoint root (default: the shipped checkpoints/)")
    p.add_argument("--resume", action="store_true", help="continue from resume.pt if present")
    p.add_argument("--device")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--stop-after", type=int, help="stop after N epochs of this run (resume later)")
    p.add_argument("--init", help="continue training from this checkpoint (a name such as fashion-mnist/ddpm-linear "
                                  "or a folder) of the same preset and config: a warm start")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast for forward passes (about 2x faster on AVX512-BF16 CPUs and GPUs); "
                        f"default: on for {sorted(BF16_PRESETS)} where the device has native bfloat16")
    p.add_argument("--evaluate-only", action="store_true",
                   help="recompute an existing checkpoint's metrics.json and card, no training")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    command = "python -m explorer.training " + " ".join(shlex.quote(s) for s in _rebuild_args(argv or sys.argv[1:]))
    if a.preset == "assets":
        for ds in ("fashion-mnist", "mnist-5k"):
            print(data.write_assets(ds, n=5000 if ds == "fashion-mnist" else 1000))
        return
    jobs = SHIPPED if a.preset == "all" else [(a.dataset, a.preset)]
    if a.evaluate_only:
        for dataset, preset in jobs:
            print(f"{dataset}/{preset}", reevaluate(f"{dataset}/{preset}", a.out))
        return
    for dataset, preset in jobs:
        out = train(preset, dataset, a.epochs, a.out, a.seed, a.batch_size, a.lr, a.limit, a.resume,
                    a.device, evaluate=not a.no_eval, stop_after=a.stop_after, bf16=a.bf16,
                    command=None if a.preset == "all" else command, init=a.init)
        print(f"wrote {out}")
    if a.preset == "all":
        main(["assets"])
        if _dist()[0] == 0:  # the page's ONNX decoders of the new weights, into the user cache (export.py)
            from . import export

            built = export.build_all(checkpoints.Zoo(a.out or checkpoints.ROOT), [f"{d}/{p}" for d, p in SHIPPED])
            print("\n".join(f"wrote {path}" for path in built.values()))
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
