"""The sampler maths against the implementation most people use: diffusers' DDPMScheduler and DDIMScheduler.

Given the same schedule, x_t, eps and noise, in float64, our schedules, timesteps, DDPM posterior and DDIM step
(eta = 0 and 1) agree with diffusers'. Where the two differ it is a convention, each pinned by a test here:

1. **The last DDIM step.** Stepping from the last timestep to "before t = 0", we use alpha_bar := 1 (the clean
   image, as the DDIM paper and improved-diffusion do); diffusers uses ``final_alpha_cumprod``, which is 1 only
   with ``set_alpha_to_one=True`` and alpha_bar_0 (= 1 - beta_0) with ``set_alpha_to_one=False``.
2. **t = T - 1 of the cosine schedule.** alpha_bar there is ~2e-9, so predicting x_0 divides by
   sqrt(alpha_bar) ~ 4e-5: any rounding in x_t or eps is amplified ~3e4 times. In float64 both implementations
   agree there too; in float32 (diffusers keeps its schedule in float32) that one step differs far more than
   the rest, by conditioning, not by a different formula.
3. **Step counts that do not divide T.** Both spacings agree for every divisor of T (10, 20, 50, 100, 1000: the
   counts the app, the cards and the trade-off grid use); otherwise diffusers rounds its stride (leading:
   ``T // steps``; trailing: ``round(arange(T, 0, -T / steps)) - 1``) where we floor ``i * T / steps``.
"""
import pytest
import torch

from explorer import diffusion as D
from explorer import schedules

diffusers = pytest.importorskip("diffusers")

T = 1000
NAMES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}  # ours -> diffusers' beta_schedule
SHAPE = (4, 1, 8, 8)


def _ours(name: str) -> schedules.Schedule:
    return schedules.make_schedule(name, T, torch.float64)


def _in_float64(scheduler, s: schedules.Schedule):
    """A diffusers scheduler holding our float64 schedule (it keeps its own in float32), so that the two step
    formulas are compared and not two roundings of the same numbers."""
    scheduler.betas = s.betas.clone()
    scheduler.alphas = 1.0 - s.betas
    scheduler.alphas_cumprod = s.alphas_cumprod.clone()
    if hasattr(scheduler, "final_alpha_cumprod"):
        one = scheduler.config.set_alpha_to_one
        scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64) if one else s.alphas_cumprod[0]
    return scheduler


def _ddim(name: str, spacing: str, steps: int, set_alpha_to_one: bool = True, float64: bool = True):
    sch = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule=NAMES[name], beta_start=1e-4, beta_end=0.02,
                                  clip_sample=False, set_alpha_to_one=set_alpha_to_one, timestep_spacing=spacing)
    sch.set_timesteps(steps)
    return _in_float64(sch, _ours(name)) if float64 else sch


def _noise(seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("name", NAMES)
def test_betas_and_alpha_bars_match_diffusers_to_float32_rounding(name):
    ours = _ours(name)
    theirs = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=NAMES[name], beta_start=1e-4, beta_end=0.02)
    assert theirs.betas.dtype == torch.float32
    torch.testing.assert_close(theirs.betas.double(), ours.betas, rtol=2e-7, atol=3e-8)
    # their cumulative product runs in float32: 1000 roundings, still within ~3e-7
    torch.testing.assert_close(theirs.alphas_cumprod.double(), ours.alphas_cumprod, rtol=0, atol=1e-6)


@pytest.mark.parametrize("spacing", D.SPACINGS)
def test_timesteps_match_diffusers_for_every_step_count_that_divides_T(spacing):
    divisors = [k for k in range(1, T + 1) if T % k == 0]
    for steps in divisors:
        sch = _ddim("linear", spacing, steps)
        assert sch.timesteps.tolist() == D.timesteps(T, steps, spacing), steps
    # convention 3: elsewhere the strides are rounded differently (e.g. 30 steps)
    assert _ddim("linear", spacing, 30).timesteps.tolist() != D.timesteps(T, 30, spacing)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [1, 10, 250, 500, 998, 999])
