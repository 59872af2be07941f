"""The floor of any server round trip: a trivial Gradio app's slider -> image latency in headless Chromium.

    python benchmarks/slider_latency.py [--moves 40]

(The Latent grid decodes in the page; benchmarks/inpage_decode.py measures it against this floor in the
same run and imports the trivial app and the helpers from here.)

Both apps run in this process (demo.launch(prevent_thread_lock=True)). For each move the page itself
(one page.evaluate per batch, so no Python round trip is timed) sets the slider's <input type="range">
to a new value, dispatches an 'input' event as a drag would, and waits until the <img> of the output
image has a new src and has finished loading; latency = performance.now() delta. Moves are sequential
(each finishes, then a short pause, then the next). Our app and the trivial one are measured in
alternating rounds so that background load drifts hit both alike.
"""
from __future__ import annotations

import os
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


# Runs in the page. Returns {"latencies": [ms or null per move], "values": [...], "errors": [...]}.
MEASURE_JS = r"""
async ({slider, image, count, seed, timeoutMs, gapMs}) => {
  const root = document.querySelector(slider);
  if (!root) throw new Error("no element " + slider);
  const input = root.querySelector('input[type=range]');
  if (!input) throw new Error("no range input in " + slider);
  const box = document.querySelector(image);
  if (!box) throw new Error("no element " + image);
  box.scrollIntoView({block: "center"});
  const min = parseFloat(input.min), max = parseFloat(input.max);
  const step = parseFloat(input.step) > 0 ? parseFloat(input.step) : (max - min) / 100;
  const nSteps = Math.round((max - min) / step);
  // deterministic pseudo-random distinct positions, never the current value, never two equal in a row
  let s = seed >>> 0;
  const rand = () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
  const sleep = (ms) => new Promise(r => setTimeout(r, ms));
  const latencies = [], srcs = [], values = [], errors = [];
  let last = parseFloat(input.value);
  for (let i = 0; i < count; i++) {
    let k, v;
    do {
      k = Math.round((0.05 + 0.9 * rand()) * nSteps);
      v = +(min + k * step).toFixed(6);
    } while (Math.abs(v - last) < 10 * step);
    last = v;
    const before = box.querySelector('img');
    const oldSrc = before ? before.src : null;
    const done = new Promise(resolve => {
      let finished = false, timer = null, poll = null, obs = null, tSrc = null;
      const finish = (val) => {
        if (finished) return; finished = true;
        if (obs) obs.disconnect(); clearTimeout(timer); clearInterval(poll); resolve([val, tSrc]);
      };
      const check = () => {
        const img = box.querySelector('img');
        if (!img || !img.src || img.src === oldSrc) return;
        if (tSrc === null) tSrc = performance.now();
        if (img.complete && img.naturalWidth > 0) { finish(performance.now()); return; }
        if (!img.__benchHooked) {
          img.__benchHooked = true;
          img.addEventListener('load', () => check(), {once: true});
          img.addEventListener('error', () => finish({error: 'image failed to load: ' + img.src}), {once: true});
        }
      };
      obs = new MutationObserver(check);
      obs.observe(box, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
      poll = setInterval(check, 5);   // belt and braces: load may complete between mutations
      timer = setTimeout(() => finish({error: 'timeout after ' + timeoutMs + ' ms (value ' + v + ')'}), timeoutMs);
    });
    const t0 = performance.now();
    setter.call(input, String(v));
    input.dispatchEvent(new Event('input', {bubbles: true}));
    const [t1, tSrc] = await done;
    if (typeof t1 === 'number') { latencies.push(t1 - t0); srcs.push(tSrc - t0); }
    else { latencies.push(null); srcs.push(null); errors.push(t1.error); }
    values.push(v);
    await sleep(gapMs);
  }
  return {latencies, srcs, values, errors};
}
"""


def build_trivial():
    import gradio as gr
    import numpy as np

    def paint(v):
        v = int(round(float(v)))
        img = np.zeros((28, 28), np.uint8)
        img[:, : max(1, v % 28)] = 255
        img[0, 0] = v % 256
        return img

    with gr.Blocks(title="trivial") as demo:
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="trivial", interactive=False, format="png", height=260,
                                 elem_id="trivial-image", elem_classes=["pixelated"])
                slider = gr.Slider(0, 1000, value=0, step=1, label="v", elem_id="trivial-slider")
        slider.input(paint, slider, image, api_name=False, trigger_mode="always_last", show_progress="hidden")
        demo.load(paint, slider, image, api_name=False)
    demo.queue(default_concurrency_limit=os.cpu_count() or 2, max_size=64)
    return demo


