"""Diffusion: schedules, forward process, DDPM/DDIM steps, guidance, samplers, the ddpm family."""
import json
import math

import numpy as np
import pytest
import torch

from explorer import checkpoints, diffusion, evaluation, models, schedules, training
from explorer.checkpoints import Zoo

TINY_UNET = {"channels": 8, "mults": [1, 2], "attention": False}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randomised(model, seed=0, std=0.05):
    """Perturb every weight (the zero-initialised output layers would make eps = 0 everywhere)."""
    g = _gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def _tiny_ddpm(precision="float32", **config):
    """A small randomised DDPM; float32 sampling so sampler identities hold to 1e-4 (bfloat16 is tested apart)."""
    m = _randomised(models.build("ddpm", {**TINY_UNET, "timesteps": 40, **config}))
    m.precision = precision
    return m


# ------------------------------------------------------------------ schedules
def test_linear_schedule_is_ho_et_al():
    b = schedules.linear_beta_schedule(1000)
    assert b.dtype == torch.float64 and b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    assert (b.diff() > 0).all()


def test_cosine_schedule_matches_its_formula_and_clipping():
    T, s = 1000, 0.008
    betas = schedules.cosine_beta_schedule(T, s=s)
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    ab = schedules.alphas_cumprod(betas)
    clipped = betas >= 0.999
    assert betas.max().item() == pytest.approx(0.999) and clipped[-1] and clipped.sum() < 5
    assert (betas > 0).all() and (betas.diff() >= 0).all()
    for t in range(0, T, 37):  # alpha_bar_t = f(t/T) / f(0) wherever no beta up to t was clipped
        if not clipped[:t + 1].any():
            assert ab[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert ab[-1].item() < 1e-4  # ends at (nearly) pure noise


@pytest.mark.parametrize("name", schedules.NAMES)
def test_make_schedule_derived_quantities(name):
    s = schedules.make_schedule(name, 200)
    assert s.T == 200 and all(v.dtype == torch.float32 for v in (s.betas, s.alphas_cumprod, s.log_snr))
    ab = s.alphas_cumprod.double()
    assert (ab.diff() < 0).all() and (s.log_snr.diff() < 0).all()
    torch.testing.assert_close(schedules.alpha_bar_from_log_snr(s.log_snr.double()), ab, rtol=1e-5, atol=1e-7)
    # beta_tilde_t = (1 - ab_{t-1}) / (1 - ab_t) beta_t, and beta_tilde_1 = 0
    assert s.posterior_variance[0].item() == 0.0
    torch.testing.assert_close(s.posterior_variance[1:], ((1 - ab[:-1]) / (1 - ab[1:]) * s.betas[1:].double()).float())
    with pytest.raises(ValueError):
        schedules.make_schedule("quadratic", 10)


# ------------------------------------------------------------------ forward process
@pytest.mark.parametrize("name", schedules.NAMES)
def test_q_sample_closed_form_matches_iterating_the_chain(name):
    s = schedules.make_schedule(name, 50)
    x0 = torch.tensor([-1.0, -0.3, 0.5, 1.0]).repeat(20000, 1)      # (20000, 4)
    g = _gen(1)
    for t in (0, 9, 30, 49):
        x = x0.clone()
        for k in range(t + 1):
            x = diffusion.q_step(s, x, k, g)
        direct = diffusion.q_sample(s, x0, t, generator=g)
        ab = s.alphas_cumprod[t].item()
        for sample in (x, direct):  # both have mean sqrt(ab) x0 and variance 1 - ab
            torch.testing.assert_close(sample.mean(0), math.sqrt(ab) * x0[0], atol=0.03, rtol=0)
            torch.testing.assert_close(sample.var(0), torch.full((4,), 1 - ab), atol=0.03, rtol=0.05)


def test_q_sample_takes_per_image_timesteps():
    s = schedules.make_schedule("linear", 100)
    x0, noise = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
    out = diffusion.q_sample(s, x0, torch.tensor([0, 50, 99]), noise)
    torch.testing.assert_close(out[:, 0, 0, 0], s.sqrt_alphas_cumprod[[0, 50, 99]])


# ------------------------------------------------------------------ reverse steps
def test_ddim_eta1_over_all_steps_has_the_ddpm_posterior_variance():
    s = schedules.make_schedule("cosine", 100)
    for t in range(1, 100):
        assert diffusion.ddim_sigma(s, t, t - 1, 1.0).item() ** 2 == pytest.approx(
            s.posterior_variance[t].item(), rel=1e-4, abs=1e-12)
    # and the steps themselves agree: same mean, same noise from the same seed
    x_t, eps = torch.randn(8, 1, 4, 4, generator=_gen(2)), torch.randn(8, 1, 4, 4, generator=_gen(3))
    for t in (1, 40, 99):
        a = diffusion.ddim_step(s, x_t, eps=eps, t=t, t_prev=t - 1, eta=1.0, generator=_gen(4))
        b = diffusion.ddpm_step(s, x_t, eps=eps, t=t, generator=_gen(4))
        torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a.pred_x0, b.pred_x0)
    # Monte Carlo: the spread of x_{t-1} around its mean is beta_tilde_t
    t = 60
    x_t1 = torch.zeros(50000, 1)
    out = diffusion.ddim_step(s, x_t1, eps=torch.zeros_like(x_t1), t=t, t_prev=t - 1, eta=1.0, generator=_gen(5)).prev_sample
    assert out.var().item() == pytest.approx(s.posterior_variance[t].item(), rel=0.03)


