"""The Projection panel decodes in the page (web/pick_view.js, web/point_map.js): a click draws the
reconstruction from the map's float16 codes with the model's ONNX decoder, two picks draw the linear and
slerp strips, the t slider decodes without any request, the compared map's marker follows without one,
and without WebAssembly the same view decodes through the server fallback."""
from __future__ import annotations

import numpy as np
import pytest
import torch

playwright = pytest.importorskip("playwright.sync_api")

from conftest import BROWSER_ARGS, assert_no_server_decode  # noqa: E402

NAME, OTHER = "digits/ae-16", "digits/gmm-vae-16"
TOL_MAX, TOL_MEAN = 0.05, 0.005  # float16 codes vs float32: a few 1e-3 per pixel at most

READY = ("() => { const m = window.lsxMaps?.['proj-map-a'], v = window.lsxProjection;"
         " return m && m.pixel(0) && m.model() && v && v.models.length"
         " && v.models.every(x => (v.decoders[x.L.name + '|' + (x.L.decoder.sha || 'server')] || {}).value); }")


@pytest.fixture(scope="module")
def app(served_app):
    """The served app with in-page decoders built, and PCA standing in for UMAP (the map's layout does
    not matter here; fitting UMAP would take most of a minute)."""
    url, demo, store = served_app
    store.decoders.warm([NAME, OTHER])
    injected = []
    for name in (NAME, OTHER):
        if (name, "umap") not in store._projections:
            store._projections[(name, "umap")] = store.projection(name, "pca")
            injected.append((name, "umap"))
    yield url, demo, store
    for key in injected:
        store._projections.pop(key, None)


def _open(browser, url, wasm=True):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    if not wasm:  # --js-flags=--noexpose_wasm is not honoured by every Chromium build: remove it outright
        page.add_init_script("delete globalThis.WebAssembly")
    page.goto(url)
    page.get_by_role("tab", name="Projection").click()
    page.wait_for_function(READY, timeout=120_000)
    return page


@pytest.fixture(scope="module")
def pw():
    with playwright.sync_playwright() as p:  # one per module: a second one inside the first cannot start
        yield p


@pytest.fixture(scope="module")
def page(app, pw):
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
    pg = _open(browser, app[0])
    pg.requests = []
    pg.on("request", lambda r: pg.requests.append((r.method, r.url, r.post_data or "")))
    yield pg
    browser.close()


def _click(page, row, key="proj-map-a"):
    box = page.locator(f"#{key} canvas.lsx-canvas").bounding_box()
    x, y = page.evaluate(f"() => window.lsxMaps['{key}'].pixel({row})")
    page.mouse.click(box["x"] + x, box["y"] + y)


def _picked(page, b, a=None, models=1):
    page.wait_for_function("([a, b, n]) => { const l = window.lsxProjection.last;"
                           " return l && l.sel[1] === b && (a === null || l.sel[0] === a) && l.modes.length === n; }",
                           arg=[a, b, models], timeout=30_000)


def _torch(store, name, z):
    with torch.no_grad():
        return store.model(name).decode(torch.as_tensor(np.asarray(z), dtype=torch.float32)).numpy().reshape(len(z), 784)


def _only_the_select_event(requests):
    """A pick's traffic: the select event (queue join + its event stream), fonts at most; no decode."""
    assert sum("/queue/join" in u for _, u, _ in requests) <= 1, requests
    assert_no_server_decode(requests)


@pytest.mark.browser
def test_click_draws_the_reconstruction_decoded_in_the_page(page, app):
    _, _, store = app
    page.requests.clear()
    _click(page, 12)
    _picked(page, 12)
    last = page.evaluate("() => ({modes: window.lsxProjection.last.modes,"
                         f" x: Array.from(window.lsxProjection.last.recon['{NAME}'])}})")
    assert last["modes"] == ["page"]
    view = store.view(NAME)
    want = _torch(store, NAME, view.codes[12:13])[0]
    got = np.array(last["x"])
    assert np.abs(got - want).max() < TOL_MAX and np.abs(got - want).mean() < TOL_MEAN
    # ... and that is what the canvas shows: the centre of each 4x4 block of the 112-px canvas
    drawn = np.array(page.evaluate("""() => { const c = document.querySelector('#proj-view .lsxv-rec0 canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, s = c.width / 28, out = [];
      for (let r = 0; r < 28; r++) for (let k = 0; k < 28; k++)
        out.push(d[(Math.floor((r + 0.5) * s) * c.width + Math.floor((k + 0.5) * s)) * 4]);
      return out; }""")) / 255
    assert np.abs(drawn - want).max() < TOL_MAX + 1 / 255
    page.wait_for_timeout(500)  # the select event goes out once the page has drawn
    _only_the_select_event(page.requests)
    assert "Code under" in page.locator("#proj-view .lsxv-code").inner_text()


