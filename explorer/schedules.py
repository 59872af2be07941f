"""Noise schedules: pure functions of T -> 1-D tensors, named after their papers.

Everything is computed in float64 and cast once, at the end, by :func:`make_schedule`
(the cosine schedule's betas near t = T and the products of 1000 alphas lose digits
in float32). Naming follows improved-diffusion's ``get_named_beta_schedule`` and
``betas_for_alpha_bar``.

    >>> s = make_schedule("cosine", 1000)
    >>> s.alphas_cumprod[0], s.alphas_cumprod[-1]        # close to 1, close to 0

Index ``t`` runs 0..T-1 (code) for the paper's 1..T: ``betas[t]`` is the paper's beta_{t+1}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable

import torch

NAMES = ("linear", "cosine")


def linear_beta_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. 2020 (DDPM), Sec. 4: beta_t linear from 1e-4 to 0.02 over T = 1000 steps.

    For other T the end points are scaled by 1000 / T (as improved-diffusion does), so the
    chain still ends near pure noise. Returns (T,) float64.
    """
    scale = 1000.0 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


def cosine_alpha_bar(t: torch.Tensor, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal 2021, Eq. 17 without the normalisation: f(t) = cos^2(((t + s) / (1 + s)) * pi / 2),
    for t in [0, 1] (= t/T). alpha_bar_t = f(t) / f(0)."""
    return torch.cos((t.to(torch.float64) + s) / (1 + s) * math.pi / 2) ** 2


def betas_for_alpha_bar(T: int, alpha_bar: Callable[[torch.Tensor], torch.Tensor],
                        max_beta: float = 0.999) -> torch.Tensor:
    """Betas whose cumulative product follows ``alpha_bar`` on [0, 1]:
    beta_t = min(1 - alpha_bar(t/T) / alpha_bar((t-1)/T), max_beta)  (Nichol & Dhariwal 2021, Sec. 3.2).
    Returns (T,) float64."""
    grid = torch.arange(T + 1, dtype=torch.float64) / T  # (T+1,): 0, 1/T, ..., 1
    ab = alpha_bar(grid)
    return (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)


def cosine_beta_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021 (improved DDPM): the cosine alpha_bar with offset s = 0.008,
    betas clipped at 0.999 to avoid the singularity at t = T. Returns (T,) float64."""
    return betas_for_alpha_bar(T, lambda u: cosine_alpha_bar(u, s), max_beta)


def get_named_beta_schedule(name: str, T: int) -> torch.Tensor:
    """(T,) float64 betas of the schedule ``name`` ("linear" | "cosine")."""
    if name == "linear":
        return linear_beta_schedule(T)
    if name == "cosine":
        return cosine_beta_schedule(T)
    raise ValueError(f"unknown beta schedule {name!r}; choose one of {NAMES}")


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s)  (Ho et al. 2020, notation above Eq. 4)."""
    return torch.cumprod(1.0 - betas.to(torch.float64), dim=0)


def log_snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """log SNR(t) = log(alpha_bar_t / (1 - alpha_bar_t))  (Kingma et al. 2021, VDM Eq. 4 / Sec. 3)."""
    ab = alpha_bar.to(torch.float64)
    return torch.log(ab) - torch.log1p(-ab)


def alpha_bar_from_log_snr(lam: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`log_snr`: alpha_bar = sigmoid(lambda)."""
    return torch.sigmoid(lam.to(torch.float64))


@dataclass(frozen=True)
class Schedule:
    """A beta schedule and every derived 1-D quantity the samplers index by t (all (T,), one dtype)."""

    name: str
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor            # alpha_bar_t
    alphas_cumprod_prev: torch.Tensor       # alpha_bar_{t-1}, with alpha_bar_0 := 1
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    posterior_variance: torch.Tensor        # beta_tilde_t
    log_snr: torch.Tensor

    @property
    def T(self) -> int:
        return len(self.betas)

    def to(self, device=None, dtype=None) -> "Schedule":
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return Schedule(**{k: (v.to(device=device, dtype=dtype) if isinstance(v, torch.Tensor) else v)
                           for k, v in kw.items()})


def make_schedule(name: str, T: int = 1000, dtype: torch.dtype = torch.float32) -> Schedule:
    """The named schedule with its derived quantities, computed in float64 and cast once to ``dtype``."""
    betas = get_named_beta_schedule(name, T)
    ab = alphas_cumprod(betas)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])  # (T,)
    # beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t   (Ho et al. 2020, Eq. 7)
    post_var = (1 - ab_prev) / (1 - ab) * betas
    cast = lambda v: v.to(dtype)  # noqa: E731
    return Schedule(name, cast(betas), cast(ab), cast(ab_prev), cast(ab.sqrt()), cast((1 - ab).sqrt()),
                    cast(post_var), cast(log_snr(ab)))