def test_ddim_eta0_is_deterministic_and_ends_at_the_predicted_x0():
    s = schedules.make_schedule("linear", 100)
    x_t, eps = torch.randn(4, 3, generator=_gen(0)), torch.randn(4, 3, generator=_gen(1))
    a = diffusion.ddim_step(s, x_t, eps=eps, t=50, t_prev=30, eta=0.0, generator=_gen(7))
    b = diffusion.ddim_step(s, x_t, eps=eps, t=50, t_prev=30, eta=0.0, generator=_gen(8))
    torch.testing.assert_close(a.prev_sample, b.prev_sample)
    last = diffusion.ddim_step(s, x_t, eps=eps, t=10, t_prev=-1, eta=1.0, generator=_gen(7))
    torch.testing.assert_close(last.prev_sample, last.pred_x0)  # the final step adds no noise


def test_dynamic_threshold_is_clipping_for_mild_outliers_and_rescales_wide_predictions():
    rule = diffusion.dynamic_threshold(0.9)
    inside = torch.linspace(-1, 1, 100).reshape(1, 1, 10, 10)
    torch.testing.assert_close(rule(inside), inside)  # in range: unchanged
    mild = inside.clone()
    mild.view(-1)[:5] = 3.0  # 5% of the values out of range, fewer than 1 - 0.9: the quantile stays <= 1
    torch.testing.assert_close(rule(mild), mild.clamp(-1, 1))
    wide = 2.5 * inside  # most values out of range: the 90% quantile of |x| sets s, and x -> clamp(x, s) / s
    s = torch.quantile(wide.abs().flatten(), 0.9)
    torch.testing.assert_close(rule(wide), wide.clamp(-s, s) / s)
    assert rule(wide).abs().max() <= 1 + 1e-6
    both = rule(torch.cat([inside, wide]))  # per sample: one wide image does not rescale another
    torch.testing.assert_close(both[0], inside[0])
    # as the sampler's x_0 rule: the step uses the eps consistent with the mapped x_0
    sched = schedules.make_schedule("linear", 100)
    x_t, eps = 3 * torch.randn(2, 1, 4, 4, generator=_gen(0)), torch.randn(2, 1, 4, 4, generator=_gen(1))
    out = diffusion.ddim_step(sched, x_t, eps=eps, t=60, t_prev=40, clip=rule)
    torch.testing.assert_close(out.pred_x0, rule(diffusion.predict_x0(sched, x_t, 60, eps)))
    assert out.pred_x0.abs().max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="percentile"):
        diffusion.dynamic_threshold(0.0)


