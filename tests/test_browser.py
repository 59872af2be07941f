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
    # the server now holds the clicked point for this session: its z1 matches the slider's. The
    # slider's number box may update a moment after the image on a loaded machine: poll up to 10 s.
    for _ in range(100):
        z1 = float(page.locator("#z-slider-1 input[type=number]").input_value())
        sessions = [p for p in panel._points.values() if p[0] == "digits/vae-2d"]
        if any(abs(p[1][0] - z1) < 1e-6 for p in sessions):
            break
        page.wait_for_timeout(100)
    assert any(abs(p[1][0] - z1) < 1e-6 for p in sessions), (z1, sessions)


def test_projection_map_hover_shows_a_thumbnail_and_click_decodes(page):
    page.get_by_role("tab", name="Projection").click()
    page.wait_for_function("() => window.lsxMaps?.['proj-map-a']?.pixel(0)", timeout=180_000)
    canvas = page.locator("#proj-map-a canvas.lsx-canvas").bounding_box()
    x, y = page.evaluate("() => window.lsxMaps['proj-map-a'].pixel(12)")
    page.mouse.move(canvas["x"] + x, canvas["y"] + y)
    page.wait_for_selector("#proj-map-a .lsx-tip", state="visible", timeout=5_000)
    assert page.locator("#proj-map-a .lsx-tip-text").inner_text().startswith("#")
    page.mouse.click(canvas["x"] + x, canvas["y"] + y)
    page.wait_for_function("() => document.querySelector('#proj-detail img')?.complete", timeout=30_000)
    picked = page.evaluate("() => window.lsxMaps['proj-map-a'].selection()")
    assert picked[-1] == 12  # the clicked row is now B
    assert "Code under" in page.locator("#proj-code").inner_text()


def test_attribute_panel_encodes_an_uploaded_image(page, tmp_path):
    import numpy as np
    from PIL import Image

    page.get_by_role("tab", name="Attribute vectors").click()
    page.wait_for_function("() => document.querySelector('#attr-strip img')?.complete", timeout=60_000)
    a = np.full((120, 80, 3), 240, np.uint8)
    a[15:105, 30:50] = 10  # a dark stroke on white, like a phone photo of a "1"
    Image.fromarray(a).save(tmp_path / "mine.png")
    page.locator("#attr-upload input[type=file]").set_input_files(str(tmp_path / "mine.png"))
    page.wait_for_function("() => document.querySelector('#attr-note')?.innerText.includes('your image')",
                           timeout=30_000)
    assert "inverted" in page.locator("#attr-note").inner_text()
