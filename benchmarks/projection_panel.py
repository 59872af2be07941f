"""Projection panel: open time, map click -> pick view drawn in the page (against the trivial slider app as
the floor, as in slider_latency.py), and the TensorBoard projector export time.

    python benchmarks/projection_panel.py [--checkpoints DIR] [--clicks 30] [--opens 3] [--server-path]

Open time: a fresh page of the real app, the "Projection" tab clicked, until the map's canvas has drawn
its points (measured in the page with performance.now()). The server is started the way app.py starts
it, warm-up thread included, and the page opened once the warm-up has finished.
Click latency: the page dispatches a click at a point's pixel; the figure is the pick view's own
window.lsxProjection.times entry (explorer/ui/web/pick_view.js: click -> the reconstruction and, from the
second pick on, the interpolation strips drawn, decoded in the page or by the server fallback; the server
hears the pick afterwards and nobody waits for it). Clicks and the trivial app's slider moves alternate in
rounds. --server-path deletes WebAssembly from the page before its scripts run, so every click is decoded
by the server fallback (the decode_codes server function): the fallback's click latency.
"""
from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import slider_latency as SL  # noqa: E402

TARGET_OPEN_S = 1.0
TARGET_RATIO = 1.3

OPEN_JS = C.open_tab_js('Projection', "window.lsxMaps && window.lsxMaps['proj-map-a']"
                                      " && window.lsxMaps['proj-map-a'].pixel(0)", 60)

CLICK_JS = r"""
async ({count, seed, gapMs}) => {
  const canvas = document.querySelector('#proj-map-a canvas.lsx-canvas');
  for (let w = 0; !window.lsxProjection && w < 2000; w++) await new Promise(r => setTimeout(r, 5));
  document.querySelector('#proj-view').scrollIntoView({block: 'center'});
  let s = seed >>> 0;
  const rand = () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
  const out = [], errors = [], modes = {}, strips = [];
  for (let i = 0; i < count; i++) {
    const row = Math.floor(rand() * 5000);
    const [x, y] = window.lsxMaps['proj-map-a'].pixel(row);
    const b = canvas.getBoundingClientRect();
    const V = window.lsxProjection, n = V.times.length, t0 = performance.now();
    canvas.dispatchEvent(new MouseEvent('click', {clientX: b.left + x, clientY: b.top + y, bubbles: true}));
    while (V.times.length === n && performance.now() - t0 < 10000) await new Promise(r => setTimeout(r, 2));
    if (V.times.length > n) {
      out.push(V.times[V.times.length - 1]);
      strips.push(!!(V.last && V.last.two));
      for (const m of (V.last && V.last.modes) || []) modes[m] = (modes[m] || 0) + 1;
    } else errors.push('timeout at row ' + row);
    await new Promise(r => setTimeout(r, gapMs));
  }
  return {latencies: out, errors, modes, strips};
}
"""


def main(argv=None):
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--clicks", type=int, default=30)
    p.add_argument("--opens", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gap-ms", type=int, default=150)
    p.add_argument("--server-path", action="store_true",
                   help="no WebAssembly in the page: every click decodes through the server fallback")
    args = p.parse_args(argv)
    C.print_machine("Projection panel: open, click -> decode, export")

    import app
    from playwright.sync_api import sync_playwright

    demo, store = app.create(args.checkpoints)
    panel = demo.panels["projection"]
    name = panel.default()
    print(f"  model          {name} (the panel's default)\n")
    C.warm(panel, "codes, shipped UMAP, thumbnail sprite")

    exports = []
    for _ in range(3):
        t = time.perf_counter()
        path = panel.export(name)
        exports.append(time.perf_counter() - t)
    size = os.path.getsize(path) / 1e6
    print(f"projector export of 5,000 codes + sprite: median {C.median(exports):.2f} s "
          f"(runs {', '.join(f'{x:.2f}' for x in exports)}), zip {size:.1f} MB\n")

    extra = app.launch_kwargs(SimpleNamespace(host="127.0.0.1", port=0, share=False))
    for k in ("server_name", "server_port", "share"):
        extra.pop(k, None)
    trivial = SL.build_trivial()
    url = SL.serve(demo)  # with the app's routes (the page's code is served at /web/)
    url_triv = SL.launch(trivial, extra)
    opens, ours, triv, errors, modes, two = [], [], [], [], {}, 0
    try:
        with sync_playwright() as pw:
            browser = C.launch_browser(pw)
            opens = SL.time_opens(browser, url, OPEN_JS, args.opens)
            page = SL.app_page(browser, url, wasm=not args.server_path)
            page.evaluate(OPEN_JS)
            page.wait_for_timeout(500)
            page.evaluate(CLICK_JS, dict(count=3, seed=1, gapMs=args.gap_ms))  # warm-up
            tpage = SL.open_page(browser, url_triv, "#trivial-image", "#trivial-slider", 60)
            SL.run_moves(tpage, "#trivial-slider", "#trivial-image", 3, 7, 10000, args.gap_ms)
            per = max(1, args.clicks // args.rounds)
            for r in range(args.rounds):
                res = page.evaluate(CLICK_JS, dict(count=per, seed=100 + r, gapMs=args.gap_ms))
                ours += res["latencies"]; errors += res["errors"]; two += sum(res["strips"])
                for k, v in res["modes"].items():
                    modes[k] = modes.get(k, 0) + v
                xs, _, e = SL.run_moves(tpage, "#trivial-slider", "#trivial-image", per, 1000 + r, 10000, args.gap_ms)
                triv += xs; errors += e
            browser.close()
    finally:
        demo.close(); trivial.close()

    print(f"open Projection tab -> map drawn: median {C.median(opens):.0f} ms "
          f"(runs {', '.join(f'{x:.0f}' for x in opens)}; target <= {TARGET_OPEN_S * 1000:.0f} ms)")
    s_o, s_t = SL.stats(ours), SL.stats(triv)
    print(C.table(["what", "n", "p50 ms", "p95 ms", "min ms", "max ms"],
                  [["map click -> pick view drawn", s_o["n"], f"{s_o['p50']:.1f}", f"{s_o['p95']:.1f}",
                    f"{s_o['min']:.1f}", f"{s_o['max']:.1f}"],
                   ["trivial slider -> image", s_t["n"], f"{s_t['p50']:.1f}", f"{s_t['p95']:.1f}",
                    f"{s_t['min']:.1f}", f"{s_t['max']:.1f}"]]))
    ratio = s_o["p50"] / s_t["p50"] if s_o["n"] and s_t["n"] else float("nan")
    print(f"ratio click p50 / trivial p50 = {ratio:.2f}")
    print(f"  (in-page lsxProjection.times; {two} of {s_o['n']} clicks drew the A -> B strips too; decoded by: "
          f"{', '.join(f'{k} {v}' for k, v in sorted(modes.items())) or '-'})")
    for e in errors[:10]:
        print("  error:", e)
    return 0 if ours else 1


if __name__ == "__main__":
    sys.exit(main())
