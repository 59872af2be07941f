"""A real browser (Debian's Chromium via Playwright) drags a slider and clicks the map."""
import pytest

playwright = pytest.importorskip("playwright.sync_api")

from conftest import BROWSER_ARGS  # noqa: E402


@pytest.fixture(scope="module")
def page(served_app):
    url, _, _ = served_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1500, "height": 1000})
        pg.goto(url)
        pg.wait_for_function("() => document.querySelector('#decoded img')?.complete", timeout=60_000)
        yield pg
        browser.close()


def _decoded_src(pg):
    return pg.eval_on_selector("#decoded img", "img => img.src")


def test_dragging_a_slider_changes_the_decoded_image(page):
    before = _decoded_src(page)
    number = page.locator("#z-slider-1 input[type=number]")
    start = float(number.input_value())
    box = page.locator("#z-slider-1 input[type=range]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(box["x"] + box["width"] * (0.5 + 0.08 * i), y)
    page.mouse.up()
    page.wait_for_function("(b) => document.querySelector('#decoded img')?.src !== b", arg=before,
                           timeout=15_000)
    assert float(number.input_value()) > start  # dragged right: z1 grew


def test_clicking_the_map_decodes_that_point(page):
    before = _decoded_src(page)
    map_img = page.locator("#latent-map img")
    box = map_img.bounding_box()
    map_img.click(position={"x": box["width"] * 0.35, "y": box["height"] * 0.6})
    page.wait_for_function("(b) => document.querySelector('#decoded img')?.src !== b", arg=before,
                           timeout=15_000)
    assert "(2-D)" in page.locator("#z-info").inner_text()


def test_a_drag_after_a_click_starts_from_the_clicked_point(page, served_app):
    _, demo, _ = served_app
    panel = demo.panels["latent_grid"]
    map_img = page.locator("#latent-map img")
    box = map_img.bounding_box()
    before = _decoded_src(page)
    map_img.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.4})
    page.wait_for_function("(b) => document.querySelector('#decoded img')?.src !== b", arg=before,
                           timeout=15_000)
    page.wait_for_function("() => document.querySelector('#z-info')?.innerText.includes('2-D')")
    z1 = float(page.locator("#z-slider-1 input[type=number]").input_value())
    # the server now holds the clicked point for this session: its z1 matches the slider's
    sessions = [p for p in panel._points.values() if p[0] == "digits/vae-2d"]
    assert any(abs(p[1][0] - z1) < 1e-6 for p in sessions)
