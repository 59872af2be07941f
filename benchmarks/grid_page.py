"""The Latent grid's 20x20 grid in the page, filled row by row: time to its first row and to its last, and how long
a slider's decode waits while the grid is being decoded.

    python benchmarks/grid_page.py [--checkpoints DIR] [--model NAME] [--runs 10]

The app runs in this process (app.create, app.launch_kwargs); headless Chromium opens it and waits for the
in-page decoder. Each run sets a new grid range (nothing cached), and in the next task moves the first latent
slider, as a student dragging while the grid redraws would. From the page's own ``performance.now()`` stamps
(latent_grid.js: ``LG.gridRows``, ms from the grid's start to each row drawn; ``LG.times``, ms from a slider's
input event to its image drawn): first row, last row, the slider's input -> image, and how many rows had been
drawn when the slider's image was. Before the grid filled progressively (eb2dd5f) it was one batched run of 400
codes, so the first cell and the slider's image both came after the whole grid.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

RUN_JS = """async ({n, span}) => {
  const LG = window.lsxLatentGrid, key0 = LG.gridKey;
  const ns = document.querySelector('.lsxg-n'), sp = document.querySelector('.lsxg-span');
  const slider = document.querySelector('#lsx-z-1'), rows = () => (LG.gridRows || []).length;
  let atRow = null, last = LG.last;
  Object.defineProperty(LG, 'last', {configurable: true, get: () => last,
                                     set: (v) => { last = v; if (atRow === null) atRow = rows(); }});
  ns.value = n; ns.dispatchEvent(new Event('input', {bubbles: true}));
  sp.value = span; sp.dispatchEvent(new Event('input', {bubbles: true}));
  const t0 = LG.times.length;
  await new Promise(res => setTimeout(res, 0));
  slider.value = +slider.min + (+slider.max - +slider.min) * (0.3 + 0.4 * Math.random());
  slider.dispatchEvent(new Event('input', {bubbles: true}));
  while (LG.gridKey === key0) await new Promise(res => setTimeout(res, 5));
  await new Promise(res => setTimeout(res, 50));
  delete LG.last; LG.last = last;
  // before the grid filled row by row (no LG.gridRows) its first cell came with the whole grid
  return {first: LG.gridRows ? LG.gridRows[0] : LG.gridMs, total: LG.gridMs, rows: rows(), slider: LG.times[t0],
          atRow: LG.gridRows ? atRow : null};
}"""


def main():
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="a 2-D or higher model (default: the app's first)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--n", type=int, default=20)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import app as app_module
    from playwright.sync_api import sync_playwright

    C.print_machine(f"the {args.n}x{args.n} grid in the page, row by row")
    demo, store = app_module.create(args.checkpoints)
    names = store.encoder_models()
    store.decoders.warm(names if args.model is None else [args.model])
    port = C.free_port()
    demo.launch(prevent_thread_lock=True, quiet=True,
                **app_module.launch_kwargs(app_module.parse_args(["--port", str(port)]), demo))
    url = f"http://127.0.0.1:{port}/"
    runs = []
    try:
        with sync_playwright() as pw:
            browser = C.launch_browser(pw)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(url)
            page.wait_for_function("() => window.lsxLatentGrid?.decoder?.mode === 'page' && window.lsxLatentGrid.frames > 0",
                                   timeout=180_000)
            if args.model and args.model != names[0]:
                page.locator("#lg-model input").fill(args.model)
                page.keyboard.press("Enter")
                page.wait_for_function(f"() => window.lsxLatentGrid?.model?.name === {args.model!r} && "
                                       "window.lsxLatentGrid.decoder?.mode === 'page'", timeout=120_000)
            for i in range(args.runs + 1):
                r = page.evaluate(RUN_JS, {"n": args.n, "span": round(2.0 + 0.1 * (i % 10), 1)})
                if i:  # the first run warms the session up
                    runs.append(r)
            model = page.evaluate("() => window.lsxLatentGrid.model.name")
            browser.close()
    finally:
        demo.close()
    if not runs:
        sys.exit("nothing measured")
    first, total = [r["first"] for r in runs], [r["total"] for r in runs]
    slider, at = [r["slider"] for r in runs if r["slider"] is not None], [r["atRow"] for r in runs if r["atRow"] is not None]
    rows = [(f"grid start -> first row drawn, median (max) of {len(runs)}", f"{C.median(first):.1f} ({max(first):.1f}) ms"),
            ("grid start -> last row drawn (the whole grid), median", f"{C.median(total):.0f} ms"),
            ("slider input -> its image drawn, while the grid decodes, median (max)",
             f"{C.median(slider):.1f} ({max(slider):.1f}) ms" if slider else "-"),
            (f"rows of {args.n} drawn when the slider's image was, median (min-max)",
             f"{C.median(at):.0f} ({min(at)}-{max(at)})" if at else "- (one batched run)")]
    print(C.table(["what", "figure"], rows))
    print(f"\nmodel {model}")


if __name__ == "__main__":
    main()
