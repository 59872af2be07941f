"""The "DAE vs baseline" panel: its logic, its endpoints through gradio_client, and a real browser."""
from __future__ import annotations

import dataclasses
import json
import shutil

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from conftest import BROWSER_ARGS, DAE_SMALL, assert_no_server_decode, launched_app
from explorer import studies
from explorer.checkpoints import Zoo
from explorer.ui.dae import LIVE, SHIPPED, DAEPanel
from explorer.ui.point_map import unpack
from explorer.ui.store import Store


@pytest.fixture(scope="module")
def panel(dae_zoo):
    return DAEPanel(Store(Zoo(dae_zoo), "cpu"))


def test_finds_the_pair_and_their_latent_diffusion_generators(panel):
    assert panel.pair() == ("digits/dae-16", "digits/dae-16-joint")
    assert panel.generators("digits/dae-16") == "digits/ldm-dae-16"
    assert panel.generators("digits/dae-16-joint") == "digits/ldm-dae-16-joint"


def test_open_fills_every_part_from_the_shipped_pair(panel, dae_zoo):
    first, second = list(panel.on_open(SHIPPED, 0, None))
    recon, samples, table, curves = first[:4]
    map_a, stats_a, map_b, stats_b = second[4:8]
    assert recon.ndim == 3 and samples.ndim == 3 and curves.ndim == 3
    study = json.loads((dae_zoo / "digits" / "dae-16" / studies.DAE.result_file).read_text())
    assert "mean ± sd over seeds" in table and "up to 2 seeds per arm" in table
    mean = study["table"]["test_mse"]["dae"]["mean"]
    assert f"{mean:.4g}" in table                                  # the table shows the study's numbers
    n = len(panel.store.dataset("digits").labels)
    for m in (map_a, map_b):
        assert m.value["n"] == n and len(unpack(m.value)["x"]) == n
    assert "dae-16" in stats_a and "dae-16-joint" in stats_b


def test_same_seed_same_images_and_a_new_seed_new_ones(panel):
    a = panel.on_seed(SHIPPED, 4, None)
    b = panel.on_seed(SHIPPED, 4, None)
    c = panel.on_seed(SHIPPED, 5, None)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    # four sample rows: both mixtures and both latent diffusion models
    assert a[1].shape[0] > a[0].shape[0] * 0.8


def test_clicked_point_decodes_with_all_three_decoders(panel):
    image, text = panel.details(SHIPPED, 7, None)
    label = panel.store.dataset("digits").classes[int(panel.store.dataset("digits").labels[7])]
    assert image.ndim == 3 and text == f"Test image #7 ({label})"
    for bad in (10 ** 6, -1, float("nan"), None, "seven"):
        with pytest.raises(gr.Error, match="Test image index"):
            panel.details(SHIPPED, bad, None)


def test_bad_inputs_and_a_missing_live_run_give_clear_messages(panel):
    with pytest.raises(gr.Error, match="Seed"):
        panel.on_seed(SHIPPED, -1, None)
    with pytest.raises(gr.Error, match="Seed"):
        panel.on_seed(SHIPPED, float("nan"), None)
    with pytest.raises(gr.Error, match="No live run yet"):
        panel.on_seed(LIVE, 0, None)
    for budget in (float("nan"), 0, 1000):
        with pytest.raises(gr.Error, match="budget"):
            panel.on_train(budget, 0)


def test_without_a_pair_the_panel_says_how_to_build_it(tmp_path):
    empty = DAEPanel(Store(Zoo(tmp_path), "cpu"))
    (out,) = list(empty.on_open(SHIPPED, 0, None))
    assert "python -m explorer.studies run dae" in out[2]


@pytest.mark.slow
def test_endpoints_show_the_table_and_a_live_run_fills_the_panel(dae_zoo):
    from gradio_client import Client

    with launched_app(dae_zoo) as (url, demo, store):
        client = Client(url, verbose=False)
        out = client.predict(SHIPPED, 0, api_name="/dae_show")
        assert "up to 2 seeds per arm" in out[2]
        assert np.asarray(Image.open(out[0])).ndim == 3
        pick = client.predict(SHIPPED, 3, api_name="/dae_pick")
        assert pick[1].startswith("Test image #3")
        # a live run (the shortest budget) in this client's session, then the panel shows it
        live = client.predict(10, 1, api_name="/dae_train_live")
        assert "Live run done" in live[1]
        out = client.predict(LIVE, 1, api_name="/dae_show")
        assert "live run (one seed)" in out[2] and "held-out reconstruction MSE" in out[2]
        assert "FID" not in out[2] or "floor" in out[2]
        with pytest.raises(Exception, match="No live run yet"):
            Client(url, verbose=False).predict(LIVE, 0, api_name="/dae_images")  # another session has none


