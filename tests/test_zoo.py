"""The Model zoo: the comparison table (explorer.zoo_table) and the panel (explorer.ui.zoo), over a tiny zoo
of random-weight models with hand-written cards, plus the app through gradio_client and a browser."""
import json
import math
import shutil

import gradio as gr
import numpy as np
import pytest
import torch

from conftest import BROWSER_ARGS, launched_app, randomised
from explorer import checkpoints, data, diffusion, models, zoo_table
from explorer.checkpoints import Zoo

HW = "Test CPU (2 cores), 1 torch thread(s)"
SMALL = {"channels": 8, "hidden": 32}
# distinctive numbers, none a rounding tie, so the formatted table shows them unambiguously
CARDS = {
    "ae-8": {"test_mse": 0.01234, "fid": 111.1, "fid_floor": 1.5, "fid_n": 5000,
             "zoo": {"fid": 42.31, "fid_floor": 3.17, "fid_n": 2000, "sample_ms_per_image": 0.517,
                     "sample_hardware": HW}},
    "vae-8": {"test_mse": 0.02345, "zoo": {"fid": 37.46, "fid_floor": 3.17, "fid_n": 2000,
                                           "sample_ms_per_image": 0.611, "sample_hardware": HW}},
    "dae-8": {"test_mse": 0.03456, "zoo": {"fid": 29.83, "fid_floor": 3.17, "fid_n": 2000,
                                           "sample_ms_per_image": 0.702, "sample_hardware": HW}},
    "dae-8-joint": {"test_mse": 0.04567, "fid": 88.81, "fid_floor": 1.5, "fid_n": 5000},  # no zoo block yet
    "gan-8": {"zoo": {"fid": 51.27, "fid_floor": 3.17, "fid_n": 2000, "sample_ms_per_image": 0.333,
                      "sample_hardware": HW}},
    "ddpm-tiny": {"test_eps_mse": 0.07, "fid": 19.53, "fid_floor": 3.17, "fid_n": 2000,
                  "sample_ms_per_image": 273.7, "sample_hardware": HW,
                  "zoo": {"fid": 19.53, "fid_floor": 3.17, "fid_n": 2000, "sample_ms_per_image": 273.7,
                          "sample_hardware": HW}},
    "ldm-vae-8": {"test_eps_mse": 0.38, "fid": 74.49, "fid_floor": 3.17, "fid_n": 2000,
                  "sample_ms_per_image": 1.94, "sample_hardware": HW},
}
WALL = {"ae-8": 611.0, "vae-8": 622.0, "dae-8": 633.0, "dae-8-joint": 644.0, "gan-8": 655.0, "ddpm-tiny": 4450.0,
        "ldm-vae-8": 577.0}
ORDER = ["ae-8", "vae-8", "dae-8", "dae-8-joint", "gan-8", "ddpm-tiny", "ldm-vae-8"]


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory):
    """digits/{classifier, ae-8, vae-8, dae-8, dae-8-joint, gan-8, ddpm-tiny, ldm-vae-8}: random weights, cards
    with the numbers above, and a classifier trained for one epoch (the FID needs one)."""
    from explorer import training

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("zoo")
    training.train("classifier", "digits", epochs=1, out=root, limit=300, progress=False,
                   config={"channels": 8, "features": 32})
    vae_cfg = {"latent_dim": 8, **SMALL}
    built = {
        "ae-8": ("ae", models.build("ae", {"latent_dim": 8, **SMALL})),
        "vae-8": ("vae", models.build("vae", vae_cfg)),
        "dae-8": ("dae", models.build("dae", {"latent_dim": 8, **SMALL, "aux_channels": 4, "aux_hidden": 16})),
        "dae-8-joint": ("dae", models.build("dae", {"latent_dim": 8, **SMALL, "mode": "joint"})),
        "gan-8": ("gan", models.build("gan", {"channels": 8, "latent_dim": 8})),
        "ddpm-tiny": ("ddpm", randomised(models.build("ddpm", {"channels": 8, "mults": [1, 2], "attention": False,
                                                                "timesteps": 100}))),
    }
    ldm = models.build("ddpm", {"space": "latent", "vae": "digits/vae-8", "vae_family": "vae", "vae_config": vae_cfg,
                                "latent_dim": 8, "hidden": 32, "blocks": 1, "timesteps": 40})
    ldm.fit_codes(built["vae-8"][1], data.load("digits", "test").floats()[:200])
    built["ldm-vae-8"] = ("ddpm", randomised(ldm, 1))
    for name, (family, model) in built.items():
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        meta = {"dataset": "digits", "preset": name, "command": f"python -m explorer.training {name} --dataset digits",
                "training": {"epochs": 3, "wall_time_s": WALL[name], "hardware": HW, "parameters": params}}
        directory = checkpoints.save(model, root / "digits" / name, family, meta)
        (directory / checkpoints.METRICS).write_text(json.dumps(CARDS[name], indent=2))
        (directory / checkpoints.CARD).write_text(f"# digits/{name}\n\n## Test metrics\nsee metrics.json\n")
    return root