def test_predicted_x0_recovers_x0_when_eps_is_the_true_noise():
    s = schedules.make_schedule("cosine", 100)
    x0, noise = torch.rand(5, 1, 3, 3), torch.randn(5, 1, 3, 3, generator=_gen(0))
    x_t = diffusion.q_sample(s, x0, 70, noise)
    torch.testing.assert_close(diffusion.predict_x0(s, x_t, 70, noise), x0, atol=1e-4, rtol=1e-4)
    mean, var = diffusion.q_posterior(s, x0, x_t, 70)
    assert var.item() == pytest.approx(s.posterior_variance[70].item(), rel=1e-5)
    # the posterior mean lies between x_0 and x_t's rescaled value
    assert mean.shape == x0.shape


def test_guidance_scale_is_as_defined():
    u, c = torch.randn(3, 5, generator=_gen(0)), torch.randn(3, 5, generator=_gen(1))
    torch.testing.assert_close(diffusion.guided_eps(u, c, 0.0), u)
    torch.testing.assert_close(diffusion.guided_eps(u, c, 1.0), c)
    torch.testing.assert_close(diffusion.guided_eps(u, c, 3.0), c + 2 * (c - u))
    # in the model: w = 0 is the null-label network, w = 1 the conditional one
    m = _tiny_ddpm()
    x, labels = torch.randn(4, 1, 28, 28, generator=_gen(2)), torch.tensor([0, 3, 3, 9])
    t = torch.full((4,), 17)
    null = torch.full((4,), m.null_label)
    with torch.no_grad():
        cond, uncond = m.net(x, t, labels), m.net(x, t, null)
    assert (cond - uncond).abs().max() > 1e-4  # the label matters at all
    torch.testing.assert_close(m.eps_fn(labels, 0.0)(x, 17), uncond)
    torch.testing.assert_close(m.eps_fn(labels, 1.0)(x, 17), cond)
    torch.testing.assert_close(m.eps_fn(labels, 2.5)(x, 17), uncond + 2.5 * (cond - uncond), atol=1e-5, rtol=1e-4)


def test_bfloat16_sampling_stays_close_to_float32():
    m = _tiny_ddpm()
    out = {}
    for precision in ("float32", "bfloat16"):
        m.precision = precision
        out[precision] = m.sample(4, steps=10, eta=0.0, labels=3, generator=_gen(9))
        assert m.sampling_dtype("cpu") == getattr(torch, precision)
        assert out[precision].dtype == torch.float32
    diff = (out["float32"] - out["bfloat16"]).abs()
    assert 0 < diff.mean() < 0.02   # autocast really ran, and only rounding separates the two
    m.precision = "half"
    with pytest.raises(ValueError, match="precision must be one of"):
        m.sample(1, steps=2)


# ------------------------------------------------------------------ samplers
def test_timesteps_are_evenly_strided_and_end_at_zero():
    assert diffusion.timesteps(1000, 1000) == list(range(999, -1, -1))
    assert diffusion.timesteps(1000) == diffusion.timesteps(1000, 1000)
    for steps in (1, 2, 10, 50, 999):
        ts = diffusion.timesteps(1000, steps)
        assert len(ts) == len(set(ts)) == steps and ts[-1] == 0
        assert all(a > b for a, b in zip(ts, ts[1:]))
        assert 1000 - 1000 / steps - 1 < ts[0] <= 1000 - 1000 / steps   # one stride below T
        gaps = [a - b for a, b in zip(ts, ts[1:])]
        assert not gaps or max(gaps) - min(gaps) <= 1                  # even strides
    for bad in (0, 1001):
        with pytest.raises(ValueError):
            diffusion.timesteps(1000, bad)


