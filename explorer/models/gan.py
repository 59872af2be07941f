"""DCGAN (Radford et al. 2016) for 28x28 images, with the non-saturating loss (Goodfellow et al. 2014).

The generator is the model's ``decoder``: ``decode(z)`` maps prior codes z ~ N(0, I) to images, so a
GAN answers ``sample`` and ``decode`` like every latent model. It has no encoder.

One training step updates both players from the same batch: ``loss`` returns L_D + L_G where the
discriminator sees the fakes detached (L_D moves D only) and L_G is computed through a copy of D's
parameters with gradients off (L_G moves G only). One optimiser over all parameters then performs
the usual simultaneous gradient step, so the generic training loop trains a GAN unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import LatentModel


@dataclass
class GANConfig:
    latent_dim: int = 64
    channels: int = 64          # generator and discriminator width
    ema_decay: float = 0.999    # the shipped generator is an exponential moving average


class Generator(nn.Module):
    """z (N, D) -> logits (N, 1, 28, 28): linear to 7x7, two stride-2 transposed convs (BatchNorm, ReLU)."""

    def __init__(self, latent_dim: int, c: int):
        super().__init__()
        self.c = c
        self.fc = nn.Sequential(nn.Linear(latent_dim, 2 * c * 49, bias=False), nn.BatchNorm1d(2 * c * 49), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),  # (N, c, 14, 14)
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),                                              # (N, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, 2 * self.c, 7, 7))  # (N, 2c, 7, 7) -> logits


class Discriminator(nn.Module):
    """(N, 1, 28, 28) in [0, 1] -> a real/fake logit (N,): two stride-2 convs with LeakyReLU."""

    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                           # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                       # (N, 2c, 7, 7)
            nn.Flatten(), nn.Linear(2 * c * 49, 1),                                               # (N, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1).squeeze(1)


class GAN(LatentModel):
    Config = GANConfig
    has_encoder = False
    adam_betas = (0.5, 0.999)  # DCGAN's choice

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.decoder = Generator(config.latent_dim, config.channels)
        self.discriminator = Discriminator(config.channels)

    def encode(self, x):
        raise NotImplementedError("a GAN has no encoder: it only maps codes to images (decode, sample)")

    def losses(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(L_D, L_G, discriminator accuracy) on real images x: L_D reaches only the discriminator's
        parameters, L_G only the generator's."""
        z = torch.randn(x.shape[0], self.latent_dim, generator=generator).to(x.device)
        fake = torch.sigmoid(self.decoder(z))                              # (N, 1, 28, 28)
        d_real, d_fake = self.discriminator(x), self.discriminator(fake.detach())
        # L_D = -log D(x) - log(1 - D(G(z)));  L_G = -log D(G(z))  (non-saturating), D = sigmoid(logit)
        loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
        loss_g = F.softplus(-torch.func.functional_call(self.discriminator, frozen, (fake,))).mean()
        with torch.no_grad():
            acc = 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean())
        return loss_d, loss_g, acc

    def loss(self, batch):
        loss_d, loss_g, acc = self.losses(batch[0])
        return loss_d + loss_g, {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_acc": acc.item()}
