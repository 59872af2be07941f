"""The Attribute vectors panel decodes in the page: after Apply, dragging the strength slider decodes
z + s·v in the browser with no request to the server, the image matches the server's torch decode, the
−k..+k strip is one in-page batch, and a browser without WebAssembly gets the same panel through the
server's decode (LSX's fallback). The panel's logic without a browser comes first."""
import numpy as np
import pytest

from explorer import latents

NAME = "digits/ae-16"


# --- the logic, no browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def panel(served_app):
    _, demo, store = served_app
    store.decoders.warm([NAME])  # the ONNX decoder the page loads (built into the test's private cache)
    return demo.panels["attributes"]


@pytest.mark.slow
def test_page_state_carries_the_same_code_and_vector_as_the_api(panel):
    args = (NAME, "7", "1", "Test image", 5, None)
    state = panel.page_state(*args, 0.5, 2.0)
    *_, z, v = panel.on_apply(*args, 0.5, 2.0)
    assert np.allclose(state["z"], z) and np.allclose(state["v"], v)
    assert state["dim"] == len(z) == 16 and (state["s"], state["k"], state["strip"]) == (0.5, 2.0, 9)
    assert state["decoder"]["name"] == NAME and state["decoder"]["sha"]  # warmed: the page decodes itself
    assert "test image #5" in state["what"] and (state["a"], state["b"]) == ("7", "1")
    assert panel.page_state(*args, 0.5, 2.0)["seq"] > state["seq"]  # every Apply is news to the page


@pytest.mark.slow
def test_page_state_refuses_what_the_api_refuses(panel):
    import gradio as gr

    with pytest.raises(gr.Error, match="same"):
        panel.page_state(NAME, "7", "7", "Test image", 5, None, 1.0, 2.0)
    with pytest.raises(gr.Error, match="strength"):
        panel.page_state(NAME, "7", "1", "Test image", 5, None, 9.0, 2.0)
    with pytest.raises(gr.Error, match="strip range"):
        panel.page_state(NAME, "7", "1", "Test image", 5, None, 1.0, float("nan"))


@pytest.mark.slow
def test_commit_keeps_a_valid_strength_on_the_slider_grid(panel):
    import gradio as gr

    def evt(value):
        return gr.SelectData(None, {"index": 0, "value": value})

    assert panel.on_commit(evt({"s": -1.2300001})) == pytest.approx(-1.25)
    for bad in ({"s": 7}, {"s": "x"}, {}, "s"):
        with pytest.raises(gr.Error):
            panel.on_commit(evt(bad))


# --- a real browser ----------------------------------------------------------------------------------

playwright = pytest.importorskip("playwright.sync_api")
from conftest import BROWSER_ARGS  # noqa: E402

READY = ("() => { const A = window.lsxAttributes; return A && A.decoder && A.frames > 0 && A.stripFrames > 0 "
         "&& A.model && A.model.name === '%s'; }" % NAME)


def _open(browser, url, no_wasm=False):
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    if no_wasm:
        pg.add_init_script("delete globalThis.WebAssembly")  # Chromium keeps it even with --noexpose_wasm
    pg.goto(url)
    pg.get_by_role("tab", name="Attribute vectors").click()
    pg.wait_for_function(READY, timeout=120_000)
    # the tab's other server work (measured strip, anomaly histogram, analogy) finishes first
    pg.wait_for_function("() => document.querySelector('#attr-strip img')?.complete && "
                         "document.querySelector('#attr-worst img') && document.querySelector('#attr-analogy-img img')",
                         timeout=120_000)
    pg.wait_for_timeout(1500)  # ("networkidle" never comes: Gradio keeps a heartbeat stream open)
    return pg


@pytest.fixture(scope="module")
def browser(served_app, panel):
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        yield b
        b.close()


def _drag(pg, fractions):
    """Press on the strength slider's thumb region, move through ``fractions`` of its width; the mouse
    stays down (the caller releases)."""
    box = pg.locator("#attr-s").bounding_box()
    y = box["y"] + box["height"] / 2
    pg.mouse.move(box["x"] + box["width"] * fractions[0], y)
    pg.mouse.down()
    for f in fractions[1:]:
        pg.mouse.move(box["x"] + box["width"] * f, y)
        pg.wait_for_timeout(20)


