"""The diffusion maths: forward marginal, DDPM posterior, DDPM and DDIM steps, guidance, samplers.

The network predicts; this module steps; a sampler loop composes them and yields every step, so
the UI can animate it. Notation follows the papers: Ho et al. 2020 (DDPM), Song et al. 2021 (DDIM),
Ho & Salimans 2021 (classifier-free guidance). Timesteps are 0-based in code (``t`` = the paper's
t + 1); ``t_prev = -1`` means "the clean image", with alpha_bar := 1 there.

All randomness comes from a passed ``torch.Generator`` (never the process-wide seed), so two
requests in two threads with the same seed give the same images.

    >>> s = schedules.make_schedule("cosine", 1000)
    >>> for step in sample_progressive(eps_fn, s, (16, 1, 28, 28), steps=50, sampler="ddim",
    ...                                generator=torch.Generator().manual_seed(0)):
    ...     step.t, step.x_t, step.pred_x0, step.prev_sample
"""
from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

import torch

from .schedules import Schedule

SAMPLERS = ("ddpm", "ddim")
EpsFn = Callable[[torch.Tensor, int], torch.Tensor]  # (x_t, t) -> predicted noise, same shape as x_t


class StepOutput(NamedTuple):
    """What one reverse step returns (like diffusers' ``DDIMSchedulerOutput``)."""

    prev_sample: torch.Tensor   # x_{t_prev}
    pred_x0: torch.Tensor       # the x_0 estimate made at t


class SamplerStep(NamedTuple):
    """One step of a progressive sampler: the state it started from and where it went."""

    index: int                  # 0 .. steps-1
    t: int                      # the timestep denoised (0-based)
    x_t: torch.Tensor
    pred_x0: torch.Tensor
    prev_sample: torch.Tensor   # x_{t_prev}; after the last step, the sample


def randn(shape, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn from ``generator`` on its own device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device or gen_device)


def _at(values: torch.Tensor, t, x: torch.Tensor) -> torch.Tensor:
    """values[t] broadcastable against x: t an int or a (B,) tensor -> (B, 1, ..., 1) or a 0-d tensor."""
    values = values.to(x.device)
    if isinstance(t, torch.Tensor) and t.ndim == 1:
        return values[t.to(x.device)].view(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)
    return values[int(t)]