def serve(demo) -> str:
    """Launch the real app's Blocks with app.py's launch settings on a free loopback port; its URL."""
    import app

    extra = app.launch_kwargs(SimpleNamespace(host="127.0.0.1", port=0, share=False), demo)  # with its routes
    for k in ("server_name", "server_port", "share"):
        extra.pop(k, None)
    return launch(demo, extra)


def app_page(browser, url, wasm=True):
    """A fresh page of the real app, once its first decoded image (demo.load) has arrived; wasm=False
    deletes WebAssembly before any script runs, so the page decodes through the server fallback."""
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    if not wasm:
        page.add_init_script("delete globalThis.WebAssembly")
    page.goto(url)
    page.wait_for_function("() => window.lsxLatentGrid && window.lsxLatentGrid.frames > 0", timeout=120_000)
    return page


def time_opens(browser, url, open_js: str, n: int) -> list[float]:
    """Milliseconds ``open_js`` reports (a tab click until it is filled) in each of n fresh pages."""
    times = []
    for _ in range(n):
        page = app_page(browser, url)
        page.wait_for_timeout(500)
        times.append(page.evaluate(open_js))
        page.close()
    return times


def launch(demo, extra):
    port = C.free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **extra)
    return f"http://127.0.0.1:{port}/"


def open_page(browser, url, image_sel, slider_sel, timeout_s):
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    page.set_default_timeout(timeout_s * 1000)
    page.goto(url, wait_until="domcontentloaded")
    # ready = the output image is shown and loaded (demo.load has run) and the slider is there
    page.wait_for_function(
        """([img, sl]) => { const i = document.querySelector(img + ' img');
                            const s = document.querySelector(sl + ' input[type=range]');
                            return i && i.src && i.complete && i.naturalWidth > 0 && s; }""",
        arg=[image_sel, slider_sel], polling=50)
    page.wait_for_timeout(500)  # let any trailing updates from the load event settle
    return page


def run_moves(page, slider_sel, image_sel, count, seed, timeout_ms, gap_ms):
    if count <= 0:
        return [], [], []
    res = page.evaluate(MEASURE_JS, dict(slider=slider_sel, image=image_sel, count=count, seed=seed,
                                         timeoutMs=timeout_ms, gapMs=gap_ms))
    return ([x for x in res["latencies"] if x is not None], [x for x in res["srcs"] if x is not None],
            res["errors"])


def stats(xs):
    if not xs:
        return dict(n=0, p50=float("nan"), p95=float("nan"), mean=float("nan"), min=float("nan"),
                    max=float("nan"))
    return dict(n=len(xs), p50=C.percentile(xs, 50), p95=C.percentile(xs, 95), mean=sum(xs) / len(xs),
                min=min(xs), max=max(xs))


def main(argv=None):
    """The floor alone: the trivial app's slider -> image round trip. The Latent grid itself decodes in the
    page now (no server round trip per position); benchmarks/inpage_decode.py measures it against this
    floor in the same run."""
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--moves", type=int, default=40, help="timed moves (>= 30 recommended)")
    p.add_argument("--gap-ms", type=int, default=150, help="pause between moves")
    args = p.parse_args(argv)
    C.print_machine("trivial Gradio app: slider -> image latency (headless Chromium)")
    from playwright.sync_api import sync_playwright

    trivial = build_trivial()
    url = launch(trivial, {})
    try:
        with sync_playwright() as pw:
            browser = C.launch_browser(pw)
            page = open_page(browser, url, "#trivial-image", "#trivial-slider", 60)
            run_moves(page, "#trivial-slider", "#trivial-image", 5, 7, 10_000, args.gap_ms)
            lat, _, errs = run_moves(page, "#trivial-slider", "#trivial-image", args.moves, 1, 10_000, args.gap_ms)
            browser.close()
    finally:
        trivial.close()
    s = stats(lat)
    print(C.table(["app", "moves ok", "p50 ms", "p95 ms"],
                  [["trivial slider->image", f"{s['n']}/{args.moves}", f"{s['p50']:.1f}", f"{s['p95']:.1f}"]]))
    return 0 if s["n"] else 1


if __name__ == "__main__":
    sys.exit(main())
