"""Decoding in the page, measured in headless Chromium against the trivial one-slider Gradio app (the floor of
any server round trip) in the same run.

    python benchmarks/inpage_decode.py                 # all figures (about 3 minutes)
    python benchmarks/inpage_decode.py --crowd 0       # skip the ten-pages-at-once run
    python benchmarks/inpage_decode.py --present       # the Latent grid in presentation mode at 1280x720

Prints, for fashion-mnist/vae-2d and fashion-mnist/vae-16 on the Latent grid (``--models`` for others, e.g.
faces/vae-64):
  - input event -> decoded image drawn, over >= 200 slider moves and >= 200 map hovers (p50 / p95);
  - frames decoded and drawn per second during a continuous 5-second drag;
  - a 20x20 grid decoded in the page (row by row until the last row; median of 5);
  - requests that leave the page during a 100-position drag and during a hover sweep (Playwright's log);
  - page weight: bytes fetched on a first visit and on a second visit (browser cache), and the time from
    opening the page to the first in-page decode, cold and warm;
  - the Projection panel: click -> reconstruction and both interpolation strips drawn (p50 / p95);
  - ten pages dragging at once for 30 s against one server: the server's CPU seconds, requests, errors.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from slider_latency import build_trivial, launch, open_page, run_moves, serve  # noqa: E402

READY = ("() => window.lsxLatentGrid && window.lsxLatentGrid.decoder && window.lsxLatentGrid.decoder.mode === 'page'"
         " && window.lsxLatentGrid.frames > 0")

SLIDE_JS = """
async ({count}) => {  // count input events on the first slider, one per animation frame; ms each until drawn
  const LG = window.lsxLatentGrid, r = document.querySelector('#lsx-z-1');
  const lo = +r.min, hi = +r.max, out = [];
  for (let i = 0; i < count; i++) {
    const before = LG.times.length;
    r.value = lo + (hi - lo) * (0.5 + 0.4 * Math.sin(i / 7));
    r.dispatchEvent(new Event('input', {bubbles: true}));
    while (LG.times.length === before) await new Promise(res => setTimeout(res, 0));
    out.push(LG.times[LG.times.length - 1]);
    await new Promise(res => requestAnimationFrame(res));
  }
  return out;
}
"""

DRAG_JS = """
async ({seconds}) => {  // a continuous drag: one input event per animation frame; frames drawn per second
  const LG = window.lsxLatentGrid, r = document.querySelector('#lsx-z-1'), lo = +r.min, hi = +r.max;
  const f0 = LG.frames, t0 = performance.now(); let i = 0;
  while (performance.now() - t0 < seconds * 1000) {
    r.value = lo + (hi - lo) * (0.5 + 0.45 * Math.sin(i++ / 20));
    r.dispatchEvent(new Event('input', {bubbles: true}));
    await new Promise(res => requestAnimationFrame(res));
  }
  await new Promise(res => setTimeout(res, 50));
  return {fps: (LG.frames - f0) / ((performance.now() - t0) / 1000), events: i};
}
"""

GRID_JS = """
async ({n}) => {  // decode an n x n grid in the page (a new range each time so nothing is cached)
  const LG = window.lsxLatentGrid, span = document.querySelector('.lsxg-span'), ns = document.querySelector('.lsxg-n');
  ns.value = n; ns.dispatchEvent(new Event('input', {bubbles: true}));
  const out = [];
  for (const s of [2.0, 2.2, 2.4, 2.6, 2.8, 3.0]) {
    const key = LG.gridKey;
    span.value = s; span.dispatchEvent(new Event('input', {bubbles: true}));
    while (LG.gridKey === key) await new Promise(res => setTimeout(res, 2));
    out.push(LG.gridMs);
  }
  return out.slice(1);  // (the grid fills row by row: benchmarks/grid_page.py times its first row and a slider meanwhile)
}
"""


def hover(page, count):
    """``count`` mouse moves across the map; ms from each move to its preview drawn."""
    box = page.locator("canvas.lsxg-map").bounding_box()
    page.evaluate("() => { window.lsxLatentGrid.times.length = 0; }")
    for i in range(count):
        f = i / max(count - 1, 1)
        page.mouse.move(box["x"] + box["width"] * (0.1 + 0.8 * f), box["y"] + box["height"] * (0.5 + 0.3 * (f - 0.5)))
        page.wait_for_function("(n) => window.lsxLatentGrid.times.length > n", arg=i, polling="raf")
    return page.evaluate("() => window.lsxLatentGrid.times.slice()")


def select_model(page, name):
    dataset = name.split("/", 1)[0]
    menu = page.locator("#dataset-menu input")
    if menu.count() and menu.input_value() != dataset:  # the app's Dataset menu first: the model menu follows it
        menu.click()
        page.get_by_role("option", name=dataset, exact=True).click()
        page.wait_for_function(f"() => window.lsxLatentGrid?.model?.name?.startsWith({dataset + '/'!r})", timeout=120_000)
        if page.evaluate("() => window.lsxLatentGrid.model.name") == name:
            page.wait_for_function("() => window.lsxLatentGrid.decoder?.mode === 'page'", timeout=120_000)
            page.wait_for_timeout(300)
            return
    page.locator("#lg-model input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function(f"() => window.lsxLatentGrid?.model?.name === {name!r} && window.lsxLatentGrid.decoder?.mode === 'page'",
                           timeout=120_000)
    page.wait_for_timeout(300)


def page_weight(browser, url):
    """(bytes, ms to first in-page decode) for a cold visit and a warm one in the same browser context."""
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
    out = []
    for _ in range(2):
        page = ctx.new_page()
        cdp = ctx.new_cdp_session(page)
        cdp.send("Network.enable")
        got = {"bytes": 0}
        cdp.on("Network.loadingFinished", lambda e: got.__setitem__("bytes", got["bytes"] + e.get("encodedDataLength", 0)))
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_function(READY, timeout=120_000, polling=5)
        ms = (time.perf_counter() - t0) * 1000
        page.wait_for_timeout(1500)
        out.append((got["bytes"], ms))
        page.close()
    ctx.close()
    return out


def projection_clicks(page, count):
    """Projection tab: click ``count`` points; ms from each click to reconstruction + strips drawn."""
    page.evaluate(C.open_tab_js("Projection", "window.lsxMaps?.['proj-map-a']?.pixel(0)"))
    box = page.locator("#proj-map-a canvas.lsx-canvas").bounding_box()
    for i in range(3):  # warm-up clicks: the first one loads the decoder
        x, y = page.evaluate(f"() => window.lsxMaps['proj-map-a'].pixel({100 + i})")
        n = page.evaluate("() => window.lsxProjection ? window.lsxProjection.times.length : 0")
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_function("(n) => window.lsxProjection && window.lsxProjection.times.length > n", arg=n,
                               timeout=120_000)
    page.evaluate("() => { window.lsxProjection.times.length = 0; }")
    for i in range(count):
        x, y = page.evaluate(f"() => window.lsxMaps['proj-map-a'].pixel({(i * 37) % 4000})")
        n = page.evaluate("() => window.lsxProjection.times.length")
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_function("(n) => window.lsxProjection.times.length > n", arg=n, timeout=30_000)
        page.wait_for_timeout(30)
    return page.evaluate("() => window.lsxProjection.times.slice()")


def crowd(browser, url, pages, seconds):
    """``pages`` pages drag a slider at once for ``seconds``; (requests, errors) seen by the pages."""
    ctxs, opened, reqs, errors = [], [], [], []
    for _ in range(pages):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.on("request", lambda r: reqs.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function(READY, timeout=180_000)
        ctxs.append(ctx)
        opened.append(page)
    reqs.clear()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    results = [None] * pages
    # Playwright's sync API runs one evaluate at a time: start every page's drag without awaiting it, then poll
    for page in opened:
        page.evaluate(f"() => {{ ({DRAG_JS})({{seconds: {seconds}}}).then(r => window._crowdDone = r); }}")
    for i, page in enumerate(opened):
        page.wait_for_function("() => window._crowdDone", timeout=(seconds + 60) * 1000)
        results[i] = page.evaluate("() => window._crowdDone")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for ctx in ctxs:
        ctx.close()
    return dict(cpu=cpu, wall=wall, requests=len(reqs), errors=len(errors),
                fps=C.median([r["fps"] for r in results]))


def main(argv=None):
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--crowd", type=int, default=10, help="pages dragging at once (0: skip)")
    p.add_argument("--crowd-seconds", type=float, default=30)
    p.add_argument("--models", nargs="+", default=["fashion-mnist/vae-2d", "fashion-mnist/vae-16"],
                   help="Latent grid models to measure (e.g. faces/vae-64: a 64x64 colour decoder)")
    p.add_argument("--present", action="store_true",
                   help="the Latent grid in presentation mode (?present=1) in a 1280x720 window")
    a = p.parse_args(argv)
    C.print_machine("Decoding in the page (headless Chromium)")
    from playwright.sync_api import sync_playwright

    import app

    demo, store = app.create(a.checkpoints)
    store.decoders.warm(store.zoo.available())
    for panel in demo.panels.values():
        if hasattr(panel, "warm"):
            panel.warm()
    url = serve(demo)
    trivial = build_trivial()
    url_triv = launch(trivial, {})
    rows = []
    with sync_playwright() as pw:
        browser = C.launch_browser(pw)
        # the floor: the trivial app's server round trip, same run
        tp = open_page(browser, url_triv, "#trivial-image", "#trivial-slider", 60)
        run_moves(tp, "#trivial-slider", "#trivial-image", 10, 1, 10_000, 30)
        lat, _, _ = run_moves(tp, "#trivial-slider", "#trivial-image", 60, 2, 10_000, 30)
        tp.close()
        rows.append(("trivial Gradio app: slider -> image (server round trip), 60 moves",
                     f"{C.percentile(lat, 50):.1f} / {C.percentile(lat, 95):.1f} ms"))

        size = {"width": 1280, "height": 720} if a.present else {"width": 1500, "height": 1100}
        page = browser.new_page(viewport=size)
        page.goto(url + ("?present=1" if a.present else ""))
        page.wait_for_function(READY, timeout=120_000)
        for name in a.models:
            if page.evaluate("() => window.lsxLatentGrid.model.name") != name:
                select_model(page, name)
            short = name.split("/")[1]
            page.evaluate(SLIDE_JS, {"count": 20})  # warm-up
            page.evaluate("() => { window.lsxLatentGrid.times.length = 0; }")
            xs = page.evaluate(SLIDE_JS, {"count": a.moves})
            rows.append((f"{short}: slider input -> decoded image drawn, {len(xs)} moves",
                         f"{C.percentile(xs, 50):.2f} / {C.percentile(xs, 95):.2f} ms"))
            hs = hover(page, a.moves)
            rows.append((f"{short}: map hover -> decoded preview drawn, {len(hs)} hovers",
                         f"{C.percentile(hs, 50):.2f} / {C.percentile(hs, 95):.2f} ms"))
            drag = page.evaluate(DRAG_JS, {"seconds": 5})
            rows.append((f"{short}: continuous 5 s drag", f"{drag['fps']:.1f} frames/s ({drag['events']} input events)"))
            gs = page.evaluate(GRID_JS, {"n": 20})
            rows.append((f"{short}: 20x20 grid decoded in the page (row by row, all rows), median of {len(gs)}",
                         f"{C.median(gs):.0f} ms"))
        # requests during a 100-position drag and a hover sweep
        reqs = []
        page.on("request", lambda r: reqs.append(r.url))
        box = page.locator("#lsx-z-1").bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 4, y)
        page.mouse.down()
        for i in range(100):
            page.mouse.move(box["x"] + 4 + (box["width"] - 8) * i / 99, y)
        n_drag = len(reqs)
        page.mouse.up()
        page.wait_for_timeout(1000)
        n_release = len(reqs) - n_drag
        reqs.clear()
        hover(page, 100)
        rows.append(("requests during a 100-position slider drag / on its release / during 100 hovers",
                     f"{n_drag} / {n_release} / {len(reqs)}"))
        try:
            clicks = projection_clicks(page, 30)
            rows.append(("Projection: click -> reconstruction + both strips drawn, 30 clicks",
                         f"{C.percentile(clicks, 50):.2f} / {C.percentile(clicks, 95):.2f} ms"))
        except Exception as err:  # the panel's page code may not expose its timings
            rows.append(("Projection: click -> reconstruction + both strips drawn", f"not measured ({err})"[:120]))
        page.close()
        (b1, t1), (b2, t2) = page_weight(browser, url)
        rows.append(("page weight, first visit / second visit (browser cache)", f"{b1 / 1e6:.2f} MB / {b2 / 1e6:.2f} MB"))
        rows.append(("open -> first in-page decode, cold / warm", f"{t1:.0f} / {t2:.0f} ms"))
        if a.crowd:
            c = crowd(browser, url, a.crowd, a.crowd_seconds)
            rows.append((f"{a.crowd} pages dragging at once for {a.crowd_seconds:.0f} s: server process CPU "
                         "(server + this script's driver)", f"{c['cpu']:.1f} s over {c['wall']:.0f} s"))
            rows.append(("  requests received / page errors / median frames/s per page",
                         f"{c['requests']} / {c['errors']} / {c['fps']:.1f}"))
        browser.close()
    demo.close()
    trivial.close()
    print(C.table(["what", "figure"], rows))


if __name__ == "__main__":
    main()