def test_trailing_timesteps_start_at_T_minus_one_and_shift_the_leading_ones():
    assert diffusion.timesteps(1000, 10, "trailing") == list(range(999, 0, -100))  # 999, 899, ..., 99
    assert diffusion.timesteps(1000, 1000, "trailing") == diffusion.timesteps(1000, 1000)  # all T: no choice
    for steps in (1, 3, 10, 50, 999):
        lead, trail = diffusion.timesteps(1000, steps), diffusion.timesteps(1000, steps, "trailing")
        assert len(set(trail)) == steps and trail[0] == 999
        assert all(a > b for a, b in zip(trail, trail[1:]))
        # the same strides, mirrored: trailing t_i = T - 1 - (the leading chain's i-th from the end)
        assert trail == [999 - t for t in lead[::-1]]
    with pytest.raises(ValueError, match="spacing must be one of"):
        diffusion.timesteps(1000, 10, "linspace")


def test_spacing_reaches_the_model_sampler_and_changes_only_a_respaced_chain():
    m = _tiny_ddpm()
    m.precision = "float32"  # bit-for-bit repeatable chains (oneDNN's bfloat16 kernels need not be)
    T = m.config.timesteps
    steps = list(m.sample_progressive(2, steps=5, generator=_gen(0), spacing="trailing"))
    assert [s.t for s in steps] == diffusion.timesteps(T, 5, "trailing") and steps[0].t == T - 1
    lead, trail = (m.sample(2, steps=5, generator=_gen(0), spacing=sp) for sp in diffusion.SPACINGS)
    assert not torch.allclose(lead, trail)
    full = [m.sample(2, steps=None, sampler="ddpm", generator=_gen(0), spacing=sp) for sp in diffusion.SPACINGS]
    assert torch.equal(full[0], full[1])  # over all T steps both spacings are the same chain
    with pytest.raises(ValueError, match="spacing must be one of"):
        m.sample(1, steps=5, spacing="middle")
    # unset, a model samples with its own spacing: trailing for pixels (x_0 clamped to the data range),
    # leading for codes, or what its config says
    assert m.config.sampling_spacing == "trailing"
    assert torch.equal(m.sample(2, steps=5, generator=_gen(0)), trail)
    assert models.build("ddpm", {"space": "latent", "vae_config": {"latent_dim": 16, "channels": 8, "hidden": 32},
                                 "latent_dim": 16, "hidden": 32, "blocks": 1}).config.sampling_spacing == "leading"
    lead_model = models.build("ddpm", {**m.config_dict(), "spacing": "leading"})
    lead_model.load_state_dict(m.state_dict())
    lead_model.precision = "float32"
    assert torch.equal(lead_model.sample(2, steps=5, generator=_gen(0)), lead)
    with pytest.raises(ValueError, match="spacing must be one of"):
        models.build("ddpm", {**m.config_dict(), "spacing": "middle"})


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddpm", 7), ("ddim", 1), ("ddim", 10), ("ddim", 40)])
def test_sampler_iterators_yield_every_step(sampler, steps):
    m = _tiny_ddpm()
    out = list(m.sample_progressive(2, steps=steps, sampler=sampler, eta=0.5, generator=_gen(0)))
    assert len(out) == (steps or 40)
    assert [o.index for o in out] == list(range(len(out)))
    assert [o.t for o in out] == diffusion.timesteps(40, steps, m.config.sampling_spacing)  # its own: trailing
    for a, b in zip(out, out[1:]):
        torch.testing.assert_close(b.x_t, a.prev_sample)  # each step starts where the last ended
    assert all(o.x_t.shape == o.pred_x0.shape == (2, 1, 28, 28) for o in out)
    img = next(m.sample_progressive(2, steps=steps, sampler=sampler, generator=_gen(0), decode=True))
    assert img.x_t.min() >= 0 and img.x_t.max() <= 1


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 0.7), ("ddpm", 0.0)])
def test_a_given_x_T_gives_the_samples_the_seed_would(sampler, eta):
    """x_T drawn with diffusion.randn from a generator, then that generator for the steps' noise: the same chain
    as sample(generator=...), which draws x_T first from it."""
    m = _tiny_ddpm()
    ref = m.sample(3, steps=8, sampler=sampler, eta=eta, guidance=2.0, labels=[1, None, 0], generator=_gen(9))
    g = _gen(9)
    x_T = diffusion.randn((3, *m.sample_shape), g)
    got = m.sample(3, steps=8, sampler=sampler, eta=eta, guidance=2.0, labels=[1, None, 0], generator=g, x_T=x_T)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    first = next(m.sample_progressive(3, steps=8, sampler=sampler, eta=eta, x_T=x_T))
    torch.testing.assert_close(first.x_t, x_T)
    other = m.sample(3, steps=8, sampler=sampler, eta=eta, guidance=2.0, labels=[1, None, 0], generator=_gen(9),
                     x_T=-x_T)
    assert not torch.allclose(other, ref)  # the chain starts from x_T
    with pytest.raises(ValueError, match="x_T must have shape"):
        m.sample(2, steps=8, x_T=x_T)


