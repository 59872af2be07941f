"""Presentation mode and zoom (explorer/ui/web/present.css, LSX.fs in web/lsx.js): in a real browser, every panel's
main controls and picture lie inside one 1280x720 screen with ?present=1, nothing on it is drawn under 18 px
(the page's text by computed style, canvas text by every font our page code sets), and at 150% zoom (an
853x480 CSS-px window, what a 1280x720 window zoomed to 150% lays out) no tab is hidden and no two visible
controls overlap (nor at 200%, 640x360, presenting). One app over the tiny random-weight zoo of test_zoo.py, one browser, the panels in a loop."""
from __future__ import annotations

import os

import pytest

playwright = pytest.importorskip("playwright.sync_api")

from conftest import BROWSER_ARGS, launched_app  # noqa: E402
from test_zoo import zoo_root  # noqa: E402,F401  (the module fixture: every family, random weights, in seconds)

FLOOR = 18  # px: the back row's floor
W, H = 1280, 720
TABS = ["Latent grid", "Projection", "Attribute vectors", "Diffusion", "DAE vs baseline", "Model zoo"]

# every font any canvas is given, with the canvas's class: recorded from the page's first script on
FONT_PROBE = """
window.lsxFonts = [];
const d = Object.getOwnPropertyDescriptor(CanvasRenderingContext2D.prototype, 'font');
Object.defineProperty(CanvasRenderingContext2D.prototype, 'font', {configurable: true,
  get() { return d.get.call(this); },
  set(v) { window.lsxFonts.push(v); d.set.call(this, v); }});
"""
# the font size (px) of every visible element of the open panel and the header that holds text of its own
TEXT_SIZES = """() => {
  const out = [], panel = [...document.querySelectorAll('[role=tabpanel]')].find(p => p.offsetParent);
  for (const root of [document.querySelector('#lsx-header'), document.querySelector('[role=tablist]'), panel]) {
    for (const el of root.querySelectorAll('*')) {
      const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
      const r = el.getBoundingClientRect();
      if (!own || !r.width || !r.height || getComputedStyle(el).visibility === 'hidden' || !el.offsetParent) continue;
      if (r.top >= innerHeight || r.bottom <= 0) continue;  // below the screen: not part of the view
      out.push([parseFloat(getComputedStyle(el).fontSize), el.textContent.trim().slice(0, 40), el.className]);
    }
  }
  return out;
}"""
# every visible control of the open panel and the header: [label, x, y, w, h]
CONTROLS = """() => {
  const out = [], panel = [...document.querySelectorAll('[role=tabpanel]')].find(p => p.offsetParent);
  for (const root of [document.querySelector('#lsx-header'), panel]) {
    for (const el of root.querySelectorAll('button, input, select, textarea')) {
      const r = el.getBoundingClientRect(), s = getComputedStyle(el);
      if (!r.width || !r.height || s.visibility === 'hidden' || !el.offsetParent || el.closest('[aria-hidden=true]')) continue;
      if (el.parentElement.closest('button')) continue;  // a part of a button (Gradio's icon buttons nest one)
      if (el.querySelector('img')) continue;  // a picture that is clickable: its own toolbar sits over its corner
      if (el.type === 'file') continue;  // Gradio's upload box hides its file input under its own button
      out.push([(el.getAttribute('aria-label') || el.textContent || el.className || el.type).trim().slice(0, 40),
                r.x, r.y, r.width, r.height]);
    }
  }
  return out;
}"""
# each dropdown's text box ends before its arrow begins: [label, text's right edge, arrow's left edge]
ARROWS = """() => [...document.querySelectorAll('input[role=combobox]')].filter(i => i.offsetParent).map(i => {
  const r = i.getBoundingClientRect(), icon = i.closest('.wrap-inner, .wrap')?.querySelector('.icon-wrap');
  const a = icon ? icon.getBoundingClientRect() : null;
  return [i.getAttribute('aria-label'), r.right - parseFloat(getComputedStyle(i).paddingRight), a && a.width ? a.left : 1e9];
})"""

