"""What every latent model answers: encode, decode, sample, loss."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

LOG2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dim."""
    return -0.5 * (LOG2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) in closed form, summed over the last dim."""
    # KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)   (Kingma & Welling 2014, App. B)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def bernoulli_log_lik(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) under a Bernoulli decoder (grey levels as probabilities), per image in nats."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Mean Bernoulli negative log-likelihood per image of decoder ``logits`` for ``x``, with the logs
    {"loss", "mse"} (MSE per pixel of the decoded image) the training loop shows."""
    nll = -bernoulli_log_lik(logits, x).mean()
    with torch.no_grad():
        mse = F.mse_loss(torch.sigmoid(logits), x)
    return nll, {"loss": nll.item(), "mse": mse.item()}


class ConfigModule(nn.Module):
    """A module rebuilt from its config dataclass alone; ``forward(batch)`` is its training loss, so
    DistributedDataParallel sees the whole step.

    What a family can do is declared here, with the defaults, and overridden by the family: the training
    loop, the evaluation and the app ask these instead of probing for attributes."""

    Config: type
    has_encoder = False           # encode(x) gives codes (the autoencoder families; not a GAN, DDPM, classifier)
    is_variational = False        # an ELBO and an importance-weighted NLL are defined
    staged = False                # trains in stages (stage_bounds); the loop restarts its cosine decay at each
    fits_prior = False            # after training, fit_prior(training codes) fits the distribution it samples
    generates = True              # sample(n) draws images (every family but the classifier)
    exports_decoder = False       # decode(z) is one pass, exported to ONNX for the page (the LatentModel families)
    label = ""                    # the family's name in the UI (describe() refines it from a config)
    adam_betas = (0.9, 0.999)     # the loop's Adam (configure_optimizers)

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def image_shape(self) -> tuple:
        """(C, H, W) of the images the model reads or makes (its config's; (1, 28, 28) for older configs). A
        latent diffusion model's is its autoencoder's."""
        cfg = self.config
        if getattr(cfg, "space", "pixel") == "latent":
            return tuple(int(v) for v in cfg.vae_config.get("image_shape", (1, 28, 28)))
        return tuple(int(v) for v in getattr(cfg, "image_shape", (1, 28, 28)))

    @classmethod
    def describe(cls, config: dict) -> str:
        """The family's label for a config (e.g. "VAE + PatchGAN" when the texture term is on)."""
        return cls.label

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def forward(self, batch):
        return self.loss(batch)

    def loss(self, batch):
        raise NotImplementedError

    # ---- hooks of the training loop (no-ops unless a family needs them) ----
    @property
    def ema_decay(self) -> float:
        """Decay of the weights' moving average the loop keeps and ships (0: none)."""
        return float(getattr(self.config, "ema_decay", 0.0) or 0.0)

    def memory_format_for(self, dtype: torch.dtype) -> torch.memory_format:
        """The layout a family holds its 4-D weights in while it computes in ``dtype`` (the training loop sets
        it; checkpoints store the default layout either way). The convolutions' outputs follow the weights; a
        1-channel image batch is already valid in both layouts, so inputs need no conversion."""
        return torch.contiguous_format

    def configure_optimizers(self, lr: float) -> torch.optim.Optimizer:
        """The loop's optimiser over every parameter (a GAN's discriminator takes its own steps in ``loss``)."""
        return torch.optim.Adam(self.parameters(), lr=lr, betas=self.adam_betas)

    def stage_bounds(self, epochs: int) -> list[int]:
        """Epoch boundaries of the training stages: one stage unless ``staged``."""
        return [0, epochs]

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the loop before each epoch (a stage change, a loss term switched on)."""

    def fit_prior(self, codes: torch.Tensor) -> None:
        """With ``fits_prior``: fit the sampling distribution to the training codes (N, D)."""
        raise NotImplementedError(f"{type(self).__name__} does not fit a prior")

    def extra_metrics(self, x_test: torch.Tensor) -> dict:
        """The family's own test metrics, added to the card's (e.g. the DAE's stage-1 MSE)."""
        return {}


class LatentModel(ConfigModule):
    """Base of the AE family. Subclasses set ``Config`` and implement the hooks.

    Inputs are float (N, C, H, W) in [0, 1] (``image_shape``); ``forward(batch)`` returns ``(loss, logs)``.
    """

    has_encoder = True
    exports_decoder = True

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # ---- the public API (README.md, "Python API") ----
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (N,C,H,W) in [0,1] -> z (N, D): the posterior mean (the code for AEs)."""
        return self._encode_mean(x.to(self._device()))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, D) -> x (N,C,H,W) in [0,1]."""
        return torch.sigmoid(self.decoder(z.to(self._device(), torch.float32)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      temperature: float = 1.0) -> torch.Tensor:
        """n codes from the prior N(0, I), scaled by ``temperature``."""
        eps = torch.randn(n, self.latent_dim, generator=generator)
        return (temperature * eps).to(self._device())

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """n images decoded from prior samples; pass a seeded ``torch.Generator`` to repeat them."""
        return self.decode(self.sample_latent(n, generator, temperature))

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _encode_mean(self, x):
        raise NotImplementedError