def _alpha_bar(s: Schedule, t: int, x: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t as a 0-d tensor, with alpha_bar := 1 for t = -1 (the clean image)."""
    if int(t) < 0:
        return torch.ones((), dtype=x.dtype, device=x.device)
    return s.alphas_cumprod.to(x.device, x.dtype)[int(t)]


# ------------------------------------------------------------------ forward process
def q_sample(s: Schedule, x0: torch.Tensor, t, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) in closed form; ``t`` an int or a (B,) tensor of timesteps."""
    if noise is None:
        noise = randn(x0.shape, generator, x0.device, x0.dtype)
    # q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)   (Ho et al. 2020, Eq. 4)
    return _at(s.sqrt_alphas_cumprod, t, x0) * x0 + _at(s.sqrt_one_minus_alphas_cumprod, t, x0) * noise


def q_step(s: Schedule, x_prev: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One step of the forward chain, x_t ~ q(x_t | x_{t-1}); iterating it gives :func:`q_sample`'s law."""
    beta = s.betas[int(t)].to(x_prev.device, x_prev.dtype)
    # q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)   (Ho et al. 2020, Eq. 2)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * randn(x_prev.shape, generator, x_prev.device, x_prev.dtype)


def q_posterior(s: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int | None = None):
    """Mean and variance of q(x_{t_prev} | x_t, x_0) (``t_prev`` defaults to t - 1; any t_prev < t
    gives the posterior of the respaced chain). Returns (mean, variance 0-d tensor)."""
    t_prev = int(t) - 1 if t_prev is None else int(t_prev)
    ab_t, ab_prev = _alpha_bar(s, t, x_t), _alpha_bar(s, t_prev, x_t)
    beta = 1 - ab_t / ab_prev  # beta_t of the (possibly respaced) chain
    # mu_tilde = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x_0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t,
    # beta_tilde = (1 - ab_{t-1}) / (1 - ab_t) beta_t                         (Ho et al. 2020, Eq. 7)
    mean = ab_prev.sqrt() * beta / (1 - ab_t) * x0 + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_t) * x_t
    variance = (1 - ab_prev) / (1 - ab_t) * beta
    return mean, variance


def predict_x0(s: Schedule, x_t: torch.Tensor, t: int, eps: torch.Tensor) -> torch.Tensor:
    ab = _alpha_bar(s, t, x_t)
    # x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)   (Eq. 4 solved for x_0; DDIM Eq. 12's "predicted x_0")
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def predict_eps(s: Schedule, x_t: torch.Tensor, t: int, x0: torch.Tensor) -> torch.Tensor:
    ab = _alpha_bar(s, t, x_t)
    return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()  # Eq. 4 solved for eps


# ------------------------------------------------------------------ reverse steps
def dynamic_threshold(percentile: float = 0.995, bound: float = 1.0):
    """Imagen's dynamic thresholding (Saharia et al. 2022, Sec. 2.3) as a rule for predicted x_0: per sample,
    s = max(bound, the ``percentile`` quantile of |x_0|); x_0 is clamped to [-s, s] and divided by s / bound.
    When no more than the top (1 - percentile) of a sample's values leave [-bound, bound] this is static
    clipping; when many do, the whole image is scaled back into range instead of its outliers flattened."""
    if not 0.0 < percentile <= 1.0:
        raise ValueError(f"percentile must be in (0, 1], not {percentile}")

    def rule(x0: torch.Tensor) -> torch.Tensor:
        flat = x0.reshape(len(x0), -1).abs().float()
        q = torch.quantile(flat, percentile, dim=1).clamp(min=bound).to(x0.dtype)
        q = q.reshape(-1, *([1] * (x0.dim() - 1)))
        return torch.maximum(torch.minimum(x0, q), -q) * (bound / q)

    rule.percentile, rule.bound = percentile, bound
    return rule


def limit_x0(x0: torch.Tensor, clip) -> torch.Tensor:
    """``clip`` applied to a predicted x_0: None leaves it; a number clamps it to [-clip, clip]; a callable
    (e.g. :func:`dynamic_threshold`) maps it."""
    if clip is None:
        return x0
    return clip(x0) if callable(clip) else x0.clamp(-clip, clip)


def _x0_and_eps(s, x_t, t, eps, clip):
    """Predicted x_0 with the rule ``clip`` applied (:func:`limit_x0`), and the eps consistent with it."""
    x0 = predict_x0(s, x_t, t, eps)
    if clip is not None:
        x0 = limit_x0(x0, clip)
        eps = predict_eps(s, x_t, t, x0)  # as improved-diffusion: step with the eps the clamped x_0 implies
    return x0, eps


def ddpm_step(s: Schedule, x_t: torch.Tensor, *, eps: torch.Tensor, t: int, t_prev: int | None = None,
              generator: torch.Generator | None = None, clip=None) -> StepOutput:
    """One ancestral step x_t -> x_{t_prev} ~ p_theta(x_{t_prev} | x_t), with sigma_t^2 = beta_tilde_t.
    (Both steps take (schedule, x_t) and the rest by keyword, in one order: eps, t, t_prev, [eta,] generator, clip.)

    ``t_prev`` < t - 1 steps the respaced chain (Nichol & Dhariwal 2021, Sec. 4); no noise is added
    on the last step (t_prev = -1)."""
    t_prev = int(t) - 1 if t_prev is None else int(t_prev)
    x0, _ = _x0_and_eps(s, x_t, t, eps, clip)
    # p_theta(x_{t-1} | x_t) = N(mu_tilde(x_t, x0_hat), beta_tilde_t I)   (Ho et al. 2020, Eqs. 6-7 with x0_hat)
    mean, variance = q_posterior(s, x0, x_t, t, t_prev)
    if t_prev < 0:
        return StepOutput(mean, x0)
    return StepOutput(mean + variance.sqrt() * randn(x_t.shape, generator, x_t.device, x_t.dtype), x0)


def ddim_sigma(s: Schedule, t: int, t_prev: int, eta: float) -> torch.Tensor:
    """sigma_t(eta) = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)   (Song et al. 2021, Eq. 16)."""
    ref = s.alphas_cumprod.to(torch.float64)
    ab_t = ref[int(t)]
    ab_prev = ref[int(t_prev)] if int(t_prev) >= 0 else torch.ones((), dtype=torch.float64)
    return eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).sqrt()


def ddim_step(s: Schedule, x_t: torch.Tensor, *, eps: torch.Tensor, t: int, t_prev: int, eta: float = 0.0,
              generator: torch.Generator | None = None, clip=None) -> StepOutput:
    """One DDIM step x_t -> x_{t_prev} for any t_prev < t; eta = 0 is deterministic, eta = 1 over
    consecutive steps is DDPM's ancestral step (same mean, variance beta_tilde_t)."""
    x0, eps = _x0_and_eps(s, x_t, t, eps, clip)
    ab_prev = _alpha_bar(s, t_prev, x_t)
    sigma = ddim_sigma(s, t, t_prev, eta).to(x_t.device, x_t.dtype)
    # x_{t-1} = sqrt(a_{t-1}) x0_hat + sqrt(1 - a_{t-1} - sigma_t^2) eps + sigma_t z   (Song et al. 2021, Eq. 12)
    prev = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps
    if eta > 0 and int(t_prev) >= 0:
        prev = prev + sigma * randn(x_t.shape, generator, x_t.device, x_t.dtype)
    return StepOutput(prev, x0)


