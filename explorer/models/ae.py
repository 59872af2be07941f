"""Plain autoencoder. Its sampler draws from a Gaussian fitted to the training codes."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nets import ConvDecoder, ConvEncoder
from .base import LatentModel, reconstruction_loss


@dataclass
class AEConfig:
    latent_dim: int = 16
    channels: int = 16
    hidden: int = 256
    image_shape: tuple = (1, 28, 28)  # (C, H, W) of the dataset it was built for


class AE(LatentModel):
    label = "Autoencoder"
    Config = AEConfig
    fits_prior = True  # samples from a Gaussian fitted to its training codes

    def __init__(self, config: AEConfig):
        super().__init__(config)
        d = config.latent_dim
        self.encoder = ConvEncoder(d, config.channels, config.hidden, image_shape=config.image_shape)
        self.decoder = ConvDecoder(d, config.channels, config.hidden, image_shape=config.image_shape)
        # A Gaussian over the training codes, fitted after training (fit_prior): lets sample() work.
        self.register_buffer("code_mean", torch.zeros(d))
        self.register_buffer("code_chol", torch.eye(d))

    def _encode_mean(self, x):
        return self.encoder(x)

    def loss(self, batch):
        x = batch[0]
        return reconstruction_loss(self.decoder(self.encoder(x)), x)

    @torch.no_grad()
    def fit_prior(self, codes: torch.Tensor) -> None:
        """Fit N(mean, cov) to codes (N, D) so ``sample`` draws plausible codes."""
        codes = codes.double()
        mean = codes.mean(0)
        cov = torch.cov(codes.T) + 1e-6 * torch.eye(codes.shape[1], dtype=codes.dtype)
        self.code_mean.copy_(mean.float())
        self.code_chol.copy_(torch.linalg.cholesky(cov).float())

    @torch.no_grad()
    def sample_latent(self, n, generator=None, temperature=1.0):
        eps = torch.randn(n, self.latent_dim, generator=generator).to(self._device())
        return self.code_mean + temperature * eps @ self.code_chol.T  # (n, D)