# per panel: what must be visible at once (selectors), and a script that is true once the picture is drawn
MAIN = {
    "Latent grid": (["#lg-model input", "canvas.lsxg-map", "canvas.lsxg-decoded", "#lsx-z-1", "#lsx-z-2"],
                    "() => window.lsxLatentGrid?.frames > 0"),
    "Projection": (["#proj-model input", "#proj-map-a canvas.lsx-canvas", "#proj-view .lsxv-figs canvas"],
                   "() => document.querySelectorAll('#proj-view .lsxv-figs canvas').length > 0"),
    "Attribute vectors": (["#attr-index input", "#attr-apply", "#attr-input img", "canvas.lsxa-live", "input.lsxa-s",
                           "canvas.lsxa-strip"],
                          "() => window.lsxAttributes?.strip && document.querySelector('#attr-input img')?.complete"),
    "Diffusion": (["#diff-model input", ".lsxd-run", "canvas.lsxd-frame", ".lsxd-status"],
                  "() => window.lsxDiffusion?.frames?.length > 1"),
    "DAE vs baseline": (["#dae-map-a canvas.lsx-canvas", "#dae-map-b canvas.lsx-canvas", "#dae-view .lsxv-figs canvas"],
                        "() => document.querySelectorAll('#dae-view .lsxv-figs canvas').length > 0"),
    "Model zoo": (["#zoo-seed input", "#zoo-draw", "#zoo-grid img"],
                  "() => document.querySelector('#zoo-grid img')?.naturalWidth > 0"),
}


@pytest.fixture(scope="module")
def app(zoo_root):  # noqa: F811
    """The app over the tiny zoo, with PCA standing in for UMAP on every map (the layout does not depend on it,
    and fitting UMAP would take most of a minute per model)."""
    with launched_app(zoo_root) as (url, demo, store):
        for name in store.encoder_models():
            store._projections[(name, "umap")] = store.projection(name, "pca")
        yield url, demo, store


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        yield b
        b.close()


def _open(page, tab):
    page.get_by_role("tab", name=tab, exact=True).click()
    page.wait_for_timeout(300)


def _pick(page, map_id):
    """Click the first point of a point map (its canvas pixel, from window.lsxMaps)."""
    page.wait_for_function(f"() => window.lsxMaps?.['{map_id}']?.pixel(0)", timeout=60_000)
    x, y = page.evaluate(f"() => window.lsxMaps['{map_id}'].pixel(0)")
    box = page.locator(f"#{map_id} canvas.lsx-canvas").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def _shot(page, name):
    """With LSX_SHOTS=folder set, keep a screenshot of what was measured (the README's come from here)."""
    if os.environ.get("LSX_SHOTS"):
        page.screenshot(path=os.path.join(os.environ["LSX_SHOTS"], name.replace(" ", "-").lower() + ".png"))


def _inside(box):
    return box and box["x"] >= -1 and box["y"] >= -1 and box["x"] + box["width"] <= W + 1 and box["y"] + box["height"] <= H + 1


