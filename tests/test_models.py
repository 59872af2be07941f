import math

import pytest
import torch

from explorer import models
from explorer.models.base import gaussian_kl, gaussian_log_prob
from explorer.models.gmm_vae import mixture_kl_stratified

SMALL = {"channels": 8, "hidden": 32}


@pytest.mark.parametrize("family,config", [
    ("ae", {"latent_dim": 3}), ("vae", {"latent_dim": 2}), ("gmm-vae", {"latent_dim": 4, "components": 3})])
def test_encode_decode_sample_shapes(family, config):
    torch.manual_seed(0)
    m = models.build(family, {**config, **SMALL}).eval()
    x = torch.rand(5, 1, 28, 28)
    z = m.encode(x)
    assert z.shape == (5, config["latent_dim"])
    out = m.decode(z)
    assert out.shape == (5, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(m.sample(4, generator=g1), m.sample(4, generator=g2))
    loss, logs = m((x, torch.zeros(5, dtype=torch.long)))
    assert torch.isfinite(loss) and "mse" in logs
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())


def test_config_dataclass_rebuilds_model():
    m = models.build("gmm-vae", {"latent_dim": 5, "components": 2, **SMALL})
    again = models.build("gmm-vae", m.config_dict())
    assert again.config == m.config
    with pytest.raises(ValueError, match="unknown model family"):
        models.build("flow", {})


def test_gaussian_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4) * 0.5
    n = 200_000
    z = mu + (0.5 * logvar).exp() * torch.randn(n, 3, 4)
    zero = torch.zeros_like(z)
    samples = gaussian_log_prob(z, mu, logvar) - gaussian_log_prob(z, zero, zero)  # (n, 3)
    mc, se = samples.mean(0), samples.std(0) / math.sqrt(n)
    assert ((mc - gaussian_kl(mu, logvar)).abs() < 4 * se).all()


def test_mixture_kl_with_one_component_matches_closed_form():
    torch.manual_seed(1)
    mu, logvar = torch.randn(6, 1, 5), torch.randn(6, 1, 5) * 0.3
    log_pi = torch.zeros(6, 1)
    # 50 independent estimates of 400 draws each: their mean and its standard error
    est = torch.stack([mixture_kl_stratified(log_pi, mu, logvar, samples=400)[0] for _ in range(50)])
    mc, se = est.mean(0), est.std(0) / math.sqrt(50)
    closed = gaussian_kl(mu[:, 0], logvar[:, 0])
    assert ((mc - closed).abs() < 4 * se).all()


def test_mixture_of_identical_components_is_that_gaussian():
    torch.manual_seed(2)
    mu, logvar = torch.randn(4, 1, 3), torch.randn(4, 1, 3) * 0.3
    k = 3
    log_pi = torch.log(torch.tensor([0.2, 0.5, 0.3])).expand(4, k)
    kl, _ = mixture_kl_stratified(log_pi, mu.expand(4, k, 3), logvar.expand(4, k, 3), samples=20_000)
    torch.testing.assert_close(kl, gaussian_kl(mu[:, 0], logvar[:, 0]), atol=0.05, rtol=0.02)


def test_gmm_regularizer_punishes_variance_collapse():
    m = models.build("gmm-vae", {"latent_dim": 2, "components": 2, **SMALL, "var_reg": 1.0})
    x = torch.rand(8, 1, 28, 28)
    regs = []
    for shift in (0.0, -4.0, -8.0):  # push every log-variance down
        bias = m.encoder.net[-1].bias
        with torch.no_grad():
            b = torch.zeros_like(bias)
            k, d = 2, 2
            b[k:].view(k, 2 * d)[:, d:] = shift
            bias.copy_(b)
        regs.append(m((x, None))[1]["reg"])
    assert regs[0] < regs[1] < regs[2]


@pytest.mark.parametrize("family", ["vae", "gmm-vae"])
def test_importance_weighted_bound_is_tighter_than_elbo(family):
    from explorer import metrics

    torch.manual_seed(0)
    m = models.build(family, {"latent_dim": 2, **SMALL}).eval()
    res = metrics.elbo_and_iwae(m, torch.rand(20, 1, 28, 28).round(), k=64)
    assert res["iw_nll"] <= -res["elbo"] + 1e-6
    assert res["iw_samples"] == 64 and res["iw_images"] == 20


def test_ae_prior_fits_its_codes():
    m = models.build("ae", {"latent_dim": 3, **SMALL})
    codes = torch.randn(20_000, 3) @ torch.tensor([[2.0, 0, 0], [0.5, 1.0, 0], [0, 0, 0.1]]) + 3.0
    m.fit_prior(codes)
    z = m.sample_latent(20_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), codes.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.cov(codes.T), atol=0.1, rtol=0.05)


def test_classifier_features_and_probabilities():
    c = models.build("classifier", {"channels": 8, "features": 16}).eval()
    x = torch.rand(3, 1, 28, 28)
    assert c.features(x).shape == (3, 16)
    torch.testing.assert_close(c.predict_proba(x).sum(-1), torch.ones(3))
