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
    DistributedDataParallel sees the whole step."""

    Config: type

    def __init__(self, config):
        super().__init__()
        self.config = config

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def forward(self, batch):
        return self.loss(batch)

    def loss(self, batch):
        raise NotImplementedError


class LatentModel(ConfigModule):
    """Base of the AE family. Subclasses set ``Config`` and implement the hooks.

    Inputs are float (N, 1, 28, 28) in [0, 1]; ``forward(batch)`` returns ``(loss, logs)``.
    """

    is_variational = False    # ELBO / importance-weighted NLL are defined

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # ---- the public API (DESIGN.md) ----
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (N,1,28,28) in [0,1] -> z (N, D): the posterior mean (the code for AEs)."""
        return self._encode_mean(x.to(self._device()))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, D) -> x (N,1,28,28) in [0,1]."""
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
