"""Latent arithmetic, user-image preparation, projections and their cache, the projector export,
and the Projection / Attribute vectors panels through gradio_client."""
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import data, latents, metrics, projection


# --- interpolation and attribute arithmetic ---------------------------------------------------

def test_slerp_hits_endpoints_and_keeps_the_norm_where_lerp_sags():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=16), rng.normal(size=16)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)  # same norm
    ts = np.linspace(0, 1, 11)
    s, l = latents.slerp(z0, z1, ts), latents.lerp(z0, z1, ts)
    np.testing.assert_allclose(s[0], z0, atol=1e-12); np.testing.assert_allclose(s[-1], z1, atol=1e-12)
    np.testing.assert_allclose(l[5], (z0 + z1) / 2)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), np.linalg.norm(z0), rtol=1e-9)
    assert np.linalg.norm(l[5]) < 0.9 * np.linalg.norm(z0)  # independent codes: the chord cuts inside
    # parallel codes have no great circle: slerp falls back to the straight line
    np.testing.assert_allclose(latents.slerp(z0, 2 * z0, ts), latents.lerp(z0, 2 * z0, ts))


def test_attribute_vector_recovers_a_planted_shift_and_analogy_applies_it():
    rng = np.random.default_rng(1)
    shift = rng.normal(size=8)
    b = rng.normal(size=(400, 8))
    a = rng.normal(size=(400, 8)) + shift
    codes = np.vstack([a, b])
    is_a = np.r_[np.ones(400, bool), np.zeros(400, bool)]
    v = latents.attribute_vector(codes, is_a, ~is_a)
    assert np.linalg.norm(v - shift) < 0.25 * np.linalg.norm(shift)
    z = rng.normal(size=8)
    np.testing.assert_allclose(latents.along(z, v, np.array([0.0, 1.0]))[1], z + v)
    np.testing.assert_allclose(latents.analogy(a[0], b[0], b[1]), b[1] + (a[0] - b[0]))
    with pytest.raises(ValueError, match="non-empty"):
        latents.attribute_vector(codes, np.zeros(800, bool), is_a)


def test_pixel_properties_of_a_known_rectangle():
    img = np.zeros((2, 28, 28))
    img[0, 5:15, 8:12] = 0.8     # 10 rows x 4 columns
    img[1, 2:4, 0:28] = 1.0      # 2 rows x 28 columns
    np.testing.assert_allclose(latents.pixel_property(img, "width"), [4, 28])
    np.testing.assert_allclose(latents.pixel_property(img, "height"), [10, 2])
    np.testing.assert_allclose(latents.pixel_property(img, "ink"), [40 * 0.8 / 784, 56 / 784])
    np.testing.assert_allclose(latents.pixel_property(img, "brightness"), [0.8, 1.0])
    top, bottom = latents.quantile_masks(np.arange(100), 0.2)
    assert top.sum() == bottom.sum() == 20 and not (top & bottom).any()
    with pytest.raises(ValueError, match="unknown pixel property"):
        latents.pixel_property(img, "colour")


# --- user images --------------------------------------------------------------------------------