def test_ddim_eta0_with_a_fixed_seed_is_reproducible_and_ignores_the_global_seed():
    m = _tiny_ddpm()
    torch.manual_seed(1)
    a = m.sample(3, steps=10, sampler="ddim", eta=0.0, guidance=2.0, labels=[1, 2, None], generator=_gen(5))
    torch.manual_seed(2)
    b = m.sample(3, steps=10, sampler="ddim", eta=0.0, guidance=2.0, labels=[1, 2, None], generator=_gen(5))
    c = m.sample(3, steps=10, sampler="ddim", eta=0.0, guidance=2.0, labels=[1, 2, None], generator=_gen(6))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (3, 1, 28, 28) and a.min() >= 0 and a.max() <= 1


def test_ddpm_over_strided_steps_is_ddim_with_eta_1():
    m = _tiny_ddpm()
    a = m.sample(2, steps=8, sampler="ddpm", labels=4, generator=_gen(3))
    b = m.sample(2, steps=8, sampler="ddim", eta=1.0, labels=4, generator=_gen(3))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_labels_are_checked():
    m = _tiny_ddpm()
    with pytest.raises(ValueError):
        m.sample(2, steps=2, labels=[1, 2, 3], generator=_gen(0))
    with pytest.raises(ValueError):
        m.sample(2, steps=2, labels=10, generator=_gen(0))
    with pytest.raises(ValueError):
        m.sample(2, steps=2, sampler="euler", generator=_gen(0))


# ------------------------------------------------------------------ checkpoints and training
def test_save_load_round_trip_of_a_tiny_ddpm(tmp_path):
    m = _tiny_ddpm(schedule="linear")
    checkpoints.save(m, tmp_path / "digits" / "ddpm-linear", "ddpm", {"dataset": "digits"})
    zoo = Zoo(tmp_path)
    assert zoo.available("ddpm") == ["digits/ddpm-linear"]
    loaded = zoo.load("digits/ddpm-linear", device="cpu")
    assert loaded.config.schedule == "linear" and loaded.schedule.T == 40
    assert loaded.precision == "auto"   # a runtime choice, not part of the checkpoint
    loaded.precision = m.precision
    kw = dict(steps=5, sampler="ddim", eta=0.0, labels=3)
    torch.testing.assert_close(loaded.sample(2, generator=_gen(0), **kw), m.sample(2, generator=_gen(0), **kw))


