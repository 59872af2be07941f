"""The Diffusion panel in headless Chromium: time from Run to the first frame, and frames shown per second.

    python benchmarks/diffusion_browser.py [--checkpoints DIR] [--model NAME] [--steps 50] [--batch 16] [--runs 3]

Launches the app in this process on a free port, opens the Diffusion tab, picks the model and
steps, and clicks Run --runs times (after one untimed warm-up run that loads the model). A
MutationObserver in the page records when each new frame <img> src has loaded; the first-frame
latency is from the click to the first such load, and the frame rate is frames shown / time from
the first to the last frame. Targets (issue 4): first frame <= 0.5 s, >= 10 frames/s for DDIM-50.
"""
from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

OBSERVE = """(t0) => {
  if (window.__observer) window.__observer.disconnect();
  window.__frames = [];
  const seen = new Set();
  const root = document.querySelector('#diff-frame');
  const old = root.querySelector('img');
  if (old) seen.add(old.src);
  const note = () => {
    const img = root.querySelector('img');
    if (!img || seen.has(img.src)) return;
    seen.add(img.src);
    const mark = () => window.__frames.push(performance.now());
    if (img.complete && img.naturalWidth) mark(); else img.addEventListener('load', mark, {once: true});
  };
  window.__observer = new MutationObserver(note);
  window.__observer.observe(root, {subtree: true, childList: true, attributes: true});
}"""


def main(argv=None):
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    import app as app_module
    from playwright.sync_api import sync_playwright

    demo, store = app_module.create(a.checkpoints)
    panel = demo.panels["diffusion"]
    names = panel.model_names()
    if not names:
        sys.exit("no diffusion checkpoints")
    model = a.model or names[0]
    args = app_module.parse_args(["--port", str(C.free_port())])
    demo.launch(prevent_thread_lock=True, quiet=True, **app_module.launch_kwargs(args, demo))
    print("\n".join(C.machine_lines()))
    firsts, rates = [], []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=C.CHROMIUM, args=C.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1200})
            page.goto(f"http://127.0.0.1:{args.port}/?diffusion=server")  # the server path
            page.get_by_role("tab", name="Diffusion").click()
            page.wait_for_selector("#diff-run")
            page.locator("#diff-frame").scroll_into_view_if_needed()
            dd = page.locator("#diff-model input")
            dd.fill(model)
            page.get_by_role("option", name=model).click()
            steps = page.locator("#diff-steps input[type=number]")
            steps.fill(str(a.steps))
            steps.press("Enter")
            for run in range(a.runs + 1):
                t0 = page.evaluate("() => performance.now()")
                page.evaluate(OBSERVE, t0)
                page.locator("#diff-run").click()
                # the previous run's 'done' stays on screen until this run's first step replaces it
                page.wait_for_function("() => !document.querySelector('#diff-status')?.innerText.includes('done')",
                                       timeout=60_000, polling=10)
                page.wait_for_function("() => document.querySelector('#diff-status')?.innerText.includes('done')",
                                       timeout=600_000, polling=10)
                t_done = page.evaluate("() => performance.now()")
                page.wait_for_timeout(500)
                frames = page.evaluate("() => window.__frames")
                if run == 0 or len(frames) < 2:
                    continue
                firsts.append((frames[0] - t0) / 1000)
                # frames shown over the whole run (first frame -> 'done'), so that frames the browser
                # coalesced count against the rate instead of shortening its window
                rates.append((len(frames) - 1) / ((max(frames[-1], t_done) - frames[0]) / 1000))
                print(f"run {run}: first frame {firsts[-1]:.3f} s, {len(frames)} of {a.steps + 1} frames shown "
                      f"in {(t_done - t0) / 1000:.2f} s, {rates[-1]:.1f} frames/s")
            browser.close()
    finally:
        demo.close()
    if not firsts:
        sys.exit("nothing measured")
    print(f"\n{model}, DDIM-{a.steps}, batch {a.batch}: first frame median {statistics.median(firsts):.3f} s "
          f"(target <= 0.5), frames/s median {statistics.median(rates):.1f} (target >= 10)")


if __name__ == "__main__":
    main()