def guided_eps(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance: eps = eps_uncond + w (eps_cond - eps_uncond); w = 0 is the
    unconditional model, w = 1 the conditional one, w > 1 extrapolates past it.
    (Ho & Salimans 2021, Eq. 6, written with w here = their 1 + w.)"""
    return eps_uncond + w * (eps_cond - eps_uncond)


# ------------------------------------------------------------------ samplers
SPACINGS = ("leading", "trailing")
DEFAULT_SPACING = "leading"  # these functions' default (a model's own: DDPMConfig.sampling_spacing)


def timesteps(T: int, steps: int | None = None, spacing: str = DEFAULT_SPACING) -> list[int]:
    """``steps`` evenly strided timesteps, descending (all T when ``steps`` is None or T, whatever the spacing).

    ``"leading"`` (the default): t_i = floor(i T / steps) for i = steps-1 .. 0. Like the DDIM paper's and
    improved-diffusion's uniform skip, the chain ends at t = 0 and starts one stride below T: for the
    cosine schedule alpha_bar at t = T-1 is ~2e-9, and a DDIM jump from there turns the tiniest eps error
    into a huge x0 estimate.

    ``"trailing"`` (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed"):
    t_i = T - 1 - floor(i T / steps) for i = 0 .. steps-1, so the chain starts at T-1, where x_T ~ N(0, I)
    is what the forward process gives, and its last step jumps from one stride above 0 to x_0. With few
    steps the leading chain starts where the cosine schedule still keeps signal (alpha_bar(900) = 0.024 at
    10 steps) from noise that has none. Where the sampler clamps x0 to the data range (the pixel models),
    the T-1 jump is harmless, and trailing is the better choice (README.md, "Timestep spacing", compares
    the two by classifier-FID)."""
    steps = T if steps is None else int(steps)
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be between 1 and T={T}, not {steps}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, not {spacing!r}")
    if spacing == "trailing":
        return [T - 1 - i * T // steps for i in range(steps)]  # unique: the stride T/steps >= 1
    return [i * T // steps for i in range(steps)][::-1]


def sample_progressive(eps_fn: EpsFn, s: Schedule, shape, steps: int | None = None, sampler: str = "ddim",
                       eta: float = 0.0, generator: torch.Generator | None = None, clip: float | None = None,
                       x_T: torch.Tensor | None = None, device=None, spacing: str = DEFAULT_SPACING
                       ) -> Iterator[SamplerStep]:
    """Run the reverse chain from x_T ~ N(0, I), yielding every step (x_t, predicted x_0, x_{t_prev}).

    ``sampler="ddpm"`` is ancestral sampling (over ``steps`` < T: the respaced chain);
    ``"ddim"`` the DDIM update with ``eta``. Exactly ``steps`` items are yielded; the last one's
    ``prev_sample`` is the sample. ``spacing``: which timesteps a chain of fewer than T steps visits
    (:func:`timesteps`)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, not {sampler!r}")
    ts = timesteps(s.T, steps, spacing)  # checked before any noise is drawn
    x = randn(shape, generator, device) if x_T is None else x_T
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps = eps_fn(x, t)
        if sampler == "ddpm":
            out = ddpm_step(s, x, eps=eps, t=t, t_prev=t_prev, generator=generator, clip=clip)
        else:
            out = ddim_step(s, x, eps=eps, t=t, t_prev=t_prev, eta=eta, generator=generator, clip=clip)
        yield SamplerStep(i, t, x, out.pred_x0, out.prev_sample)
        x = out.prev_sample


def ddpm_sample_progressive(eps_fn: EpsFn, s: Schedule, shape, steps: int | None = None,
                            generator: torch.Generator | None = None, **kw) -> Iterator[SamplerStep]:
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2), every step yielded."""
    return sample_progressive(eps_fn, s, shape, steps, "ddpm", generator=generator, **kw)


def ddim_sample_progressive(eps_fn: EpsFn, s: Schedule, shape, steps: int = 50, eta: float = 0.0,
                            generator: torch.Generator | None = None, **kw) -> Iterator[SamplerStep]:
    """DDIM sampling (Song et al. 2021, Eq. 12) over ``steps`` strided timesteps, every step yielded."""
    return sample_progressive(eps_fn, s, shape, steps, "ddim", eta, generator, **kw)


def sample(eps_fn: EpsFn, s: Schedule, shape, **kw) -> torch.Tensor:
    """The final sample of :func:`sample_progressive` (same arguments)."""
    x = None
    for step in sample_progressive(eps_fn, s, shape, **kw):
        x = step.prev_sample
    return x