def test_ddpm_posterior_mean_and_variance_match_diffusers_step(name, t):
    """diffusers' DDPMScheduler.step draws x_{t-1} = mean + std z; two draws with known z give its mean and std."""
    s = _ours(name)
    sch = _in_float64(diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=NAMES[name], beta_start=1e-4,
                                              beta_end=0.02, clip_sample=False, variance_type="fixed_small"), s)
    x_t, eps = _noise(1), _noise(2)
    draws = []
    for seed in (3, 4):
        prev = sch.step(eps, t, x_t, generator=torch.Generator().manual_seed(seed)).prev_sample
        draws.append((prev, _noise(seed)))
    (p1, z1), (p2, z2) = draws
    std = ((p1 - p2) / (z1 - z2)).median()
    mean = p1 - std * z1
    ours_mean, ours_var = D.q_posterior(s, D.predict_x0(s, x_t, t, eps), x_t, t)
    torch.testing.assert_close(mean, ours_mean, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(std ** 2, ours_var, rtol=1e-7, atol=1e-12)
    # and our whole ancestral step, given the same noise, is theirs
    ours = D.ddpm_step(s, x_t, eps=eps, t=t, generator=torch.Generator().manual_seed(3)).prev_sample
    torch.testing.assert_close(ours, p1, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spacing", D.SPACINGS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_matches_diffusers_at_every_step_with_shared_noise(name, spacing, eta):
    steps = 20
    s, sch = _ours(name), _ddim(name, spacing, steps)
    ts = D.timesteps(T, steps, spacing)
    x = _noise(0)
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps = _noise(100 + i)
        ours = D.ddim_step(s, x, eps=eps, t=t, t_prev=t_prev, eta=eta,
                           generator=torch.Generator().manual_seed(200 + i)).prev_sample
        theirs = sch.step(eps, t, x, eta=eta, generator=torch.Generator().manual_seed(200 + i)).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9, msg=f"step {i} (t = {t})")
        x = ours


@pytest.mark.parametrize("name", NAMES)
def test_the_last_ddim_step_differs_only_by_diffusers_set_alpha_to_one_false(name):
    """Convention 1: we step to alpha_bar = 1; diffusers' set_alpha_to_one=False steps to alpha_bar_0."""
    s = _ours(name)
    ts = D.timesteps(T, 10, "trailing")
    x, eps = _noise(5), _noise(6)
    ours = D.ddim_step(s, x, eps=eps, t=ts[-1], t_prev=-1).prev_sample
    one = _ddim(name, "trailing", 10, set_alpha_to_one=True).step(eps, ts[-1], x, eta=0.0).prev_sample
    ab0 = _ddim(name, "trailing", 10, set_alpha_to_one=False).step(eps, ts[-1], x, eta=0.0).prev_sample
    torch.testing.assert_close(ours, one, rtol=1e-12, atol=1e-12)
    assert (ours - ab0).abs().max() > 1e-4
    # theirs is our step to t = 0 instead of to "before 0": the same formula, another end point
    torch.testing.assert_close(ab0, D.ddim_step(s, x, eps=eps, t=ts[-1], t_prev=0).prev_sample, rtol=1e-12, atol=1e-12)


def test_cosine_t_minus_1_is_ill_conditioned_so_float32_differs_there_and_nowhere_else():
    """Convention 2: at t = T - 1 of the cosine schedule x_0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab) with
    sqrt(ab) ~ 4e-5, so float32 rounding (diffusers' own schedule) is amplified ~3e4 times; in float64 the two
    agree there (test above), and in float32 every other step agrees to ~1e-6."""
    s = _ours("cosine")
    assert 1 / s.alphas_cumprod[T - 1].sqrt() > 1e4
    steps = 10
    ts = D.timesteps(T, steps, "trailing")
    assert ts[0] == T - 1
    sch = _ddim("cosine", "trailing", steps, float64=False)  # diffusers as shipped: float32 schedule
    s32 = schedules.make_schedule("cosine", T, torch.float32)
    gaps = []
    for i, t in enumerate(ts[:-1]):
        x, eps = _noise(10 + i, torch.float32), _noise(20 + i, torch.float32)
        ours = D.ddim_step(s32, x, eps=eps, t=t, t_prev=ts[i + 1]).prev_sample
        gaps.append((ours - sch.step(eps, t, x, eta=0.0).prev_sample).abs().max().item())
    assert max(gaps[1:]) < 2e-6, gaps
    assert gaps[0] > 10 * max(gaps[1:]), gaps
