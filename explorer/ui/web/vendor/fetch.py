"""Fetch the vendored browser runtime again from the npm registry and check it.

    python explorer/ui/web/vendor/fetch.py            # download, verify, (re)write the files
    python explorer/ui/web/vendor/fetch.py --check    # only verify the files already here

For each vendored package (a folder here with a VENDOR.json), the tarball's npm integrity (SHA-512) is
checked, the listed files are taken from its dist/ folder, and each file's SHA-256 must match the one
recorded in VENDOR.json. A file listed under "gzipped" is stored only as <name>.gz (gzip level 9, no name or
time in its header): its SHA-256 is recorded for the original and for the .gz, and the .gz must inflate to
the original. (Another zlib may compress to other bytes: then the .gz is still written when it inflates to
the recorded original, and the script says that its own SHA-256 changed.) Nothing is written unless every
check passes. The app never runs this: it serves the committed files and fetches nothing at run time.
Standard library only.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_integrity(tarball: bytes, integrity: str) -> None:
    """npm's Subresource-Integrity string ("sha512-<base64>") against the tarball's bytes."""
    algo, _, expected = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algo, tarball).digest()).decode()
    if got != expected:
        raise ValueError(f"tarball integrity mismatch: expected {integrity}, got {algo}-{got}")


def extract(tarball: bytes, files: dict) -> dict:
    """{name: bytes} of ``package/dist/<name>`` for each listed file, each checked against its SHA-256."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for name, expected in files.items():
            member = tar.extractfile(f"package/dist/{name}")
            if member is None:
                raise ValueError(f"{name} is not in the tarball's dist/")
            data = member.read()
            if sha256(data) != expected:
                raise ValueError(f"{name}: SHA-256 {sha256(data)} does not match the recorded {expected}")
            out[name] = data
    return out


def gzipped(data: bytes) -> bytes:
    """``data`` as a .gz that depends on nothing but the bytes: level 9, no file name, time 0."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def verify(folder: Path) -> list[str]:
    """Problems with the files already in ``folder`` (empty when all match VENDOR.json)."""
    meta = json.loads((folder / "VENDOR.json").read_text())
    stored = meta.get("gzipped", {})
    problems = []
    for name, expected in meta["files"].items():
        if name in stored:
            path = folder / (name + ".gz")
            if not path.is_file():
                problems.append(f"{path} is missing")
                continue
            data = path.read_bytes()
            if sha256(data) != stored[name]:
                problems.append(f"{path}: SHA-256 does not match VENDOR.json")
            elif sha256(gzip.decompress(data)) != expected:
                problems.append(f"{path}: does not inflate to the recorded {name}")
            continue
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif sha256(path.read_bytes()) != expected:
            problems.append(f"{path}: SHA-256 does not match VENDOR.json")
    return problems


def fetch(folder: Path, opener=urllib.request.urlopen) -> list[str]:
    """Download, check and write the package's files; returns notes (a re-compressed .gz whose bytes differ)."""
    meta = json.loads((folder / "VENDOR.json").read_text())
    stored = meta.get("gzipped", {})
    with opener(meta["tarball"]) as resp:
        tarball = resp.read()
    check_integrity(tarball, meta["integrity"])
    notes, out = [], {}
    for name, data in extract(tarball, meta["files"]).items():
        if name in stored:
            data, name = gzipped(data), name + ".gz"
            if sha256(data) != stored[name[:-3]]:
                notes.append(f"{name}: this zlib compresses to other bytes (SHA-256 {sha256(data)}); it inflates "
                             "to the recorded original, so it is written: record its SHA-256 in VENDOR.json")
        out[name] = data
    for name, data in out.items():
        tmp = folder / (name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(folder / name)
    return notes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only verify the files already here")
    a = p.parse_args(argv)
    status = 0
    for meta in sorted(HERE.glob("*/VENDOR.json")):
        folder = meta.parent
        notes = [] if a.check else fetch(folder)
        for line in notes:
            print(line, file=sys.stderr)
        problems = [p for p in verify(folder)  # a .gz that only another zlib's bytes tell apart was noted above
                    if not (notes and p.partition(":")[0].endswith(".gz") and "SHA-256 does not match" in p)]
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{folder.name}: {'OK' if not problems else 'MISMATCH'}")
        status |= bool(problems)
    return status


if __name__ == "__main__":
    sys.exit(main())