def _tiny_sweep(zoo, out):
    """Two arms of the DAE sweep (the weakest stage-1 decoder and its joint baseline) on digits, one seed,
    summarised and shipped into ``zoo`` as ``python -m explorer.studies summary dae-sweep --ship`` does."""
    keep = ("dae-l0-s5", "joint-s5")
    study = dataclasses.replace(studies.DAE_SWEEP, dataset="digits", seeds=(0,), arms=tuple(
        dataclasses.replace(a, epochs=2, ldm_epochs=1, config={**a.config, "stage1_fraction": 0.5})
        for a in studies.DAE_SWEEP.arms if a.name in keep))
    studies.run(study, out, progress=False, limit=200, config=DAE_SMALL)
    return studies.ship(studies.summarise(study, out), root=zoo)


@pytest.mark.browser
def test_browser_opens_the_tab_and_a_click_decodes_with_both_models_in_the_page(dae_zoo, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    zoo = shutil.copytree(dae_zoo, tmp_path / "zoo")
    _tiny_sweep(zoo, tmp_path / "sweep")
    with launched_app(zoo) as (url, demo, store), playwright.sync_playwright() as p:
        pair = demo.panels["dae"].pair()
        store.decoders.warm(pair)  # the in-page (ONNX) decoders, as app.py's warm-up builds them
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(url)
            page.get_by_role("tab", name="DAE vs baseline").click()
            page.wait_for_function("() => document.querySelector('#dae-recon img')?.complete", timeout=60_000)
            page.wait_for_function("() => document.querySelector('#dae-samples img')?.complete", timeout=60_000)
            assert "up to 2 seeds per arm" in page.locator("#dae-table").inner_text()
            page.wait_for_function("() => ['dae-map-a', 'dae-map-b'].every(k => window.lsxMaps?.[k]?.pixel(0))"
                                   " && window.lsxDae?.models.length === 2", timeout=60_000)
            # the sweep shipped with the DAE: its chart and the plain answer, below the maps
            page.locator("#dae-sweep").scroll_into_view_if_needed()
            page.wait_for_function("() => { const i = document.querySelector('#dae-sweep img');"
                                   " return i && i.complete && i.naturalWidth > 1000; }", timeout=30_000)
            # the image's toolbar (download, full screen) covers nothing of the chart: no ink under it
            ink = page.evaluate("""() => { const img = document.querySelector('#dae-sweep img');
              const bar = document.querySelector('#dae-sweep .icon-button-wrapper');
              const ir = img.getBoundingClientRect(), br = bar.getBoundingClientRect();
              const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
              const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
              const s = Math.min(ir.width / img.naturalWidth, ir.height / img.naturalHeight);  // object-fit: contain
              const ox = ir.left + (ir.width - img.naturalWidth * s) / 2, oy = ir.top + (ir.height - img.naturalHeight * s) / 2;
              const x0 = Math.max(0, Math.floor((br.left - ox) / s)), x1 = Math.min(c.width, Math.ceil((br.right - ox) / s));
              const y0 = Math.max(0, Math.floor((br.top - oy) / s)), y1 = Math.min(c.height, Math.ceil((br.bottom - oy) / s));
              if (x1 <= x0 || y1 <= y0) return 0;
              const d = ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data; let n = 0;
              for (let i = 0; i < d.length; i += 4) if (Math.min(d[i], d[i + 1], d[i + 2]) < 200) n++;
              return n; }""")
            assert ink == 0, ink
            text = page.locator("#dae-sweep-text").inner_text()
            assert "2 of 2 runs finished" in text and "DAE, stage-1 decoder: very weak" in text, text
            assert "No DAE point can be compared yet" in text  # digits has no classifier in this zoo
            requests = []
            page.on("request", lambda r: requests.append((r.method, r.url, r.post_data or "")))
            page.locator("#dae-map-b").scroll_into_view_if_needed()
            canvas = page.locator("#dae-map-b canvas.lsx-canvas").bounding_box()
            x, y = page.evaluate("() => window.lsxMaps['dae-map-b'].pixel(5)")
            page.mouse.click(canvas["x"] + x, canvas["y"] + y)
            page.wait_for_function("() => window.lsxDae.last?.sel[1] === 5", timeout=30_000)
            last = page.evaluate("() => ({modes: window.lsxDae.last.modes, names: Object.keys(window.lsxDae.last.recon),"
                                 " x: Object.values(window.lsxDae.last.recon).map(a => Array.from(a))})")
            assert last["names"] == list(pair) and last["modes"] == ["page", "page"]
            x5 = store.dataset("digits").floats()[5:6]
            for name, got in zip(pair, last["x"]):  # each model's reconstruction of the clicked image
                want = store.model(name).reconstruct(x5).detach().numpy().reshape(784)
                assert np.abs(np.array(got) - want).max() < 0.05, name
            assert page.evaluate("() => window.lsxMaps['dae-map-a'].picks()")[-1] == 5  # the other map follows
            assert "#5" in page.locator("#dae-view .lsxv-title").inner_text()
            page.wait_for_timeout(500)
            # the click's one queued event (the server hears the pick); a decoder may still be fetched
            # (onnx_bytes) the first time, but no decode goes through the server
            assert any("/queue/join" in u for _, u, _ in requests), requests
            assert_no_server_decode(requests)
        finally:
            browser.close()