@pytest.mark.browser
def test_presentation_mode_fits_every_panel_on_one_screen_in_large_type(app, browser):
    url = app[0]
    page = browser.new_page(viewport={"width": W, "height": H})
    page.add_init_script(FONT_PROBE)
    page.goto(url + "?present=1")
    page.wait_for_function("() => window.lsxLatentGrid?.frames > 0", timeout=90_000)
    assert page.evaluate("() => document.documentElement.classList.contains('lsx-present')")
    assert page.locator("#lsx-present-toggle input").is_checked()  # the toggle shows the URL's mode
    problems = []
    for tab, (selectors, ready) in MAIN.items():
        if tab != "Latent grid":  # the first tab drew its canvases at load: keep those fonts
            page.evaluate("() => { window.lsxFonts.length = 0; }")
        _open(page, tab)
        if tab == "Projection":
            _pick(page, "proj-map-a")
        elif tab == "DAE vs baseline":
            _pick(page, "dae-map-a")
        elif tab == "Diffusion":  # Run, in the page once the UNet's ONNX is built
            page.wait_for_function("() => window.lsxDiffusion?.mode === 'page'", timeout=120_000)
            page.locator(".lsxd-steps").fill("5")
            page.locator(".lsxd-run").click()
        elif tab == "Attribute vectors":
            page.wait_for_function("() => window.lsxAttributes?.model || document.querySelector('#attr-index input')",
                                   timeout=60_000)
            page.locator("#attr-apply").click()
        page.wait_for_function(ready, timeout=90_000)
        page.wait_for_timeout(500)
        page.evaluate("() => window.scrollTo(0, 0)")
        _shot(page, f"present-{tab}")
        for sel in selectors:
            loc = page.locator(sel).first
            box = loc.bounding_box() if loc.count() else None
            if not _inside(box):
                problems.append(f"{tab}: {sel} not inside the {W}x{H} screen: {box}")
        small = [t for t in page.evaluate(TEXT_SIZES) if t[0] < FLOOR - 0.01]
        problems += [f"{tab}: text '{t[1]}' ({t[2]}) is {t[0]} px" for t in small]
        fonts = page.evaluate("() => window.lsxFonts.slice()")
        sizes = [float(f.split("px")[0].split()[-1]) for f in fonts if "px" in f]
        problems += [f"{tab}: canvas text at {s} px" for s in sizes if s < FLOOR]
        if tab in ("Latent grid", "Projection", "DAE vs baseline") and not sizes:
            problems.append(f"{tab}: no canvas text was drawn (the probe saw nothing)")
    # the toggle turns the mode off again, in the page and in the URL
    page.locator("#lsx-present-toggle input").click()
    page.wait_for_function("() => !document.documentElement.classList.contains('lsx-present')")
    assert "present=" not in page.url
    page.close()
    assert not problems, "\n".join(problems)


@pytest.mark.browser
@pytest.mark.parametrize("zoom, present", [(1.5, False), (1.5, True), (2.0, True)],
                         ids=["150-plain", "150-presenting", "200-presenting"])
def test_zoomed_no_tab_hides_and_no_controls_overlap(app, browser, zoom, present):
    url = app[0]
    page = browser.new_page(viewport={"width": round(W / zoom), "height": round(H / zoom)})
    page.goto(url + ("?present=1" if present else ""))
    page.wait_for_function("() => window.lsxLatentGrid?.frames > 0", timeout=90_000)
    problems = []
    for tab in TABS:
        loc = page.get_by_role("tab", name=tab, exact=True)
        if not (loc.count() and loc.is_visible()):
            problems.append(f"tab {tab} is hidden")
            continue
        loc.click()
        page.wait_for_timeout(1500)
        _shot(page, f"zoom{round(zoom * 100)}{'-present' if present else ''}-{tab}")
        boxes = page.evaluate(CONTROLS)
        for i, (a, ax, ay, aw, ah) in enumerate(boxes):
            for b, bx, by, bw, bh in boxes[i + 1:]:
                w, h = min(ax + aw, bx + bw) - max(ax, bx), min(ay + ah, by + bh) - max(ay, by)
                if w > 1 and h > 1:
                    problems.append(f"{tab}: '{a}' overlaps '{b}' ({w:.0f}x{h:.0f} px)")
        problems += [f"{tab}: the {name} menu's arrow covers its text ({text:.0f} > {arrow:.0f})"
                     for name, text, arrow in page.evaluate(ARROWS) if text > arrow + 1]
    page.close()
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.browser
def test_the_standalone_page_takes_present_1_too(app, browser):
    """The page "Download as a page" writes, opened from disk with ?present=1: the same class, type and canvas text."""
    from pathlib import Path

    _, demo, store = app
    name = store.encoder_models()[0]
    path = Path(demo.panels["latent_grid"].standalone(name))
    page = browser.new_page(viewport={"width": W, "height": H})
    page.add_init_script(FONT_PROBE)
    page.goto(path.as_uri() + "?present=1")
    page.wait_for_function("() => window.lsxLatentGrid?.frames > 0", timeout=90_000)
    assert page.evaluate("() => document.documentElement.classList.contains('lsx-present')")
    title = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.lsxg-title')).fontSize)")
    sizes = [float(f.split("px")[0].split()[-1]) for f in page.evaluate("() => window.lsxFonts") if "px" in f]
    page.close()
    assert title >= FLOOR and sizes and min(sizes) >= FLOOR, (title, sizes)
