"""One generic training loop over ``model(batch) -> (loss, logs)`` (:class:`TrainConfig`, :func:`train`), and the CLI.
Evaluation is in :mod:`explorer.evaluation`, the model cards in :mod:`explorer.cards`.

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
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from . import cards, checkpoints, data, datasets, evaluation, models

# preset -> family, config, epochs, learning rate. Sized for minutes on 2 CPU cores.
PRESETS = {
    "classifier": ("classifier", {}, 5, 2e-3),
    "vae-2d": ("vae", {"latent_dim": 2}, 20, 2e-3),
    "ae-16": ("ae", {"latent_dim": 16}, 20, 2e-3),
    "vae-16": ("vae", {"latent_dim": 16}, 20, 2e-3),
    "gmm-vae-16": ("gmm-vae", {"latent_dim": 16, "components": 3}, 15, 2e-3),
    # the whole GAMIX-VAE: the mixture posterior with its anti-collapse regulariser plus the PatchGAN term
    "gamix-vae-16": ("gmm-vae", {"latent_dim": 16, "components": 3, "adv_weight": 0.5, "adv_start": 2}, 15, 2e-3),
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
    # Faces in colour (64x64x3, explorer/faces.py): wider nets and 64-D codes. beta < 1 keeps the mouth's detail
    # in the codes (the smile vector is only as good as the decoder at the mouth); latent diffusion then
    # models the codes the prior N(0, I) no longer fits.
    "vae-64": ("vae", {"latent_dim": 64, "channels": 16, "hidden": 512, "beta": 0.1}, 6, 2e-3),
    "gamix-vae-64": ("gmm-vae", {"latent_dim": 64, "components": 3, "channels": 16, "hidden": 512, "beta": 0.1,
                                 "adv_weight": 0.5, "adv_start": 1}, 3, 2e-3),
    "ldm-vae-64": ("ddpm", {"space": "latent", "vae": "vae-64", "schedule": "cosine", "hidden": 192}, 40, 1e-3),
}
# Latent diffusion presets whose checkpoint refers to its autoencoder's weights (by name and SHA-256) instead of
# holding a copy: the repository's size budget (checkpoints.py, _referenced_vae)
VAE_BY_REFERENCE = {"ldm-vae-64"}
# Presets trained under bfloat16 autocast where the hardware has it, unless --no-bf16 (the shipped pixel DDPMs were)
BF16_PRESETS = {"ddpm-linear", "ddpm-cosine", "dcgan"}
# Every shipped checkpoint, in build order (each dataset's classifier first: the others' FID needs it).
SHIPPED = [("fashion-mnist", p) for p in ("classifier", "vae-2d", "ae-16", "vae-16", "vae-16-patchgan",
                                                 "gmm-vae-16", "gamix-vae-16", "ldm-vae-16",
                                                 "ddpm-cosine", "ddpm-linear", "dae-16", "dae-16-joint",
                                                 "ldm-dae-16", "ldm-dae-16-joint", "dcgan")] + \
          [("mnist-5k", "classifier"), ("mnist-5k", "vae-2d")] + \
          [("faces", p) for p in ("classifier", "vae-64", "gamix-vae-64", "ldm-vae-64")]


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
            return {**config, "vae": name, "vae_family": info["family"], "vae_config": info["config"],
                    "latent_dim": int(info["config"]["latent_dim"])}, vae
    raise checkpoints.CheckpointError(f"latent diffusion needs the checkpoint {name!r}; build it first with "
                                      f"`{checkpoints.rebuild_command(name)}`")


@dataclass
class TrainConfig:
    """Everything one training run depends on; :func:`train` takes these fields as its arguments.

    ``limit`` caps the training images (tests), ``config`` overrides config fields, ``stop_after`` ends this
    run after that many epochs, leaving resume.pt (time-boxed runs); so does ``deadline`` once that
    wall-clock time (``time.time()``) has passed. ``keep_epochs`` keeps a copy of the state after those epochs
    (``resume-epoch{n}.pt``): a run whose first epochs are the same can start from it as its resume.pt.
    ``bf16`` runs forward and loss under bfloat16 autocast (weights, optimiser and EMA stay float32): about twice the speed on CPUs with
    AVX512-BF16 and on GPUs; None: on for BF16_PRESETS where the device computes bfloat16 natively.
    ``init`` continues training from an existing checkpoint of the same preset and config (a name such as
    ``fashion-mnist/ddpm-linear`` in the shipped zoo, or a folder): its weights start both the model and its
    moving average, and the card counts the earlier training into the totals."""

    preset: str
    dataset: str = "fashion-mnist"
    epochs: int | None = None           # None: the preset's (times the dataset's epoch_scale)
    out: str | os.PathLike | None = None  # checkpoint root (default: the shipped checkpoints/)
    seed: int = 0
    batch_size: int = 128
    lr: float | None = None             # None: the preset's
    limit: int | None = None
    resume: bool = False
    device: str | None = None
    config: dict | None = None
    evaluate: bool = True
    progress: bool = True
    command: str | None = None          # the card's rebuild command (default: the preset's)
    stop_after: int | None = None
    deadline: float | None = None       # time.time() after which no new epoch starts (resume.pt is kept)
    keep_epochs: tuple = ()             # after these epochs, keep resume.pt's state as resume-epoch{n}.pt too
    bf16: bool | None = None
    init: str | os.PathLike | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)} or 'all'")
        family, _, default_epochs, default_lr = PRESETS[self.preset]
        self.epochs = self.epochs or default_epochs * datasets.get(self.dataset).epoch_scale
        self.lr = self.lr or default_lr
        self.command = self.command or checkpoints.rebuild_command(self.name)

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.preset}"

    @property
    def family(self) -> str:
        return PRESETS[self.preset][0]

    @property
    def out_dir(self) -> Path:
        return Path(self.out or checkpoints.ROOT) / self.dataset / self.preset


def train(*args, **kwargs) -> Path:
    """Train a preset and write its checkpoint; returns its folder. Arguments: :class:`TrainConfig`'s fields,
    in order (``train("vae-2d", "digits", epochs=5, out=root)``)."""
    return run(TrainConfig(*args, **kwargs))


def run(cfg: TrainConfig) -> Path:
    """The loop: ``model(batch) -> (loss, logs)``, Adam with cosine decay (restarted per stage), an EMA of the
    weights when the model asks for one, resume.pt after every epoch; then the checkpoint, its metrics and card."""
    from tqdm.auto import tqdm

    rank, world = _dist()
    device = cfg.device or (f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    bf16 = cfg.bf16
    if bf16 is None:  # the presets' default, where the hardware does bfloat16 natively (else it is slower)
        from .models.diffusion import bf16_native

        bf16 = cfg.preset in BF16_PRESETS and bf16_native(device)
    device_type = torch.device(device).type  # for autocast
    name, epochs, out_dir = cfg.name, cfg.epochs, cfg.out_dir

    torch.manual_seed(cfg.seed)  # the CLI owns the process: seeding it globally is fine here
    model, x, y = _build(cfg, device)
    model.to(memory_format=model.memory_format_for(torch.bfloat16 if bf16 else torch.float32))  # e.g. the UNet's
    ema = EMA(model, model.ema_decay) if model.ema_decay else None
    earlier = None
    if cfg.init is not None:  # warm start: the model and its moving average begin at the checkpoint's weights
        earlier = _warm_start(model, cfg.init, cfg.family, model.config_dict())
        if ema is not None:
            ema = EMA(model, model.ema_decay)
            ema.updates = 10 ** 6  # no warm-up: the average starts from trained weights, not from noise
    opt = model.configure_optimizers(cfg.lr)
    if model.staged:  # the DAE: the cosine decay restarts at each stage
        sched = torch.optim.lr_scheduler.LambdaLR(opt, stage_cosine(model.stage_bounds(epochs)))
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=cfg.lr * 0.05)

    resume_path = out_dir / "resume.pt"
    start_epoch, elapsed, history = _restore(resume_path, model, opt, sched, ema) if cfg.resume else (0, 0.0, [])
    if start_epoch and rank == 0:
        print(f"resuming {name} at epoch {start_epoch}/{epochs}")
    train_model, loader, sampler, shuffle = _loader(model, x, y, cfg, device, rank, world)

    for epoch in range(start_epoch, epochs):
        if cfg.stop_after is not None and epoch >= start_epoch + cfg.stop_after:
            if rank == 0:
                print(f"{name}: stopped after {cfg.stop_after} epoch(s); continue with --resume")
            return out_dir
        if cfg.deadline is not None and time.time() >= cfg.deadline:
            if rank == 0:
                print(f"{name}: time box reached after epoch {epoch}/{epochs}; continue with --resume", flush=True)
            return out_dir
        t0 = time.perf_counter()
        model.begin_epoch(epoch, epochs)  # e.g. the DAE enters stage 2 and freezes its encoder
        model.train()
        shuffle.manual_seed(cfg.seed * 1000 + epoch)  # each epoch's order depends on (seed, epoch) only: resumable
        if world > 1:
            sampler.set_epoch(epoch)
        running: dict[str, float] = {}
        bar = tqdm(loader, desc=f"{name} {epoch + 1}/{epochs}", disable=not cfg.progress or rank != 0,
                   leave=False, dynamic_ncols=True)
        for step, batch in enumerate(bar, 1):  # (x, y) or, for a factor classifier, (x, y, factors)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                loss, logs = train_model(tuple(b.to(device) for b in batch))
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
        history.append({"epoch": epoch + 1, **({"stage": model.stage} if model.staged else {}),
                        **{k: round(v, 5) for k, v in running.items()}})
        if rank == 0:
            print(f"{name} epoch {epoch + 1}/{epochs} " +
                  " ".join(f"{k}={v:.4g}" for k, v in running.items()) + f" ({elapsed:.0f}s)", flush=True)
            out_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": torch.get_rng_state(), "epoch": epoch + 1, "elapsed": elapsed,
                        "history": json.dumps(history), **({"ema": ema.state_dict()} if ema else {})},
                       resume_path)
            if epoch + 1 in cfg.keep_epochs:  # e.g. the DAE's stage 1, which a longer stage 2 can start from
                shutil.copyfile(resume_path, out_dir / f"resume-epoch{epoch + 1}.pt")

    model.eval()
    if ema is not None:  # ship the averaged weights: better samples than the last iterate
        ema.copy_to(model)
    if rank != 0:
        return out_dir
    training = {"epochs": epochs, "batch_size": cfg.batch_size * world, "lr": cfg.lr, "seed": cfg.seed,
                "train_images": len(x), "processes": world, "wall_time_s": round(elapsed, 1),
                "hardware": evaluation.hardware(device), "torch": torch.__version__,
                "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad), "history": history,
                **({"precision": "bfloat16 autocast"} if bf16 else {}),
                **({"continued_from": earlier} if earlier else {}),
                **({"ema_decay": model.ema_decay} if ema else {})}
    _ship(model, cfg, x, training)
    resume_path.unlink(missing_ok=True)
    return out_dir


def dataset_config(family: str, dataset: str) -> dict:
    """What a model of ``family`` takes from the dataset's registry entry: the image shape, the number of
    classes, and for the classifier one head per labelled factor."""
    spec = datasets.get(dataset)
    fields = models.FAMILIES[family].Config.__dataclass_fields__
    out = {"image_shape": list(spec.shape)} if "image_shape" in fields else {}
    if "classes" in fields:
        out["classes"] = len(spec.classes)
    if "factor_sizes" in fields and spec.factors:
        out["factor_sizes"] = [len(v) for v in spec.factors.values()]
    return out


def _build(cfg: TrainConfig, device: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """(the model on ``device``, its training inputs, labels): a latent model's inputs are its autoencoder's
    standardised codes, encoded once. A factor classifier's labels are (N, 1 + F): the class, then the factors."""
    _, base_config, _, _ = PRESETS[cfg.preset]
    train_ds = data.load(cfg.dataset, "train")
    x, y = train_ds.floats(), train_ds.labels
    base = {**dataset_config(cfg.family, cfg.dataset), **base_config, **(cfg.config or {})}
    if base.get("factor_sizes") and train_ds.factors is not None:
        y = torch.cat([y[:, None], train_ds.factors], 1)  # (N, 1 + F)
    if cfg.limit:
        x, y = x[:cfg.limit], y[:cfg.limit]
    model_config, vae = _latent_source(base, cfg.dataset, cfg.out)
    model = models.build(cfg.family, model_config).to(device)
    if vae is not None:
        x = model.fit_codes(vae, x)
    return model, x, y