def _save(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    buf.seek(0)
    return Image.open(buf)


def _dark_boot(w=300, h=200, fg=20, bg=235):
    a = np.full((h, w, 3), bg, np.uint8)
    a[40:160, 50:250] = fg  # a wide dark object on a light background
    return a


def test_prepare_image_inverts_crops_scales_and_centres_a_photo_like_jpeg():
    img = _save(Image.fromarray(_dark_boot()), "JPEG", quality=90)
    x, notes = data.prepare_image(img, "fashion-mnist")
    assert x.shape == (28, 28) and x.dtype == np.float32 and x.max() == pytest.approx(1.0)
    assert any("inverted" in n for n in notes)
    cols, rows = np.flatnonzero((x > 0.5).any(0)), np.flatnonzero((x > 0.5).any(1))
    assert cols[0] <= 1 and cols[-1] >= 26       # the longest side fills the 28 px frame
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1  # and it is centred vertically
    assert x[0].max() < 0.2 and x[-1].max() < 0.2     # background is black


def test_prepare_image_mnist_style_fits_20px_and_centres_by_mass():
    a = np.zeros((100, 60), np.uint8)
    a[10:90, 20:40] = 255  # light stroke on black, off-centre
    x, notes = data.prepare_image(a, "mnist-5k")
    rows = np.flatnonzero((x > 0.5).any(1))
    assert rows[-1] - rows[0] + 1 <= 21
    cy = (x.sum(1) * np.arange(28)).sum() / x.sum()
    cx = (x.sum(0) * np.arange(28)).sum() / x.sum()
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert not any("inverted" in n for n in notes)


def test_prepare_image_odd_inputs(tmp_path):
    # transparent background with a dark drawing: transparency becomes background
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 24:40] = (10, 10, 10, 255)
    x, _ = data.prepare_image(Image.fromarray(rgba, "RGBA"))
    assert x.max() == pytest.approx(1.0) and x[0, 0] == 0
    # animated GIF: the first frame is used
    f0 = Image.fromarray(np.pad(np.full((10, 30), 255, np.uint8), 9))   # wide bar
    f1 = Image.fromarray(np.pad(np.full((30, 10), 255, np.uint8), 9))   # tall bar
    path = tmp_path / "anim.gif"
    f0.save(path, save_all=True, append_images=[f1], duration=100, loop=0)
    x, _ = data.prepare_image(path)
    assert (x > 0.5).any(0).sum() > (x > 0.5).any(1).sum()  # wider than tall, like frame 0
    # 16-bit grey, palette, 1x1, blank
    a16 = (np.pad(np.full((20, 20), 60000, np.uint16), 10)).astype(np.uint16)
    im16 = Image.fromarray(a16)
    assert im16.mode.startswith("I;16")
    x16, _ = data.prepare_image(im16)
    assert x16.max() == pytest.approx(1.0)
    xp, _ = data.prepare_image(Image.fromarray(_dark_boot()).convert("P"))
    assert xp.max() == pytest.approx(1.0)
    x1, notes1 = data.prepare_image(np.zeros((1, 1), np.uint8))
    assert x1.shape == (28, 28) and x1.max() == 0 and any("no object" in n for n in notes1)
    # corrupt file, and text renamed .png: a clear ImageError, nothing else
    png = io.BytesIO(); Image.fromarray(_dark_boot()).save(png, "PNG")
    (tmp_path / "cut.png").write_bytes(png.getvalue()[:200])
    (tmp_path / "text.png").write_text("not an image at all")
    for bad in ("cut.png", "text.png"):
        with pytest.raises(data.ImageError, match="could not read"):
            data.prepare_image(tmp_path / bad)


# --- projections ----------------------------------------------------------------------------------

def test_trustworthiness_is_one_for_an_isometry_and_low_for_a_shuffle():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(300, 2))
    assert projection.trustworthiness(codes, codes @ np.array([[0, 1], [-1, 0]])) == pytest.approx(1.0)
    assert projection.trustworthiness(codes, rng.permutation(codes)) < 0.65


def test_projection_methods_and_parameter_errors():
    codes = np.random.default_rng(0).normal(size=(200, 6))
    for method in ("pca", "tsne"):
        out = projection.project(codes, method)
        assert out.shape == (200, 2) and np.isfinite(out).all()
    pca = projection.project(codes, "pca")
    np.testing.assert_allclose(projection.project(codes, "pca"), pca)  # deterministic
    with pytest.raises(ValueError, match="unknown projection method"):
        projection.project(codes, "isomap")
    with pytest.raises(ValueError, match="perplexity"):
        projection.check_method("tsne", {"n_neighbors": 5})


@pytest.mark.slow
def test_umap_projection_keeps_clusters_apart():
    rng = np.random.default_rng(0)
    codes = np.vstack([rng.normal(size=(100, 8)), rng.normal(size=(100, 8)) + 8])
    out = projection.project(codes, "umap", n_neighbors=10)
    assert out.shape == (200, 2)
    assert projection.trustworthiness(codes, out) > 0.9


