"""DCGAN (Radford et al. 2016) for small images (28x28 grey to 64x64 colour), with the non-saturating loss (Goodfellow et al. 2014).

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

from ..nets import conv_levels
from . import adversarial
from .base import LatentModel


@dataclass
class GANConfig:
    latent_dim: int = 64
    channels: int = 64          # generator and discriminator width
    ema_decay: float = 0.999    # the shipped generator is an exponential moving average
    d_lr: float = 2e-4          # the discriminator's own Adam (the loop's optimiser trains the generator)
    image_shape: tuple = (1, 28, 28)  # (C, H, W) of the dataset it was built for


class Generator(nn.Module):
    """z (N, D) -> logits (N, C, H, W): linear to the bottom (7x7 for 28x28), stride-2 transposed convs
    (BatchNorm, ReLU)."""

    def __init__(self, latent_dim: int, c: int, image_shape=(1, 28, 28)):
        super().__init__()
        self.c = c
        levels, self.h, self.w = conv_levels(image_shape)
        n = 2 * c * self.h * self.w
        extra = []
        for _ in range(levels - 2):
            extra += [nn.ConvTranspose2d(2 * c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c),
                      nn.ReLU()]
        self.fc = nn.Sequential(nn.Linear(latent_dim, n, bias=False), nn.BatchNorm1d(n), nn.ReLU())
        self.net = nn.Sequential(
            *extra,                                                                                          # (N, 2c, H/4, W/4)
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),  # (N, c, H/2, W/2)
            nn.ConvTranspose2d(c, int(image_shape[0]), 4, stride=2, padding=1),                            # (N, C, H, W)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, 2 * self.c, self.h, self.w))  # (N, 2c, h, w) -> logits


class Discriminator(nn.Module):
    """(N, C, H, W) in [0, 1] -> a real/fake logit (N,): stride-2 convs, BatchNorm after the first,
    LeakyReLU (DCGAN's discriminator)."""

    def __init__(self, c: int, image_shape=(1, 28, 28)):
        super().__init__()
        levels, h, w = conv_levels(image_shape)
        extra = []
        for _ in range(levels - 2):
            extra += [nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c),
                      nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(
            nn.Conv2d(int(image_shape[0]), c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),         # (N, c, H/2, W/2)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2),                                                                    # (N, 2c, H/4, W/4)
            *extra,                                                                               # (N, 2c, h, w)
            nn.Flatten(), nn.Linear(2 * c * h * w, 1),                                            # (N, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1).squeeze(1)


class GAN(LatentModel):
    Config = GANConfig
    has_encoder = False
    label = "GAN (DCGAN)"
    adam_betas = (0.5, 0.999)  # DCGAN's choice

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.decoder = Generator(config.latent_dim, config.channels, config.image_shape)
        self.discriminator = Discriminator(config.channels, config.image_shape)

    def encode(self, x):
        raise NotImplementedError("a GAN has no encoder: it only maps codes to images (decode, sample)")

    def fake(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator).to(device or self._device())
        return torch.sigmoid(self.decoder(z))                              # (N, C, H, W)

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