@pytest.fixture(scope="module")
def tiny_vae_root(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("ldm")
    training.train("vae-2d", "digits", epochs=2, out=root, limit=512, progress=False, evaluate=False,
                   config={"channels": 8, "hidden": 32, "beta": 0.2})
    return root


@pytest.mark.slow
def test_tiny_pixel_training_run_lowers_the_loss_and_ships_ema_weights(tmp_path):
    d = training.train("ddpm-cosine", "digits", epochs=4, out=tmp_path, limit=384, batch_size=32,
                       progress=False, evaluate=False, config={**TINY_UNET, "timesteps": 100})
    info = json.loads((d / "config.json").read_text())
    hist = info["training"]["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert info["training"]["ema_decay"] == 0.999 and not (d / "resume.pt").exists()
    from explorer.models.diffusion import bf16_native

    if bf16_native("cpu"):  # the pixel presets' default where the CPU has native bfloat16
        assert info["training"]["precision"] == "bfloat16 autocast"
        assert "bfloat16 autocast" in (d / "README.md").read_text()
    else:
        assert "precision" not in info["training"]
    m = Zoo(tmp_path).load("digits/ddpm-cosine", device="cpu")
    assert m.sample(2, steps=4, generator=_gen(0)).shape == (2, 1, 28, 28)


def test_latent_diffusion_trains_on_vae_codes_and_decodes_itself(tiny_vae_root):
    d = training.train("ldm-vae-16", "digits", epochs=6, out=tiny_vae_root, progress=False, evaluate=False,
                       config={"vae": "vae-2d", "latent_dim": 2, "hidden": 32, "blocks": 2, "timesteps": 100})
    info = json.loads((d / "config.json").read_text())
    assert info["config"]["vae"] == "digits/vae-2d" and info["config"]["vae_config"]["latent_dim"] == 2
    hist = info["training"]["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    zoo = Zoo(tiny_vae_root)
    m, vae = zoo.load("digits/ldm-vae-16", device="cpu"), zoo.load("digits/vae-2d", device="cpu")
    # the VAE inside the checkpoint is the one it was trained on, frozen
    for (k, a), b in zip(m.vae.state_dict().items(), vae.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert info["training"]["parameters"] == sum(p.numel() for p in m.net.parameters())
    steps = list(m.sample_progressive(3, steps=5, labels=[0, 1, 2], generator=_gen(0)))
    assert steps[-1].prev_sample.shape == (3, 2)          # codes ...
    x = m.to_image(steps[-1].prev_sample)
    assert x.shape == (3, 1, 28, 28) and 0 <= x.min() and x.max() <= 1   # ... decoded by the VAE
    # standardisation round trip: images -> codes -> images equals the VAE's reconstruction
    imgs = vae.decode(torch.zeros(1, 2)).repeat(2, 1, 1, 1)
    torch.testing.assert_close(m.to_image(m.to_model_space(imgs)), vae.reconstruct(imgs), atol=1e-5, rtol=1e-4)


def test_diffusion_evaluation_is_bounded_and_reports_fid_with_floor(tiny_vae_root):
    training.train("classifier", "digits", epochs=1, out=tiny_vae_root, limit=300, progress=False, evaluate=False,
                   config={"channels": 8, "features": 32})
    m = models.build("ddpm", {"space": "latent", "vae_config": {"latent_dim": 2, "channels": 8, "hidden": 32},
                              "latent_dim": 2, "hidden": 32, "blocks": 1, "timesteps": 50})
    m.fit_codes(Zoo(tiny_vae_root).load("digits/vae-2d", device="cpu"), torch.rand(64, 1, 28, 28))
    r = evaluation.evaluate_diffusion(m.eval(), "digits", tiny_vae_root, n=100, steps=5)
    assert r["fid_n"] == 100 and r["fid"] > r["fid_floor"] >= 0 and "ddim-5" in r["fid_sampler"]
    assert r["fid_sampler"].endswith(" leading")  # the latent model's own spacing, named
    assert r["test_eps_mse"] > 0 and r["sample_ms_per_image"] > 0


def test_rebuild_command_leaves_out_run_bookkeeping():
    args = ["ddpm-cosine", "--dataset", "fashion-mnist", "--threads", "1", "--out=/tmp/x", "--resume",
            "--stop-after", "2", "--epochs", "5"]
    assert training._rebuild_args(args) == ["ddpm-cosine", "--dataset", "fashion-mnist", "--epochs", "5"]


@pytest.mark.slow
def test_resumed_training_gives_the_same_ema_weights(tmp_path):
    kw = dict(epochs=2, limit=128, batch_size=32, progress=False, evaluate=False,
              config={**TINY_UNET, "timesteps": 50})
    a = training.train("ddpm-linear", "digits", out=tmp_path / "a", bf16=False, **kw)
    assert "precision" not in json.loads((a / "config.json").read_text())["training"]  # --no-bf16: float32
    kw["bf16"] = False
    training.train("ddpm-linear", "digits", out=tmp_path / "b", stop_after=1, **kw)
    assert "ema" in torch.load(tmp_path / "b" / "digits" / "ddpm-linear" / "resume.pt", weights_only=True)
    b = training.train("ddpm-linear", "digits", out=tmp_path / "b", resume=True, **kw)
    ma, mb = Zoo(a.parent.parent).load("digits/ddpm-linear", "cpu"), Zoo(b.parent.parent).load("digits/ddpm-linear", "cpu")
    for (k, va), vb in zip(ma.state_dict().items(), mb.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)


@pytest.mark.slow
def test_the_pixel_unet_runs_channels_last_in_float32_with_the_same_loss_gradients_and_samples(tmp_path):
    config = {**TINY_UNET, "attention": True, "timesteps": 50}
    b = models.build("ddpm", config)
    assert b.memory_format_for(torch.float32) == torch.channels_last
    assert b.memory_format_for(torch.bfloat16) == torch.contiguous_format  # slower channels-last under bf16
    assert b.memory_format == b.memory_format_for(b.sampling_dtype())  # as built: its sampling precision's
    conv = [k for k, v in b.net.state_dict().items() if v.ndim == 4 and v.shape[1] > 1 and v.shape[2] > 1]
    b.precision = "float32"
    b.sample(1, steps=2)  # sampling puts the weights in its precision's layout
    assert conv and all(b.net.state_dict()[k].is_contiguous(memory_format=torch.channels_last)
                        and not b.net.state_dict()[k].is_contiguous() for k in conv)
    a = models.build("ddpm", config)
    a.load_state_dict(b.state_dict())
    a.precision = "bfloat16"
    a.sample(1, steps=2)  # ... and back: the default layout under bfloat16
    assert all(a.net.state_dict()[k].is_contiguous() for k in conv)
    _randomised(a.net), _randomised(b.net)  # the same perturbation: the zero-initialised output layer too
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    losses = []
    for model, xb in ((a, x), (b, x.contiguous(memory_format=torch.channels_last))):
        torch.manual_seed(0)  # the same t, noise and label dropout in both layouts
        loss, _ = model((xb, y))
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (k, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad.contiguous(), rtol=1e-4, atol=1e-6, msg=k)
    a.eval(), b.eval()
    a.precision = b.precision = "float32"  # the same float32 chain through each layout (sample() would switch a's)
    xa, xb = (diffusion.sample(m.eps_fn(torch.full((8,), 3)), m.schedule, (8, 1, 28, 28), steps=10,
                               generator=torch.Generator().manual_seed(1)) for m in (a, b))
    assert all(a.net.state_dict()[k].is_contiguous() for k in conv)
    torch.testing.assert_close(xa, xb, rtol=1e-4, atol=1e-4)
    # the float32 loop trains channels-last (resume.pt holds channels-last convolutions, the EMA too), the
    # bfloat16 one in the default layout; the checkpoint stores the default layout either way and loads
    # back in the layout of the sampling precision
    kw = dict(epochs=2, limit=64, batch_size=32, progress=False, evaluate=False, bf16=False, config=config)
    training.train("ddpm-linear", "digits", out=tmp_path, stop_after=1, **kw)
    state = torch.load(tmp_path / "digits" / "ddpm-linear" / "resume.pt", weights_only=True)
    assert all(state["model"]["net." + k].is_contiguous(memory_format=torch.channels_last) for k in conv)
    assert all(state["ema"]["shadow"]["net." + k].is_contiguous(memory_format=torch.channels_last) for k in conv)
    training.train("ddpm-linear", "digits", out=tmp_path, resume=True, **kw)
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "digits" / "ddpm-linear" / "model.safetensors"))
    assert all(stored["net." + k].is_contiguous() for k in conv)
    loaded = Zoo(tmp_path).load("digits/ddpm-linear", "cpu")
    assert all(loaded.net.state_dict()[k].is_contiguous(memory_format=loaded.memory_format) for k in conv)
    kw["bf16"] = True
    training.train("ddpm-linear", "digits", out=tmp_path / "bf16", stop_after=1, **kw)
    state = torch.load(tmp_path / "bf16" / "digits" / "ddpm-linear" / "resume.pt", weights_only=True)
    assert all(state["model"]["net." + k].is_contiguous() and state["ema"]["shadow"]["net." + k].is_contiguous()
               for k in conv)
    # ... and the latent model, which has no image layout, keeps the default
    latent = models.build("ddpm", {"space": "latent", "vae_config": {"latent_dim": 16, "channels": 8, "hidden": 32},
                                   "latent_dim": 16, "hidden": 32, "blocks": 1})
    assert latent.memory_format == torch.contiguous_format


@pytest.mark.parametrize("name", schedules.NAMES)
@pytest.mark.parametrize("sampler,eta,steps", [("ddim", 0.0, 250), ("ddim", 1.0, 200), ("ddpm", 0.0, None)])
def test_samplers_with_the_exact_eps_recover_gaussian_data(name, sampler, eta, steps):
    """For data x_0 ~ N(mu, s^2) the optimal eps predictor is known in closed form,
    E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab); driven by it, every sampler
    must turn N(0, I) into N(mu, s^2) (DDIM's deterministic ODE up to its discretisation error,
    which shrinks with the step count: few steps under-disperse)."""
    s = schedules.make_schedule(name, 1000)
    mu, sd = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.3, 1.0, 0.1])

    def exact_eps(x, t):
        ab = s.alphas_cumprod[t]
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * sd ** 2 + 1 - ab)

    x = diffusion.sample(exact_eps, s, (8000, 3), steps=steps, sampler=sampler, eta=eta, generator=_gen(0))
    torch.testing.assert_close(x.mean(0), mu, atol=0.03, rtol=0)
    torch.testing.assert_close(x.std(0), sd, rtol=0.05, atol=0.01)
    if sampler == "ddim" and eta == 0:
        coarse = diffusion.sample(exact_eps, s, (8000, 3), steps=10, sampler=sampler, generator=_gen(0))
        assert (coarse.std(0) - sd).abs().sum() > (x.std(0) - sd).abs().sum()


