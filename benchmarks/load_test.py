"""A classroom at once: N simulated students (gradio_client, one session each) for a bounded time against
one server started as `python app.py` on loopback, mixing slider drags, map clicks, uploads and diffusion runs.

    python benchmarks/load_test.py [--students 30] [--seconds 120] [--checkpoints DIR]

Each student waits 0.3-1.5 s ("think time") between requests and picks: a slider drag (/decode, a burst of
5 positions), a map click (/pick: original, reconstruction and interpolation strips), an upload (/attribute
with a small PNG), or a diffusion run (/diffusion_run, DDIM-20, 4 images, streamed to the end), weighted
50/25/15/10. Prints requests served and errors per kind, p50/p95 latency per kind, the server's resident
memory at start and end (from /proc), and the size of Gradio's file cache (GRADIO_TEMP_DIR, a fresh folder).
Everything stays on 127.0.0.1; the run is bounded by --seconds and stops its server.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

KINDS = {"drag": 0.50, "click": 0.25, "upload": 0.15, "diffusion": 0.10}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2 ** 20


def student(i, url, deadline, upload, results, lock):
    from gradio_client import Client, handle_file

    rng = random.Random(i)
    client = Client(url, verbose=False)
    while time.perf_counter() < deadline:
        kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
        t0 = time.perf_counter()
        try:
            if kind == "drag":
                a = rng.uniform(-2, 2)
                for step in range(5):  # a drag is a burst of positions
                    client.predict("fashion-mnist/vae-2d", a + 0.2 * step, rng.uniform(-2, 2), api_name="/decode")
            elif kind == "click":
                client.predict("fashion-mnist/vae-16", "(none)", rng.randrange(5000), rng.randrange(5000),
                               api_name="/pick")
            elif kind == "upload":
                client.predict("fashion-mnist/vae-16", "Sneaker", "Ankle boot", "Upload", 0, handle_file(upload),
                               1.0, 2.0, api_name="/attribute")
            else:
                job = client.submit("fashion-mnist/ddpm-cosine", "DDIM", 20, 0.0, "each class in turn", 1.0,
                                    rng.randrange(10 ** 6), 4, api_name="/diffusion_run")
                job.result()
            ok, err = True, ""
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            ok, err = False, f"{type(e).__name__}: {str(e)[:120]}"
        with lock:
            results.append((kind, time.perf_counter() - t0, ok, err))
        time.sleep(rng.uniform(0.3, 1.5))


def main(argv=None):
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    C.print_machine(f"Load test: {args.students} students for {args.seconds:.0f} s")

    import numpy as np
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="lsx-load-"))
    cache = work / "gradio-cache"
    upload = work / "sneaker.png"
    a = np.full((80, 120), 235, np.uint8)
    a[35:60, 15:105] = 30
    Image.fromarray(a).save(upload)
    port = args.port or C.free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(cache), "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, str(C.ROOT / "app.py"), "--port", str(port)]
    if args.checkpoints:
        cmd += ["--checkpoints", args.checkpoints]
    server = subprocess.Popen(cmd, cwd=C.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(20)  # let app.py's warm-up thread finish, as a lecturer starts the server before the class
        start_rss, start_cache = rss_mb(server.pid), folder_mb(cache) if cache.exists() else 0.0
        results, lock = [], threading.Lock()
        deadline = time.perf_counter() + args.seconds
        threads = [threading.Thread(target=student, args=(i, url, deadline, str(upload), results, lock), daemon=True)
                   for i in range(args.students)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        trace = []  # the server's RSS every 10 s: does it level off?
        while any(t.is_alive() for t in threads) and time.perf_counter() - t0 < args.seconds + 120:
            trace.append(round(rss_mb(server.pid)))
            for t in threads:
                t.join(10 / len(threads))
        wall = time.perf_counter() - t0
        end_rss, end_cache = rss_mb(server.pid), folder_mb(cache) if cache.exists() else 0.0
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for kind in KINDS:
        xs = [r for r in results if r[0] == kind]
        lat = [1000 * r[1] for r in xs if r[2]]
        rows.append([kind, len(xs), sum(not r[2] for r in xs),
                     f"{C.percentile(lat, 50):.0f}" if lat else "-", f"{C.percentile(lat, 95):.0f}" if lat else "-"])
    print(C.table(["kind", "requests", "errors", "p50 ms", "p95 ms"], rows))
    served = sum(r[2] for r in results)
    print(f"\n{served} requests served, {len(results) - served} errors, in {wall:.0f} s "
          f"({served / wall:.1f} per second; a drag counts once for its 5 positions)")
    print(f"server memory (RSS): {start_rss:.0f} MB at start, {end_rss:.0f} MB at the end "
          f"(growth {end_rss - start_rss:+.0f} MB; target <= 200)\n  every 10 s: {trace}")
    print(f"Gradio file cache: {start_cache:.1f} MB at start, {end_cache:.1f} MB at the end "
          "(files older than 15 min are deleted every 5 min: gr.Blocks(delete_cache=(300, 900)))")
    errors = sorted({r[3] for r in results if not r[2]})
    for e in errors[:5]:
        print("  error:", e)


if __name__ == "__main__":
    main()
