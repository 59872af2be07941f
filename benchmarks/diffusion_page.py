"""Diffusion in the page (explorer/ui/web/diffusion.js), measured in headless Chromium against the real app.

    python benchmarks/diffusion_page.py                    # the single-page figures (about 2 minutes)
    python benchmarks/diffusion_page.py --hall 10 30       # and a lecture hall of 10, then 30 pages

Prints, for fashion-mnist/ddpm-cosine (``--models`` for others, e.g. fashion-mnist/ldm-vae-16):
  - one image, DDIM-50, Run -> "done" (median of --runs; target <= 1.0 s);
  - four images, DDIM-20, guidance w = 3 (two network batches per step; target <= 2.5 s);
  - frames shown per second during the DDIM-50 run (target >= 15);
  - the first frame after Run (x_T, drawn before the network's first call; target <= 100 ms);
  - loading the UNet: a first visit (new browser profile: runtime and ONNX from the server) and a second visit
    (the same profile: both from the browser's Cache Storage), from the model's spec to the session ready;
  - requests the server received during the runs (target 0).
With --hall N: N pages open the panel, then all press Run at once (DDIM-20, 4 images) in the page, and again
through the server path (?diffusion=server); per path: requests the server received during the runs, the
server's CPU seconds, and each page's time from the common start to its last frame, p50 and p95.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

READY = "() => window.lsxDiffusion && ['page', 'server'].includes(window.lsxDiffusion.mode)"
DONE = "() => document.querySelector('.lsxd-status')?.textContent.includes('done')"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def open_panel(page, url, model=None, query=""):
    page.bring_to_front()  # a page behind others is not rendered in time to be clicked
    page.goto(url + query, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Diffusion").click()
    page.wait_for_function(READY, timeout=180_000)
    if model and page.evaluate("() => window.lsxDiffusion.spec.name") != model:
        page.locator("#diff-model input").click()
        page.get_by_role("option", name=model).click()
        page.wait_for_function("(m) => window.lsxDiffusion.spec?.name === m && window.lsxDiffusion.mode !== 'loading'",
                               arg=model, timeout=180_000)
    page.wait_for_function("() => window.lsxDiffusionForward?.drawn > 0", timeout=60_000)
    page.wait_for_timeout(500)


def settings(page, steps, batch, w, sampler="ddim", eta=0.0):
    page.locator(".lsxd-steps").fill(str(steps))
    page.locator(".lsxd-batch").fill(str(batch))
    page.locator(f"input[name=lsxd-sampler][value={sampler}]").check()
    page.evaluate("([w, eta]) => { for (const [s, v] of [['.lsxd-w', w], ['.lsxd-eta', eta]]) {"
                  " const e = document.querySelector(s); e.value = String(v); e.dispatchEvent(new Event('input')); } }",
                  [w, eta])
    page.locator(".lsxd-speed").select_option("0")


def one_run(page):
    """Run -> done: (seconds, first frame ms, frames shown per second)."""
    page.locator(".lsxd-run").click()
    page.wait_for_function(DONE, timeout=300_000)
    r = page.evaluate("() => { const S = window.lsxDiffusion; return {total: S.total, first: S.firstFrame, steps: S.stepTimes}; }")
    st = r["steps"]
    fps = (len(st) - 1) / ((st[-1] - st[0]) / 1000) if len(st) > 1 and st[-1] > st[0] else float("nan")
    return r["total"] / 1000, r["first"], fps


def single(browser, url, model, runs, requests):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.on("request", lambda r: requests.append(r.url))
    open_panel(page, url, model)
    cold = page.evaluate("() => window.lsxDiffusion.loadTimes.slice(-1)[0]")
    mode = page.evaluate("() => window.lsxDiffusion.mode")
    if mode != "page":
        print(f"{model}: the page runs on the server ({page.locator('.lsxd-mode').inner_text()}); skipped")
        ctx.close()
        return None
    out = {}
    for key, (steps, batch, w) in {"ddim50_1": (50, 1, 1.0), "ddim20_4_guided": (20, 4, 3.0)}.items():
        settings(page, steps, batch, w)
        one_run(page)  # warm-up (the wasm's first calls)
        before = len(requests)
        results = [one_run(page) for _ in range(runs)]
        out[key] = results
        out[key + "_requests"] = len(requests) - before
    page.reload()
    open_panel(page, url, model)
    warm = page.evaluate("() => window.lsxDiffusion.loadTimes.slice(-1)[0]")
    ctx.close()
    return cold, warm, out


OBSERVE = """(sel) => { const el = document.querySelector(sel); window.__done = null;
  new MutationObserver(() => { if (!window.__done && el.innerText.includes('done')) window.__done = Date.now(); })
    .observe(el, {subtree: true, childList: true, characterData: true}); }"""


def hall(browser, url, n, server_path, model):
    """n pages press Run at once (DDIM-20, 4 images, guidance 3, in the page or on the server): (requests the
    server received during the runs, its CPU seconds, each page's time from the start to its last frame)."""
    # one browser context (profile) per page, as n students' browsers: Chromium allows 6 connections per host and
    # profile, and each Gradio page holds one open (its event stream), so a 7th page in one profile never loads
    contexts, pages = [], []
    for _ in range(n):
        contexts.append(browser.new_context(viewport={"width": 1280, "height": 900}))
        pg = contexts[-1].new_page()
        pg.set_default_timeout(300_000)  # n pages opening on two cores
        open_panel(pg, url, model, "?diffusion=server" if server_path else "")
        if server_path:
            for sel, v in (("#diff-steps", 20), ("#diff-batch", 4), ("#diff-guidance", 3)):
                box = pg.locator(f"{sel} input[type=number]")
                box.fill(str(v))
                box.press("Enter")
            pg.locator("#diff-server").get_by_role("radio", name="DDIM").check()
        else:
            settings(pg, 20, 4, 3.0)
        pg.evaluate(OBSERVE, "#diff-status" if server_path else ".lsxd-status")
        pages.append(pg)
        print(f"  page {len(pages)}/{n} open", file=sys.stderr, flush=True)
    pg.wait_for_timeout(1000)
    requests = []
    for pg in pages:
        pg.on("request", lambda r: requests.append(r.url))
    c0, start = cpu_s(), time.time() * 1000
    for pg in pages:
        if server_path:
            pg.locator("#diff-run").click()
        else:
            pg.evaluate("() => document.querySelector('.lsxd-run').click()")
    done = []
    for pg in pages:
        pg.wait_for_function("() => window.__done", timeout=900_000, polling=100)
        done.append((pg.evaluate("() => window.__done") - start) / 1000)
    cpu = cpu_s() - c0
    for ctx in contexts:
        ctx.close()
    return len(requests), cpu, done


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["fashion-mnist/ddpm-cosine"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--hall", type=int, nargs="*", default=[])
    p.add_argument("--hall-only", action="store_true", help="skip the single-page figures")
    a = p.parse_args()
    from playwright.sync_api import sync_playwright

    import app as app_module
    from benchmarks.slider_latency import serve

    demo, store = app_module.create(a.checkpoints)
    for name in store.zoo.available():  # what the app's warm-up builds, before the clock starts
        store.decoders.warm([name])
    demo.panels["diffusion"].warm()
    url = serve(demo)
    print("\n".join(C.machine_lines()))
    print(f"date           {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=C.CHROMIUM, args=C.CHROMIUM_ARGS)
        for model in [] if a.hall_only else a.models:
            requests = []
            got = single(browser, url, model, a.runs, requests)
            if got is None:
                continue
            cold, warm, out = got
            print(f"\n{model} (Chromium {browser.version}, onnxruntime-web wasm, one thread), median of {a.runs}:")
            for key, label, target in (("ddim50_1", "one image, DDIM-50", 1.0),
                                       ("ddim20_4_guided", "four images, DDIM-20, guidance 3", 2.5)):
                rs = out[key]
                print(f"  {label:34s} {statistics.median(r[0] for r in rs):6.2f} s   (target <= {target} s; "
                      f"runs {', '.join(f'{r[0]:.2f}' for r in rs)})")
            print(f"  {'frames shown per second (DDIM-50)':34s} {statistics.median(r[2] for r in out['ddim50_1']):6.1f}"
                  "     (target >= 15)")
            firsts = [r[1] for k in ("ddim50_1", "ddim20_4_guided") for r in out[k]]
            print(f"  {'first frame after Run':34s} {statistics.median(firsts):6.1f} ms  (target <= 100; max "
                  f"{max(firsts):.1f})")
            print(f"  {'UNet load, first visit (cold)':34s} {cold / 1000:6.2f} s   (runtime + ONNX from the server)")
            print(f"  {'UNet load, second visit (warm)':34s} {warm / 1000:6.2f} s   (both from Cache Storage)")
            print(f"  {'requests during the runs':34s} {out['ddim50_1_requests'] + out['ddim20_4_guided_requests']:6d}"
                  "     (target 0)")
        for n in a.hall:
            for server_path in (False, True):
                req, cpu, done = hall(browser, url, n, server_path, a.models[0])
                what = "on the server (?diffusion=server)" if server_path else "in the page"
                print(f"\nlecture hall, {n} pages press Run at once, {what}: DDIM-20, 4 images, guidance 3")
                print(f"  requests received during the runs  {req}")
                print(f"  server CPU seconds                 {cpu:.1f}")
                print(f"  time to last frame, p50 / p95      {pct(done, 50):.1f} / {pct(done, 95):.1f} s")
        browser.close()
    demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