@pytest.fixture
def zoo_copy(zoo_root, tmp_path):
    """A private copy of the tiny zoo that a test may change."""
    shutil.copytree(zoo_root, tmp_path / "ckpt")
    return tmp_path / "ckpt"


def _panel(root):
    from explorer.ui.store import Store
    from explorer.ui.zoo import ZooPanel

    return ZooPanel(Store(Zoo(root), device="cpu"))


def _json(path):
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------- the table

def test_table_numbers_are_the_cards_and_follow_them(zoo_copy, monkeypatch):
    zoo = Zoo(zoo_copy)
    monkeypatch.setattr(Zoo, "load", lambda *a, **k: pytest.fail("the table must not load models"))
    rows = zoo_table.table(zoo, "digits")
    assert [r["name"] for r in rows] == [f"digits/{n}" for n in ORDER]  # classifier left out, families in order
    by = {r["name"].split("/")[1]: r for r in rows}
    for name, card in CARDS.items():
        r, config = by[name], _json(zoo_copy / "digits" / name / "config.json")
        assert r["fid"] == card.get("zoo", {}).get("fid")
        assert r["fid_n"] == card.get("zoo", {}).get("fid_n")
        assert r["fid_floor"] == card.get("zoo", {}).get("fid_floor")
        assert r["test_mse"] == card.get("test_mse")
        assert r["parameters"] == config["training"]["parameters"] > 0
        assert r["wall_time_s"] == WALL[name] and r["hardware"] == HW
        assert r["sample_ms_per_image"] == card.get("zoo", card).get("sample_ms_per_image")
        assert r["error"] is None
    labels = {n: by[n]["label"] for n in ORDER}
    assert labels["ae-8"] == "AE (8-D)" and labels["vae-8"] == "VAE (8-D)"
    assert labels["dae-8"].startswith("DAE + mixture") and labels["dae-8-joint"].startswith("Joint AE (baseline)")
    assert labels["gan-8"].startswith("GAN (DCGAN") and labels["ddpm-tiny"] == "DDPM pixel, cosine"
    assert labels["ldm-vae-8"] == "Latent diffusion on vae-8"
    # missing at the common N: None, the command that fills it, and the card's own FID only for reference
    joint = by["dae-8-joint"]
    assert joint["fid"] is None and "python -m explorer.zoo_table --dataset digits" in joint["fid_note"]
    assert joint["card_fid"] == 88.81 and joint["card_fid_n"] == 5000
    assert by["gan-8"]["test_mse"] is None
    assert "vae-8's own training (10.4 min), which is separate" in by["ldm-vae-8"]["wall_time_note"]

    text = zoo_table.markdown(rows, "digits")
    assert "FID ↓ (N = 2,000; floor 3.17)" in text and "Recon. MSE ↓ (per pixel)" in text
    for number in ("42.31", "37.46", "29.83", "51.27", "19.53", "0.0123", "0.0457", "| 274 |", "74.2 min"):
        assert number in text, number
    assert "python -m explorer.zoo_table --dataset digits" in text and "Test CPU (2 cores)" in text
    assert "† ldm-vae-8: vae-8's own training (10.4 min), which is separate." in text

    # change a number in a card: the table follows
    path = zoo_copy / "digits" / "vae-8" / "metrics.json"
    card = _json(path)
    card["zoo"]["fid"], card["test_mse"] = 12.34, 0.00987
    path.write_text(json.dumps(card))
    cfg_path = zoo_copy / "digits" / "gan-8" / "config.json"
    cfg = _json(cfg_path)
    cfg["training"]["wall_time_s"] = 7322.0
    cfg_path.write_text(json.dumps(cfg))
    rows = {r["name"]: r for r in zoo_table.table(zoo, "digits")}
    assert rows["digits/vae-8"]["fid"] == 12.34 and rows["digits/vae-8"]["test_mse"] == 0.00987
    assert rows["digits/gan-8"]["wall_time_s"] == 7322.0
    text = zoo_table.markdown(list(rows.values()), "digits")
    assert "12.34" in text and "37.46" not in text and "2.0 h" in text


