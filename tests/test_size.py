"""The repository's size budget: tracked files sum to at most 56 MiB (room left for the page's vendored
onnxruntime-web). Weights are the bulk, which is why they ship as float16 (checkpoints.SHIP_DTYPE)."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUDGET_MIB = 56


def tracked_sizes() -> dict[str, int]:
    """{path: bytes in the working tree} of every file git tracks under the repo root."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    sizes = {}
    for rel in filter(None, out.decode().split("\0")):
        path = ROOT / rel
        if path.is_symlink() or path.is_file():  # a tracked file deleted in the working tree counts 0
            sizes[rel] = path.lstat().st_size
    return sizes


def test_tracked_files_fit_the_size_budget():
    sizes = tracked_sizes()
    total = sum(sizes.values())
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:10]
    assert total <= BUDGET_MIB * 2**20, (
        f"tracked files total {total / 2**20:.1f} MiB, over the {BUDGET_MIB} MiB budget; largest: "
        + ", ".join(f"{p} ({s / 2**20:.2f} MiB)" for p, s in largest))