def _state(pg):
    return pg.evaluate("""() => { const A = window.lsxAttributes;
      return {s: A.s, lastS: A.lastS, last: Array.from(A.last), z: A.model.z, v: A.model.v, k: A.model.k,
              strip: A.strip && Array.from(A.strip), mode: A.decoder.mode, frames: A.frames, times: A.times.slice(),
              commits: A.commits, seq: A.model.seq}; }""")


def _canvas_cells(pg):
    """The live canvas (224 px = 8 px per image pixel) read back at each image pixel's centre, in [0, 1]."""
    return np.array(pg.evaluate("""() => { const c = document.querySelector('#attr-live canvas.lsxa-live');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, s = c.width / 28, out = [];
      for (let r = 0; r < 28; r++) for (let q = 0; q < 28; q++) out.push(d[(Math.floor((r + .5) * s) * c.width + Math.floor((q + .5) * s)) * 4]);
      return out; }""")).reshape(28, 28) / 255


@pytest.mark.browser
def test_dragging_strength_decodes_in_the_page_with_no_requests(browser, served_app, panel):
    pg = _open(browser, served_app[0])
    before = _state(pg)
    assert before["mode"] == "page"
    requests = []
    pg.on("request", lambda r: "heartbeat" in r.url or requests.append(r.url))
    _drag(pg, [0.5 + 0.02 * i for i in range(25)])  # s from about 0 up to about +1.4
    pg.wait_for_function("(n) => window.lsxAttributes.frames > n && window.lsxAttributes.lastS === window.lsxAttributes.s",
                         arg=before["frames"], timeout=10_000)
    during = list(requests)
    after = _state(pg)
    assert during == [], during  # no request at all while the slider moves
    assert after["frames"] - before["frames"] >= 5 and len(after["times"]) >= 5
    assert after["s"] != before["s"] and after["last"] != before["last"]  # the image changed with s

    # the drawn image is the server's torch decode of z + s·v
    z, v, s = np.array(after["z"]), np.array(after["v"]), after["lastS"]
    want = panel.decode(NAME, z + s * v)[0]
    got = np.array(after["last"]).reshape(28, 28)
    assert np.abs(got - want).max() < 1e-3
    assert np.abs(_canvas_cells(pg) - want).max() <= 1 / 255 + 1e-6

    # the strip: one in-page batch over s = -k .. +k, as the server decodes it
    strip = np.array(after["strip"]).reshape(-1, 28, 28)
    ss = np.linspace(-after["k"], after["k"], len(strip))
    assert np.abs(strip - panel.decode(NAME, latents.along(z, v, ss))).max() < 1e-3
    assert "in your browser" in pg.locator("#attr-live .lsxa-striptitle").inner_text()

    # letting go tells the server s once; the next Apply starts from it
    pg.mouse.up()
    pg.wait_for_function("() => window.lsxAttributes.commits === 1", timeout=5_000)
    pg.wait_for_timeout(1000)
    pg.locator("#attr-apply").click()
    pg.wait_for_function("(q) => window.lsxAttributes.model.seq > q && window.lsxAttributes.frames > 0",
                         arg=after["seq"], timeout=60_000)
    assert _state(pg)["s"] == pytest.approx(s, abs=1e-9)
    pg.close()


@pytest.mark.browser
def test_without_webassembly_the_panel_decodes_on_the_server(browser, served_app, panel):
    pg = _open(browser, served_app[0], no_wasm=True)
    before = _state(pg)
    assert before["mode"] == "server"
    assert "on the server" in pg.locator("#attr-live .lsxa-mode").inner_text()
    _drag(pg, [0.5 - 0.03 * i for i in range(10)])
    pg.wait_for_function("(n) => window.lsxAttributes.frames > n && window.lsxAttributes.lastS === window.lsxAttributes.s",
                         arg=before["frames"], timeout=30_000)
    pg.mouse.up()
    after = _state(pg)
    assert after["s"] < 0 and after["last"] != before["last"]
    z, v = np.array(after["z"]), np.array(after["v"])
    want = panel.decode(NAME, z + after["lastS"] * v)[0]
    assert np.abs(np.array(after["last"]).reshape(28, 28) - want).max() <= 1 / 255 + 1e-6  # uint8 over the wire
    strip = np.array(after["strip"]).reshape(-1, 28, 28)
    assert strip.shape[0] == 9 and "on the server" in pg.locator("#attr-live .lsxa-striptitle").inner_text()
    pg.close()