@pytest.mark.slow
def test_refresh_scores_every_model_at_one_n_and_writes_the_cards(zoo_copy):
    zoo = Zoo(zoo_copy)
    # a training FID already at the common N is reused, not recomputed
    path = zoo_copy / "digits" / "ldm-vae-8" / "metrics.json"
    path.write_text(json.dumps({**_json(path), "fid": 7.77, "fid_floor": 2.22, "fid_n": 40}))
    logs = []
    results = zoo_table.refresh(zoo, "digits", n=40, log=logs.append)
    assert set(results) == {f"digits/{n}" for n in ORDER}
    floors = set()
    for name in ORDER:
        m = _json(zoo_copy / "digits" / name / "metrics.json")
        block = m["zoo"]
        assert block["fid_n"] == 40 and math.isfinite(block["fid"]) and block["fid"] >= 0
        assert set(zoo_table.BLOCK_KEYS) <= set(block) and block["sample_ms_per_image"] > 0
        if name != "ldm-vae-8":
            assert block["sample_sharpness"] > 0
        assert {k: v for k, v in m.items() if k != "zoo"} == {k: v for k, v in CARDS[name].items() if k != "zoo"} \
            or name == "ldm-vae-8"                           # the card's other numbers are left alone
        card = (zoo_copy / "digits" / name / "README.md").read_text()
        assert card.count(zoo_table.SECTION) == 1 and "## Test metrics" in card
        assert f"classifier-FID (N = 40) | {block['fid']:.4g}" in card
        if name != "ldm-vae-8":
            floors.add(block["fid_floor"])
    assert _json(path)["zoo"]["fid"] == 7.77 and "Reused" in _json(path)["zoo"]["source"]
    assert _json(zoo_copy / "digits" / "ae-8" / "metrics.json")["zoo"]["fid"] != 42.31  # was at N = 2000
    assert len(floors) == 1                                   # the same real subsets at the same N for all
    assert any("reusing the training FID" in line for line in logs)
    # its T = 40 cannot take the recipe's 50 steps: no sharpness, a log line, and the rest of the block kept
    assert "sample_sharpness" not in _json(path)["zoo"]
    assert any("ldm-vae-8: sharpness not measured" in line and "T=40" in line for line in logs)
    # ... unless the evaluation measured it on those very samples: then it is reused too, nothing is sampled
    path.write_text(json.dumps({**{k: v for k, v in _json(path).items() if k != "zoo"}, "sample_sharpness": 0.777}))
    logs = []
    zoo_table.refresh(zoo, "digits", n=40, log=logs.append)
    assert _json(path)["zoo"]["sample_sharpness"] == 0.777 and not any("ldm-vae-8: sharpness" in x for x in logs)

    # a second run keeps the blocks (already at N) and replaces the card section instead of appending one;
    # a block from before the sharpness column gets it from the same seeded samples, the rest untouched
    before = {n: _json(zoo_copy / "digits" / n / "metrics.json")["zoo"] for n in ORDER}
    gan = zoo_copy / "digits" / "gan-8" / "metrics.json"
    gan.write_text(json.dumps({**_json(gan), "zoo": {k: v for k, v in before["gan-8"].items() if k != "sample_sharpness"}}))
    zoo_table.refresh(zoo, "digits", n=40, log=lambda *_: None)
    for name in ORDER:
        assert _json(zoo_copy / "digits" / name / "metrics.json")["zoo"] == before[name]
        assert (zoo_copy / "digits" / name / "README.md").read_text().count(zoo_table.SECTION) == 1
    rows = zoo_table.table(zoo, "digits")
    assert {r["fid_n"] for r in rows} == {40} and "N = 40;" in zoo_table.markdown(rows, "digits")
    assert "Sharpness (real = 1)" in zoo_table.markdown(rows, "digits")
    assert f"{before['gan-8']['sample_sharpness']:.2f}" in zoo_table.markdown(rows, "digits")
    assert "sample sharpness (real = 1)" in (zoo_copy / "digits" / "gan-8" / "README.md").read_text()

    # the CLI prints the table and exits 0
    assert zoo_table.main(["--dataset", "digits", "--root", str(zoo_copy), "--n", "40"]) == 0




