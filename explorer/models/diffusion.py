"""Denoising diffusion (Ho et al. 2020), in pixel space or over a VAE's latent codes (Rombach et al. 2022).

One family, ``"ddpm"``: the network predicts the noise eps (loss = ||eps - eps_theta(x_t, t, y)||^2,
Ho et al. 2020 Eq. 14), class-conditional with label dropout so one network gives both halves of
classifier-free guidance. Sampling is DDPM ancestral or DDIM, any step count <= T.

    >>> m = zoo.load("fashion-mnist/ddpm-cosine")
    >>> g = torch.Generator().manual_seed(0)
    >>> x = m.sample(16, steps=50, sampler="ddim", eta=0.0, guidance=2.0, labels=7, generator=g)
    >>> for step in m.sample_progressive(16, steps=50, generator=g, decode=True):
    ...     step.t, step.x_t, step.pred_x0          # images in [0, 1]

In latent space (``space="latent"``) the model diffuses the VAE's standardised posterior means; the
VAE itself (frozen) is stored inside the checkpoint, so the model decodes its own samples and is
rebuilt from its config alone.

Sampling runs the network under bfloat16 autocast where the hardware does bfloat16 natively (AVX512-BF16
CPUs, recent GPUs): about twice as fast on this project's CPU with the same classifier-FID (57.4 vs 57.5
at N = 500, mean pixel difference 0.001). ``model.precision = "float32"`` turns it off.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch.nn import functional as F

from .. import diffusion
from ..nets import MLPDenoiser, UNet, UNetConfig
from ..schedules import make_schedule
from .base import ConfigModule
from .registry import build_autoencoder

SPACES = ("pixel", "latent")
PRECISIONS = ("auto", "bfloat16", "float32")


def bf16_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 natively (oneDNN on AVX512-BF16/AMX CPUs, or a bf16 GPU)."""
    return _bf16_native(str(torch.device(device)))


@functools.lru_cache(maxsize=None)  # asked on every sampling step; the hardware does not change
def _bf16_native(name: str) -> bool:
    device = torch.device(name)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


@dataclass
class DDPMConfig:
    schedule: str = "cosine"          # "linear" (Ho et al. 2020) | "cosine" (Nichol & Dhariwal 2021)
    timesteps: int = 1000             # T
    space: str = "pixel"              # "pixel": the UNet on images scaled to [-1, 1]; "latent": VAE codes
    classes: int = 10                 # label `classes` is the null label (unconditional)
    label_dropout: float = 0.1        # P(label -> null) in training, for classifier-free guidance
    ema_decay: float = 0.999          # training keeps an EMA of the weights and ships it
    clip_x0: float | None = None      # sampling clamps predicted x_0 to +-this; None: 1 for pixels, 5 for codes
    spacing: str | None = None        # timesteps of chains shorter than T; None: trailing for pixels, leading for codes
    # pixel space: the UNet
    channels: int = 32
    mults: tuple = (1, 2, 2)
    res_blocks: int = 1
    attention: bool = True
    dropout: float = 0.0
    # latent space: the MLP denoiser and the VAE whose codes it models
    vae: str = ""                     # checkpoint name, e.g. "fashion-mnist/vae-16" (provenance)
    vae_family: str = "vae"
    vae_config: dict = field(default_factory=dict)
    latent_dim: int = 16
    hidden: int = 256
    blocks: int = 3
    image_shape: tuple = (1, 28, 28)  # (C, H, W) of the dataset it was built for

    @property
    def sampling_spacing(self) -> str:
        """The timestep spacing sampling uses unless told otherwise (``diffusion.timesteps``): "trailing" for
        pixels, whose x_0 estimate is clamped to the data range, so the chain may start at T - 1 where x_T is
        pure noise; "leading" for codes, whose clamp at 5 standard deviations is too loose to tame the jump
        from T - 1 (README.md, "Timestep spacing", has the measurements)."""
        spacing = self.spacing or ("trailing" if self.space == "pixel" else "leading")
        if spacing not in diffusion.SPACINGS:
            raise ValueError(f"spacing must be one of {diffusion.SPACINGS}, not {spacing!r}")
        return spacing


def _labels(labels, n: int, null: int, device) -> torch.Tensor:
    """None -> all null; an int -> that class for all; a sequence -> per image, with None / -1 -> null."""
    if labels is None:
        return torch.full((n,), null, dtype=torch.long, device=device)
    if isinstance(labels, int):
        labels = [labels] * n
    y = torch.as_tensor([-1 if v is None else int(v) for v in labels] if not isinstance(labels, torch.Tensor)
                        else labels, dtype=torch.long).to(device)
    if y.shape != (n,):
        raise ValueError(f"labels must be one class or {n} of them, got shape {tuple(y.shape)}")
    if (y >= null).any():
        raise ValueError(f"labels must be in 0..{null - 1} (or None / -1 for unconditional)")
    return torch.where(y < 0, torch.full_like(y, null), y)


