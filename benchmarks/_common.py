"""Shared helpers for the benchmark scripts (machine description, ports, browser, tables)."""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--checkpoints", default=None,
                   help="checkpoint folder (default: the shipped ./checkpoints)")
    return p


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines() -> list[str]:
    try:
        import torch
        tv = torch.__version__
    except Exception:  # pragma: no cover
        tv = "not importable"
    try:
        import gradio
        gv = gradio.__version__
    except Exception:  # pragma: no cover
        gv = "not importable"
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return [f"nproc          {os.cpu_count()}",
            f"CPU            {cpu_model()}",
            f"torch          {tv}",
            f"gradio         {gv}",
            f"python         {platform.python_version()}",
            f"load average   {load}  (other jobs on the machine skew the figures)"]


def print_machine(title: str) -> None:
    print(f"== {title}")
    for line in machine_lines():
        print("  " + line)
    print()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers, rows) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), sep] + [fmt(r) for r in cells[1:]])


def launch_browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def warm(panel, what: str) -> float:
    """Run ``panel.warm()`` as app.warm() does in its background thread, and print how long it took."""
    import time

    t = time.perf_counter()
    panel.warm()
    seconds = time.perf_counter() - t
    print(f"  warm-up ({what}): {seconds:.2f} s\n")
    return seconds


def checkpoints_label(checkpoints) -> str:
    return str(Path(checkpoints).resolve()) if checkpoints else f"{ROOT / 'checkpoints'} (shipped)"


def open_tab_js(tab: str, ready: str, timeout_s: int = 120) -> str:
    """Page JS that clicks the tab labelled ``tab`` and returns the milliseconds until the JS expression
    ``ready`` is true (polled every 5 ms); on timeout it throws, with the value of ``ready`` at that point."""
    return f"""
async () => {{
  const tab = [...document.querySelectorAll('button[role=tab]')].find(b => b.innerText.trim() === {tab!r});
  const ready = () => {ready};
  const t0 = performance.now();
  tab.click();
  while (!ready()) {{
    await new Promise(r => setTimeout(r, 5));
    if (performance.now() - t0 > {timeout_s * 1000}) throw new Error({tab!r} + ' did not fill in {timeout_s} s');
  }}
  return performance.now() - t0;
}}
"""
