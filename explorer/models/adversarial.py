"""What the DCGAN and the autoencoders' PatchGAN texture term share: the non-saturating losses (Goodfellow et al.
2014), a discriminator step with its own Adam taken inside the generic training loop, VQGAN's adaptive
weight (Esser et al. 2021, Eq. 7), and the PatchGAN discriminator (Isola et al. 2017); :class:`TextureTerm`
puts the term on the VAE and on the mixture VAE (GAMIX-VAE).

The training loop owns one optimiser and calls ``loss(batch)`` once per step. An adversarial model's
``loss`` therefore first takes the discriminator's step itself (:func:`discriminator_step`, L_D on real
images and detached fakes), then returns its own loss with the generator term computed through the
*updated* discriminator with its parameters detached (:func:`g_loss`), so the loop's step moves the
generator (or the autoencoder) only. One process only: the internal step is not synchronised across
DistributedDataParallel workers. The discriminator's optimiser state is not kept in ``resume.pt``, so a
resumed run restarts its moments.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def d_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor):
    """L_D = -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit), averaged over images (and patches),
    and the discriminator's accuracy."""
    d_real, d_fake = disc(real), disc(fake.detach())
    with torch.no_grad():
        acc = 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean())
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean(), acc


def g_loss(disc: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """L_G = -log D(G(z)) (non-saturating), through the discriminator with its parameters detached:
    its gradient reaches the generator only."""
    frozen = {k: p.detach() for k, p in disc.named_parameters()}
    return F.softplus(-torch.func.functional_call(disc, frozen, (fake,))).mean()


def discriminator_step(owner: nn.Module, disc: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                       lr: float, betas=(0.5, 0.999)):
    """One Adam step of ``disc`` on L_D (the optimiser lives on ``owner``, made on first use); its
    gradients are cleared afterwards, so the loop's optimiser never sees them. Returns (L_D, accuracy)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        raise RuntimeError("train adversarial models in one process: the discriminator step is not synchronised")
    if getattr(owner, "_d_opt", None) is None:
        owner._d_opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    loss, acc = d_loss(disc, real, fake)
    owner._d_opt.zero_grad(set_to_none=True)
    loss.backward()
    owner._d_opt.step()
    owner._d_opt.zero_grad(set_to_none=True)
    return loss, acc


def adaptive_weight(rec: torch.Tensor, adv: torch.Tensor, last: torch.Tensor, cap: float = 1e4) -> torch.Tensor:
    """VQGAN's balance lambda = ||grad_last rec|| / (||grad_last adv|| + 1e-4), detached and clipped to
    [0, cap]: the adversarial term's gradient at the decoder's last layer is scaled to the size of the
    reconstruction term's, so one weight works whatever the likelihood's units (nats per image here)."""
    g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, last, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, cap).detach()


class PatchDiscriminator(nn.Module):
    """(N, C, H, W) in [0, 1] -> real/fake logits per patch (N, H/4, W/4): two stride-2 convs and a 3x3
    head (pix2pix's PatchGAN scaled to 28x28). Each logit sees an 18x18 window, so the discriminator
    judges local texture and edges, not the whole garment; the loss averages over patches."""

    def __init__(self, c: int = 32, in_channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                           # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2),                                                                    # (N, 2c, 7, 7)
            nn.Conv2d(2 * c, 1, 3, padding=1),                                                    # (N, 1, 7, 7)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1).squeeze(1)

    @staticmethod
    def receptive_field() -> int:
        """Pixels on a side that one patch logit sees: 4, then 4 at stride 2, then 3 at stride 4."""
        return 4 + (4 - 1) * 2 + (3 - 1) * 4


class TextureTerm:
    """Mixin of an autoencoder with GAMIX-VAE's PatchGAN texture term (the VAE and the mixture VAE). Its config
    has ``adv_weight`` (0: no term and no discriminator), ``adv_start`` (the first epoch of the term),
    ``disc_channels`` and ``d_lr``; the decoder's last layer is ``decoder.net[-1]``."""

    def _init_texture(self) -> None:
        self.adv_on = False  # whether the term is on in this epoch (begin_epoch)
        if self.config.adv_weight > 0:
            self.discriminator = PatchDiscriminator(self.config.disc_channels,
                                                    int(getattr(self.config, "image_shape", (1,))[0]))

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        self.adv_on = self.config.adv_weight > 0 and epoch >= self.config.adv_start

    def texture_term(self, x: torch.Tensor, x_hat: torch.Tensor, rec: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """While the term is on and training: the discriminator's own step on (x, x_hat), then
        ``adv_weight * lambda * L_G`` to add to the loss (lambda VQGAN's adaptive weight against ``rec``, the mean
        reconstruction term), and its logs. Otherwise (0, {})."""
        if not (self.adv_on and self.training):
            return torch.zeros((), device=x.device), {}
        loss_d, acc = discriminator_step(self, self.discriminator, x, x_hat, self.config.d_lr)
        loss_g = g_loss(self.discriminator, x_hat)
        lam = adaptive_weight(rec, loss_g, self.decoder.net[-1].weight)
        return self.config.adv_weight * lam * loss_g, dict(loss_d=loss_d.item(), loss_g=loss_g.item(),
                                                          d_acc=acc.item(), lam=lam.item())