def test_projection_cache_is_keyed_by_weights_and_method(tiny_zoo, tmp_path):
    from explorer.checkpoints import Zoo

    zoo = Zoo(tiny_zoo)
    cache = projection.ProjectionCache([tmp_path / "shipped", tmp_path / "user"], tmp_path / "user")
    first = projection.for_checkpoint(zoo, "digits/ae-16", "pca", cache=cache)
    assert first.source == "computed" and first.coords.shape == (len(data.load_assets("digits")), 2)
    again = projection.for_checkpoint(zoo, "digits/ae-16", "pca", cache=cache)
    assert again.source == "cache" and again.key == first.key
    np.testing.assert_array_equal(again.coords, first.coords)
    assert 0.5 < first.trustworthiness <= 1.0
    other = projection.for_checkpoint(zoo, "digits/vae-2d", "pca", cache=cache)
    assert other.key != first.key  # different weights, different entry
    # a damaged cache file is recomputed, not fatal
    next((tmp_path / "user").glob(f"pca-{first.key}.npz")).write_bytes(b"garbage")
    assert projection.for_checkpoint(zoo, "digits/ae-16", "pca", cache=cache).source == "computed"


def test_shipped_projections_match_their_checkpoints():
    """Each shipped encoder has a UMAP map under the key of its current weights (none stale)."""
    from explorer.checkpoints import zoo

    for name in [n for f in ("ae", "vae", "gmm-vae") for n in zoo.available(f)]:
        ds = data.load_assets(zoo.info(name)["dataset"])
        key = projection.cache_key(projection.file_digest(zoo.path(name) / "model.safetensors"),
                                   projection.array_digest(ds.images.numpy()), "umap",
                                   projection.check_method("umap"))
        path = zoo.path(name) / "projections" / f"umap-{key}.npz"
        assert path.is_file(), f"{name}: no shipped UMAP; run `python -m explorer.projection {name}`"


def test_projector_export_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n = 50
    codes = rng.normal(size=(n, 4))
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    path = projection.export_projector(tmp_path / "p.zip", codes, labels, ["a", "b\tc", "d"], images)
    with zipfile.ZipFile(path) as z:
        assert set(z.namelist()) == {"tensors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt"}
        tensors = np.loadtxt(io.StringIO(z.read("tensors.tsv").decode()), delimiter="\t")
        meta = z.read("metadata.tsv").decode().splitlines()
        sprite = np.asarray(Image.open(io.BytesIO(z.read("sprite.png"))))
        config = z.read("projector_config.pbtxt").decode()
    np.testing.assert_allclose(tensors, codes, rtol=1e-5, atol=1e-6)
    assert meta[0] == "label\tclass" and len(meta) == n + 1
    assert [int(r.split("\t")[0]) for r in meta[1:]] == labels.tolist()
    assert all(len(r.split("\t")) == 2 for r in meta)  # a tab inside a class name was escaped
    side = int(np.ceil(np.sqrt(n)))
    assert sprite.shape == (side * 28, side * 28) and sprite.shape[0] <= projection.SPRITE_MAX
    np.testing.assert_array_equal(sprite[28:56, 0:28], images[side])  # row 1, column 0
    for field in ('tensor_path: "tensors.tsv"', 'metadata_path: "metadata.tsv"', 'image_path: "sprite.png"',
                  "single_image_dim: 28"):
        assert field in config


def test_sprite_shrinks_to_the_projector_limit():
    big = projection.sprite(np.zeros((100_000, 28, 28), np.uint8))
    assert big.shape[0] == big.shape[1] <= projection.SPRITE_MAX


# --- metrics used by the panels ----------------------------------------------------------------------

def test_linear_probe_separates_separable_codes_and_not_random_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    codes = rng.normal(size=(600, 4)) + 4 * np.eye(4)[y]
    good = metrics.linear_probe_accuracy(codes[:400], y[:400], codes[400:], y[400:])
    bad = metrics.linear_probe_accuracy(codes[:400], rng.permutation(y[:400]), codes[400:], y[400:])
    assert good["linear_probe"] > 0.95 and bad["linear_probe"] < 0.6 and good["probe_train"] == 400