# ------------------------------------------------------------------------------------------- the panel

@pytest.mark.slow
def test_same_seed_same_grid_and_diffusion_rows_are_the_models_own_samples(zoo_root):
    from explorer.ui import zoo as zoo_ui

    panel = _panel(zoo_root)
    partial, a = list(panel.views("digits", 3))  # the quick rows first, the pixel-space diffusion row pending
    assert not partial.complete and a.complete and "Sampling the pixel-space diffusion" in partial.caption
    assert [r.name for r in partial.rows if r.pending] == ["digits/ddpm-tiny"]
    assert partial.pixels.shape == a.pixels.shape
    assert len(list(panel.views("digits", 3))) == 1        # then served whole from the cache
    assert [r.name for r in a.rows] == [f"digits/{n}" for n in ORDER]
    for r in a.rows:
        assert r.error is None, r.error
        assert r.samples.shape == (8, 28, 28) and r.path.shape == (8, 28, 28)
        assert np.isfinite(r.samples).all() and r.samples.min() >= 0 and r.samples.max() <= 1
    assert a.pixels.ndim == 3 and a.pixels.shape[2] == 3 and a.pixels.shape[1] > 900
    again = _panel(zoo_root).view("digits", 3)                  # a fresh panel: no cache involved
    np.testing.assert_array_equal(a.pixels, again.pixels)
    for r, s in zip(a.rows, again.rows):
        np.testing.assert_array_equal(r.samples, s.samples)
    other = panel.view("digits", 4)
    assert not np.array_equal(a.pixels, other.pixels)
    assert not np.array_equal(a.rows[-2].samples, other.rows[-2].samples)
    assert panel.view("digits", 3) is a                         # cached by (dataset, seed)

    # a diffusion row's samples are what model.sample gives for the seed; its path starts at DDIM of x_T
    model = panel.store.model("digits/ddpm-tiny")
    g = torch.Generator().manual_seed(3)
    x = model.sample(8, steps=zoo_ui.DDIM_STEPS["pixel"], eta=zoo_ui.SAMPLE_ETA, labels=torch.arange(8), generator=g)
    np.testing.assert_allclose(a.rows[5].samples, x.numpy()[:, 0], atol=1e-5)
    # the path is model.sample's deterministic chain (eta = 0) from the slerped starting noises
    g = torch.Generator().manual_seed(3)
    model.sample(8, steps=zoo_ui.DDIM_STEPS["pixel"], eta=zoo_ui.SAMPLE_ETA, labels=torch.arange(8), generator=g)
    ends = diffusion.randn((2, 1, 28, 28), g)
    x_T = zoo_ui._slerp_path(ends[0], ends[1], zoo_ui.N_PATH)
    path = model.sample(zoo_ui.N_PATH, steps=zoo_ui.DDIM_STEPS["pixel"], eta=0.0, x_T=x_T)
    np.testing.assert_allclose(a.rows[5].path, path.numpy()[:, 0], atol=1e-5)

    caption = a.caption
    assert "Seed 3" in caption and "DDIM" in caption and "labels 0–7" in caption and "eta = 0" in caption
    assert "slerp" in caption and "lerp" in caption


