"""Server cost per request under light HTTP clients: one `python app.py` on loopback, driven through Gradio's own
HTTP API (POST /gradio_api/call/<api_name>, then the event's SSE stream until `complete` or `error`).

    python benchmarks/load_http.py [--clients 1,10,30,100] [--seconds 10] [--endpoints decode,pick,attribute,diffusion]
                                   [--mixed-clients 100] [--mixed-seconds 60] [--checkpoints DIR]
    python benchmarks/load_http.py --direct --endpoints decode --mixed-clients 0   # POST /gradio_api/run/decode
    python benchmarks/load_http.py --direct --endpoints decode,png --mixed-clients 0   # and GET /api/decode.png

For each endpoint and each number of clients it runs one phase: that many asyncio clients (httpx.AsyncClient, one
connection each, no think time: each sends its next request when the last one finished) for --seconds, then waits
for the requests in flight. Per phase it prints requests served, errors, p50/p95 latency, throughput, and the
server's CPU per request: the change of the server process's utime + stime (/proc/<pid>/stat, all its threads)
over the phase divided by the requests served. The benchmark's own CPU per request is printed beside it (the
clients share the machine's cores with the server). Then a mixed phase: --mixed-clients clients for
--mixed-seconds, each waiting --think seconds (uniform range) between requests and picking an endpoint with the
weights of load_test.py (decode 50, pick 25, attribute 15, diffusion 10), reporting errors per endpoint and the
server's resident memory (VmRSS) at start, peak and end.

Endpoints: decode (/decode on fashion-mnist/vae-2d at random a, b), png (the same decode through the app's plain
route, GET /api/decode.png?model=...&a=...&b=..., one request answered with the PNG), pick (/pick on vae-16: one map click, the
detail only), pick2 (/pick with A and B: detail plus interpolation strips), attribute (/attribute: Apply on a test
image), diffusion (/diffusion_run: DDIM-20, 4 images, streamed to the end). `--server-cmd` runs another server
(a template with {port}, e.g. benchmarks/floor_app.py, Gradio's floor under these shapes; its `number` endpoint
returns a number) under the same clients; `--api` names the prefix of the
call routes. Loopback only; every phase is bounded in time and the server is stopped at the end.
"""
from __future__ import annotations

import asyncio
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
MIXED = {"decode": 50, "pick": 25, "attribute": 15, "diffusion": 10}


def payload(kind: str, rng: random.Random) -> tuple[str, list]:
    """(api_name, data) of one request of ``kind``."""
    if kind == "decode":
        return "decode", ["fashion-mnist/vae-2d", rng.uniform(-2, 2), rng.uniform(-2, 2)]
    if kind == "number":  # benchmarks/floor_app.py only: an endpoint that returns a number
        return "number", ["fashion-mnist/vae-2d", rng.uniform(-2, 2), rng.uniform(-2, 2)]
    if kind == "pick":
        return "pick", ["fashion-mnist/vae-16", "(none)", -1, rng.randrange(5000)]
    if kind == "pick2":
        return "pick", ["fashion-mnist/vae-16", "(none)", rng.randrange(5000), rng.randrange(5000)]
    if kind == "attribute":
        # model, group A, group B, source, test index, upload, strength, k: the Apply button's /attribute
        return "attribute", ["fashion-mnist/vae-16", "Sneaker", "Ankle boot", "Test image", rng.randrange(5000),
                             None, 1.0, 2.0]
    if kind == "diffusion":
        # model, sampler, steps, eta, class, guidance, seed, batch, timestep spacing
        return "diffusion_run", ["fashion-mnist/ddpm-cosine", "DDIM", 20, 0.0, "each class in turn", 1.0,
                                 rng.randrange(10 ** 6), 4, "trailing"]
    raise ValueError(f"unknown endpoint {kind!r}")


PLAIN = {"png": "/api/decode.png"}  # endpoints on the app's plain routes, not Gradio's API


