"""Model zoo panel in a real browser: tab open time (after the app's warm-up drew seed 0), the time to
draw a new seed (every model samples and interpolates); and, in Python, a cached redraw.

    python benchmarks/zoo_panel.py [--checkpoints DIR] [--seeds 3]

Open: a fresh page, the "Model zoo" tab clicked, until the grid image has loaded and the table is there.
New seed: "Next seed" clicked until the caption names the new seed's complete grid and the image has
loaded; the server-side draw time per model is printed from the caption. Cached: a drawn seed again.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import slider_latency as SL  # noqa: E402

OPEN_JS = C.open_tab_js('Model zoo', (
    "(() => { const im = document.querySelector('#zoo-grid img');"
    " return im && im.complete && im.naturalWidth > 0 && document.querySelector('#zoo-table table'); })()"), 120)

DRAW_JS = r"""
async ({timeoutMs}) => {
  const cap = document.querySelector('#zoo-caption');
  const next = Number(document.querySelector('#zoo-seed input').value) + 1;
  const t0 = performance.now();
  document.querySelector('#zoo-next').click();
  while (performance.now() - t0 < timeoutMs) {
    const im = document.querySelector('#zoo-grid img'), text = cap.innerText;
    // the caption names the new seed and every model's draw time once the complete grid is in
    if (text.startsWith('Seed ' + next + ':') && text.includes('Drawn in') && im && im.complete && im.naturalWidth > 0)
      return [performance.now() - t0, text];
    await new Promise(r => setTimeout(r, 5));
  }
  throw new Error('no complete grid for seed ' + next + ': ' + cap.innerText.slice(0, 80));
}
"""


def main(argv=None):
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    C.print_machine("Model zoo panel: open, new seed, cached redraw")

    import app
    from playwright.sync_api import sync_playwright

    demo, store = app.create(args.checkpoints)
    panel = demo.panels["zoo"]
    C.warm(panel, "seed 0 drawn for every model")
    url = SL.serve(demo)
    opens, news, caption = [], [], ""
    try:
        with sync_playwright() as pw:
            browser = C.launch_browser(pw)
            opens = SL.time_opens(browser, url, OPEN_JS, 3)
            page = SL.app_page(browser, url)
            page.evaluate(OPEN_JS)
            for _ in range(args.seeds):
                ms, caption = page.evaluate(DRAW_JS, dict(timeoutMs=120000))
                news.append(ms)
            browser.close()
    finally:
        demo.close()
    print(C.table(["what", "n", "median ms", "min ms", "max ms"],
                  [["open tab -> grid + table (seed 0 warm)", len(opens), f"{C.median(opens):.0f}",
                    f"{min(opens):.0f}", f"{max(opens):.0f}"],
                   ["Next seed -> complete grid", len(news), f"{C.median(news):.0f}", f"{min(news):.0f}",
                    f"{max(news):.0f}"]]))
    t = time.perf_counter()
    list(panel.draw(panel.default_dataset(), 1))
    print(f"\nredraw of a drawn seed (cached), in Python: {1000 * (time.perf_counter() - t):.1f} ms")
    last = [line for line in caption.splitlines() if "Drawn in" in line]
    if last:
        print("\nlast new seed, server side: " + last[0].strip())


if __name__ == "__main__":
    main()
