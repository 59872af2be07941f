"""DAE vs baseline panel in a real browser: tab open time, "New images" and map-click latency, and the
wall time of a live run at the default budget (Train live -> the panel filled with the live results).

    python benchmarks/dae_panel.py [--checkpoints DIR] [--repeats 5] [--budget 40] [--no-live]

Open time: a fresh page of the real app (started as app.py starts it), the "DAE vs baseline" tab clicked,
until both image panels have loaded and both latent maps have drawn, measured in the page with
performance.now(). Live run: from the click on Train live until the status line reports the run and the
reconstructions show the live models (training budget + evaluation + redraw).
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import slider_latency as SL  # noqa: E402

OPEN_JS = C.open_tab_js('DAE vs baseline', (
    "['#dae-recon', '#dae-samples', '#dae-curves'].every(s => { const im = document.querySelector(s + ' img');"
    " return im && im.complete && im.naturalWidth > 0; }) && window.lsxMaps"
    " && ['dae-map-a', 'dae-map-b'].every(k => window.lsxMaps[k] && window.lsxMaps[k].pixel(0))"), 120)

CHANGE_JS = r"""
async ({selector, action, timeoutMs}) => {
  const box = document.querySelector(selector);
  const old = box.querySelector('img') ? box.querySelector('img').src : null;
  const t0 = performance.now();
  if (action.startsWith('button:')) {
    [...document.querySelectorAll('button')].find(b => b.innerText.trim() === action.slice(7)).click();
  } else {
    const [key, row] = action.split(':');
    const canvas = document.querySelector('#' + key + ' canvas.lsx-canvas');
    const [x, y] = window.lsxMaps[key].pixel(Number(row));
    const b = canvas.getBoundingClientRect();
    canvas.dispatchEvent(new MouseEvent('click', {clientX: b.left + x, clientY: b.top + y, bubbles: true}));
  }
  while (performance.now() - t0 < timeoutMs) {
    const img = box.querySelector('img');
    if (img && img.src && img.src !== old && img.complete && img.naturalWidth > 0) return performance.now() - t0;
    await new Promise(r => setTimeout(r, 5));
  }
  throw new Error('no new image in ' + selector);
}
"""


def main(argv=None):
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=int, default=40)
    p.add_argument("--no-live", action="store_true")
    args = p.parse_args(argv)
    C.print_machine("DAE vs baseline panel: open, redraw, click, live run")

    import app
    from playwright.sync_api import sync_playwright

    demo, store = app.create(args.checkpoints)
    panel = demo.panels["dae"]
    print(f"  pair           {' vs '.join(panel.pair())}")
    C.warm(panel, "both models' test codes, maps, thumbnails")
    url = SL.serve(demo)
    opens, redraws, clicks, live = [], [], [], None
    try:
        with sync_playwright() as pw:
            browser = C.launch_browser(pw)
            opens = SL.time_opens(browser, url, OPEN_JS, max(1, args.repeats // 2))
            page = SL.app_page(browser, url)
            page.evaluate(OPEN_JS)
            for i in range(args.repeats):
                page.fill("#dae-seed input", str(i + 1))
                redraws.append(page.evaluate(CHANGE_JS, dict(selector="#dae-samples", action="button:New images",
                                                             timeoutMs=60000)))
                clicks.append(page.evaluate(CHANGE_JS, dict(selector="#dae-picked", action=f"dae-map-a:{17 * i + 3}",
                                                            timeoutMs=30000)))
            if not args.no_live:
                page.evaluate(f"() => {{ const s = document.querySelector('#dae-budget input[type=number]'); "
                              f"s.value = {args.budget}; s.dispatchEvent(new Event('input', {{bubbles: true}})); }}")
                page.wait_for_timeout(300)
                t0 = time.perf_counter()
                page.evaluate(CHANGE_JS, dict(selector="#dae-recon", action="button:Train live", timeoutMs=300000))
                page.wait_for_function("() => document.querySelector('#dae-status')?.innerText.includes('Live run done')",
                                       timeout=300_000)
                page.wait_for_function("() => document.querySelector('#dae-table')?.innerText.includes('live run')",
                                       timeout=300_000)
                live = time.perf_counter() - t0
                status = page.locator("#dae-status").inner_text()
            browser.close()
    finally:
        demo.close()

    print(C.table(["what", "n", "median ms", "min ms", "max ms"],
                  [["open tab -> images + both maps", len(opens), f"{C.median(opens):.0f}", f"{min(opens):.0f}",
                    f"{max(opens):.0f}"],
                   ["New images -> samples redrawn", len(redraws), f"{C.median(redraws):.0f}", f"{min(redraws):.0f}",
                    f"{max(redraws):.0f}"],
                   ["map click -> three reconstructions", len(clicks), f"{C.median(clicks):.0f}",
                    f"{min(clicks):.0f}", f"{max(clicks):.0f}"]]))
    if live is not None:
        print(f"\nTrain live at a {args.budget} s budget: {live:.1f} s from the click to the filled panel "
              f"(target <= 60 s)\n  {status}")


if __name__ == "__main__":
    main()
