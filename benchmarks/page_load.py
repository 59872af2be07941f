"""What each page and each session costs: config bytes, time to first page, new-session cost, server memory.

    python benchmarks/page_load.py [--checkpoints DIR] [--pages 5] [--sessions 100] [--calls 100]
                                   [--no-lazy-configs]

The app (app.create over the checkpoints, launched with app.launch_kwargs as app.py does) runs in this
process on a free port; Chromium (Playwright) opens it. It prints:

- config bytes: the body of ``GET /config`` (what every page fetches; Gradio keeps a per-session copy of
  the same per-block configs), and how much of it is the page code inlined into components (``js_on_load``,
  ``css_template``, ``html_template``, ``head`` props);
- time to first page: a fresh browser context (empty cache) opens "/", until DOMContentLoaded and until the
  Latent grid has drawn its first decoded image (``window.lsxLatentGrid.frames > 0``); ``--pages`` times;
- new-session cost: ``--calls`` direct POSTs to ``/gradio_api/run/decode`` with no session hash (a
  scripted client: each call is a new Gradio session), wall time per call and this process's CPU per call;
- server memory after ``--sessions`` page sessions: this process's RSS (VmRSS) after the first page, then
  after that many further pages (each a fresh context opened until its first image, then closed), and the
  growth per session. The browser runs in its own processes; Playwright's Python side is small.

``--no-lazy-configs`` builds the app without the lazy per-session configs (explorer/ui/sessions.py), to
see what that patch still buys. The same script runs on an older checkout (copy it there) to compare.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

READY_JS = "() => { const g = window.lsxLatentGrid; return !!(g && g.frames > 0); }"
INLINE_PROPS = ("js_on_load", "css_template", "html_template", "head")


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def config_bytes(url: str) -> tuple[int, int, int]:
    """(bytes of GET /config, bytes of inlined page code in it, components carrying any)."""
    with urllib.request.urlopen(url + "config", timeout=60) as r:
        body = r.read()
    cfg = json.loads(body)
    inline, carriers = 0, 0
    for comp in cfg.get("components", []):
        props = comp.get("props", {})
        n = sum(len(json.dumps(props.get(k) or "")) for k in INLINE_PROPS)
        if n > 200:
            inline, carriers = inline + n, carriers + 1
    return len(body), inline, carriers


def open_page(browser, url, timeout_ms=120_000):
    """A fresh context opens the app: (seconds to DOMContentLoaded, seconds to the first decoded image)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    t_dom = time.perf_counter() - t0
    page.wait_for_function(READY_JS, timeout=timeout_ms, polling="raf")
    t_first = time.perf_counter() - t0
    ctx.close()
    return t_dom, t_first


def new_sessions(url: str, model: str, calls: int):
    """``calls`` scripted decodes, each a new session: (median wall ms, CPU ms per call of this process)."""
    walls = []
    cpu0 = time.process_time()
    for i in range(calls):
        data = json.dumps({"data": [model, -1.0 + 2.0 * i / calls, 0.5]}).encode()
        req = urllib.request.Request(url + "gradio_api/run/decode", data=data,
                                     headers={"Content-Type": "application/json"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
        walls.append((time.perf_counter() - t) * 1000)
    return C.median(walls), (time.process_time() - cpu0) * 1000 / calls


def main():
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--pages", type=int, default=5, help="fresh pages timed to their first image")
    p.add_argument("--sessions", type=int, default=100, help="page sessions before the memory reading")
    p.add_argument("--calls", type=int, default=100, help="scripted new-session decodes")
    p.add_argument("--no-lazy-configs", action="store_true", help="build without the lazy per-session configs")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import app as app_module

    if args.no_lazy_configs:
        import explorer.ui as ui
        ui.lazy_session_configs = lambda: False
    app_module.limit_malloc_arenas()
    C.print_machine("page load: config bytes, time to first page, new-session cost, memory per session")
    demo, store = app_module.create(args.checkpoints)
    names = store.encoder_models()
    if not names:
        sys.exit("no encoder checkpoints: nothing to open")
    store.view(names[0])
    store.decoders.warm(names[:1])
    for panel in demo.panels.values():
        panel.warm()
    port = C.free_port()
    launch = app_module.launch_kwargs(app_module.parse_args(["--port", str(port)]), demo)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch)
    url = f"http://127.0.0.1:{port}/"
    rows = []
    try:
        size, inline, carriers = config_bytes(url)
        rows.append(("GET /config, bytes", f"{size:,}"))
        rows.append(("  of it page code inlined in components (props js_on_load/css/html/head)",
                     f"{inline:,} in {carriers} components"))
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = C.launch_browser(pw)
            open_page(browser, url)  # the first page: lets the app settle (not counted)
            gc.collect()
            rss0 = rss_mb()
            times = [open_page(browser, url) for _ in range(args.pages)]
            doms, firsts = [t[0] for t in times], [t[1] for t in times]
            rows.append((f"fresh page -> DOMContentLoaded, median of {args.pages} (min-max)",
                         f"{C.median(doms):.2f} s ({min(doms):.2f}-{max(doms):.2f})"))
            rows.append((f"fresh page -> first decoded image drawn, median of {args.pages} (min-max)",
                         f"{C.median(firsts):.2f} s ({min(firsts):.2f}-{max(firsts):.2f})"))
            t = time.perf_counter()
            for _ in range(args.sessions - args.pages):
                open_page(browser, url)
            wall = time.perf_counter() - t
            browser.close()
        gc.collect()
        rss1 = rss_mb()
        rows.append((f"server RSS after 1 page / after {args.sessions} more page sessions",
                     f"{rss0:.0f} / {rss1:.0f} MB (+{(rss1 - rss0) * 1024 / args.sessions:.0f} KB per session)"))
        rows.append(("  (those page sessions took)", f"{wall:.0f} s"))
        wall_ms, cpu_ms = new_sessions(url, names[0], args.calls)
        gc.collect()
        rss2 = rss_mb()
        rows.append((f"scripted new session (POST /gradio_api/run/decode), median wall / CPU per call, {args.calls}",
                     f"{wall_ms:.1f} / {cpu_ms:.1f} ms"))
        rows.append((f"server RSS after those {args.calls} scripted sessions", f"{rss2:.0f} MB"))
    finally:
        demo.close()
    print(C.table(["what", "figure"], rows))
    print(f"\nlazy per-session configs: {'off' if args.no_lazy_configs else 'as the app builds them'}; "
          f"model {names[0]}")


if __name__ == "__main__":
    main()
