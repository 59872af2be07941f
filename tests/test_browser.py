"""A real browser (Debian's Chromium via Playwright) drags a slider and clicks the map."""
import pytest

playwright = pytest.importorskip("playwright.sync_api")

from conftest import BROWSER_ARGS  # noqa: E402


READY = "() => window.lsxLatentGrid?.decoder?.mode === 'page' && window.lsxLatentGrid.frames > 0"


@pytest.fixture(scope="module")
def page(served_app):
    url, _, _ = served_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1500, "height": 1000})
        pg.goto(url)
        pg.wait_for_function(READY, timeout=90_000)
        yield pg
        browser.close()


def _last(pg):
    return pg.evaluate("() => ({values: window.lsxLatentGrid.last.values, image: Array.from(window.lsxLatentGrid.last.image)})")


def _server_decode(store, name, values):
    """What the server's torch decoder makes of the page's slider values (uint8 scale, float)."""
    import numpy as np
    import torch

    view = store.view(name)
    z = view.plane.inverse_transform(np.asarray(values, np.float64)[None])
    return store.model(name).decode(torch.as_tensor(z, dtype=torch.float32)).numpy().ravel()


@pytest.mark.browser
def test_dragging_a_slider_decodes_in_the_page_with_no_request(page, served_app):
    import numpy as np

    _, demo, store = served_app
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    frames = page.evaluate("() => window.lsxLatentGrid.frames")
    box = page.locator("#lsx-z-1").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    for i in range(1, 41):
        page.mouse.move(box["x"] + box["width"] * (0.3 + 0.01 * i), y)
    during = list(requests)
    page.mouse.up()
    assert during == [], during  # 40 positions, all decoded in the page
    assert page.evaluate("() => window.lsxLatentGrid.frames") >= frames + 20
    page.wait_for_timeout(200)  # the last position's decode
    last = _last(page)
    want = _server_decode(store, "digits/vae-2d", last["values"])
    assert np.abs(np.asarray(last["image"]) - want).max() < 1e-3  # onnxruntime-web == torch
    # the release told the server the final point (one queued event), and it kept it for this session
    for _ in range(100):
        points = [e["point"]["latent_grid"] for e in store.sessions._sessions.values() if "point" in e]
        if any(p[0] == "digits/vae-2d" and abs(p[1][0] - last["values"][0]) < 1e-3 for p in points):
            break
        page.wait_for_timeout(100)
    assert any(p[0] == "digits/vae-2d" and abs(p[1][0] - last["values"][0]) < 1e-3 for p in points), points
    assert 1 <= sum("queue/join" in u for u in requests) <= 2, requests


@pytest.mark.browser
def test_hovering_the_map_previews_and_dragging_moves_the_point(page):
    page.wait_for_timeout(1000)  # the previous test's release event has been answered
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    box = page.locator("canvas.lsxg-map").bounding_box()
    before = page.evaluate("() => window.lsxLatentGrid.values.slice()")
    hovers = page.evaluate("() => window.lsxLatentGrid.hoverFrames || 0")
    for i in range(20):
        page.mouse.move(box["x"] + box["width"] * (0.3 + 0.02 * i), box["y"] + box["height"] * 0.4)
    page.wait_for_selector(".lsxg-tip", state="visible")
    page.wait_for_function("(h) => (window.lsxLatentGrid.hoverFrames || 0) > h", arg=hovers)
    assert page.evaluate("() => window.lsxLatentGrid.values.slice()") == before  # hovering does not move it
    page.mouse.down()
    for i in range(20):
        page.mouse.move(box["x"] + box["width"] * (0.7 - 0.02 * i), box["y"] + box["height"] * 0.6)
    assert requests == [], requests
    page.mouse.up()
    assert page.evaluate("() => window.lsxLatentGrid.values.slice()") != before


@pytest.mark.browser
def test_the_grid_is_decoded_in_the_page_when_n_changes(page):
    page.wait_for_timeout(1000)  # the previous test's release event has been answered
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.locator(".lsxg-n").fill("7")
    page.wait_for_function("() => window.lsxLatentGrid.gridN === 7 && window.lsxLatentGrid.gridKey.endsWith('page')")
    assert "7×7 decoded grid (in the page" in page.locator(".lsxg-gridtitle").inner_text()
    assert requests == []


@pytest.mark.browser
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
