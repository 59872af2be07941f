"""The Decoupled Autoencoder's two stages, its Gaussian-mixture generator, the multi-seed study, and the GAN."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import changed, params_of, rand_images, tiny_dae_study
from explorer import checkpoints, dae_study, models, studies, training

SMALL = {"channels": 8, "hidden": 64, "aux_channels": 2, "aux_hidden": 16}


def _step(model, x):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    loss, _ = model((x, None))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def test_stage1_trains_encoder_and_weak_decoder_stage2_only_the_real_decoder():
    m = models.build("dae", {**SMALL, "mode": "decoupled"})
    x = rand_images()
    m.set_stage(1)
    enc, dec, aux = params_of(m.encoder), params_of(m.decoder), params_of(m.aux_decoder)
    _step(m, x)
    assert changed(enc, m.encoder) == set(enc)        # every encoder tensor moved
    assert changed(aux, m.aux_decoder) == set(aux)
    assert not changed(dec, m.decoder)                # the real decoder is idle in stage 1

    m.set_stage(2)
    assert not any(p.requires_grad for p in m.encoder.parameters())
    assert not any(p.requires_grad for p in m.aux_decoder.parameters())
    assert all(p.requires_grad for p in m.decoder.parameters())
    assert not m.encoder.training                      # frozen encoder stays in eval mode under model.train()
    enc, dec = params_of(m.encoder), params_of(m.decoder)
    _step(m, x)
    assert not changed(enc, m.encoder)
    assert changed(dec, m.decoder) == set(dec)
    assert all(p.grad is None for p in m.encoder.parameters())


def test_joint_baseline_trains_encoder_and_decoder_together_and_has_no_weak_decoder():
    m = models.build("dae", {**SMALL, "mode": "joint"})
    assert not hasattr(m, "aux_decoder")
    assert m.stage_bounds(10) == [0, 10]
    enc, dec = params_of(m.encoder), params_of(m.decoder)
    _step(m, rand_images())
    assert changed(enc, m.encoder) == set(enc) and changed(dec, m.decoder) == set(dec)
    with pytest.raises(ValueError, match="stages"):
        m.set_stage(2)
    with pytest.raises(ValueError, match="no stage-1 decoder"):
        m.reconstruct_aux(rand_images(2))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="mode"):
        models.build("dae", {"mode": "both"})
    with pytest.raises(ValueError, match="stage1_fraction"):
        models.build("dae", {"stage1_fraction": 1.0})


def test_stage_boundaries_and_learning_rate_restart():
    m = models.build("dae", {**SMALL, "stage1_fraction": 0.3})
    assert m.stage_bounds(10) == [0, 3, 10]
    assert m.stage_bounds(2) == [0, 1, 2]            # each stage gets at least one epoch
    f = training.stage_cosine([0, 3, 10])
    lrs = [f(e) for e in range(10)]
    assert lrs[0] == pytest.approx(1.0) and lrs[3] == pytest.approx(1.0)   # restarts at the boundary
    assert lrs[0] > lrs[1] > lrs[2] and lrs[3] > lrs[4] > lrs[9] >= 0.05
    assert training.stage_cosine([0, 10])(5) == pytest.approx(0.05 + 0.95 * 0.5)


@pytest.mark.slow
def test_training_loop_freezes_the_encoder_in_stage2_and_both_arms_get_the_same_budget(tmp_path):
    cfg = {k: v for k, v in SMALL.items()}
    training.train("dae-16", "digits", epochs=4, out=tmp_path, limit=256, progress=False, config=cfg,
                   evaluate=False, stop_after=2)                    # the end of stage 1
    after_stage1 = torch.load(tmp_path / "digits" / "dae-16" / "resume.pt", weights_only=True)["model"]
    out = training.train("dae-16", "digits", epochs=4, out=tmp_path, limit=256, progress=False, config=cfg,
                         evaluate=False, resume=True)
    final = checkpoints.load_dir(out, device="cpu")
    shipped = checkpoints.ship_dtype("dae")  # weights are saved in the shipping dtype (float16)
    for k, v in final.encoder.state_dict().items():
        # stage 2 never touched the encoder: the saved encoder is stage 1's, rounded to that dtype
        assert torch.equal(v, after_stage1[f"encoder.{k}"].to(shipped).to(v.dtype)), k
    assert not torch.equal(final.decoder.state_dict()["fc.0.weight"], after_stage1["decoder.fc.0.weight"])
    joint = training.train("dae-16-joint", "digits", epochs=4, out=tmp_path, limit=256, progress=False,
                           config=cfg, evaluate=False)
    h_dae = json.loads((out / checkpoints.CONFIG).read_text())["training"]
    h_joint = json.loads((joint / checkpoints.CONFIG).read_text())["training"]
    assert [e["stage"] for e in h_dae["history"]] == [1, 1, 2, 2]
    assert [e["stage"] for e in h_joint["history"]] == [0, 0, 0, 0]
    for key in ("epochs", "batch_size", "train_images"):            # the same budget and data
        assert h_dae[key] == h_joint[key]
    assert training.PRESETS["dae-16"][2:] == training.PRESETS["dae-16-joint"][2:]  # same epochs and lr shipped


def test_mixture_prior_matches_scikit_learn_and_samples_its_moments():
    from sklearn.mixture import GaussianMixture

    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(600, 3, generator=g) * 0.5 + 4, torch.randn(400, 3, generator=g) - 2])  # (1000, 3)
    codes[:, 2] *= 10                                                                           # an unscaled dim
    m = models.build("dae", {**SMALL, "latent_dim": 3, "prior_components": 2})
    m.fit_prior(codes)
    u = ((codes - codes.mean(0)) / codes.std(0)).double().numpy()
    ref = GaussianMixture(2, covariance_type="full", reg_covar=1e-4, random_state=0).fit(u)
    # density of codes = density of standardised codes (what prior_log_prob reports, by its docstring)
    np.testing.assert_allclose(m.prior_log_prob(codes[:50]).numpy(), ref.score_samples(u[:50]), rtol=1e-4, atol=1e-4)
    z = m.sample_latent(20000, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(z.mean(0).numpy(), codes.mean(0).numpy(), atol=0.06 * codes.std(0).numpy().max())
    frac_high = (z[:, 0] > 1).float().mean().item()
    assert frac_high == pytest.approx(0.6, abs=0.02)             # the mixture weights, not a single Gaussian
    same = m.sample_latent(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(same, m.sample_latent(5, generator=torch.Generator().manual_seed(3)))


def test_prior_loglik_per_dim_of_gaussian_codes_is_the_gaussian_entropy():
    class Identity(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :4]

    m = models.build("dae", {**SMALL, "latent_dim": 4, "prior_components": 1})
    m.encoder = Identity()
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(20000, 1, 28, 28, generator=g), torch.randn(5000, 1, 28, 28, generator=g)
    m.fit_prior(m.encode(train))
    # held-out log-likelihood per dimension of N(0, I) data under a fitted Gaussian: -0.5 log(2 pi e)
    assert m.prior_loglik_per_dim(test) == pytest.approx(-0.5 * np.log(2 * np.pi * np.e), abs=0.02)


def test_dae_checkpoint_round_trip_keeps_prior_and_weak_decoder(tmp_path):
    m = models.build("dae", SMALL)
    m.fit_prior(torch.randn(200, 16) * 3 + 1)
    d = checkpoints.save(m, tmp_path / "digits" / "dae-16", "dae", {"dataset": "digits"})
    back = checkpoints.load_dir(d, device="cpu")
    x = rand_images(4)
    assert torch.equal(back.reconstruct(x), m.eval().reconstruct(x))
    assert torch.equal(back.reconstruct_aux(x), m.reconstruct_aux(x))
    assert torch.equal(back.sample(3, generator=torch.Generator().manual_seed(0)),
                       m.sample(3, generator=torch.Generator().manual_seed(0)))


def test_study_tables_mean_and_sd_of_what_the_checkpoints_say(dae_study_dir, tmp_path):
    study = studies.summarise(tiny_dae_study(), dae_study_dir)
    assert study["seeds"] == [0, 1] and study["study"] == "dae"
    for arm in studies.DAE.arms:
        runs = [dae_study_dir / arm.name / f"seed{s}" / "digits" for s in (0, 1)]
        mses = [json.loads((r / arm.preset / "metrics.json").read_text())["test_mse"] for r in runs]
        row = study["table"]["test_mse"][arm.name]
        assert row["values"] == mses
        assert row["mean"] == pytest.approx(np.mean(mses)) and row["sd"] == pytest.approx(np.std(mses, ddof=1))
        eps = [json.loads((r / arm.ldm / "metrics.json").read_text())["test_eps_mse"] for r in runs]
        assert study["table"]["ldm_eps_mse"][arm.name]["values"] == eps
        assert [len(h) for h in study["history"][arm.name].values()] == [2, 2]  # each seed's epochs, for the curves
    text = studies.table_markdown(study)
    assert "| metric (mean ± sd over seeds) | DAE (two stages) | joint baseline |" in text
    assert "reconstruction MSE" in text and "up to 2 seeds per arm" in text
    verdicts = studies.verdict(study)  # one per metric both arms have (no FID here: digits has no classifier)
    measured = [k for k, r in study["table"].items() if r["dae"]["mean"] is not None and r["joint"]["mean"] is not None]
    assert len(verdicts) == len([k for k in measured if not k.endswith("train_s")]) >= 4
    assert all(line.split(": DAE ")[1].startswith(("better by", "worse by", "no difference")) for line in verdicts)
    shipped = studies.ship(study, root=tmp_path / "zoo", note="Read plainly: a test note.", out=dae_study_dir)
    assert len(shipped) == 4
    for d in shipped:
        assert json.loads((d / studies.DAE.result_file).read_text())["seeds"] == [0, 1]
        assert json.loads((d / studies.DAE.result_file).read_text())["note"] == "Read plainly: a test note."
        card = (d / checkpoints.CARD).read_text()
        assert "DAE vs joint baseline (this checkpoint is seed 0" in card
        assert card.rstrip().endswith("Read plainly: a test note.")
        assert not list(d.glob("resume*.pt")) and not (d / ".lock").exists()
    # what shipped is seed 0's own checkpoint
    seed0 = dae_study_dir / "dae" / "seed0" / "digits" / "dae-16" / "model.safetensors"
    assert (tmp_path / "zoo" / "digits" / "dae-16" / "model.safetensors").read_bytes() == seed0.read_bytes()
    assert checkpoints.Zoo(tmp_path / "zoo").load("digits/ldm-dae-16", device="cpu").sample(2, steps=3).shape == (2, 1, 28, 28)


# ---------------------------------------------------------------- GAN
def test_gan_losses_reach_only_their_own_player():
    m = models.build("gan", {"channels": 8, "latent_dim": 8})
    loss_d, loss_g, acc = m.losses(rand_images(16), generator=torch.Generator().manual_seed(0))
    g_params, d_params = list(m.decoder.parameters()), list(m.discriminator.parameters())
    assert all(g is None for g in torch.autograd.grad(loss_d, g_params, retain_graph=True, allow_unused=True))
    assert all(g is None for g in torch.autograd.grad(loss_g, d_params, retain_graph=True, allow_unused=True))
    assert all(g is not None for g in torch.autograd.grad(loss_g, g_params, retain_graph=True))
    assert all(g is not None for g in torch.autograd.grad(loss_d, d_params))
    assert 0.0 <= acc <= 1.0


def test_gan_training_step_alternates_discriminator_then_generator():
    m = models.build("gan", {"channels": 8, "latent_dim": 8}).train()
    d_before, g_before = params_of(m.discriminator), params_of(m.decoder)
    loss, logs = m((rand_images(16), None))
    assert changed(d_before, m.discriminator) == set(d_before)        # the discriminator already stepped
    assert not changed(g_before, m.decoder)                           # the generator waits for the loop
    assert all(p.grad is None for p in m.discriminator.parameters())
    loss.backward()
    assert all(p.grad is None for p in m.discriminator.parameters())   # L_G reaches the generator only
    assert all(p.grad is not None for p in m.decoder.parameters())
    assert {"loss_d", "loss_g", "d_acc"} <= set(logs)


def test_gan_decodes_and_samples_but_has_no_encoder(tmp_path):
    m = models.build("gan", {"channels": 8, "latent_dim": 8}).eval()
    x = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(m.decode(m.sample_latent(5, generator=torch.Generator().manual_seed(0))), x)
    with pytest.raises(NotImplementedError, match="no encoder"):
        m.encode(x)
    d = checkpoints.save(m, tmp_path / "digits" / "dcgan", "gan", {"dataset": "digits"})
    back = checkpoints.load_dir(d, device="cpu")
    assert torch.equal(back.sample(5, generator=torch.Generator().manual_seed(0)), x)


def test_gan_training_moves_the_discriminator_toward_telling_real_from_fake(tmp_path):
    out = training.train("dcgan", "digits", epochs=2, out=tmp_path, limit=512, progress=False,
                         config={"channels": 8, "latent_dim": 8}, evaluate=False, batch_size=64)
    hist = json.loads((out / checkpoints.CONFIG).read_text())["training"]["history"]
    assert len(hist) == 2 and {"loss_d", "loss_g", "d_acc"} <= set(hist[0])
    assert all(np.isfinite(e["loss_d"]) and np.isfinite(e["loss_g"]) for e in hist)
    assert hist[-1]["d_acc"] > 0.5     # better than chance: the two-player update works


def test_live_run_gives_both_arms_the_same_steps_and_splits_the_dae_into_two_halves():
    from explorer import data

    x = data.load("digits", "test").floats()
    seen = []
    run = dae_study.train_live(x[:200], x[200:], budget_s=1.0, seed=3, config=SMALL, batch_size=32,
                               progress=lambda f, text: seen.append(f))
    assert run.steps >= 4 and run.metrics["dae"]["steps"] == run.metrics["joint"]["steps"] == run.steps
    stages = [e["stage"] for e in run.history["dae"]]
    assert stages == [1] * (run.steps // 2) + [2] * (run.steps - run.steps // 2)
    assert {e["stage"] for e in run.history["joint"]} == {0}
    for arm in ("dae", "joint"):
        m = run.metrics[arm]
        assert 0 < m["test_mse"] < 1 and np.isfinite(m["gmm_loglik"])
        assert not run.models[arm].training
    assert 0 < run.metrics["dae"]["stage1_test_mse"] < 1
    assert seen == sorted(seen) and seen[-1] == 1.0          # progress only moves forward
    g = torch.get_rng_state()
    dae_study.train_live(x[:64], x[64:96], budget_s=0.2, seed=3, config=SMALL, batch_size=16)
    assert torch.equal(g, torch.get_rng_state())              # the process-wide generator is left alone
    again = dae_study.train_live(x[:200], x[200:], budget_s=1.0, seed=3, config=SMALL, batch_size=32)
    n = min(again.steps, run.steps) // 2                       # (time-boxed: the step counts may differ)
    assert [e["mse"] for e in again.history["joint"][:n]] == [e["mse"] for e in run.history["joint"][:n]]