def plain_request(url: str, timeout: float):
    """run_phase's ``request`` for the plain routes: one GET, answered with the image."""
    async def request(client, kind, rng):
        params = {"model": "fashion-mnist/vae-2d", "a": rng.uniform(-2, 2), "b": rng.uniform(-2, 2)}
        r = await client.get(url + PLAIN[kind], params=params, timeout=timeout)
        if r.status_code != 200 or r.headers.get("content-type") != "image/png":
            return False, f"GET {r.status_code}: {r.text[:100]}"
        return True, ""
    return request


# --- the server process: CPU and memory from /proc ------------------------------------------------------------

def cpu_s(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


# --- one request through the call API -------------------------------------------------------------------------

async def call(client, base: str, api_name: str, data: list, timeout: float, session: str | None = None
               ) -> tuple[bool, str]:
    """POST the call, then read its SSE stream to the end: (ok, error text). ``session``: the session hash to
    send (as a browser tab or a gradio_client.Client does); None sends none, as curl examples do, and Gradio
    then builds a new session for every call."""
    body = {"data": data} if session is None else {"data": data, "session_hash": session}
    r = await client.post(f"{base}/{api_name}", json=body, timeout=timeout)
    if r.status_code != 200:
        return False, f"POST {r.status_code}: {r.text[:100]}"
    event_id = r.json()["event_id"]
    event = None
    async with client.stream("GET", f"{base}/{api_name}/{event_id}", timeout=timeout) as s:
        async for line in s.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                return event == "complete", "" if event == "complete" else f"error: {line[5:].strip()[:100]}"
    return False, f"stream ended after {event!r}"


async def run_direct(client, base: str, api_name: str, data: list, timeout: float, session: str | None = None
                     ) -> tuple[bool, str]:
    """One POST to /gradio_api/run/<name>: the direct route of an unqueued endpoint (/decode), answered in the
    same response; a queued endpoint is refused there (the app launches with api_open=False)."""
    body = {"data": data} if session is None else {"data": data, "session_hash": session}
    r = await client.post(f"{base}/{api_name}", json=body, timeout=timeout)
    if r.status_code != 200:
        return False, f"POST {r.status_code}: {r.text[:100]}"
    return True, ""


@dataclass
class Phase:
    label: str
    clients: int
    results: list = field(default_factory=list)  # (kind, seconds, ok, error)
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    rss: list = field(default_factory=list)


async def run_phase(base: str, pid: int, label: str, kinds: dict, clients: int, seconds: float,
                    think=(0.0, 0.0), timeout: float = 120.0, seed: int = 0, request=None,
                    sessions: bool = False, send=call) -> Phase:
    """``clients`` concurrent loops for ``seconds`` (requests in flight at the deadline finish); ``kinds`` maps
    endpoint -> weight. ``request(client, kind, rng)`` may replace the call API (for other routes)."""
    import httpx

    phase = Phase(label, clients)
    limits = httpx.Limits(max_connections=4 * clients + 8, max_keepalive_connections=2 * clients + 8)
    names, weights = list(kinds), list(kinds.values())

    async def one(i, client, deadline):
        rng = random.Random(seed * 100003 + i)
        session = f"lsx-load-{seed}-{i}-{random.getrandbits(32):08x}" if sessions else None
        if think[1] > 0:
            await asyncio.sleep(rng.uniform(0, think[1]))  # do not start in lockstep
        while time.perf_counter() < deadline:
            kind = rng.choices(names, weights)[0]
            t0 = time.perf_counter()
            try:
                if request is not None:
                    ok, err = await request(client, kind, rng)
                else:
                    api_name, data = payload(kind, rng)
                    ok, err = await send(client, base, api_name, data, timeout, session)
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                ok, err = False, f"{type(e).__name__}: {str(e)[:100]}"
            phase.results.append((kind, time.perf_counter() - t0, ok, err))
            if think[1] > 0:
                await asyncio.sleep(rng.uniform(*think))

    async def watch(done):
        while not done.is_set():
            phase.rss.append(rss_mb(pid))
            try:
                await asyncio.wait_for(done.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async with httpx.AsyncClient(limits=limits) as client:
        done = asyncio.Event()
        watcher = asyncio.create_task(watch(done))
        c0, s0, t0 = cpu_s(pid), self_cpu_s(), time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(one(i, client, deadline) for i in range(clients)))
        phase.wall = time.perf_counter() - t0
        phase.server_cpu, phase.client_cpu = cpu_s(pid) - c0, self_cpu_s() - s0
        done.set()
        await watcher
        phase.rss.append(rss_mb(pid))
    return phase


def rows_of(phase: Phase, kinds) -> list[list]:
    rows = []
    served_all = sum(r[2] for r in phase.results)
    for kind in kinds:
        xs = [r for r in phase.results if r[0] == kind]
        if not xs:
            continue
        lat = [1000 * r[1] for r in xs if r[2]]
        served = len(lat)
        single = len(kinds) == 1
        rows.append([phase.label if single else f"{phase.label} {kind}", phase.clients, served, len(xs) - served,
                     f"{C.percentile(lat, 50):.0f}" if lat else "-", f"{C.percentile(lat, 95):.0f}" if lat else "-",
                     f"{served / phase.wall:.1f}",
                     f"{1000 * phase.server_cpu / served_all:.1f}" if single and served_all else "-",
                     f"{1000 * phase.client_cpu / served_all:.1f}" if single and served_all else "-",
                     f"{os.getloadavg()[0]:.1f}"])
    return rows


HEADERS = ["endpoint", "clients", "served", "errors", "p50 ms", "p95 ms", "per s", "server CPU ms/req",
           "client CPU ms/req", "load1"]


def errors_of(phases) -> list[str]:
    seen = {}
    for ph in phases:
        for kind, _, ok, err in ph.results:
            if not ok:
                seen.setdefault(f"{kind}: {err}", 0)
                seen[f"{kind}: {err}"] += 1
    return [f"{n} x {e}" for e, n in sorted(seen.items(), key=lambda kv: -kv[1])]


# --- the server ------------------------------------------------------------------------------------------------

def start_server(args, port: int, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_TEMP_DIR": str(cache), "GRADIO_ANALYTICS_ENABLED": "False"}
    if args.server_cmd:
        cmd = shlex.split(args.server_cmd.format(port=port))
    else:
        cmd = [sys.executable, str(C.ROOT / "app.py"), "--port", str(port)]
        if args.checkpoints:
            cmd += ["--checkpoints", args.checkpoints]
    return subprocess.Popen(cmd, cwd=C.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_up(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}): {server.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not answer {url} in {timeout:.0f} s")


def quiet(pid: int, limit: float, window: float = 3.0, share: float = 0.15) -> float:
    """Wait until the server has been (nearly) idle for ``window`` seconds, at most ``limit``; returns the wait.
    An idle app still uses ~9% of a core: Gradio's queue polls its event lists (Queue.start_processing)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        c = cpu_s(pid)
        time.sleep(window)
        if cpu_s(pid) - c < share * window:
            break
    return time.perf_counter() - t0


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()


def main(argv=None):
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--clients", default="1,10,30,100", help="comma-separated client counts (default 1,10,30,100)")
    p.add_argument("--seconds", type=float, default=10, help="seconds per endpoint phase (default 10)")
    p.add_argument("--endpoints", default="decode,pick,attribute,diffusion",
                   help="comma-separated: decode, png, pick, pick2, attribute, diffusion (default: all but png and "
                        "pick2)")
    p.add_argument("--mixed-clients", type=int, default=100, help="clients of the mixed phase (0: skip it)")
    p.add_argument("--mixed-seconds", type=float, default=60)
    p.add_argument("--think", default="0.3,1.5", help="mixed phase: seconds between a client's requests (lo,hi)")
    p.add_argument("--warmup", type=float, default=240,
                   help="at most this many seconds for app.py's warm-up thread: the phases start once the server "
                        "has used under 15%% of a core for 3 s (default 240)")
    p.add_argument("--timeout", type=float, default=120, help="seconds before one request counts as failed")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--server-cmd", default=None, help="run this server instead of app.py ({port} is filled in)")
    p.add_argument("--url", default=None, help="use a running server at this URL (needs --pid)")
    p.add_argument("--pid", type=int, default=None, help="the running server's process id (with --url)")
    p.add_argument("--api", default=None, help="the routes' prefix (default /gradio_api/call, or "
                                               "/gradio_api/run with --direct)")
    p.add_argument("--direct", action="store_true",
                   help="one POST per request to /gradio_api/run/<name> (unqueued endpoints only: /decode) "
                        "instead of the queue's POST + event stream")
    p.add_argument("--sessions", action="store_true",
                   help="each client sends one session hash with every call (as a browser tab or gradio_client "
                        "does); default: none, as a plain curl/httpx script does")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.clients.split(",") if x.strip()]
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    for e in endpoints:
        if e not in PLAIN:
            payload(e, random.Random(0))  # fail early on a typo
    think = tuple(float(x) for x in args.think.split(","))
    C.print_machine(f"HTTP load: {endpoints} at {levels} clients, {args.seconds:.0f} s each; "
                    f"mixed {args.mixed_clients} clients for {args.mixed_seconds:.0f} s; "
                    f"{'one session per client' if args.sessions else 'no session hash (a new session per call)'}")

    work = Path(tempfile.mkdtemp(prefix="lsx-http-"))
    server = None
    try:
        if args.url:
            if not args.pid:
                raise SystemExit("--url needs --pid (the server's process id, for its CPU and memory)")
            url, pid = args.url.rstrip("/"), args.pid
        else:
            port = args.port or C.free_port()
            url = f"http://127.0.0.1:{port}"
            server = start_server(args, port, work / "gradio-cache")
            wait_up(url + "/", server)
            pid = server.pid
            quiet(pid, args.warmup)  # a lecturer starts the server before the class
        base = url + (args.api or ("/gradio_api/run" if args.direct else "/gradio_api/call"))
        send = run_direct if args.direct else call
        print(f"server pid {pid}, RSS {rss_mb(pid):.0f} MB after start-up and warm-up, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
        phases, rows = [], []
        for e in endpoints:
            req = plain_request(url, args.timeout) if e in PLAIN else None
            asyncio.run(run_phase(base, pid, e, {e: 1}, 1, 0, timeout=args.timeout, send=send,
                                  request=req))  # untimed
            for n in levels:
                ph = asyncio.run(run_phase(base, pid, e, {e: 1}, n, args.seconds, timeout=args.timeout, seed=n,
                                             sessions=args.sessions, send=send, request=req))
                phases.append(ph)
                rows += rows_of(ph, [e])
                print(C.table(HEADERS, rows[-1:]).splitlines()[-1], flush=True)
        print()
        print(C.table(HEADERS, rows))
        if args.mixed_clients:
            print(f"\nmixed: {args.mixed_clients} clients for {args.mixed_seconds:.0f} s, think {think[0]}-{think[1]} s,"
                  f" weights {MIXED}")
            mixed = {k: w for k, w in MIXED.items()}
            ph = asyncio.run(run_phase(base, pid, "mixed", mixed, args.mixed_clients, args.mixed_seconds, think,
                                       timeout=args.timeout, seed=7, sessions=args.sessions, send=send))
            phases.append(ph)
            print(C.table(HEADERS, rows_of(ph, list(mixed))))
            served = sum(r[2] for r in ph.results)
            print(f"{served} served, {len(ph.results) - served} errors in {ph.wall:.0f} s; server CPU "
                  f"{1000 * ph.server_cpu / max(served, 1):.1f} ms per request (all kinds)")
            print(f"server RSS: {ph.rss[0]:.0f} MB at start, peak {max(ph.rss):.0f}, {ph.rss[-1]:.0f} at the end "
                  f"(growth {ph.rss[-1] - ph.rss[0]:+.0f} MB; target <= 200)")
        errors = errors_of(phases)
        if errors:
            print("\nerrors:")
            for e in errors[:10]:
                print("  " + e)
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0 if any(r[2] for ph in phases for r in ph.results) else 1
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
