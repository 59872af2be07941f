"""Datasets and model families in one place: a colour dataset registered here, in the test, and nothing else
changed, trains a VAE, exports its decoder and drives every panel's logic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import checkpoints, data, datasets, export, latents, models, training

NAME = "test-squares"


def _squares(split: str):
    """Seeded 32x32 RGB images: a red or a blue square (the class), small or large (a factor), on white."""
    n = 240 if split == "train" else 120
    rng = np.random.default_rng(0 if split == "train" else 1)
    images = np.full((n, 32, 32, 3), 255, np.uint8)
    labels = rng.integers(0, 2, n)
    size = rng.integers(0, 2, n)
    for i in range(n):
        s = 8 if size[i] == 0 else 16
        y, x = rng.integers(0, 32 - s, 2)
        images[i, y:y + s, x:x + s] = (220, 30, 30) if labels[i] == 0 else (30, 30, 220)
    return images, labels, np.stack([size], 1)


@pytest.fixture(scope="module")
def squares_zoo(tmp_path_factory):
    """The dataset registered for this module only, and a tiny VAE and classifier trained on it."""
    datasets.register(datasets.DatasetSpec(
        NAME, (3, 32, 32), ["red", "blue"], _squares, factors={"size": ["small", "large"]}, upload="picture",
        binary={"large": ("size", ["large"])}, attribute_presets={"red → blue": ("blue", "red"),
                                                                   "larger": ("large", "not large")}))
    root = tmp_path_factory.mktemp("squares")
    torch.set_num_threads(2)
    training.train("classifier", NAME, epochs=1, out=root, progress=False, config={"channels": 8, "features": 32})
    training.train("vae-16", NAME, epochs=2, out=root, progress=False,
                   config={"channels": 8, "hidden": 64, "beta": 0.2})
    yield root
    datasets.unregister(NAME)


def test_the_registry_describes_each_dataset():
    assert {"fashion-mnist", "mnist", "mnist-5k", "digits", "faces"} <= set(datasets.names())
    assert datasets.get("fashion-mnist").shape == (1, 28, 28) and datasets.get("faces").shape == (3, 64, 64)
    assert data.class_names("fashion-mnist")[9] == "Ankle boot" and data.class_names("mnist-5k")[3] == "3"
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        datasets.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        datasets.register(datasets.get("digits"))
    with pytest.raises(ValueError, match="shape must be"):
        datasets.DatasetSpec("bad", (2, 28, 28), ["a"], _squares)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_nets_take_every_shape_their_strides_allow(shape):
    for family in ("ae", "vae", "gmm-vae", "dae", "gan"):
        m = models.build(family, {"latent_dim": 4, "channels": 4, "hidden": 16, "image_shape": list(shape)}
                         if family != "gan" else {"latent_dim": 4, "channels": 4, "image_shape": list(shape)}).eval()
        x = m.decode(torch.randn(3, 4))
        assert x.shape == (3, *shape) and 0 <= float(x.min()) and float(x.max()) <= 1
        if m.has_encoder:
            assert m.encode(torch.rand(3, *shape)).shape == (3, 4)
    clf = models.build("classifier", {"channels": 4, "features": 8, "image_shape": list(shape), "factor_sizes": [2, 3]})
    probs = clf.eval().predict_factors(torch.rand(2, *shape))
    assert [p.shape for p in probs] == [(2, 2), (2, 3)]
    with pytest.raises(ValueError, match="multiples of 4"):
        models.build("vae", {"image_shape": [3, 30, 30]})


def test_capabilities_come_from_the_config_alone():
    caps = models.capabilities("gmm-vae", {"adv_weight": 0.5})
    assert caps.has_encoder and caps.is_variational and caps.exports_decoder and caps.label == "GAMIX-VAE"
    ddpm = models.capabilities("ddpm", {"space": "latent"})
    assert not ddpm.has_encoder and not ddpm.exports_decoder and ddpm.generates and ddpm.label == "Latent diffusion"
    assert not models.capabilities("classifier").generates
    assert models.capabilities("gan").exports_decoder and not models.capabilities("gan").has_encoder


def test_a_dataset_registered_in_a_test_trains_exports_and_drives_every_panel(squares_zoo, monkeypatch):
    zoo = checkpoints.Zoo(squares_zoo)
    name = f"{NAME}/vae-16"
    h = zoo.handle(name)
    assert h.image_shape == (3, 32, 32) and h.dataset == NAME and h.caps.exports_decoder
    assert zoo.handle(name) is h  # read once, reused
    assert len(h.sha256) == 64
    model = zoo.load(name, device="cpu")
    x = data.load_assets(NAME).floats()
    assert x.shape[1:] == (3, 32, 32) and model.reconstruct(x[:4]).shape == (4, 3, 32, 32)
    metrics = zoo.info(name)["metrics"]
    assert "test_mse" in metrics and "fid" in metrics  # the card's evaluation ran on colour images

    # the decoder exports to ONNX and matches torch
    path = export.build(zoo, name)
    assert export.metadata(path)["image_shape"] == "3,32,32"
    z = torch.randn(8, 16)
    assert export.max_abs_diff(path, model, z) <= export.TOLERANCE

    # every panel's logic, on the colour dataset
    from explorer.ui import attributes, latent_grid, projection, zoo as zoo_panel
    from explorer.ui.store import Store

    store = Store(zoo, device="cpu")
    grid = latent_grid.LatentGridPanel(store)
    img = grid.decode_coords(name, grid.centre(name))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    spec = grid.page_model(name)
    assert spec["decoder"]["shape"] == [3, 32, 32]

    proj = projection.ProjectionPanel(store)
    assert name in proj.models()
    value, _ = proj.map_value(name, "pca")
    assert value["n"] == len(x)
    by_size, _ = proj.map_value(name, "pca", colour_by="size")  # coloured by a labelled factor
    assert by_size["classes"] == ["small", "large"] and "coloured by size" in by_size["title"]
    assert projection.colour_choices(store, name) == ["class", "size"]
    strips = proj.strips(name, "", [0, 1])
    assert strips is not None and strips.ndim == 3 and strips.shape[-1] == 3  # a colour picture

    attr = attributes.AttributePanel(store)
    assert "red → blue" in attr.presets(name) and "larger" in attr.presets(name)
    v = attr.vector(name, "blue", "red")
    z0 = store.view(name).codes[0]
    imgs = attr.decode(name, latents.along(z0, v, np.array([0.0, 1.0])))
    assert imgs.shape == (2, 32, 32, 3)
    measured, _ = attr.measure(name, imgs, "blue", "red")
    assert set(measured) == {"p(blue)", "p(red)"} and np.isfinite(measured["p(blue)"]).all()
    assert attr.vector(name, "large", "not large").shape == v.shape
    by_factor, _ = attr.measure(name, imgs, "large", "not large")  # judged by the classifier's factor head
    np.testing.assert_allclose(by_factor["p(large)"] + by_factor["p(not large)"], 1, atol=1e-5)
    shown, note, out, strip, z_list, v_list = attr.on_apply(name, "large", "not large", "Test image", 3, None, 1.0, 2.0)
    assert out.shape[-1] == 3 and len(v_list) == 16 and "test image #3" in note

    zp = zoo_panel.ZooPanel(store)
    assert NAME in zp.datasets()
    row = zp.row(name, 0, zp.pair(NAME, 0))
    assert row.error is None and row.samples.shape[1:] == (32, 32, 3)


def test_a_latent_model_can_refer_to_its_autoencoder_instead_of_copying_it(tiny_zoo, tmp_path, monkeypatch):
    import shutil

    from safetensors import safe_open

    shutil.copytree(tiny_zoo / "digits" / "vae-2d", tmp_path / "digits" / "vae-2d")
    monkeypatch.setattr(training, "VAE_BY_REFERENCE", {"ldm-vae-16"})
    training.train("ldm-vae-16", "digits", epochs=1, out=tmp_path, progress=False, evaluate=False,
                   config={"vae": "vae-2d", "hidden": 32, "blocks": 1, "timesteps": 50})
    zoo = checkpoints.Zoo(tmp_path)
    name = "digits/ldm-vae-16"
    with safe_open(str(zoo.path(name) / checkpoints.WEIGHTS), "pt") as f:
        assert f.keys() and not any(k.startswith("vae.") for k in f.keys())  # no copy of the VAE
    ref = zoo.info(name)["vae_weights"]
    assert ref["name"] == "digits/vae-2d" and ref["sha256"] == zoo.handle("digits/vae-2d").sha256
    ldm, vae = zoo.load(name, device="cpu"), zoo.load("digits/vae-2d", device="cpu")
    z = torch.randn(3, 2)
    torch.testing.assert_close(ldm.vae.decode(z), vae.decode(z))  # the referenced weights were loaded
    assert ldm.sample(2, steps=3, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)
    # retraining (here: altering) the autoencoder breaks the reference with a message that says so
    path = zoo.path("digits/vae-2d") / checkpoints.WEIGHTS
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(checkpoints.CheckpointError, match="has changed since"):
        zoo.load(name, device="cpu")


@pytest.mark.browser
def test_the_page_decodes_a_colour_model_like_torch(squares_zoo):
    """The Latent grid over the colour dataset in Chromium: the page's ONNX decode of its point, drawn in colour,
    equals the torch decode (planar C x H x W floats, as the ONNX graph outputs)."""
    playwright = pytest.importorskip("playwright.sync_api")
    from conftest import BROWSER_ARGS, launched_app

    name = f"{NAME}/vae-16"
    with launched_app(squares_zoo) as (url, demo, store), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.goto(url)
        pg.wait_for_function("() => window.lsxLatentGrid?.decoder?.mode === 'page' && window.lsxLatentGrid.frames > 0"
                             " && window.lsxLatentGrid.model.name === '" + name + "'", timeout=120_000)
        last = pg.evaluate("() => ({values: window.lsxLatentGrid.last.values, shape: window.lsxLatentGrid.decoder.shape,"
                           " image: Array.from(window.lsxLatentGrid.last.image)})")
        # the page's drawing reads planar colour: a red and a green pixel come out red and green
        rgb = pg.evaluate("""() => { const c = document.createElement('canvas'); c.width = 2; c.height = 1;
            const x = new Float32Array([1, 0, 0, 1, 0, 0]);  // (C=3, H=1, W=2): R plane, G plane, B plane
            LSX.mosaic(c.getContext('2d'), x, 1, 1, 0, 0, 2, 1, 0, false, [3, 1, 2]);
            return Array.from(c.getContext('2d').getImageData(0, 0, 2, 1).data); }""")
        browser.close()
    assert last["shape"] == [3, 32, 32] and len(last["image"]) == 3 * 32 * 32
    view = store.view(name)
    z = view.plane.inverse_transform(np.asarray(last["values"])[None])
    want = store.model(name).decode(torch.as_tensor(z, dtype=torch.float32)).numpy().ravel()
    assert np.abs(np.asarray(last["image"]) - want).max() <= 1e-4
    assert rgb == [255, 0, 0, 255, 0, 255, 0, 255]


def test_one_dataset_menu_switches_every_panels_models(squares_zoo, tiny_zoo, tmp_path):
    """The app over two datasets: the menu lists both, every panel starts on the first one's models, and switching
    gives every panel's model menu the other dataset's models only (and the zoo its dataset)."""
    import shutil

    from explorer.ui import build_app, dataset_names
    from explorer.ui.store import Store

    for src in (squares_zoo, tiny_zoo):
        shutil.copytree(src, tmp_path, dirs_exist_ok=True)
    store = Store(checkpoints.Zoo(tmp_path), device="cpu")
    assert dataset_names(store) == ["digits", NAME]  # the registry's order
    demo = build_app(store)
    grid = demo.panels["latent_grid"].components["model"]
    assert grid.value.startswith("digits/") and all(v.startswith("digits/") for v, _ in grid.choices)
    updates = demo.switch_dataset(NAME)
    menus = [u for u in updates if isinstance(u, dict) or hasattr(u, "choices")]
    assert len(updates) == len(menus) >= 5
    values = [getattr(u, "value", None) if not isinstance(u, dict) else u.get("value") for u in updates]
    assert f"{NAME}/vae-16" in values and NAME in values  # the Latent grid's model and the zoo's dataset
    for u in updates[:-1]:
        choices = u.get("choices") if isinstance(u, dict) else u.choices
        assert all(str(c[0] if isinstance(c, (list, tuple)) else c).startswith(NAME + "/") for c in choices or [])
    demo.close()