def test_save_animation_refuses_unknown_formats_and_empty_runs(tmp_path):
    from explorer import plotting

    frame = np.zeros((5, 7), np.uint8)
    with pytest.raises(ValueError, match="animation format must be one of"):
        plotting.save_animation([frame], tmp_path / "a.avi")
    with pytest.raises(ValueError, match="no frames"):
        plotting.save_animation([], tmp_path / "a.mp4")
    plotting.save_animation([frame, frame + 200], tmp_path / "a.mp4", frame_ms=100, hold_ms=300)
    import av

    with av.open(str(tmp_path / "a.mp4")) as video:
        frames = [f.to_ndarray(format="gray") for f in video.decode(video=0)]
    assert len(frames) == 1 + 3 and frames[0].shape == (6, 8)
    assert frames[0][:5, :7].mean() < 30 and frames[-1][:5, :7].mean() > 170


def test_the_tradeoff_chart_labels_its_log_axes_with_plain_numbers_at_the_measured_steps():
    from explorer import plotting

    rows = [{"eta": eta, "steps": s, "fid": 100.0 / s ** 0.5} for eta in (0.0, 1.0) for s in (10, 20, 50, 250)]
    fig = plotting.fid_vs_steps([{"model": "d/ddpm", "fid_n": 500, "fid_floor": 4.0, "rows": rows}])
    fig.canvas.draw()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "20", "50", "250"]
    y = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
    assert y and all(label.replace(".", "").isdigit() for label in y)  # "20", not "2 x 10^1"
