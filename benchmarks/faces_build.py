"""First-use generation of the face set (explorer/faces.py): wall time and peak memory.

    python benchmarks/faces_build.py                # the whole set (28,000 faces) into a temporary cache
    python benchmarks/faces_build.py --n 2000       # a part of it

Prints the wall time, faces per second, and the peak resident memory of this process and of its worker
processes (the renderer runs in one process per core).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None, help="faces to generate (default: the whole set)")
    p.add_argument("--workers", type=int, default=None)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        from explorer import faces

        n = a.n or faces.N_TRAIN + faces.N_TEST
        t0 = time.perf_counter()
        faces.build(0, n=a.n, workers=a.workers, progress=False)
        dt = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*.npz"))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{n:,} faces in {dt:.1f} s ({n / dt:.0f} faces/s, {os.cpu_count()} cores); files {size / 1e6:.0f} MB; "
          f"peak RSS {own:.0f} MB (main) / {kids:.0f} MB (largest worker)")


if __name__ == "__main__":
    main()