def _restore(path: Path, model, opt, sched, ema) -> tuple[int, float, list]:
    """(epochs done, seconds, history) from resume.pt, loading every state into place; (0, 0, []) without one."""
    if not path.is_file():
        return 0, 0.0, []
    state = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    torch.set_rng_state(state["rng"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    return state["epoch"], state["elapsed"], json.loads(state["history"])


def _loader(model, x, y, cfg: TrainConfig, device: str, rank: int, world: int):
    """(the module to call, the DataLoader, its sampler, the generator that orders each epoch); under torchrun
    the module is wrapped in DistributedDataParallel and each process sees its shard."""
    train_model, sampler = model, None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data.distributed import DistributedSampler

        train_model = DistributedDataParallel(model, device_ids=[device] if device.startswith("cuda") else None)
        sampler = DistributedSampler(TensorDataset(x, y), num_replicas=world, rank=rank, seed=cfg.seed)
    shuffle = torch.Generator()
    if sampler is None:
        sampler = torch.utils.data.RandomSampler(TensorDataset(x, y), generator=shuffle)
    tensors = (x, y) if y.ndim == 1 else (x, y[:, 0], y[:, 1:])  # labels (N,) or (N, 1 + F): class, factors
    loader = DataLoader(TensorDataset(*tensors), batch_size=cfg.batch_size, sampler=sampler,
                        drop_last=len(x) > cfg.batch_size)
    return train_model, loader, sampler, shuffle


def _ship(model, cfg: TrainConfig, x: torch.Tensor, training: dict) -> None:
    """Round the weights to what ships, fit the prior where the model samples from one, save the checkpoint,
    then evaluate it and write metrics.json and the card."""
    dtype = checkpoints.ship_dtype(cfg.family)  # float16 parameters (classifiers float32): the repo's size budget
    checkpoints.round_params(model, dtype)      # so the prior is fitted and the metrics measured on what ships
    if model.fits_prior:  # e.g. the AE samples from a Gaussian fitted to its training codes
        model.fit_prior(torch.cat([model.encode(x[i:i + 1000]) for i in range(0, len(x), 1000)]))
    meta = {"dataset": cfg.dataset, "preset": cfg.preset, "command": cfg.command, "training": training}
    vae = getattr(model.config, "vae", "")
    if cfg.preset in VAE_BY_REFERENCE and vae:
        vae_weights = Path(cfg.out or checkpoints.ROOT) / vae / checkpoints.WEIGHTS
        if vae_weights.is_file():  # the autoencoder lives in the same root: refer to it
            meta["vae_weights"] = {"name": vae, "sha256": checkpoints.weights_sha256(vae_weights)}
    checkpoints.save(model, cfg.out_dir, cfg.family, meta, dtype=dtype)
    results = evaluation.evaluate_checkpoint(model, cfg.family, cfg.dataset, cfg.out) if cfg.evaluate else {}
    cards.write_metrics(cfg.out_dir, results)
    cards.write_card(cfg.out_dir, cards.model_card(cfg.name, cfg.family, model.config_dict(), meta, results))
    if cfg.evaluate and model.generates:  # the card shows 64 samples: look before shipping
        evaluation.write_sample_grid(model, cfg.family, cfg.dataset, cfg.out_dir, cfg.out)


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
    epochs, wall_time_s = cards.total_training(t)
    return {"command": info.get("command"), "epochs": epochs, "wall_time_s": round(wall_time_s, 1),
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
    p.add_argument("--samples-only", action="store_true",
                   help="draw an existing checkpoint's 8x8 sample grid (samples.png) into its card, no training")
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
            print(f"{dataset}/{preset}", evaluation.reevaluate(f"{dataset}/{preset}", a.out))
        return
    if a.samples_only:
        zoo = checkpoints.Zoo(a.out or checkpoints.ROOT)
        for dataset, preset in jobs:
            name = f"{dataset}/{preset}"
            model = zoo.load(name, device=a.device or "cpu")
            if model.generates:
                info = evaluation.write_sample_grid(model, zoo.info(name)["family"], dataset, zoo.path(name), a.out)
                print(name, info)
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
