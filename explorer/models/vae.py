"""Variational autoencoder with a diagonal Gaussian posterior (Kingma & Welling 2014)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..nets import ConvDecoder, ConvEncoder
from .base import LatentModel, bernoulli_log_lik, gaussian_kl, gaussian_log_prob


@dataclass
class VAEConfig:
    latent_dim: int = 16
    channels: int = 16
    hidden: int = 256
    beta: float = 1.0


class VAE(LatentModel):
    Config = VAEConfig
    is_variational = True

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        d = config.latent_dim
        self.encoder = ConvEncoder(2 * d, config.channels, config.hidden)
        self.decoder = ConvDecoder(d, config.channels, config.hidden)

    def posterior(self, x):
        """q(z|x) parameters: mu, logvar, each (N, D)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (N, D), (N, D)
        return mu, logvar.clamp(-12.0, 8.0)

    def _encode_mean(self, x):
        return self.posterior(x)[0]

    def loss(self, batch):
        x = batch[0]
        mu, logvar = self.posterior(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # reparameterization: z = mu + sigma * eps
        logits = self.decoder(z)
        rec = -bernoulli_log_lik(logits, x)                   # -log p(x|z), (N,)
        kl = gaussian_kl(mu, logvar)                          # KL(q(z|x) || p(z)), (N,)
        loss = (rec + self.config.beta * kl).mean()
        with torch.no_grad():
            mse = F.mse_loss(torch.sigmoid(logits), x)
        return loss, {"loss": loss.item(), "rec": rec.mean().item(), "kl": kl.mean().item(),
                      "mse": mse.item()}

    @torch.no_grad()
    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i|x) for k posterior samples: (N, k). Feeds ELBO and IWAE."""
        mu, logvar = self.posterior(x)
        z = mu.unsqueeze(1) + (0.5 * logvar).exp().unsqueeze(1) * torch.randn(
            x.shape[0], k, mu.shape[1], device=mu.device)                        # (N, k, D)
        logits = self.decoder(z.flatten(0, 1)).view(x.shape[0], k, *x.shape[1:])  # (N, k, 1, 28, 28)
        log_px = bernoulli_log_lik(logits.flatten(0, 1), x.repeat_interleave(k, 0)).view(-1, k)
        log_pz = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = gaussian_log_prob(z, mu.unsqueeze(1), logvar.unsqueeze(1))
        return log_px + log_pz - log_qz