def test_encoder_interpolation_runs_between_the_two_picked_codes(zoo_root):
    panel = _panel(zoo_root)
    view = panel.view("digits", 5)
    i, j = view.pair
    ds = panel.store.dataset("digits")
    assert i != j and ds.labels[i] != ds.labels[j]               # two test images of different classes
    np.testing.assert_array_equal(view.pair_images, ds.floats()[[i, j]].numpy()[:, 0])
    for row in view.rows:
        if row.family in ("ae", "vae", "dae"):
            model = panel.store.model(row.name)
            ends = model.decode(model.encode(ds.floats()[[i, j]])).numpy()[:, 0]
            np.testing.assert_allclose(row.path[0], ends[0], atol=1e-5)
            np.testing.assert_allclose(row.path[-1], ends[1], atol=1e-5)
            assert "lerp" in row.path_kind
    assert panel.pair("digits", 5) == (i, j) and panel.pair("digits", 6) != (i, j)


@pytest.mark.parametrize("seed, message", [(float("nan"), "Seed must be a whole number"),
                                           (None, "Seed must be a whole number"),
                                           ("abc", "Seed must be a whole number"),
                                           (-1, "Seed must be between 0"),
                                           (2 ** 64, "Seed must be between 0")])
def test_bad_seed_is_a_clear_error(zoo_root, seed, message):
    import gradio as gr

    with pytest.raises(gr.Error, match=message):
        list(_panel(zoo_root).draw("digits", seed))


def test_unknown_dataset_is_a_clear_error(zoo_root):
    import gradio as gr

    with pytest.raises(gr.Error, match="No generative models of 'mnist'"):
        list(_panel(zoo_root).draw("mnist", 0))


def test_a_damaged_checkpoint_says_how_to_rebuild_it_and_the_others_still_render(zoo_copy):
    weights = zoo_copy / "digits" / "ae-8" / checkpoints.WEIGHTS
    good = weights.read_bytes()
    weights.write_bytes(good[:100])                             # truncated
    (zoo_copy / "digits" / "gan-8" / "config.json").write_text("{not json")
    panel = _panel(zoo_copy)
    pixels, caption, table = list(panel.draw("digits", 0))[-1]
    rows = {r.name: r for r in panel.view("digits", 0).rows}
    assert "Rebuild it with `python -m explorer.training ae-8 --dataset digits`" in rows["digits/ae-8"].error
    assert rows["digits/ae-8"].samples is None
    assert "python -m explorer.training gan-8 --dataset digits" in rows["digits/gan-8"].error
    for name in ("vae-8", "dae-8", "dae-8-joint", "ddpm-tiny", "ldm-vae-8"):
        assert rows[f"digits/{name}"].error is None and rows[f"digits/{name}"].samples.shape == (8, 28, 28)
    assert "digits/ae-8" in caption and "python -m explorer.training ae-8 --dataset digits" in caption
    assert pixels.shape[0] > 300
    assert "⚠️" in table and "42.31" in table                  # the damaged config's row says so; the rest stay
    # a rebuilt checkpoint is redrawn, not served from the cache
    weights.write_bytes(good)
    assert panel.view("digits", 0).rows[0].samples.shape == (8, 28, 28)


