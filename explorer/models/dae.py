"""Decoupled Autoencoder (Hu et al. 2023, "Complexity Matters: Rethinking the Latent Space for
Generative Modeling", arXiv 2307.08283), and its jointly trained baseline.

``mode="decoupled"`` trains in two stages. Stage 1: the encoder learns through a deliberately weak
auxiliary decoder (few channels, dropout on its features), so the code has to carry the coarse,
easily decoded structure of the image and stays simple. Stage 2: the encoder is frozen and the real
decoder learns to reconstruct from those codes. ``mode="joint"`` is the baseline: the same encoder
and real decoder trained together for the whole budget.

After training, a Gaussian mixture is fitted to the standardised training codes (``fit_prior``): it
is the quick latent generator behind ``sample``, and its held-out log-likelihood measures how simple
the latent distribution is. Latent diffusion over the same codes is the other generator
(``ldm-dae-16`` presets).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..nets import ConvDecoder, ConvEncoder
from .base import LatentModel, reconstruction_loss

MODES = ("decoupled", "joint")


@dataclass
class DAEConfig:
    latent_dim: int = 16
    channels: int = 16          # encoder and real decoder width (as ae-16)
    hidden: int = 256
    mode: str = "decoupled"     # "decoupled" (two stages) or "joint" (the baseline)
    stage1_fraction: float = 0.5  # share of the epochs spent in stage 1
    aux_channels: int = 4       # the weak decoder of stage 1: fewer channels ...
    aux_hidden: int = 64        # ... a narrower MLP ...
    aux_dropout: float = 0.25   # ... and dropout on its features
    prior_components: int = 10  # Gaussian mixture fitted to the codes after training
    image_shape: tuple = (1, 28, 28)  # (C, H, W) of the dataset it was built for


class DAE(LatentModel):
    label = "Decoupled autoencoder"
    Config = DAEConfig
    staged = True      # stage 1 (weak decoder), stage 2 (the real decoder on frozen codes)
    fits_prior = True  # samples from a Gaussian mixture fitted to its standardised training codes

    def __init__(self, config: DAEConfig):
        if config.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {config.mode!r}")
        if not 0.0 < config.stage1_fraction < 1.0:
            raise ValueError(f"stage1_fraction must be strictly between 0 and 1, not {config.stage1_fraction}")
        super().__init__(config)
        d, k = config.latent_dim, config.prior_components
        self.encoder = ConvEncoder(d, config.channels, config.hidden, image_shape=config.image_shape)
        self.decoder = ConvDecoder(d, config.channels, config.hidden, image_shape=config.image_shape)
        if config.mode == "decoupled":
            self.aux_decoder = ConvDecoder(d, config.aux_channels, config.aux_hidden, dropout=config.aux_dropout,
                                           image_shape=config.image_shape)
        self.stage = 1 if config.mode == "decoupled" else 0  # 0: joint training
        # Gaussian mixture over standardised codes, fitted after training (fit_prior)
        self.register_buffer("code_mean", torch.zeros(d))
        self.register_buffer("code_std", torch.ones(d))
        self.register_buffer("prior_weights", torch.full((k,), 1.0 / k))
        self.register_buffer("prior_means", torch.zeros(k, d))
        self.register_buffer("prior_chol", torch.eye(d).repeat(k, 1, 1))  # (K, D, D) Cholesky factors

    # ---- the two stages ----
    def stage_bounds(self, epochs: int) -> list[int]:
        """Epoch boundaries of the stages: [0, s1, epochs] (decoupled) or [0, epochs] (joint).
        The training loop restarts its cosine learning-rate decay at each boundary."""
        if self.config.mode == "joint" or epochs < 2:
            return [0, epochs]
        s1 = min(max(1, round(epochs * self.config.stage1_fraction)), epochs - 1)
        return [0, s1, epochs]

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the training loop before each epoch: enter the stage this epoch belongs to."""
        if self.config.mode == "decoupled":
            self.set_stage(1 if epoch < self.stage_bounds(epochs)[1] else 2)

    def set_stage(self, stage: int) -> None:
        """Stage 1: encoder + weak decoder learn, the real decoder is idle. Stage 2: the encoder (and the
        weak decoder) are frozen, gradients off; only the real decoder learns."""
        if self.config.mode != "decoupled" or stage not in (1, 2):
            raise ValueError("only a decoupled model has stages 1 and 2")
        self.stage = stage
        self.encoder.requires_grad_(stage == 1)
        self.aux_decoder.requires_grad_(stage == 1)
        self.decoder.requires_grad_(stage == 2)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage == 2:  # a frozen encoder stays in eval mode
            self.encoder.eval()
            self.aux_decoder.eval()
        return self

    def _encode_mean(self, x):
        return self.encoder(x)

    def loss(self, batch):
        x = batch[0]
        if self.stage == 2:
            with torch.no_grad():
                z = self.encoder(x)        # frozen codes
            logits = self.decoder(z)
        elif self.stage == 1:
            logits = self.aux_decoder(self.encoder(x))
        else:
            logits = self.decoder(self.encoder(x))
        return reconstruction_loss(logits, x)

    @torch.no_grad()
    def reconstruct_aux(self, x: torch.Tensor) -> torch.Tensor:
        """What the weak stage-1 decoder makes of the codes (decoupled models only)."""
        if self.config.mode != "decoupled":
            raise ValueError("a jointly trained model has no stage-1 decoder")
        return torch.sigmoid(self.aux_decoder(self.encode(x)))

    # ---- the Gaussian-mixture latent generator ----
    @torch.no_grad()
    def fit_prior(self, codes: torch.Tensor, random_state: int = 0) -> None:
        """Fit a full-covariance Gaussian mixture to the standardised codes (N, D) (scikit-learn EM)."""
        from sklearn.mixture import GaussianMixture

        mean, std = codes.mean(0), codes.std(0).clamp_min(1e-6)
        u = ((codes - mean) / std).double().cpu().numpy()  # (N, D)
        gmm = GaussianMixture(self.config.prior_components, covariance_type="full", reg_covar=1e-4,
                              max_iter=200, random_state=random_state).fit(u)
        self.code_mean.copy_(mean)
        self.code_std.copy_(std)
        self.prior_weights.copy_(torch.from_numpy(gmm.weights_).float())
        self.prior_means.copy_(torch.from_numpy(gmm.means_).float())
        self.prior_chol.copy_(torch.linalg.cholesky(torch.from_numpy(gmm.covariances_)).float())

    def _mixture(self):
        from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

        comp = MultivariateNormal(self.prior_means, scale_tril=self.prior_chol)
        return MixtureSameFamily(Categorical(probs=self.prior_weights), comp)

    @torch.no_grad()
    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of codes z (N, D) under the fitted mixture, in standardised units, per code (N,)."""
        u = (z.to(self.code_mean.device) - self.code_mean) / self.code_std
        return self._mixture().log_prob(u)

    @torch.no_grad()
    def prior_loglik_per_dim(self, x: torch.Tensor, batch: int = 1000) -> float:
        """Held-out mean log-likelihood per latent dimension of the codes of images ``x`` (nats), in
        standardised units so models with differently scaled codes compare. N(0, I) scores
        -0.5 * log(2 pi e) = -1.419; higher means the codes are more concentrated, i.e. simpler to model."""
        lp = torch.cat([self.prior_log_prob(self.encode(x[i:i + batch])).cpu() for i in range(0, len(x), batch)])
        return float(lp.mean()) / self.latent_dim

    @torch.no_grad()
    def sample_latent(self, n, generator=None, temperature=1.0):
        """n codes from the fitted mixture; ``temperature`` scales each component's spread."""
        k = torch.multinomial(self.prior_weights.cpu(), n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.latent_dim, generator=generator)                                 # (n, D)
        u = self.prior_means.cpu()[k] + temperature * torch.einsum("nij,nj->ni", self.prior_chol.cpu()[k], eps)
        return (u * self.code_std.cpu() + self.code_mean.cpu()).to(self._device())  # (n, D)

    def extra_metrics(self, x: torch.Tensor) -> dict:
        """Metrics only this family has, on test images ``x``."""
        out = {"prior_loglik_per_dim": self.prior_loglik_per_dim(x)}
        if self.config.mode == "decoupled":
            with torch.no_grad():
                rec = torch.cat([self.reconstruct_aux(x[i:i + 1000]).cpu() for i in range(0, len(x), 1000)])
            out["stage1_test_mse"] = float(F.mse_loss(rec, x.cpu()))
        return out

