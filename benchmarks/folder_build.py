"""Time and peak memory of `python -m explorer.folders build` on a folder of many small image files.

    python benchmarks/folder_build.py                      # 200,000 files, 10 classes, 32x32x3
    python benchmarks/folder_build.py --files 2000 --size 16 --channels 1

Writes the files (PNG, 20x24 to 40x30 pixels of seeded noise, a few corrupt ones) into a temporary folder,
builds the dataset into a temporary user cache in a child process, and prints its wall time, files per
second and peak resident memory (the child's ru_maxrss), next to a child that only imports what the build
imports (torch comes with explorer/data.py), and the bytes written. Everything is deleted afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, parser, print_machine, table


def write_files(folder: Path, n: int, classes: int, corrupt: int) -> float:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for c in range(classes):
        (folder / f"class-{c}").mkdir(parents=True)
    for i in range(n):
        path = folder / f"class-{i % classes}" / f"{i:07d}.png"
        if i < corrupt:
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))  # a PNG signature and nothing usable
            continue
        h, w = 20 + i % 11, 24 + i % 7  # mixed sizes
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, compress_level=1)
    return time.perf_counter() - t0


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child(args: list[str], env: dict) -> tuple[float, float, float, str]:
    """(wall seconds, peak RSS MiB (ru_maxrss from wait4), largest RSS sampled every 50 ms in the last half
    of the run (after the imports), stdout) of one child process."""
    t0 = time.perf_counter()
    samples = []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            samples.append((time.perf_counter() - t0, _rss_mib(proc.pid)))
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{err.read()[-2000:]}")
        late = max((r for t, r in samples if t > wall / 2), default=0.0)
        return wall, usage.ru_maxrss / 1024, late, out.read()  # ru_maxrss: KiB on Linux


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--files", type=int, default=200_000)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--corrupt", type=int, default=10, help="how many of the files are corrupt")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    a = p.parse_args()
    print_machine(f"folder_build: {a.files:,} files -> {a.size}x{a.size}x{a.channels}")
    work = Path(tempfile.mkdtemp(prefix="folder-build-"))
    try:
        src, cache = work / "src", work / "cache"
        seconds = write_files(src, a.files, a.classes, a.corrupt)
        print(f"  wrote {a.files:,} files in {seconds:.0f} s")
        env = {**os.environ, "XDG_CACHE_HOME": str(cache), "OMP_NUM_THREADS": "1"}
        base_wall, base_rss, base_late, _ = child(["-c", "import explorer.folders, explorer.data, PIL.Image, tqdm"], env)
        wall, rss, late, out = child(["-m", "explorer.folders", "build", str(src), "--name", "bench", "--size",
                                str(a.size), "--channels", str(a.channels), "--quiet"], env)
        target = cache / "latent-space-explorer" / "datasets" / "bench"
        info = json.loads((target / "dataset.json").read_text())
        written = sum(f.stat().st_size for f in target.iterdir())
        print(out)
        print(table(["what", "value"], [
            ["files", f"{a.files:,}"],
            ["images kept / skipped", f"{info['counts']['images']:,} / {info['skipped_count']:,}"],
            ["build wall time", f"{wall:.1f} s ({a.files / wall:,.0f} files/s)"],
            ["build peak RSS (ru_maxrss)", f"{rss:.0f} MiB"],
            ["build RSS, largest sample in its second half", f"{late:.0f} MiB"],
            ["imports alone: peak RSS / at exit", f"{base_rss:.0f} / {base_late:.0f} MiB ({base_wall:.1f} s)"],
            ["written", f"{written / 2 ** 20:.0f} MiB"],
        ]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
