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

    Returns float images (n, n, 28, 28) in [0, 1].
    """
    k = len(plane.components_)
    lo, hi = plane.bounds(span)
    coords = np.tile(plane.center_, (n * n, 1))
    if base is not None:
        coords[:] = base
    coords[:, :2] = grid_coords(n, lo, hi)
    z = torch.as_tensor(plane.inverse_transform(coords), dtype=torch.float32)
    x = model.decode(z).cpu().numpy()[:, 0]  # (n*n, 28, 28)
    return x.reshape(n, n, *x.shape[1:])


def tile(images: np.ndarray, pad: int = 0) -> np.ndarray:
    """(r, c, h, w) -> one (r*h, c*w) mosaic."""
    r, c, h, w = images.shape
    if pad:
        images = np.pad(images, ((0, 0), (0, 0), (0, pad), (0, pad)), constant_values=1.0)
        h, w = h + pad, w + pad
    return images.transpose(0, 2, 1, 3).reshape(r * h, c * w)  # (r, h, c, w) -> (r*h, c*w)
