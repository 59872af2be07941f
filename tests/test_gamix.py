"""The whole GAMIX-VAE (models/gmm_vae.py with adv_weight > 0): mixture posterior, anti-collapse regulariser,
PatchGAN term; and what the regulariser does to the components' spread."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import changed, params_of, rand_images
from explorer import checkpoints, models, training

SMALL = {"latent_dim": 4, "components": 3, "channels": 8, "hidden": 32, "disc_channels": 8}


def test_the_mixture_vae_gains_the_patchgan_term_from_adv_start():
    m = models.build("gmm-vae", {**SMALL, "adv_weight": 0.5, "adv_start": 1}).train()
    x = rand_images(16)
    m.begin_epoch(0, 3)
    d_before = params_of(m.discriminator)
    _, logs = m((x, None))
    assert "loss_d" not in logs and {"rec", "kl", "reg"} <= set(logs) and not changed(d_before, m.discriminator)
    m.begin_epoch(1, 3)
    loss, logs = m((x, None))
    assert {"loss_d", "loss_g", "d_acc", "lam"} <= set(logs) and logs["lam"] > 0
    assert changed(d_before, m.discriminator)                           # the discriminator's own step
    loss.backward()
    assert all(p.grad is None for p in m.discriminator.parameters())    # L_G reaches the VAE only
    assert m.encoder.net[0].weight.grad is not None                     # through the chosen components' codes
    # plain gmm-vae configs (shipped before the term) build without a discriminator
    assert not hasattr(models.build("gmm-vae", {k: v for k, v in SMALL.items() if k != "disc_channels"}),
                       "discriminator")


@pytest.mark.slow
def test_gamix_preset_trains_saves_and_reloads(tmp_path):
    out = training.train("gamix-vae-16", "digits", epochs=2, out=tmp_path, limit=256, progress=False,
                         config={**SMALL, "adv_start": 1}, evaluate=False, batch_size=64)
    info = json.loads((out / checkpoints.CONFIG).read_text())
    assert info["family"] == "gmm-vae" and info["config"]["adv_weight"] == 0.5 and info["config"]["var_reg"] > 0
    hist = info["training"]["history"]
    assert "loss_d" not in hist[0] and {"loss_d", "loss_g", "reg"} <= set(hist[1])
    assert all(np.isfinite(v) for v in hist[1].values())
    back = checkpoints.load_dir(out, device="cpu")
    assert hasattr(back, "discriminator") and back.reconstruct(rand_images(3)).shape == (3, 1, 28, 28)


def _mean_sigma(var_reg: float) -> float:
    """Train a tiny mixture VAE for 150 steps on the same data and noise; its posterior sigma on that data."""
    torch.manual_seed(0)
    m = models.build("gmm-vae", {**SMALL, "var_reg": var_reg, "beta": 0.1}).train()
    x = rand_images(64, seed=3).round()          # binary images: a low-noise target that rewards tiny sigma
    opt = m.configure_optimizers(3e-3)
    for _ in range(150):
        loss, _ = m((x, None))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, _, logvar = m.posterior(x)
    return float((0.5 * logvar).exp().mean())


@pytest.mark.slow
def test_the_regulariser_keeps_the_components_from_collapsing():
    """With a weak KL (beta 0.1) the components shrink towards points; the regulariser holds their sigma up."""
    free, held = _mean_sigma(0.0), _mean_sigma(5.0)
    assert held > 2 * free, (free, held)


def test_the_zoo_names_gamix_apart_from_the_plain_mixture_vae():
    from explorer import zoo_table

    gamix = zoo_table.describe({"family": "gmm-vae", "config": {"latent_dim": 16, "components": 3, "adv_weight": 0.5}})
    plain = zoo_table.describe({"family": "gmm-vae", "config": {"latent_dim": 16, "components": 3}})
    assert gamix[0] == "GAMIX-VAE (16-D, 3 components + PatchGAN)" and plain[0] == "GMM-VAE (16-D, 3 components)"
