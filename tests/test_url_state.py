"""The state that matters lives in the page's URL (web/lsx.js: LSX.state; explorer/ui/url_state.py): a URL with
?model=, ?point=, ?tab=, ?picks=, ?s= reopens that state, and the browser's Back button restores the previous one,
in the app and in the standalone page."""
from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")

from conftest import BROWSER_ARGS  # noqa: E402

GRID_READY = "() => window.lsxLatentGrid?.decoder?.mode === 'page' && window.lsxLatentGrid.frames > 0"


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        yield b
        b.close()


def _grid(pg):
    return pg.evaluate("""() => ({name: window.lsxLatentGrid.model.name, values: window.lsxLatentGrid.values.slice(0, 2),
      slider: +document.querySelector('#lsx-z-1').value, query: location.search})""")


def _params(pg):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(pg.url).query))


@pytest.mark.browser
def test_a_url_with_a_model_and_a_point_reopens_them(browser, served_app):
    url, demo, store = served_app
    name = "digits/ae-16"  # not the panel's first model
    store.decoders.warm([name])
    (lo0, hi0), (lo1, hi1) = demo.panels["latent_grid"].page_model(name, None)["limits"][:2]
    want = [round(lo0 + 0.3 * (hi0 - lo0), 4), round(lo1 + 0.8 * (hi1 - lo1), 4)]  # inside the sliders' ranges
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(url + f"?model={name}&point={want[0]},{want[1]}")
    pg.wait_for_function(GRID_READY + f" && window.lsxLatentGrid.model.name === '{name}'", timeout=90_000)
    pg.wait_for_timeout(500)
    got = _grid(pg)
    step = 10 ** -demo.panels["latent_grid"].page_model(name, None)["digits"][0]
    assert got["values"] == pytest.approx(want, abs=1e-6) and got["slider"] == pytest.approx(want[0], abs=step)
    assert pg.evaluate("() => window.lsxLatentGrid.last.values.slice(0, 2)") == pytest.approx(want, abs=1e-6)
    pg.close()


@pytest.mark.browser
def test_clicks_on_the_map_go_into_the_url_and_back_restores_the_previous_point(browser, served_app):
    url, _, _ = served_app
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(url)
    pg.wait_for_function(GRID_READY, timeout=90_000)
    m = pg.locator(".lsxg-map").bounding_box()
    points = []
    for fx, fy in ((0.3, 0.3), (0.7, 0.6)):
        pg.mouse.click(m["x"] + 44 + (m["width"] - 52) * fx, m["y"] + 8 + (m["height"] - 42) * fy)
        pg.wait_for_timeout(300)
        points.append(_grid(pg)["values"])
        assert [float(v) for v in _params(pg)["point"].split(",")] == pytest.approx(points[-1], abs=1e-4)
    assert points[0] != pytest.approx(points[1], abs=1e-3)
    reopen = pg.url
    pg.go_back()
    pg.wait_for_function("(p) => Math.abs(window.lsxLatentGrid.values[0] - p[0]) < 1e-3", arg=points[0], timeout=10_000)
    pg.wait_for_timeout(300)
    got = _grid(pg)
    assert got["values"] == pytest.approx(points[0], abs=1e-4) and got["slider"] == pytest.approx(points[0][0], abs=1e-3)
    pg.go_forward()
    pg.wait_for_function("(p) => Math.abs(window.lsxLatentGrid.values[0] - p[0]) < 1e-3", arg=points[1], timeout=10_000)
    # the URL of the second point, opened fresh, shows it
    pg2 = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg2.goto(reopen)
    pg2.wait_for_function(GRID_READY, timeout=90_000)
    pg2.wait_for_timeout(300)
    assert _grid(pg2)["values"] == pytest.approx(points[1], abs=1e-4)
    pg.close(); pg2.close()


@pytest.mark.browser
def test_the_tab_is_in_the_url_and_back_returns_to_the_previous_tab(browser, served_app):
    url, _, _ = served_app
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(url + "?tab=model-zoo")
    pg.wait_for_function("() => document.querySelector('button[role=tab][aria-selected=true]')?.textContent.trim()"
                         " === 'Model zoo'", timeout=30_000)
    pg.get_by_role("tab", name="Projection").click()
    assert _params(pg)["tab"] == "projection"
    pg.go_back()
    pg.wait_for_function("() => document.querySelector('button[role=tab][aria-selected=true]')?.textContent.trim()"
                         " === 'Model zoo'", timeout=10_000)
    pg.close()


@pytest.mark.browser
def test_the_projection_picks_are_in_the_url_and_reopen(browser, served_app):
    url, _, store = served_app
    name = "digits/ae-16"
    store.decoders.warm([name])
    if (name, "umap") not in store._projections:  # PCA stands in for UMAP (fitting it takes most of a minute)
        store._projections[(name, "umap")] = store.projection(name, "pca")
    pg = browser.new_page(viewport={"width": 1500, "height": 1100})
    pg.goto(url + "?tab=projection&picks=12,40")
    pg.wait_for_function("() => window.lsxProjection?.last?.sel?.join(',') === '12,40'", timeout=120_000)
    assert pg.evaluate("() => window.lsxMaps['proj-map-a'].picks()") == [12, 40]
    assert pg.evaluate("() => window.lsxProjection.last.two")  # both picks: the interpolation is drawn
    pg.close()


@pytest.mark.browser
def test_the_standalone_page_takes_the_same_point_parameter(browser, served_app):
    _, demo, _ = served_app
    name = "digits/vae-2d"
    path = Path(demo.panels["latent_grid"].standalone(name))
    (lo0, hi0), (lo1, hi1) = demo.panels["latent_grid"].page_model(name, None)["limits"][:2]
    want = [round(lo0 + 0.3 * (hi0 - lo0), 4), round(lo1 + 0.8 * (hi1 - lo1), 4)]
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(path.as_uri() + f"?point={want[0]},{want[1]}")
    pg.wait_for_function(GRID_READY, timeout=90_000)
    pg.wait_for_timeout(300)
    assert _grid(pg)["values"] == pytest.approx(want, abs=1e-6)
    pg.close()


@pytest.mark.browser
def test_a_url_with_attribute_groups_input_and_strength_reopens_them(browser, served_app):
    url, _, store = served_app
    store.decoders.warm(["digits/ae-16"])
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(url + "?tab=attribute-vectors&a=8&b=3&index=5&s=1.5")
    pg.wait_for_function("() => { const A = window.lsxAttributes; return A && A.model && A.decoder && A.frames > 0; }",
                         timeout=120_000)
    got = pg.evaluate("""() => { const A = window.lsxAttributes;
      return {a: A.model.a, b: A.model.b, what: A.model.what, s: A.s, slider: +document.querySelector('#attr-s').value}; }""")
    assert (got["a"], got["b"]) == ("8", "3") and "test image #5" in got["what"], got
    assert got["s"] == pytest.approx(1.5) and got["slider"] == pytest.approx(1.5), got
    assert pg.locator("#attr-preset input").input_value() == "3 → 8"
    pg.close()
