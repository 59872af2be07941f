"""The Decoupled Autoencoder against its jointly trained baseline, trained live for a lecture.

The multi-seed study of the same pair (both autoencoders, a Gaussian mixture and latent diffusion on each
latent, several seeds) is one of the studies in :mod:`explorer.studies`:

    python -m explorer.studies run dae --threads 1          # train + evaluate (resumable)
    python -m explorer.studies summary dae --ship           # table; seed 0 into checkpoints/

Here both arms train from scratch within a time budget on a few thousand images, for the DAE panel's
"Train live".
"""
from __future__ import annotations

from dataclasses import dataclass


# ---------------------------------------------------------------- a live comparison for lectures
@dataclass
class LiveRun:
    """Both arms trained from scratch for the same number of steps on the same images."""

    models: dict            # arm -> trained DAE model (eval mode, mixture fitted)
    history: dict           # arm -> list of {"step", "stage", "mse"} (training batches)
    metrics: dict           # arm -> {"test_mse", "gmm_loglik", "seconds", "steps", ...}
    steps: int
    train_images: int
    test_images: int


def train_live(x_train, x_test, budget_s: float = 40.0, seed: int = 0, config: dict | None = None,
               batch_size: int = 128, progress=None, classifier=None) -> LiveRun:
    """Train the joint baseline for half of ``budget_s`` seconds, then the DAE for the same number of
    steps (half in each stage), both from the same initial weights and batch order; fit each one's
    mixture prior and measure held-out reconstruction MSE, mixture log-likelihood per dimension and,
    with a ``classifier``, classifier-FID of mixture samples with its real-vs-real floor.
    ``progress(fraction, text)`` is called as it goes."""
    import torch

    cfg = {"latent_dim": 16, "channels": 16, "hidden": 256, **(config or {})}
    say = progress or (lambda f, text: None)
    history, results, trained = {}, {}, {}
    steps = None
    for arm in ("joint", "dae"):
        with torch.random.fork_rng():  # the same initial encoder and decoder in both arms, and the same
            torch.manual_seed(seed)     # dropout masks on a rerun, without moving the process-wide generator
            model, hist, seconds = _train_arm(arm, cfg, x_train, budget_s / 2, steps, seed, batch_size, say)
            results[arm] = _live_metrics(model, x_train, x_test, classifier, seed)
        results[arm].update({"seconds": round(seconds, 1), "steps": len(hist)})
        steps = steps or len(hist)
        history[arm], trained[arm] = hist, model
    say(1.0, "done")
    return LiveRun(trained, history, results, steps, len(x_train), len(x_test))


def _train_arm(arm, cfg, x_train, seconds, steps, seed, batch_size, say):
    """The joint arm trains for ``seconds``; the DAE arm for ``steps`` (half in each stage)."""
    import time

    import torch

    from . import models

    model = models.build("dae", {**cfg, "mode": "joint" if arm == "joint" else "decoupled"})
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)  # the same batches in both arms
    hist, t0 = [], time.perf_counter()
    model.train()
    while True:
        step = len(hist)
        if (arm == "joint" and time.perf_counter() - t0 > seconds and step >= 4) or (arm == "dae" and step >= steps):
            break
        if arm == "dae" and model.stage != (stage := 1 if step < steps // 2 else 2):
            model.set_stage(stage)
        idx = torch.randint(0, len(x_train), (min(batch_size, len(x_train)),), generator=order)
        loss, logs = model((x_train[idx], None))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.append({"step": step + 1, "stage": model.stage, "mse": logs["mse"]})
        if (step + 1) % 5 == 0:
            done = (time.perf_counter() - t0) / seconds if arm == "joint" else (step + 1) / steps
            say(0.5 * min(done, 1.0) + (0.5 if arm == "dae" else 0.0),
                f"{'joint baseline' if arm == 'joint' else f'DAE stage {model.stage}'}: step {step + 1}")
    elapsed = time.perf_counter() - t0
    return model.eval(), hist, elapsed


def _live_metrics(model, x_train, x_test, classifier, seed) -> dict:
    import torch

    from . import metrics

    with torch.no_grad():
        model.fit_prior(model.encode(x_train), random_state=seed)
        extra = model.extra_metrics(x_test)  # the family's own: mixture log-likelihood, stage-1 MSE
        res = {"test_mse": float(metrics.reconstruction_mse(model, x_test)),
               "gmm_loglik": extra.pop("prior_loglik_per_dim"), **extra}
        if classifier is not None:
            k = min(len(x_test), len(x_train), 1000)
            samples = model.sample(k, generator=torch.Generator().manual_seed(1234))
            res.update(metrics.fid_with_floor(classifier, samples, x_test[:k], x_train[:k]))
    return res
