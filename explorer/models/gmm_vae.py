"""VAE whose approximate posterior is a mixture of K Gaussians, after GAMIX-VAE (arXiv 2309.13160).

q(z|x) = sum_k pi_k(x) N(z; mu_k(x), diag sigma_k(x)^2), prior p(z) = N(0, I).

The mixture KL has no closed form. We estimate it, and the reconstruction term, by
stratified sampling: one reparameterized draw per component, weighted by pi_k
(Roeder et al. 2017; Morningstar et al. 2021, "SIWAE"), which is unbiased and keeps
gradients flowing to the weights pi:

    KL(q || p) = sum_k pi_k E_{z ~ N_k}[log q(z|x) - log p(z)]

The paper adds a regularizer against variance collapse (components shrinking to
points, which makes the mixture a set of deterministic codes). We penalise each
component's variance away from the prior's, lambda * sum_k pi_k * 1/2 sum_j
(sigma_kj^2 - 1 - log sigma_kj^2), which grows without bound as sigma -> 0.

With ``adv_weight > 0`` it is the whole GAMIX-VAE: the PatchGAN texture term of models/vae.py is added on
decodes of the posterior, one per image from a component drawn by pi(x) (the "gamix-vae-16" preset). The
paper's ResNetV2 blocks are not used: the encoder and decoder are the other VAEs' own, so the comparison
with vae-16, gmm-vae-16 and vae-16-patchgan isolates the mixture and the texture term.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..nets import ConvDecoder, ConvEncoder
from . import adversarial
from .base import LatentModel, bernoulli_log_lik, gaussian_log_prob


@dataclass
class GMMVAEConfig:
    latent_dim: int = 16
    components: int = 3
    channels: int = 16
    hidden: int = 256
    beta: float = 1.0
    var_reg: float = 0.1   # weight of the anti-collapse regularizer
    adv_weight: float = 0.0  # > 0: the PatchGAN term (times VQGAN's adaptive weight), as in models/vae.py
    adv_start: int = 0       # the epoch (from 0) at which the term and the discriminator start
    disc_channels: int = 32
    d_lr: float = 2e-4       # the discriminator's own Adam
    image_shape: tuple = (1, 28, 28)  # (C, H, W) of the dataset it was built for


def mixture_log_prob(z, log_pi, mu, logvar):
    """log q(z) for z (N, S, D) under mixtures (N, K[, D]) -> (N, S)."""
    comp = gaussian_log_prob(z.unsqueeze(2), mu.unsqueeze(1), logvar.unsqueeze(1))  # (N, S, K)
    return torch.logsumexp(comp + log_pi.unsqueeze(1), dim=-1)


def mixture_kl_stratified(log_pi, mu, logvar, samples: int = 1, generator=None):
    """Stratified Monte Carlo estimate of KL(q || N(0, I)) per row: (N,).

    log_pi (N, K); mu, logvar (N, K, D). Uses ``samples`` reparameterized draws per component.
    Returns also the draws z (N, K, samples, D) for reuse by the reconstruction term.
    """
    n, k, d = mu.shape
    eps = torch.randn(n, k, samples, d, generator=generator).to(mu)
    z = mu.unsqueeze(2) + (0.5 * logvar).exp().unsqueeze(2) * eps  # (N, K, S, D)
    flat = z.reshape(n, k * samples, d)                               # (N, K*S, D)
    log_q = mixture_log_prob(flat, log_pi, mu, logvar).view(n, k, samples)
    log_p = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))  # (N, K, S)
    kl = (log_pi.exp() * (log_q - log_p).mean(-1)).sum(-1)           # sum_k pi_k E_k[log q - log p]
    return kl, z


class GMMVAE(adversarial.TextureTerm, LatentModel):
    Config = GMMVAEConfig
    is_variational = True
    label = "Gaussian-mixture VAE"

    @classmethod
    def describe(cls, config: dict) -> str:
        return "GAMIX-VAE" if config.get("adv_weight", 0) > 0 else "Gaussian-mixture VAE"

    def __init__(self, config: GMMVAEConfig):
        super().__init__(config)
        d, k = config.latent_dim, config.components
        self.encoder = ConvEncoder(k * (2 * d + 1), config.channels, config.hidden, image_shape=config.image_shape)
        self.decoder = ConvDecoder(d, config.channels, config.hidden, image_shape=config.image_shape)
        self._init_texture()

    def posterior(self, x):
        """Mixture parameters: log_pi (N, K), mu (N, K, D), logvar (N, K, D)."""
        d, k = self.config.latent_dim, self.config.components
        h = self.encoder(x)
        logits, rest = h[:, :k], h[:, k:].view(-1, k, 2 * d)  # (N, K), (N, K, 2D)
        mu, logvar = rest.chunk(2, dim=-1)                     # (N, K, D) each
        return F.log_softmax(logits, -1), mu, logvar.clamp(-12.0, 8.0)

    def _encode_mean(self, x):
        log_pi, mu, _ = self.posterior(x)
        return (log_pi.exp().unsqueeze(-1) * mu).sum(1)  # E_q[z] = sum_k pi_k mu_k, (N, D)

    @torch.no_grad()
    def posterior_sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw z ~ q(z|x) per image: a component k ~ pi(x), then z ~ N(mu_k, sigma_k^2): (N, D)."""
        log_pi, mu, logvar = self.posterior(x.to(self._device()))
        n, _, d = mu.shape
        k = torch.multinomial(log_pi.exp().cpu(), 1, generator=generator).to(mu.device)   # (N, 1)
        idx = k.unsqueeze(-1).expand(n, 1, d)                                             # (N, 1, D)
        eps = torch.randn(n, d, generator=generator).to(mu)
        return mu.gather(1, idx)[:, 0] + (0.5 * logvar.gather(1, idx)[:, 0]).exp() * eps

    def loss(self, batch):
        x = batch[0]
        log_pi, mu, logvar = self.posterior(x)
        n, k, d = mu.shape
        kl, z = mixture_kl_stratified(log_pi, mu, logvar)           # z (N, K, 1, D)
        logits = self.decoder(z.reshape(n * k, d))                   # (N*K, 1, 28, 28)
        log_px = bernoulli_log_lik(logits, x.repeat_interleave(k, 0)).view(n, k)
        pi = log_pi.exp()
        rec = -(pi * log_px).sum(-1)                                 # -sum_k pi_k log p(x|z_k)
        # anti-collapse regularizer: sum_k pi_k * 1/2 sum_j (sigma^2 - 1 - log sigma^2)
        reg = (pi * 0.5 * (logvar.exp() - 1.0 - logvar).sum(-1)).sum(-1)
        loss = (rec + self.config.beta * kl + self.config.var_reg * reg).mean()
        decoded = torch.sigmoid(logits).view(n, k, *x.shape[1:])   # (N, K, 1, 28, 28)
        with torch.no_grad():
            recon = (pi.view(n, k, 1, 1, 1) * decoded).sum(1)
            mse = F.mse_loss(recon, x)
            sigma = (0.5 * logvar).exp().mean((0, 2))                # (K,) each component's mean sigma
            weight = pi.mean(0)                                        # (K,) its mean weight pi_k(x)
        logs = {"loss": loss.item(), "rec": rec.mean().item(), "kl": kl.mean().item(),
                "reg": reg.mean().item(), "mse": mse.item(),
                **{f"sigma_{j}": float(v) for j, v in enumerate(sigma)},  # per epoch in the card's history:
                **{f"pi_{j}": float(v) for j, v in enumerate(weight)}}   # is a component collapsing?
        if self.adv_on and self.training:
            # one decode per image, from the component pi(x) draws: what sampling the posterior gives
            pick = torch.multinomial(pi.detach(), 1).squeeze(1)                       # (N,)
            term, term_logs = self.texture_term(x, decoded[torch.arange(n, device=x.device), pick], rec.mean())
            loss = loss + term
            logs.update(loss=loss.item(), **term_logs)
        return loss, logs

    @torch.no_grad()
    def mixture_usage(self, x: torch.Tensor, batch: int = 1000) -> dict:
        """How the posterior's mixture is used on images ``x``: the mean entropy of pi(x) in nats (0: one
        component per image), each component's mean weight, how many have a mean weight above 5%, and each
        component's sigma (the mean of sigma_kj over images and dimensions; near 0 is a collapsed component)."""
        log_pi, logvar = [], []
        for i in range(0, len(x), batch):
            lp, _, lv = self.posterior(x[i:i + batch].to(self._device()))
            log_pi.append(lp.cpu())
            logvar.append(lv.cpu())
        log_pi, logvar = torch.cat(log_pi), torch.cat(logvar)     # (N, K), (N, K, D)
        pi = log_pi.exp()
        weight = pi.mean(0)                                       # (K,)
        return {"pi_entropy": round(float(-(pi * log_pi).sum(-1).mean()), 4),
                "components_used": int((weight > 0.05).sum()),
                "pi_mean": [round(float(w), 4) for w in weight],
                "sigma_per_component": [round(float(s), 4) for s in (0.5 * logvar).exp().mean((0, 2))]}

    def extra_metrics(self, x_test: torch.Tensor) -> dict:
        return self.mixture_usage(x_test)

    @torch.no_grad()
    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i|x) for k draws from the mixture posterior: (N, k)."""
        log_pi, mu, logvar = self.posterior(x)
        n, _, d = mu.shape
        comp = torch.multinomial(log_pi.exp(), k, replacement=True)                     # (N, k)
        idx = comp.unsqueeze(-1).expand(n, k, d)
        z = mu.gather(1, idx) + (0.5 * logvar.gather(1, idx)).exp() * torch.randn(n, k, d, device=mu.device)
        logits = self.decoder(z.reshape(n * k, d))
        log_px = bernoulli_log_lik(logits, x.repeat_interleave(k, 0)).view(n, k)
        log_pz = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        return log_px + log_pz - mixture_log_prob(z, log_pi, mu, logvar)
