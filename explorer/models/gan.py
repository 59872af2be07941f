"""DCGAN (Radford et al. 2016) for 28x28 images, with the non-saturating loss (Goodfellow et al. 2014).

The generator is the model's ``decoder``: ``decode(z)`` maps prior codes z ~ N(0, I) to images, so a
GAN answers ``sample`` and ``decode`` like every latent model. It has no encoder.

Training alternates the two players as DCGAN does, inside the generic loop: ``loss(batch)`` first takes
the discriminator's step with its own Adam optimiser (L_D on real images and detached fakes), then
returns the generator's loss L_G, computed through the updated discriminator with its parameters
detached, so the loop's optimiser step moves the generator only. One process only (the internal
step is not synchronised across DistributedDataParallel workers); the discriminator's optimiser
state is not kept in ``resume.pt``, so a resumed run restarts its moments.
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

    def d_loss(self, x: torch.Tensor, fake: torch.Tensor):
        """L_D = -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit), and the discriminator's accuracy."""
        d_real, d_fake = self.discriminator(x), self.discriminator(fake.detach())
        with torch.no_grad():
            acc = 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean())
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean(), acc

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """L_G = -log D(G(z)) (non-saturating), through the discriminator with its parameters detached:
        its gradient reaches the generator only."""
        frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
        return F.softplus(-torch.func.functional_call(self.discriminator, frozen, (fake,))).mean()

    def fake(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator).to(device or self._device())
        return torch.sigmoid(self.decoder(z))                              # (N, 1, 28, 28)

    def losses(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(L_D, L_G, discriminator accuracy) on real images x, without any step."""
        fake = self.fake(x.shape[0], generator, x.device)
        loss_d, acc = self.d_loss(x, fake)
        return loss_d, self.g_loss(fake), acc

    def discriminator_step(self, x: torch.Tensor, fake: torch.Tensor):
        """One Adam step of the discriminator on L_D; its gradients are cleared afterwards."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            raise RuntimeError("train the GAN in one process: its discriminator step is not synchronised")
        if getattr(self, "_d_opt", None) is None:
            self._d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=self.config.d_lr,
                                           betas=self.adam_betas)
        loss_d, acc = self.d_loss(x, fake)
        self._d_opt.zero_grad(set_to_none=True)
        loss_d.backward()
        self._d_opt.step()
        self._d_opt.zero_grad(set_to_none=True)
        return loss_d, acc

    def loss(self, batch):
        x = batch[0]
        fake = self.fake(x.shape[0], device=x.device)
        loss_d, acc = self.discriminator_step(x, fake)   # 1) the discriminator's step
        loss_g = self.g_loss(fake)                        # 2) the generator's loss, against the updated D
        return loss_g, {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_acc": acc.item()}
