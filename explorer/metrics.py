"""Classifier-FID, reconstruction error, ELBO and importance-weighted NLL.

Conventions (README.md's tables keep them): every FID is reported with its N and the
real-vs-real floor at that N, and is a *classifier*-FID on our in-project
classifier's penultimate features, never comparable to Inception-FID figures.
Likelihoods are in nats per image under the Bernoulli decoder.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _batched(fn, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch]).cpu() for i in range(0, len(x), batch)])


def off_class(classifier, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the samples ``x`` whose requested class ``labels`` the classifier gives p < 0.5, i.e. a
    neighbouring class or (diffusion at eta = 0) textured clutter."""
    device = next(classifier.parameters()).device
    with torch.no_grad():
        p = _batched(lambda xb: classifier.predict_proba(xb.to(device)), x)  # (N, classes)
    return p[torch.arange(len(x)), labels.cpu()] < 0.5


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})  (Dowson & Landau 1982), in float64."""
    from scipy import linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # near-singular product: nudge the diagonals
        eps = 1e-6 * np.eye(len(sigma1))
        covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_stats(classifier, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    feats = _batched(classifier.features, x).double().numpy()
    return feats.mean(0), np.cov(feats, rowvar=False)


def classifier_fid(classifier, x_a: torch.Tensor, x_b: torch.Tensor) -> float:
    """Classifier-FID between two image sets (N, C, H, W) in [0, 1]."""
    return frechet_distance(*feature_stats(classifier, x_a), *feature_stats(classifier, x_b))


def fid_with_floor(classifier, samples: torch.Tensor, test: torch.Tensor, train: torch.Tensor) -> dict:
    """FID of ``samples`` against ``test``, with the real-vs-real floor (``train`` vs ``test``) at the same N."""
    n = min(len(samples), len(test), len(train))
    ref = feature_stats(classifier, test[:n])
    return {"fid": frechet_distance(*feature_stats(classifier, samples[:n]), *ref),
            "fid_floor": frechet_distance(*feature_stats(classifier, train[:n]), *ref),
            "fid_n": n}


def reconstruction_mse(model, x: torch.Tensor) -> float:
    """Mean squared error per pixel between x and decode(encode(x))."""
    rec = _batched(model.reconstruct, x)
    return float((rec - x).pow(2).mean())


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def sharpness(x: torch.Tensor) -> float:
    """Mean squared response of the discrete Laplacian over the interior pixels of (N, C, H, W) images, each
    channel alone: the energy of their finest detail. Zero for constant or linear ramps; blurring lowers it."""
    from torch.nn import functional as F

    x = x.float().cpu()
    c = x.shape[1]
    return float(F.conv2d(x, LAPLACIAN.view(1, 1, 3, 3).repeat(c, 1, 1, 1), groups=c).pow(2).mean())


def relative_sharpness(x: torch.Tensor, real: torch.Tensor) -> float:
    """``sharpness(x) / sharpness(real)``: 1 means as much fine detail as real images, below 1 blurrier.
    The texture term of a VAE + PatchGAN should move its reconstructions and samples towards 1."""
    return sharpness(x) / sharpness(real)


def elbo_and_iwae(model, x: torch.Tensor, k: int = 100, batch: int = 50) -> dict:
    """Test ELBO (1 sample, averaged over the k draws) and the importance-weighted
    bound log (1/k) sum_i w_i (Burda et al. 2016), whose negation estimates -log p(x)."""
    elbos, iwaes = [], []
    for i in range(0, len(x), batch):
        lw = model.log_weights(x[i:i + batch], k).cpu().double()   # (B, k)
        elbos.append(lw.mean(1))
        iwaes.append(torch.logsumexp(lw, 1) - math.log(k))
    return {"elbo": float(torch.cat(elbos).mean()), "iw_nll": float(-torch.cat(iwaes).mean()),
            "iw_samples": k, "iw_images": len(x)}


def classifier_accuracy(classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    pred = _batched(lambda b: classifier.predict_proba(b).argmax(-1), x)
    return float((pred == y.cpu()).float().mean())


def linear_probe_accuracy(train_codes, train_labels, test_codes, test_labels, max_train: int = 10000,
                          seed: int = 0) -> dict:
    """How linearly readable the classes are from a latent: a multinomial logistic regression
    (scikit-learn, standardised codes) fitted on train-split codes, accuracy on test-split codes.

    At most ``max_train`` training codes (a seeded subset) keep it to seconds on a CPU."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_codes, train_labels = np.asarray(train_codes), np.asarray(train_labels)
    if len(train_codes) > max_train:
        keep = np.random.default_rng(seed).choice(len(train_codes), max_train, replace=False)
        train_codes, train_labels = train_codes[keep], train_labels[keep]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train_codes, train_labels)
    acc = float((probe.predict(np.asarray(test_codes)) == np.asarray(test_labels)).mean())
    return {"linear_probe": acc, "probe_train": int(len(train_codes)), "probe_test": int(len(test_codes))}


@torch.no_grad()
def reconstruction_errors(model, x: torch.Tensor) -> np.ndarray:
    """Per-image reconstruction MSE (N,), the anomaly score of the attribute panel."""
    err = _batched(lambda b: ((model.reconstruct(b).clamp(0, 1).cpu() - b.cpu()) ** 2).flatten(1).mean(1), x)
    return err.double().numpy()


def roc_auc(scores_normal, scores_anomalous) -> float:
    """Area under the ROC curve for "higher score = anomalous": the probability that a random
    anomalous item scores higher than a random normal one (0.5 = chance, 1 = perfect)."""
    from sklearn.metrics import roc_auc_score

    s0, s1 = np.asarray(scores_normal, np.float64), np.asarray(scores_anomalous, np.float64)
    return float(roc_auc_score(np.r_[np.zeros(len(s0)), np.ones(len(s1))], np.r_[s0, s1]))