class DDPM(ConfigModule):
    Config = DDPMConfig
    label = "Diffusion"

    @classmethod
    def describe(cls, config: dict) -> str:
        return "Latent diffusion" if config.get("space") == "latent" else "Pixel diffusion"

    def __init__(self, config: DDPMConfig):
        super().__init__(config)
        self.precision = "auto"  # sampling: "auto" (bfloat16 where native), "bfloat16" or "float32"
        if config.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, not {config.space!r}")
        config.sampling_spacing  # noqa: B018  (raises on an unknown spacing now, not at the first sample)
        self.schedule = make_schedule(config.schedule, config.timesteps)  # rebuilt from the config, not stored
        if config.space == "pixel":
            self.net = UNet(UNetConfig(int(config.image_shape[0]), config.channels, tuple(config.mults), config.res_blocks,
                                       config.attention, config.classes, config.dropout))
            self.net.to(memory_format=self.memory_format)  # the faster layout for its precision on this host
        else:
            if not config.vae_config:
                raise ValueError("a latent diffusion model needs vae_config (the VAE whose codes it models)")
            self.vae = build_autoencoder(config.vae_family, config.vae_config).requires_grad_(False)
            self.net = MLPDenoiser(config.latent_dim, config.hidden, config.blocks, config.classes)
            self.register_buffer("code_mean", torch.zeros(config.latent_dim))
            self.register_buffer("code_std", torch.ones(config.latent_dim))

    def sampling_dtype(self, device: torch.device | str | None = None) -> torch.dtype:
        """The dtype the network runs in when sampling on ``device`` (default: the model's)."""
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        device = torch.device(device) if device is not None else self._device()
        on = self.precision == "bfloat16" or (self.precision == "auto" and bf16_native(device))
        return torch.bfloat16 if on else torch.float32

    def _autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.sampling_dtype(device) == torch.bfloat16)

    # ---- data space
    @property
    def null_label(self) -> int:
        return self.config.classes

    @property
    def sample_shape(self) -> tuple:
        return tuple(int(v) for v in self.config.image_shape) if self.config.space == "pixel" \
            else (self.config.latent_dim,)

    @property
    def clip(self) -> float | None:
        """The bound predicted x_0 is clamped to while sampling: the data's range [-1, 1] for pixels, and
        5 standard deviations for standardised codes (0.1% of real codes lie beyond 4). Near t = T the
        cosine schedule's alpha_bar is ~2e-9, so x0_hat = (x_t - sqrt(1 - ab) eps_hat) / sqrt(ab) multiplies
        the network's eps error by ~2e4; unclamped, DDIM samples of codes drift to |z| ~ 1000."""
        c = self.config.clip_x0
        if c is None:
            return 1.0 if self.config.space == "pixel" else 5.0
        return float(c) if c > 0 else None

    @torch.no_grad()
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> what the model diffuses: pixels in [-1, 1] or standardised codes."""
        x = x.to(self._device())
        if self.config.space == "pixel":
            return x * 2 - 1
        return (self.vae.encode(x) - self.code_mean) / self.code_std  # (N, D)

    @torch.no_grad()
    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """A model-space state (x_t, a predicted x_0, a sample) -> images (N, C, H, W) in [0, 1]
        (latent: the VAE decodes the de-standardised code, so noisy codes decode to something too)."""
        if self.config.space == "pixel":
            return ((x + 1) / 2).clamp(0, 1)
        return self.vae.decode(x * self.code_std + self.code_mean)

    @torch.no_grad()
    def fit_codes(self, vae, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Latent space: take ``vae``'s weights, encode the training images ``x`` and fix the codes'
        per-dimension mean and std; returns the standardised codes (N, D) to train on."""
        self.vae.load_state_dict(vae.state_dict(), strict=True)
        self.vae.to(self._device())
        codes = torch.cat([self.vae.encode(x[i:i + batch]).cpu() for i in range(0, len(x), batch)])  # (N, D)
        self.code_mean.copy_(codes.mean(0))
        self.code_std.copy_(codes.std(0).clamp(min=1e-6))
        return (codes - self.code_mean.cpu()) / self.code_std.cpu()

    # ---- training
    def memory_format_for(self, dtype: torch.dtype) -> torch.memory_format:
        """The pixel UNet's layout when it computes in ``dtype``: channels-last in float32, the default layout
        under bfloat16 autocast, whichever ``benchmarks/unet_layout.py`` finds faster for a training step and a
        DDIM chain in that precision (its figures are in README.md, "Speed"). The latent MLP has no image
        layout."""
        return torch.channels_last if self.config.space == "pixel" and dtype == torch.float32 \
            else torch.contiguous_format

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout for sampling on the model's device at its ``precision`` (which sampling switches to)."""
        return self.memory_format_for(self.sampling_dtype())

    def _follow_layout(self) -> None:
        """Put the UNet's weights in the layout of the current precision and device (no copy when they are)."""
        if self.config.space == "pixel":
            self.net.to(memory_format=self.memory_format)

    def loss(self, batch):
        x, y = batch
        x0 = x if self.config.space == "latent" and x.ndim == 2 else self.to_model_space(x)  # codes pre-encoded
        B = x0.shape[0]
        t = torch.randint(0, self.config.timesteps, (B,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = diffusion.q_sample(self.schedule, x0, t, noise)
        drop = torch.rand(B, device=x0.device) < self.config.label_dropout
        y = torch.where(drop, torch.full_like(y, self.null_label), y)
        # L_simple = E ||eps - eps_theta(sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps, t)||^2   (Ho et al. 2020, Eq. 14)
        loss = F.mse_loss(self.net(x_t, t, y), noise)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def eps_mse(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, batch: int = 500) -> float:
        """The training loss on held-out images at seeded random t and noise (conditional, no dropout)."""
        total = 0.0
        for i in range(0, len(x), batch):
            x0 = self.to_model_space(x[i:i + batch])
            t = torch.randint(0, self.config.timesteps, (len(x0),), generator=generator).to(x0.device)
            noise = diffusion.randn(x0.shape, generator, x0.device)
            eps = self.net(diffusion.q_sample(self.schedule, x0, t, noise), t, y[i:i + batch].to(x0.device))
            total += F.mse_loss(eps, noise, reduction="sum").item()
        return total / (len(x) * x0[0].numel())

    # ---- sampling (the public API: README.md, "Python API")
    def eps_fn(self, labels: torch.Tensor, guidance: float = 1.0):
        """(x_t, t) -> eps for the sampler, with classifier-free guidance at scale ``guidance``."""
        null = torch.full_like(labels, self.null_label)
        w = float(guidance)

        @torch.no_grad()
        def fn(x: torch.Tensor, t: int) -> torch.Tensor:
            tt = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
            with self._autocast(x.device):
                if w == 0:
                    return self.net(x, tt, null).float()
                if w == 1:
                    return self.net(x, tt, labels).float()
                both = self.net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, null])).float()  # (2N, ...)
            cond, uncond = both.chunk(2)                                                                 # (N, ...) each
            return diffusion.guided_eps(uncond, cond, w)
        return fn

    @torch.no_grad()
    def sample_progressive(self, n: int, steps: int | None = 50, sampler: str = "ddim", eta: float = 0.0,
                           guidance: float = 1.0, labels=None, generator: torch.Generator | None = None,
                           decode: bool = False, clip=..., x_T: torch.Tensor | None = None,
                           spacing: str | None = None) -> Iterator[diffusion.SamplerStep]:
        """Yield every reverse step: ``SamplerStep(index, t, x_t, pred_x0, prev_sample)``.

        States are in model space (pixels in [-1, 1] or standardised codes) unless ``decode``, which
        turns all three into images in [0, 1]. ``labels``: None (unconditional), one class, or n of
        them (None / -1 for unconditional ones); ``guidance`` w: eps_u + w (eps_c - eps_u).
        ``steps=None`` means all T. ``clip``: the rule for predicted x_0 (default: the model's ``clip``;
        None: none; a number: clamp; a callable such as ``diffusion.dynamic_threshold()``). ``x_T``: the
        starting noise (n, *sample_shape) in model space, else drawn from ``generator``; drawing it yourself
        with ``diffusion.randn((n, *sample_shape), generator)`` gives the same chain. ``spacing``: the
        timesteps a chain of fewer than T steps visits, ``"leading"`` or ``"trailing"`` (``diffusion.timesteps``;
        default: the model's, ``config.sampling_spacing``)."""
        device = self._device()
        self._follow_layout()
        y = _labels(labels, n, self.null_label, device)
        if x_T is not None:
            if tuple(x_T.shape) != (n, *self.sample_shape):
                raise ValueError(f"x_T must have shape {(n, *self.sample_shape)}, not {tuple(x_T.shape)}")
            x_T = x_T.to(device, torch.float32)
        it = diffusion.sample_progressive(self.eps_fn(y, guidance), self.schedule.to(device), (n, *self.sample_shape),
                                          steps, sampler, eta, generator, self.clip if clip is ... else clip,
                                          x_T=x_T, device=device, spacing=spacing or self.config.sampling_spacing)
        for step in it:
            if decode:
                step = step._replace(x_t=self.to_image(step.x_t), pred_x0=self.to_image(step.pred_x0),
                                     prev_sample=self.to_image(step.prev_sample))
            yield step

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = 50, sampler: str = "ddim", eta: float = 0.0,
               guidance: float = 1.0, labels=None, generator: torch.Generator | None = None,
               clip=..., x_T: torch.Tensor | None = None,
               spacing: str | None = None) -> torch.Tensor:
        """n images (N, 1, 28, 28) in [0, 1]; pass a seeded ``torch.Generator`` to repeat them.
        ``clip``, ``x_T`` and ``spacing``: as in :meth:`sample_progressive`."""
        x = None
        # one autocast region around the whole chain (the per-step regions nest inside it), so the
        # bfloat16 copies of the weights are made once per call, not once per step
        with self._autocast(self._device()):
            for step in self.sample_progressive(n, steps, sampler, eta, guidance, labels, generator, clip=clip,
                                                x_T=x_T, spacing=spacing):
                x = step.prev_sample
        return self.to_image(x)

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device