@pytest.mark.browser
def test_two_picks_draw_both_strips_and_the_t_slider_decodes_without_a_request(page, app):
    _, _, store = app
    _click(page, 12)
    _picked(page, 12)
    _click(page, 40)
    _picked(page, 40, a=12)
    page.wait_for_function("() => window.lsxProjection.last.two && window.lsxProjection.paths[0].at")
    strips = page.evaluate(f"() => {{ const s = window.lsxProjection.last.strips['{NAME}'];"
                           " return {linear: Array.from(s.linear), slerp: Array.from(s.slerp)}; }")
    codes = store.view(NAME).codes
    za, zb = codes[12].astype(np.float64), codes[40].astype(np.float64)
    from explorer import latents
    ts = np.linspace(0, 1, 9)
    for kind, path in (("linear", latents.lerp), ("slerp", latents.slerp)):
        got = np.array(strips[kind]).reshape(9, 784)
        want = _torch(store, NAME, path(za, zb, ts))
        assert np.abs(got - want).max() < TOL_MAX, kind
    assert page.locator("#proj-view .lsxv-interp").is_visible()
    assert page.locator("#proj-view canvas.lsxv-strips").bounding_box()["height"] > 60

    # walking the path: a new image at t, decoded in the page, and not one request
    before = page.evaluate("() => [window.lsxProjection.tTimes.length,"
                           " document.querySelector('#proj-view .lsxv-at0-0 canvas').toDataURL()]")
    page.requests.clear()
    page.locator("#proj-view input.lsxv-tin").fill("0.15")
    page.wait_for_function("(n) => window.lsxProjection.tTimes.length > n", arg=before[0], timeout=10_000)
    after = page.evaluate("() => document.querySelector('#proj-view .lsxv-at0-0 canvas').toDataURL()")
    assert after != before[1]
    page.wait_for_timeout(300)
    assert page.requests == []
    assert "t = 0.15" in page.locator("#proj-view .lsxv-at").inner_text()


@pytest.mark.browser
def test_the_compared_map_follows_a_click_without_a_request_and_both_models_decode(page, app):
    page.locator("#proj-compare input").click()
    page.get_by_role("option", name=OTHER).click()
    page.wait_for_function("(n) => window.lsxMaps['proj-map-b']?.model()?.name === n"
                           " && window.lsxProjection.models.length === 2", arg=OTHER, timeout=120_000)
    page.wait_for_function(READY, timeout=60_000)
    page.requests.clear()
    _click(page, 7)
    _picked(page, 7, models=2)
    assert page.evaluate("() => window.lsxMaps['proj-map-b'].picks()")[-1] == 7
    assert page.evaluate("() => window.lsxProjection.last.modes") == ["page", "page"]
    page.wait_for_timeout(500)
    _only_the_select_event(page.requests)
    names = page.locator("#proj-view .lsxv-figs").inner_text()
    assert "ae-16" in names and "gmm-vae-16" in names


@pytest.mark.browser
def test_without_webassembly_the_view_decodes_on_the_server(app, pw):
    url, _, store = app
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                 args=BROWSER_ARGS + ["--js-flags=--noexpose_wasm"])
    try:
        page = _open(browser, url, wasm=False)
        assert page.evaluate("() => typeof WebAssembly") == "undefined"
        _click(page, 3)
        _picked(page, 3)
        last = page.evaluate("() => ({modes: window.lsxProjection.last.modes,"
                             f" x: Array.from(window.lsxProjection.last.recon['{NAME}'])}})")
        assert last["modes"] == ["server"]
        want = _torch(store, NAME, store.view(NAME).codes[3:4])[0]
        assert np.abs(np.array(last["x"]) - want).max() < TOL_MAX
        assert "server" in page.locator("#proj-view .lsxv-mode").inner_text().lower()
    finally:
        browser.close()


@pytest.mark.slow
def test_open_sends_each_models_codes_once_and_a_hidden_compare_map_none(app):
    import base64

    from explorer.ui.point_map import unpack
    from explorer.ui.projection import NONE

    _, demo, store = app
    panel = demo.panels["projection"]
    map_a, _, map_b, _, _, shown = panel.on_open(NAME, "PCA", OTHER, {}, progress=lambda *a, **k: None)
    latent = map_a.props["latent"]
    codes = np.frombuffer(base64.b64decode(latent["codes"]), "<f2").reshape(latent["n"], latent["dim"])
    np.testing.assert_allclose(codes, store.view(NAME).codes, rtol=1e-3, atol=1e-3)
    assert latent["decoder"]["name"] == NAME and map_b.props["latent"]["name"] == OTHER
    assert len(unpack(map_a.value)["x"]) == latent["n"]
    # another method: new maps, same models, so no codes resent
    stale = dict(shown, a=["x", "y"], b=["x", "y"])  # as if another method's maps were shown: maps resent
    again = panel.on_open(NAME, "PCA", OTHER, stale, progress=lambda *a, **k: None)
    assert again[0].value["n"] == latent["n"]
    assert "latent" not in again[0].props and "latent" not in again[2].props  # ... but not the codes
    # the compare map hidden: its codes are dropped, so the page decodes with the shown model only
    hidden = panel.on_open(NAME, "PCA", NONE, shown, progress=lambda *a, **k: None)
    assert hidden[2].props["latent"] == {}


@pytest.mark.slow
def test_the_servers_select_handler_keeps_the_picks_and_checks_them(app):
    import gradio as gr

    _, demo, _ = app
    panel = demo.panels["projection"]
    evt = gr.SelectData(None, {"index": 9, "value": [4, 9]})
    assert panel.on_select(NAME, "(none)", evt) == [4, 9]
    with pytest.raises(gr.Error, match="index"):
        panel.on_select(NAME, "(none)", gr.SelectData(None, {"index": 10 ** 6, "value": [None, 10 ** 6]}))
