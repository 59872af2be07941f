"""Latent-space helpers: planes through the code cloud, decoded grids.

Fitted helpers follow scikit-learn's habits: ``fit``/``transform``, learned
attributes ending in ``_``.
"""
from __future__ import annotations

import numpy as np
import torch


class LatentPlane:
    """Coordinates for a latent space: the axes themselves for a 2-D code, else its
    top principal directions.

    ``transform(z)`` gives coordinates along the axes; ``inverse_transform(c, residual)``
    maps them back, adding the part of z the axes do not span (``residual``).

    Attributes after ``fit``: ``mean_`` (D,), ``components_`` (k, D) orthonormal rows,
    ``center_`` (k,) the codes' mean coordinates (zero for PCs, the mean code for a 2-D space),
    ``scale_`` (k,) the codes' standard deviation along each axis,
    ``explained_variance_ratio_`` (k,).
    """

    def __init__(self, n_components: int = 6):
        self.n_components = n_components

    def fit(self, codes: np.ndarray) -> "LatentPlane":
        codes = np.asarray(codes, dtype=np.float64)
        d = codes.shape[1]
        if d <= 2:
            self.mean_ = np.zeros(d)
            self.components_ = np.eye(d)
        else:
            self.mean_ = codes.mean(0)
            # principal directions by SVD of the centred codes (rows of vt, by variance)
            _, _, vt = np.linalg.svd(codes - self.mean_, full_matrices=False)
            self.components_ = vt[:min(self.n_components, d)]
        proj = (codes - self.mean_) @ self.components_.T  # (N, k)
        self.center_ = proj.mean(0)
        self.scale_ = proj.std(0) + 1e-12
        total = ((codes - codes.mean(0)) ** 2).sum(1).mean()
        self.explained_variance_ratio_ = proj.var(0) / max(total, 1e-12)
        self.is_identity_ = d <= 2
        return self

    def transform(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, np.float64) - self.mean_) @ self.components_.T  # (N, k)

    def inverse_transform(self, coords: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
        z = self.mean_ + np.asarray(coords, np.float64) @ self.components_  # (N, D)
        return z if residual is None else z + residual

    def residual(self, z: np.ndarray) -> np.ndarray:
        """The part of z orthogonal to the plane's axes (zero for a 2-D code)."""
        z = np.asarray(z, np.float64)
        return z - self.inverse_transform(self.transform(z))

    def bounds(self, span: float, axes: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of the box centre +- ``span`` standard deviations on the first ``axes`` axes."""
        return (self.center_[:axes] - span * self.scale_[:axes], self.center_[:axes] + span * self.scale_[:axes])

    def axis_names(self) -> list[str]:
        if self.is_identity_:
            return [f"z{i + 1}" for i in range(len(self.components_))]
        return [f"PC{i + 1}" for i in range(len(self.components_))]


def grid_coords(n: int, lo: tuple[float, float], hi: tuple[float, float]) -> np.ndarray:
    """(n*n, 2) points of an n x n grid, row-major from the top-left (high axis 2) down."""
    xs = np.linspace(lo[0], hi[0], n)
    ys = np.linspace(hi[1], lo[1], n)  # top row = largest second coordinate, as on a plot
    gx, gy = np.meshgrid(xs, ys)       # (n, n) each
    return np.stack([gx.ravel(), gy.ravel()], 1)


@torch.no_grad()
def decode_grid(model, plane: LatentPlane, n: int, span: float, base: np.ndarray | None = None) -> np.ndarray:
    """Decode an n x n grid over the plane's first two axes, +-``span`` codes' standard
    deviations around the codes' centre. Other coordinates come from ``base`` (default: the mean).

    Returns float images (n, n, H, W) in [0, 1], or (n, n, H, W, 3) for colour models.
    """
    lo, hi = plane.bounds(span)
    coords = np.tile(plane.center_, (n * n, 1))
    if base is not None:
        coords[:] = base
    coords[:, :2] = grid_coords(n, lo, hi)
    z = torch.as_tensor(plane.inverse_transform(coords), dtype=torch.float32)
    x = display(model.decode(z))  # (n*n, H, W[, 3])
    return x.reshape(n, n, *x.shape[1:])


def display(x) -> np.ndarray:
    """Model images (N, C, H, W) in [0, 1] (a tensor or array) -> numpy in the plotting layout: (N, H, W) for
    one channel, (N, H, W, 3) for colour."""
    x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)  # (N, H, W) | (N, C, H, W) -> (N, H, W, C)


def from_display(x) -> torch.Tensor:
    """Images in the plotting layout, (N, H, W) or (N, H, W, 3) (or one image without N), -> float32 (N, C, H, W)."""
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if t.ndim == 2:                      # one grey image (H, W)
        return t[None, None]
    if t.ndim == 3 and t.shape[-1] == 3:  # one colour image (H, W, 3)
        return t.permute(2, 0, 1)[None].contiguous()
    if t.ndim == 3:                      # (N, H, W)
        return t[:, None]
    return t.permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)


def to_shape(x: torch.Tensor, shape) -> torch.Tensor:
    """Images (N, C, H, W) made into ``shape`` (C', H', W'): bilinear resize, grey <-> colour (luma / repeat).
    For anomaly detection with another dataset's images."""
    from torch.nn import functional as F

    c, h, w = (int(v) for v in shape)
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    if x.shape[1] != c:
        x = x.repeat(1, c, 1, 1) if x.shape[1] == 1 else \
            (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])  # ITU-R 601 luma
    return x


def tile(images: np.ndarray, pad: int = 0) -> np.ndarray:
    """(r, c, h, w) -> one (r*h, c*w) mosaic; (r, c, h, w, 3) -> (r*h, c*w, 3)."""
    r, c, h, w = images.shape[:4]
    rest = images.shape[4:]
    if pad:
        images = np.pad(images, ((0, 0), (0, 0), (0, pad), (0, pad)) + ((0, 0),) * len(rest), constant_values=1.0)
        h, w = h + pad, w + pad
    return images.swapaxes(1, 2).reshape(r * h, c * w, *rest)  # (r, h, c, w[, 3]) -> (r*h, c*w[, 3])


# --- interpolation -------------------------------------------------------------------------

def lerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Straight line (1 - t) z0 + t z1 for each t; returns (len(t), D)."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64)[:, None]  # (T, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (Shoemake 1985; White 2016 for latent spaces):
    sin((1-t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1 with cos Ω = z0·z1 / (|z0||z1|).

    Follows the great circle between the two directions, so for Gaussian codes the norm stays
    near the shell where the prior's mass is instead of cutting through the low-norm middle.
    Falls back to :func:`lerp` for (anti)parallel codes, where the circle is undefined."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 < 1e-12 or n1 < 1e-12:
        return lerp(z0, z1, t)
    cos = np.clip(z0 @ z1 / (n0 * n1), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return lerp(z0, z1, t)
    t = np.asarray(t, np.float64)[:, None]  # (T, 1)
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)


# --- attribute vectors ---------------------------------------------------------------------

PROPERTIES = {
    "ink": "mean pixel intensity (how much of the 28×28 frame is covered, and how strongly)",
    "width": "columns spanned by the ink (pixels above 0.25), in pixels",
    "height": "rows spanned by the ink (pixels above 0.25), in pixels",
    "brightness": "mean intensity of the inked pixels (above 0.25): how light the object is",
}
INK_THRESHOLD = 0.25


def pixel_property(images: np.ndarray, name: str) -> np.ndarray:
    """A property measured on the pixels of (N, 28, 28) or (N, 1, 28, 28) images in [0, 1]; (N,)."""
    x = np.asarray(images, np.float64).reshape(len(images), -1, np.shape(images)[-1])  # (N, H, W)
    if name == "ink":
        return x.mean((1, 2))
    inked = x > INK_THRESHOLD
    if name == "brightness":
        return np.where(inked.any((1, 2)), (x * inked).sum((1, 2)) / np.maximum(inked.sum((1, 2)), 1), 0.0)
    if name in ("width", "height"):
        axis = 1 if name == "width" else 2  # width: which columns have ink (any over rows)
        occupied = inked.any(axis)           # (N, W) or (N, H)
        idx = np.arange(occupied.shape[1])
        first = np.where(occupied, idx, occupied.shape[1]).min(1)
        last = np.where(occupied, idx, -1).max(1)
        return np.maximum(last - first + 1, 0).astype(np.float64)
    raise ValueError(f"unknown pixel property {name!r}; choose from {sorted(PROPERTIES)}")


def quantile_masks(values: np.ndarray, q: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(top, bottom): boolean masks of the values in the top and bottom ``q`` quantiles."""
    if not 0 < q <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {q}")
    values = np.asarray(values, np.float64)
    lo, hi = np.quantile(values, [q, 1 - q])
    return values >= hi, values <= lo


def confident_labels(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Each row's most probable class, or -1 where that probability is under ``threshold``: how a generator's
    samples are sorted into classes by a classifier, keeping only the ones it is sure of (DCGAN, Radford et
    al. 2016, averaged the codes of samples showing an attribute)."""
    probs = np.asarray(probs)
    top = probs.argmax(axis=1)
    return np.where(probs[np.arange(len(probs)), top] >= threshold, top, -1)


def attribute_vector(codes: np.ndarray, group_a: np.ndarray, group_b: np.ndarray) -> np.ndarray:
    """mean code of group A minus mean code of group B (boolean masks or index arrays over ``codes``)."""
    codes = np.asarray(codes, np.float64)
    a, b = codes[group_a], codes[group_b]
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"attribute groups must be non-empty (A has {len(a)} codes, B has {len(b)})")
    return a.mean(0) - b.mean(0)


def along(z: np.ndarray, vector: np.ndarray, strengths: np.ndarray) -> np.ndarray:
    """z + s·vector for each strength s; (len(strengths), D)."""
    return np.asarray(z, np.float64)[None] + np.asarray(strengths, np.float64)[:, None] * vector[None]


def analogy(z_a: np.ndarray, z_b: np.ndarray, z_c: np.ndarray) -> np.ndarray:
    """A − B + C: what C becomes after the change that turns B into A."""
    return np.asarray(z_a, np.float64) - np.asarray(z_b, np.float64) + np.asarray(z_c, np.float64)


class AggregatePrior:
    """A Gaussian mixture over a VAE's aggregate posterior q(z) = E_x q(z|x): where its codes actually are.

    Sampling a VAE from N(0, I) decodes the prior's regions that no training image's posterior covers into
    blur; sampling from this mixture, fitted to one posterior draw per training image, stays where the
    decoder was trained. ``fit(codes)`` (scikit-learn's ``GaussianMixture``, full covariances) sets
    ``weights_`` (K,), ``means_`` (K, D) and ``cholesky_`` (K, D, D, lower factors of the covariances);
    ``sample(n, generator)`` draws z = mu_k + L_k eps with k ~ weights. ``to_dict``/``from_dict`` keep it
    as plain JSON beside the checkpoint (no pickled code).
    """

    def __init__(self, n_components: int = 10, random_state: int = 0):
        self.n_components, self.random_state = n_components, random_state

    def fit(self, codes) -> "AggregatePrior":
        from sklearn.mixture import GaussianMixture

        gmm = GaussianMixture(self.n_components, covariance_type="full", reg_covar=1e-4,
                              random_state=self.random_state).fit(np.asarray(codes, dtype=np.float64))
        self.weights_ = torch.from_numpy(gmm.weights_).double()
        self.means_ = torch.from_numpy(gmm.means_).double()
        self.cholesky_ = torch.linalg.cholesky(torch.from_numpy(gmm.covariances_).double())
        return self

    @classmethod
    def fit_model(cls, model, x: torch.Tensor, generator: torch.Generator | None = None,
                  n_components: int = 10) -> "AggregatePrior":
        """Fit to one draw z ~ q(z|x) per image of ``x`` (the model's ``posterior_sample``)."""
        codes = torch.cat([model.posterior_sample(x[i:i + 1000], generator).cpu() for i in range(0, len(x), 1000)])
        return cls(n_components).fit(codes.numpy())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, D) float32 codes."""
        k = torch.multinomial(self.weights_, n, replacement=True, generator=generator)            # (n,)
        eps = torch.randn(n, self.means_.shape[1], generator=generator, dtype=torch.float64)        # (n, D)
        return (self.means_[k] + (self.cholesky_[k] @ eps.unsqueeze(-1)).squeeze(-1)).float()    # (n, D)

    def to_dict(self) -> dict:
        return {"n_components": self.n_components, "random_state": self.random_state,
                "weights": self.weights_.tolist(), "means": self.means_.tolist(), "cholesky": self.cholesky_.tolist()}

    @classmethod
    def from_dict(cls, d: dict, latent_dim: int | None = None) -> "AggregatePrior":
        """Rebuild from :meth:`to_dict`; ValueError when the arrays disagree (or differ from ``latent_dim``)."""
        prior = cls(int(d["n_components"]), int(d.get("random_state", 0)))
        prior.weights_ = torch.tensor(d["weights"], dtype=torch.float64)
        prior.means_ = torch.tensor(d["means"], dtype=torch.float64)
        prior.cholesky_ = torch.tensor(d["cholesky"], dtype=torch.float64)
        k, dim = prior.means_.shape
        if (prior.weights_.shape != (k,) or prior.cholesky_.shape != (k, dim, dim) or k != prior.n_components
                or (latent_dim is not None and dim != latent_dim) or not torch.isfinite(prior.cholesky_).all()
                or (prior.weights_ < 0).any() or abs(float(prior.weights_.sum()) - 1) > 1e-6):
            raise ValueError("the aggregate prior's arrays do not fit together")
        return prior