# ------------------------------------------------------------------------------------------- the app

@pytest.fixture(scope="module")
def zoo_app(zoo_root):
    with launched_app(zoo_root) as served:
        yield served


@pytest.mark.slow
def test_zoo_endpoint_through_gradio_client(zoo_app):
    from gradio_client import Client
    from PIL import Image

    url, demo, _ = zoo_app
    client = Client(url, verbose=False)
    image, caption, table = client.predict("digits", 2, api_name="/zoo_draw")
    img = np.asarray(Image.open(image).convert("RGB"))
    np.testing.assert_array_equal(img, demo.panels["zoo"].view("digits", 2).pixels)
    assert "Seed 2" in caption and "42.31" in table and "FID ↓ (N = 2,000; floor 3.17)" in table
    with pytest.raises(Exception, match="less than minimum value 0"):  # the Number widget's own bound
        client.predict("digits", -5, api_name="/zoo_draw")


@pytest.mark.browser
def test_browser_opens_the_zoo_tab(zoo_app):
    playwright = pytest.importorskip("playwright.sync_api")
    url, _, _ = zoo_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("tab", name="Model zoo").click()
            page.wait_for_function("() => document.querySelector('#zoo-grid img')?.complete "
                                   "&& document.querySelector('#zoo-grid img').naturalWidth > 900", timeout=60_000)
            page.wait_for_selector("#zoo-table table", timeout=10_000)
            assert "42.31" in page.locator("#zoo-table").inner_text()
            assert "Seed 0" in page.locator("#zoo-caption").inner_text()
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------- aggregate posterior
def test_vae_rows_can_sample_from_their_shipped_aggregate_posterior(zoo_copy):
    from explorer.latents import AggregatePrior
    from explorer.ui.zoo import AGGREGATE

    zoo = Zoo(zoo_copy)
    vae = zoo.load("digits/vae-8", device="cpu")
    x = data.load("digits", "train").floats()[:400]
    prior = AggregatePrior.fit_model(vae, x, torch.Generator().manual_seed(0), n_components=3)
    (zoo_copy / "digits/vae-8" / checkpoints.AGGREGATE_PRIOR).write_text(json.dumps(prior.to_dict()))
    panel = _panel(zoo_copy)
    plain, agg = panel.view("digits", 0), panel.view("digits", 0, AGGREGATE)
    rows = {r.name: r for r in agg.rows}
    base = {r.name: r for r in plain.rows}
    g = torch.Generator().manual_seed(0)                      # the row's own draws: the seed's generator
    want = vae.decode(zoo.aggregate_prior("digits/vae-8").sample(8, g)).numpy()[:, 0]
    np.testing.assert_allclose(rows["digits/vae-8"].samples, want, atol=1e-6)
    assert not np.allclose(rows["digits/vae-8"].samples, base["digits/vae-8"].samples)
    for name in ("ae-8", "dae-8", "gan-8"):                   # the other families sample as before
        np.testing.assert_array_equal(rows[f"digits/{name}"].samples, base[f"digits/{name}"].samples)
    assert rows["digits/vae-8"].sampled_from == AGGREGATE and "aggregate posterior" in agg.caption
    assert "aggregate posterior" not in plain.caption and panel.view("digits", 0) is plain   # each cached
    with pytest.raises(gr.Error, match="Sample VAEs from one of"):
        panel.view("digits", 0, "somewhere else")
    (zoo_copy / "digits/vae-8" / checkpoints.AGGREGATE_PRIOR).write_text('{"n_components": 3, "weights": [1]}')
    with pytest.raises(checkpoints.CheckpointError, match="explorer.studies sampling --ship") as err:
        zoo.aggregate_prior("digits/vae-8")
    assert str(zoo_copy) not in str(err.value)
    assert zoo.aggregate_prior("digits/ae-8") is None
