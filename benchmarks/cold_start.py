"""Cold start: seconds from spawning `python app.py` to the first HTTP 200 on "/", to the first useful
page (the Latent grid's first decoded image drawn in the page) and to its first image decoded in the page.

    python benchmarks/cold_start.py [--checkpoints DIR] [--repeats 3] [--timeout-s 60]

Each repeat is a fresh server process on a free port (the OS file cache is warm after the first, as on
a redeploy). Chromium is started before the clock starts, so its own launch is not counted; the page
is opened as soon as "/" answers 200. The server is stopped with SIGINT (then SIGTERM, SIGKILL).

First useful page: window.lsxLatentGrid.frames > 0 (explorer/ui/web/latent_grid.js has drawn a decoded
image); the decoder's mode at that moment is reported: 'page' (onnxruntime-web) or 'server' (the fallback,
used while the model's ONNX decoder is still being built after a fresh start). "In-page decode" is the
first frame drawn by the in-page decoder (lsxLatentGrid.last.mode == 'page'), the same as the first
useful page when that one was already decoded in the page.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TARGET_S = 10.0

# truthy (the decoder's mode) once the Latent grid has drawn its first decoded image
READY_JS = """() => { const g = window.lsxLatentGrid;
  return g && g.frames > 0 ? {mode: g.decoder ? g.decoder.mode : null, drawn: g.last ? g.last.mode : null} : false; }"""
# true once an image decoded in the page (onnxruntime-web) has been drawn
PAGE_JS = "() => { const g = window.lsxLatentGrid; return !!(g && g.frames > 0 && g.last && g.last.mode === 'page'); }"


def wait_http(url, proc, deadline):
    last = None
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter()
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except (urllib.error.URLError, ConnectionError, OSError) as err:
            last = type(err).__name__
        time.sleep(0.05)
    raise TimeoutError(f"no HTTP 200 on {url} in time (last: {last})")


def stop(proc):
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            proc.send_signal(sig)
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def encoder_models(checkpoints):
    """Encoder checkpoints the app would offer (checked in a child process: keeps this one light)."""
    code = ("import sys; from explorer.checkpoints import Zoo;"
            "z = Zoo(sys.argv[1] or None); print(len(z.with_capability('has_encoder')))")
    try:
        out = subprocess.run([sys.executable, "-c", code, os.path.abspath(checkpoints) if checkpoints else ""],
                             cwd=str(C.ROOT), capture_output=True, text=True, timeout=120)
        return int(out.stdout.strip().splitlines()[-1])
    except Exception:
        return 1   # cannot tell: measure anyway, failures are reported per run


def one_run(browser, checkpoints, timeout_s):
    port = C.free_port()
    cmd = [sys.executable, "app.py", "--port", str(port)]
    if checkpoints:
        cmd += ["--checkpoints", os.path.abspath(checkpoints)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False")
    log = tempfile.NamedTemporaryFile("w+", prefix="cold_start_", suffix=".log", delete=False)
    url = f"http://127.0.0.1:{port}/"
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    proc = None
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=str(C.ROOT), stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = t0 + timeout_s
        t_http = wait_http(url, proc, deadline)
        page = context.new_page()
        left_ms = max(1000, int((deadline - time.perf_counter()) * 1000))
        page.goto(url, wait_until="domcontentloaded", timeout=left_ms)
        left_ms = max(1000, int((deadline - time.perf_counter()) * 1000))
        ready = page.wait_for_function(READY_JS, polling=20, timeout=left_ms)
        t_page = time.perf_counter()
        state = ready.json_value()
        mode = state.get("drawn") or state.get("mode") or "?"
        t_inpage = t_page - t0 if state.get("drawn") == "page" else None
        if t_inpage is None:
            left_ms = max(1000, int((deadline - time.perf_counter()) * 1000))
            try:
                page.wait_for_function(PAGE_JS, polling=20, timeout=left_ms)
                t_inpage = time.perf_counter() - t0
            except Exception:
                pass   # never decoded in the page within the timeout: reported, not a failed start
        return t_http - t0, t_page - t0, mode, t_inpage, None
    except Exception as err:
        msg = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        log.flush()
        return None, None, None, None, msg + ("\n    server log tail:\n    " + tail(log.name).replace("\n", "\n    ")
                                  if tail(log.name) else "")
    finally:
        try:
            context.close()
        except Exception:
            pass
        if proc is not None:
            stop(proc)
        log.close()
        try:
            os.unlink(log.name)
        except OSError:
            pass


def main(argv=None):
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout-s", type=float, default=60.0, help="give up on one start after this long")
    args = p.parse_args(argv)

    from playwright.sync_api import sync_playwright

    C.print_machine("cold start: python app.py -> first useful page")
    print(f"  checkpoints    {C.checkpoints_label(args.checkpoints)}\n")
    if not encoder_models(args.checkpoints):
        print(f"no encoder checkpoints under {C.checkpoints_label(args.checkpoints)}: the page never shows "
              "a decoded image, nothing to measure")
        return 2
    rows, http, page, inpage, errors, notes = [], [], [], [], [], []
    with sync_playwright() as pw:
        browser = C.launch_browser(pw)
        try:
            for i in range(args.repeats):
                h, pg, mode, ip, err = one_run(browser, args.checkpoints, args.timeout_s)
                if err:
                    errors.append(f"run {i + 1}: {err}")
                    rows.append([i + 1, "-" if h is None else f"{h:.2f}", "failed", "-", "-"])
                    continue
                http.append(h)
                page.append(pg)
                if ip is None:
                    notes.append(f"run {i + 1}: no image decoded in the page within {args.timeout_s:.0f} s")
                else:
                    inpage.append(ip)
                rows.append([i + 1, f"{h:.2f}", f"{pg:.2f}", mode, "never" if ip is None else f"{ip:.2f}"])
        finally:
            browser.close()
    rows.append(["median", f"{C.median(http):.2f}" if http else "-", f"{C.median(page):.2f}" if page else "-",
                 "", f"{C.median(inpage):.2f}" if inpage else "-"])
    print(C.table(["run", "HTTP 200 on / (s)", "first image drawn (s)", "decoded by", "first in-page decode (s)"],
                  rows))
    for e in errors + notes:
        print(f"  {e}")
    if page:
        med = C.median(page)
        print(f"\nfirst useful page, median {med:.2f} s (target <= {TARGET_S:.0f} s: "
              f"{'OK' if med <= TARGET_S else 'OVER TARGET'})")
    return 0 if page and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