def test_roc_auc_and_reconstruction_errors(tiny_zoo):
    assert metrics.roc_auc([0.1, 0.2, 0.3], [0.4, 0.5]) == 1.0
    assert metrics.roc_auc([0.4, 0.5], [0.1, 0.2]) == 0.0
    from explorer.checkpoints import Zoo

    model = Zoo(tiny_zoo).load("digits/ae-16")
    x = data.load_assets("digits").floats()[:40]
    err = metrics.reconstruction_errors(model, x)
    assert err.shape == (40,) and (err >= 0).all()
    assert err.mean() == pytest.approx(metrics.reconstruction_mse(model, x), rel=1e-4)
    noise = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert metrics.roc_auc(err, metrics.reconstruction_errors(model, noise)) > 0.9


# --- the panels through gradio_client -------------------------------------------------------------------

@pytest.mark.slow
def test_pick_endpoint_decodes_points_and_interpolates(served_app):
    from gradio_client import Client

    client = Client(served_app[0], verbose=False)
    row, code, strips = client.predict("digits/ae-16", "(none)", 3, 10, api_name="/pick")
    assert Image.open(row["path"] if isinstance(row, dict) else row).size[0] > 100
    assert "#10 " in code and "Code under ae-16" in code
    assert strips is not None
    with pytest.raises(Exception, match="index"):
        client.predict("digits/ae-16", "(none)", -1, 10_000, api_name="/pick")


@pytest.mark.slow
def test_attribute_endpoint_moves_the_measured_property(served_app, tmp_path):
    from gradio_client import Client, handle_file

    _, demo, store = served_app
    panel = demo.panels["attributes"]
    name = "digits/ae-16"
    z = panel.store.view(name).codes[0]
    v = panel.vector(name, "top 20% ink", "bottom 20% ink")
    imgs = panel.decode(name, latents.along(z, v, np.array([-2.0, 0.0, 2.0])))
    assert np.diff(latents.pixel_property(imgs, "ink")).min() > 0  # more ink along +v

    client = Client(served_app[0], verbose=False)
    out = client.predict(name, "7", "1", "Test image", 5, None, 1.0, 2.0, api_name="/attribute")
    assert "test image #5" in out[1]
    # an upload: dark digit on a light JPEG
    a = np.full((90, 60, 3), 230, np.uint8); a[10:80, 25:35] = 15
    Image.fromarray(a).save(tmp_path / "one.jpg", quality=90)
    out = client.predict(name, "7", "1", "Upload", 0, handle_file(str(tmp_path / "one.jpg")), 0.5, 2.0,
                         api_name="/attribute")
    assert "your image" in out[1] and "inverted" in out[1]
    (tmp_path / "bad.png").write_text("no")
    with pytest.raises(Exception, match="can't be used"):
        client.predict(name, "7", "1", "Upload", 0, handle_file(str(tmp_path / "bad.png")), 0.5, 2.0,
                       api_name="/attribute")
    with pytest.raises(Exception, match="same"):
        client.predict(name, "7", "7", "Test image", 5, None, 1.0, 2.0, api_name="/attribute")


@pytest.mark.slow
def test_anomaly_and_analogy_endpoints(served_app):
    from gradio_client import Client

    client = Client(served_app[0], verbose=False)
    hist, text, gallery = client.predict("digits/ae-16", "uniform noise", 95, "Test image", None,
                                         api_name="/anomaly")
    auc = float(text.split("ROC AUC ")[1].split("*")[0])
    assert 0.9 < auc <= 1.0 and len(gallery) == 8
    img = client.predict("digits/ae-16", 0, 1, 2, api_name="/analogy")
    assert Image.open(img).size[0] > 200


@pytest.mark.slow
def test_export_endpoint_gives_a_projector_zip(served_app):
    from gradio_client import Client

    client = Client(served_app[0], verbose=False)
    path = client.predict("digits/ae-16", api_name="/export_projector")
    with zipfile.ZipFile(path) as z:
        rows = z.read("tensors.tsv").decode().strip().splitlines()
    assert len(rows) == len(data.load_assets("digits")) and len(rows[0].split("\t")) == 16
