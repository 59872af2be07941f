import numpy as np
import pytest
import torch

from explorer import latents, metrics, plotting


def test_frechet_distance_zero_for_same_stats_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 5))
    mu, cov = a.mean(0), np.cov(a, rowvar=False)
    assert metrics.frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-6)
    d = [metrics.frechet_distance(mu, cov, mu + s, cov) for s in (0.5, 1.0, 2.0)]
    assert d == pytest.approx([5 * 0.25, 5 * 1.0, 5 * 4.0], rel=1e-6)


def test_classifier_fid_floor_is_below_a_shifted_set():
    torch.manual_seed(0)
    clf = torch.nn.Module()
    clf.features = lambda x: x.flatten(1)[:, :20]
    real = torch.rand(800, 1, 28, 28)
    other_real = torch.rand(800, 1, 28, 28)
    fake = (torch.rand(800, 1, 28, 28) * 0.5)
    res = metrics.fid_with_floor(clf, fake, real, other_real)
    assert res["fid_n"] == 800 and res["fid_floor"] < res["fid"]


def test_latent_plane_identity_for_2d():
    codes = np.random.default_rng(0).normal(size=(100, 2)) * [3, 0.5]
    plane = latents.LatentPlane().fit(codes)
    assert plane.is_identity_ and plane.axis_names() == ["z1", "z2"]
    np.testing.assert_allclose(plane.transform(codes), codes)
    np.testing.assert_allclose(plane.scale_, codes.std(0), rtol=1e-9)


def test_latent_plane_pca_round_trip_with_residual():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 16)) * np.linspace(3, 0.1, 16) + 1.0
    plane = latents.LatentPlane(n_components=6).fit(codes)
    c = plane.components_
    np.testing.assert_allclose(c @ c.T, np.eye(6), atol=1e-9)
    assert np.all(np.diff(plane.scale_) <= 1e-9)  # sorted by variance
    z = codes[:10]
    np.testing.assert_allclose(plane.inverse_transform(plane.transform(z), plane.residual(z)), z, atol=1e-9)
    assert 0 < plane.explained_variance_ratio_.sum() <= 1


def test_grid_coords_layout_and_tile():
    g = latents.grid_coords(3, (-1, -2), (1, 2))
    assert g.shape == (9, 2)
    np.testing.assert_allclose(g[0], [-1, 2])   # top-left: low x, high y
    np.testing.assert_allclose(g[-1], [1, -2])  # bottom-right
    imgs = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    t = latents.tile(imgs)
    assert t.shape == (8, 15)
    np.testing.assert_array_equal(t[4:8, 5:10], imgs[1, 1])


def test_decode_grid_varies_along_axes():
    from explorer import models

    torch.manual_seed(0)
    m = models.build("vae", {"latent_dim": 2, "channels": 8, "hidden": 32}).eval()
    plane = latents.LatentPlane().fit(np.random.default_rng(0).normal(size=(200, 2)))
    grid = latents.decode_grid(m, plane, 4, 2.0)
    assert grid.shape == (4, 4, 28, 28)
    assert not np.allclose(grid[0, 0], grid[-1, -1])


def test_raster_pixel_data_round_trip_and_marker():
    fig = plotting.latent_scatter(np.random.default_rng(0).normal(size=(50, 2)), np.arange(50) % 3,
                                  ["a", "b", "c"], lims=((-3, 3), (-2, 2)))
    r = plotting.Raster.from_figure(fig)
    px, py = r.to_pixel(1.0, -1.5)
    x, y = r.to_data(px, py)
    assert (x, y) == pytest.approx((1.0, -1.5), abs=1e-6)
    assert r.to_data(0, 0) is None  # the figure corner is outside the axes
    marked = r.with_marker(1.0, -1.5, radius=9)
    assert marked.shape == r.pixels.shape
    changed = (marked != r.pixels).any(-1)
    rows, cols = np.nonzero(changed)
    assert changed.sum() > 20
    assert np.hypot(rows - py, cols - px).max() < 9 * 2.2 + 2  # drawn only around the point
