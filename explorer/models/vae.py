"""Variational autoencoder with a diagonal Gaussian posterior (Kingma & Welling 2014), optionally with the
PatchGAN texture term of GAMIX-VAE (arXiv 2309.13160; the VQGAN / Stable Diffusion autoencoder recipe).

With ``adv_weight > 0`` a PatchGAN discriminator (adversarial.py) learns to tell real images from the
VAE's reconstructions patch by patch, and the VAE's loss gains ``adv_weight * lambda * L_G``: the
non-saturating generator loss on its reconstructions, with lambda VQGAN's adaptive weight (the two
terms' gradients matched in size at the decoder's last layer). Blur is what a per-pixel likelihood
forgives and a patch discriminator does not. The term starts at epoch ``adv_start``, once the
reconstructions are worth judging. With ``adv_weight = 0`` (the default) there is no discriminator.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..nets import ConvDecoder, ConvEncoder
from . import adversarial
from .base import LatentModel, bernoulli_log_lik, gaussian_kl, gaussian_log_prob


@dataclass
class VAEConfig:
    latent_dim: int = 16
    channels: int = 16
    hidden: int = 256
    beta: float = 1.0
    adv_weight: float = 0.0     # > 0: add the PatchGAN term (times VQGAN's adaptive weight)
    adv_start: int = 0          # the epoch (from 0) at which the term and the discriminator start
    disc_channels: int = 32
    d_lr: float = 2e-4          # the discriminator's own Adam
    image_shape: tuple = (1, 28, 28)  # (C, H, W) of the dataset it was built for


class VAE(adversarial.TextureTerm, LatentModel):
    Config = VAEConfig
    is_variational = True
    label = "VAE"

    @classmethod
    def describe(cls, config: dict) -> str:
        return "VAE + PatchGAN" if config.get("adv_weight", 0) > 0 else "VAE"

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        d = config.latent_dim
        self.encoder = ConvEncoder(2 * d, config.channels, config.hidden, image_shape=config.image_shape)
        self.decoder = ConvDecoder(d, config.channels, config.hidden, image_shape=config.image_shape)
        self._init_texture()

    def posterior(self, x):
        """q(z|x) parameters: mu, logvar, each (N, D)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (N, D), (N, D)
        return mu, logvar.clamp(-12.0, 8.0)

    def _encode_mean(self, x):
        return self.posterior(x)[0]

    @torch.no_grad()
    def posterior_sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw z ~ q(z|x) per image: (N, D)."""
        mu, logvar = self.posterior(x.to(self._device()))
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        return mu + (0.5 * logvar).exp() * eps                  # z = mu + sigma * eps

    def loss(self, batch):
        x = batch[0]
        mu, logvar = self.posterior(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # reparameterization: z = mu + sigma * eps
        logits = self.decoder(z)
        rec = -bernoulli_log_lik(logits, x)                   # -log p(x|z), (N,)
        kl = gaussian_kl(mu, logvar)                          # KL(q(z|x) || p(z)), (N,)
        loss = (rec + self.config.beta * kl).mean()
        x_hat = torch.sigmoid(logits)
        with torch.no_grad():
            mse = F.mse_loss(x_hat, x)
        logs = {"loss": loss.item(), "rec": rec.mean().item(), "kl": kl.mean().item(), "mse": mse.item()}
        term, term_logs = self.texture_term(x, x_hat, rec.mean())
        if term_logs:
            loss = loss + term
            logs.update(term_logs)
        return loss, logs

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
