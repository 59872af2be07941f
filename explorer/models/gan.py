"""DCGAN (Radford et al. 2016) for 28x28 images, with the non-saturating loss (Goodfellow et al. 2014).

The generator is the model's ``decoder``: ``decode(z)`` maps prior codes z ~ N(0, I) to images, so a
GAN answers ``sample`` and ``decode`` like every latent model. It has no encoder.

Training alternates the two players as DCGAN does, inside the generic loop (see adversarial.py):
``loss(batch)`` first takes the discriminator's step with its own Adam optimiser, then returns the
generator's loss L_G through the updated, detached discriminator.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import adversarial
from .base import LatentModel


@dataclass
class GANConfig:
    latent_dim: int = 64
    channels: int = 64          # generator and discriminator width
    ema_decay: float = 0.999    # the shipped generator is an exponential moving average
    d_lr: float = 2e-4          # the discriminator's own Adam (the loop's optimiser trains the generator)


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
    """(N, 1, 28, 28) in [0, 1] -> a real/fake logit (N,): two stride-2 convs, BatchNorm on the second,
    LeakyReLU (DCGAN's discriminator)."""

    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                           # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2),                                                                    # (N, 2c, 7, 7)
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

    def fake(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator).to(device or self._device())
        return torch.sigmoid(self.decoder(z))                              # (N, 1, 28, 28)

    def losses(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(L_D, L_G, discriminator accuracy) on real images x, without any step."""
        fake = self.fake(x.shape[0], generator, x.device)
        loss_d, acc = adversarial.d_loss(self.discriminator, x, fake)
        return loss_d, adversarial.g_loss(self.discriminator, fake), acc

    def loss(self, batch):
        x = batch[0]
        fake = self.fake(x.shape[0], device=x.device)
        loss_d, acc = adversarial.discriminator_step(self, self.discriminator, x, fake, self.config.d_lr,
                                                     self.adam_betas)          # 1) the discriminator's step
        loss_g = adversarial.g_loss(self.discriminator, fake)                  # 2) L_G against the updated D
        return loss_g, {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_acc": acc.item()}
