"""The VAE's PatchGAN texture term (models/vae.py with adv_weight > 0) and the adversarial pieces it shares
with the DCGAN (models/adversarial.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import changed, params_of, rand_images
from explorer import checkpoints, models, training
from explorer.models import adversarial

SMALL = {"latent_dim": 4, "channels": 8, "hidden": 32, "disc_channels": 8}


def test_patch_discriminator_gives_a_7x7_grid_whose_logits_each_see_an_18x18_window():
    d = adversarial.PatchDiscriminator(8).eval()
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    out = d(x)
    assert out.shape == (1, 7, 7)
    out[0, 3, 3].backward()                                  # the centre patch: its window is not clipped
    rows, cols = np.nonzero(x.grad[0, 0].abs().numpy() > 0)
    assert rows.max() - rows.min() + 1 == d.receptive_field() == 18
    assert cols.max() - cols.min() + 1 == 18
    x.grad = None
    d(x)[0, 0, 0].backward()                                 # a corner patch sees only its corner
    assert x.grad[0, 0, 16:, :].abs().sum() == 0 and x.grad[0, 0, :, 16:].abs().sum() == 0


def test_adaptive_weight_is_the_ratio_of_the_two_gradient_norms_at_the_last_layer():
    w = torch.randn(5, 3, requires_grad=True)
    f = (w ** 2).sum()
    assert adaptive_close(adversarial.adaptive_weight(6.0 * f, 2.0 * f, w), 3.0)
    assert adaptive_close(adversarial.adaptive_weight(f, 0.5 * f, w), 2.0)
    g = w.sum()                                              # gradient of ones: norm sqrt(15)
    expected = (2 * w).norm() / (torch.ones(5, 3).norm() + 1e-4)
    assert adaptive_close(adversarial.adaptive_weight(f, g, w), expected.item())
    assert not adversarial.adaptive_weight(f, g, w).requires_grad
    assert adversarial.adaptive_weight(1e9 * f, 1e-9 * f, w).item() == 1e4    # clipped


def adaptive_close(value, expected):
    return abs(value.item() - expected) < 1e-3 * max(1.0, abs(expected))


def test_plain_vae_has_no_discriminator_and_loads_configs_from_before_the_term():
    m = models.build("vae", {"latent_dim": 4, "channels": 8, "hidden": 32})
    assert not hasattr(m, "discriminator")
    assert not any(k.startswith("discriminator") for k in m.state_dict())
    m.begin_epoch(5, 10)
    _, logs = m.train().loss((rand_images(16), None))
    assert "loss_d" not in logs


def test_patchgan_term_starts_at_adv_start_and_trains_each_player_on_its_own_loss():
    m = models.build("vae", {**SMALL, "adv_weight": 0.5, "adv_start": 1}).train()
    x = rand_images(16)
    m.begin_epoch(0, 3)                                       # before adv_start: a plain VAE step
    d_before = params_of(m.discriminator)
    _, logs = m((x, None))
    assert "loss_d" not in logs and not changed(d_before, m.discriminator)

    m.begin_epoch(1, 3)
    enc, dec = params_of(m.encoder), params_of(m.decoder)
    loss, logs = m((x, None))
    assert {"loss_d", "loss_g", "d_acc", "lam"} <= set(logs) and logs["lam"] > 0
    assert changed(d_before, m.discriminator)                # the discriminator took its own step
    assert not changed(enc, m.encoder) and not changed(dec, m.decoder)
    loss.backward()
    assert all(p.grad is None for p in m.discriminator.parameters())   # L_G reaches the VAE only
    assert all(p.grad is not None for p in m.decoder.parameters())

    m.eval()                                                 # evaluation never steps the discriminator
    d_eval = params_of(m.discriminator)
    _, logs = m.loss((x, None))
    assert "loss_d" not in logs and not changed(d_eval, m.discriminator)


def test_the_term_changes_the_vae_update_and_plain_loss_stays_the_elbo():
    """Same weights, same data, same noise: with the term the loss has one more summand and the decoder's
    gradient differs; without it the loss is the negative ELBO (rec + beta KL)."""
    x = rand_images(16)
    plain = models.build("vae", {**SMALL}).train()
    patch = models.build("vae", {**SMALL, "adv_weight": 0.5}).train()
    patch.load_state_dict({**patch.state_dict(), **plain.state_dict()})
    patch.begin_epoch(0, 1)
    torch.manual_seed(0)
    loss_p, logs_p = plain.loss((x, None))
    torch.manual_seed(0)
    loss_a, logs_a = patch.loss((x, None))
    assert abs(loss_p.item() - (logs_p["rec"] + logs_p["kl"])) < 1e-3 * loss_p.item()
    assert logs_a["rec"] == pytest.approx(logs_p["rec"]) and logs_a["kl"] == pytest.approx(logs_p["kl"])
    extra = 0.5 * logs_a["lam"] * logs_a["loss_g"]
    assert loss_a.item() == pytest.approx(loss_p.item() + extra, rel=1e-4)
    g_p = torch.autograd.grad(loss_p, plain.decoder.net[-1].weight)[0]
    g_a = torch.autograd.grad(loss_a, patch.decoder.net[-1].weight)[0]
    assert not torch.allclose(g_p, g_a)


@pytest.mark.slow
def test_patchgan_vae_trains_saves_and_reloads_with_its_discriminator(tmp_path):
    out = training.train("vae-16-patchgan", "digits", epochs=2, out=tmp_path, limit=512, progress=False,
                         config={**SMALL, "adv_start": 1}, evaluate=False, batch_size=64)
    info = json.loads((out / checkpoints.CONFIG).read_text())
    hist = info["training"]["history"]
    assert info["family"] == "vae" and info["config"]["adv_weight"] == 0.5
    assert "loss_d" not in hist[0] and {"loss_d", "loss_g", "lam"} <= set(hist[1])
    assert all(np.isfinite(v) for v in hist[1].values())
    back = checkpoints.load_dir(out, device="cpu")
    assert hasattr(back, "discriminator") and not back.training
    x = rand_images(4)
    assert back.reconstruct(x).shape == (4, 1, 28, 28)
    g = torch.Generator().manual_seed(3)
    assert back.sample(3, generator=g).shape == (3, 1, 28, 28)


def test_sharpness_is_zero_on_ramps_falls_under_blur_and_is_relative_to_real():
    from torch.nn import functional as F

    from explorer import metrics

    ramp = torch.linspace(0, 1, 28).view(1, 1, 1, 28).expand(3, 1, 28, 28)
    assert metrics.sharpness(torch.full((2, 1, 28, 28), 0.7)) == 0.0
    assert metrics.sharpness(ramp) < 1e-12                      # the Laplacian of a linear ramp is zero
    x = (rand_images(8) > 0.5).float()
    blurred, blurrier = F.avg_pool2d(x, 3, 1, 1), F.avg_pool2d(F.avg_pool2d(x, 3, 1, 1), 3, 1, 1)
    s = [metrics.sharpness(v) for v in (x, blurred, blurrier)]
    assert s[0] > s[1] > s[2] > 0
    assert metrics.relative_sharpness(x, x) == 1.0
    assert metrics.relative_sharpness(blurred, x) == pytest.approx(s[1] / s[0])


def test_zoo_table_names_the_patchgan_vae_apart_from_the_plain_one():
    from explorer import zoo_table

    assert zoo_table.describe({"family": "vae", "config": {"latent_dim": 16, "adv_weight": 0.5}})[0] == \
        "VAE + PatchGAN (16-D)"
    assert zoo_table.describe({"family": "vae", "config": {"latent_dim": 16}})[0] == "VAE (16-D)"
    assert zoo_table.describe({"family": "vae", "config": {"latent_dim": 16, "adv_weight": 0.0}})[0] == "VAE (16-D)"


def test_shipped_zoo_table_marks_the_discriminator_in_the_patchgan_vaes_parameters():
    from explorer import zoo_table
    from explorer.checkpoints import Zoo

    rows = {r["name"]: r for r in zoo_table.table(Zoo(), "fashion-mnist")}
    pg, plain = rows["fashion-mnist/vae-16-patchgan"], rows["fashion-mnist/vae-16"]
    assert pg["label"] == "VAE + PatchGAN (16-D)" and "discriminator" in pg["param_note"]
    assert plain.get("param_note") is None
    assert pg["parameters"] > plain["parameters"]                 # the same VAE plus the discriminator
    assert pg["sample_sharpness"] is not None and plain["sample_sharpness"] is not None
    text = zoo_table.markdown(list(rows.values()), "fashion-mnist")
    assert "‡ vae-16-patchgan: its parameters include the PatchGAN discriminator" in text
