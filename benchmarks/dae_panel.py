"""DAE vs baseline panel in a real browser: tab open time, "New images" and map-click latency, and the
wall time of a live run at the default budget (Train live -> the panel filled with the live results).

    python benchmarks/dae_panel.py [--checkpoints DIR] [--repeats 5] [--budget 40] [--no-live]

Open time: a fresh page of the real app (started as app.py starts it), the "DAE vs baseline" tab clicked,
until both image panels have loaded and both latent maps have drawn, measured in the page with
performance.now(). Map click: a click dispatched at a point of the DAE's map; the figure is the pick view's
own window.lsxDae.times entry (explorer/ui/web/pick_view.js: click -> the clicked image and both models'
reconstructions drawn, decoded in the page or by the server fallback), after one untimed warm-up click.
Live run: from the click on Train live until the status line reports the run and the reconstructions show
the live models (training budget + evaluation + redraw).
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
async ({selector, action, timeoutMs}) => {  // action 'button:<label>'; ms until selector's <img> is new and loaded
  const box = document.querySelector(selector);
  const old = box.querySelector('img') ? box.querySelector('img').src : null;
  const t0 = performance.now();
  [...document.querySelectorAll('button')].find(b => b.innerText.trim() === action.slice(7)).click();
  while (performance.now() - t0 < timeoutMs) {
    const img = box.querySelector('img');
    if (img && img.src && img.src !== old && img.complete && img.naturalWidth > 0) return performance.now() - t0;
    await new Promise(r => setTimeout(r, 5));
  }
  throw new Error('no new image in ' + selector);
}
"""


PICK_JS = r"""
async ({key, row, timeoutMs}) => {
  for (let w = 0; !window.lsxDae && w < 2000; w++) await new Promise(r => setTimeout(r, 5));
  const V = window.lsxDae, n = V.times.length;
  const canvas = document.querySelector('#' + key + ' canvas.lsx-canvas');
  const [x, y] = window.lsxMaps[key].pixel(row);
  const b = canvas.getBoundingClientRect();
  canvas.dispatchEvent(new MouseEvent('click', {clientX: b.left + x, clientY: b.top + y, bubbles: true}));
  const t0 = performance.now();
  while (V.times.length === n) {
    if (performance.now() - t0 > timeoutMs) throw new Error('the DAE pick view drew nothing for row ' + row);
    await new Promise(r => setTimeout(r, 5));
  }
  return {ms: V.times[V.times.length - 1], modes: (V.last && V.last.modes) || []};
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
    opens, redraws, clicks, modes, live = [], [], [], {}, None
    try:
        with sync_playwright() as pw:
            browser = C.launch_browser(pw)
            opens = SL.time_opens(browser, url, OPEN_JS, max(1, args.repeats // 2))
            page = SL.app_page(browser, url)
            page.evaluate(OPEN_JS)
            page.evaluate(PICK_JS, dict(key="dae-map-a", row=1, timeoutMs=30000))  # warm-up
            for i in range(args.repeats):
                page.fill("#dae-seed input", str(i + 1))
                redraws.append(page.evaluate(CHANGE_JS, dict(selector="#dae-samples", action="button:New images",
                                                             timeoutMs=60000)))
                res = page.evaluate(PICK_JS, dict(key="dae-map-a", row=17 * i + 3, timeoutMs=30000))
                clicks.append(res["ms"])
                for m in res["modes"]:
                    modes[m] = modes.get(m, 0) + 1
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
                   ["map click -> pick view drawn", len(clicks), f"{C.median(clicks):.1f}",
                    f"{min(clicks):.1f}", f"{max(clicks):.1f}"]]))
    print(f"  (map click: in-page lsxDae.times, original + both models' reconstructions; decoded by: "
          f"{', '.join(f'{k} {v}' for k, v in sorted(modes.items())) or '-'})")
    if live is not None:
        print(f"\nTrain live at a {args.budget} s budget: {live:.1f} s from the click to the filled panel "
              f"(target <= 60 s)\n  {status}")


if __name__ == "__main__":
    main()
