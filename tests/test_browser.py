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
    # gridN changes when the new grid starts (it fills row by row); gridKey once its last row is drawn
    page.wait_for_function("() => (window.lsxLatentGrid.gridKey || '').includes('|7|') && window.lsxLatentGrid.gridKey.endsWith('page')")
    assert "7×7 decoded grid (in the page" in page.locator(".lsxg-gridtitle").inner_text()
    assert requests == []


GRID_WITH_A_SLIDE = """async (n) => {
  const LG = window.lsxLatentGrid, key0 = LG.gridKey;
  const ns = document.querySelector('.lsxg-n'), slider = document.querySelector('#lsx-z-1');
  const rows = () => (LG.gridRows || []).length;
  let pointAtRow = null, last = LG.last;  // how many grid rows were drawn when the point's image was drawn
  Object.defineProperty(LG, 'last', {configurable: true, get: () => last,
                                     set: (v) => { last = v; if (pointAtRow === null) pointAtRow = rows(); }});
  ns.value = n; ns.dispatchEvent(new Event('input', {bubbles: true}));  // a new n x n grid starts decoding
  await new Promise(res => setTimeout(res, 0));                          // then, in a later task, the slider moves
  slider.value = (+slider.min + +slider.max) / 2 + 0.1;
  slider.dispatchEvent(new Event('input', {bubbles: true}));
  while (LG.gridKey === key0) await new Promise(res => setTimeout(res, 5));
  delete LG.last; LG.last = last;
  return {rows: rows(), n: LG.gridN, pointAtRow, first: LG.gridRows[0], total: LG.gridMs, mode: LG.decoder.mode,
          increasing: LG.gridRows.every((t, i) => i === 0 || t >= LG.gridRows[i - 1])};
}"""

GRID_CHECK = """async () => {
  const LG = window.lsxLatentGrid, n = LG.gridN, S = 28, mos = LG.gridMosaic, W = mos.width;
  const px = mos.getContext('2d').getImageData(0, 0, W, W).data;
  let drawn = 0;  // every cell's pixels on the mosaic against its decoded image
  for (let k = 0; k < n * n; k++) {
    const r = Math.floor(k / n), c = k % n;
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      const v = Math.min(1, Math.max(0, LG.gridImages[k * 784 + y * S + x]));
      drawn = Math.max(drawn, Math.abs(px[((r * (S + 1) + y) * W + c * (S + 1) + x) * 4] - Math.round(v * 255)));
    }
  }
  const batched = await LG.decoder.run(LG.gridZ, n * n);  // the same codes in one run of n * n
  let diff = 0;
  for (let i = 0; i < batched.length; i++) diff = Math.max(diff, Math.abs(batched[i] - LG.gridImages[i]));
  return {drawn, diff};
}"""


@pytest.mark.browser
def test_the_grid_fills_row_by_row_and_a_slider_does_not_wait_for_it(page):
    """A 20x20 grid is decoded one row per run and drawn row by row; a slider moved in the next task after the
    grid started is decoded and drawn after a row or a few, long before the last (it waits a row, not the grid);
    the drawn cells are the decoded images, and the rows equal one batched decode of the same codes."""
    page.wait_for_timeout(500)
    r = page.evaluate(GRID_WITH_A_SLIDE, 20)
    assert r["mode"] == "page" and r["n"] == 20 and r["rows"] == 20 and r["increasing"], r
    assert r["pointAtRow"] is not None and 1 <= r["pointAtRow"] < 10, r  # the grid had not got half-way
    assert r["first"] < r["total"], r
    check = page.evaluate(GRID_CHECK)
    assert check["drawn"] == 0 and check["diff"] < 1e-5, check


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
