"""Your own images as a dataset: one command turns a folder of images into a dataset every preset trains on.

    python -m explorer.folders build ~/Pictures/pets --name pets --size 32 --channels 3
    python -m explorer.training vae-16 --dataset pets --out my-checkpoints
    python app.py --checkpoints my-checkpoints

**The folder.** Its subfolders are the classes (named after the subfolder, sorted; files at any depth inside
a subfolder belong to it); files lying beside class subfolders are skipped and counted. A folder without
subfolders is one class, ``all``. Hidden files and folders (a name starting with ".") are ignored. Every other
file is tried as an image by its content (PIL), whatever its extension; one that is not an image, is corrupt
or truncated, has more than ``data.MAX_PIXELS`` pixels or trips PIL's decompression-bomb guard is skipped,
counted and listed (with the reason) in ``dataset.json``; nothing left is an error.

**Each image** (:func:`read_image`): its first frame, turned upright by its EXIF orientation; the centred
largest square is cropped (the edges of a non-square picture are lost; nothing is letterboxed) and resized
to ``size`` x ``size`` with Lanczos; transparency composited on white; 16-bit grey scaled to 8 bits; then
grey replicated to 3 channels, or colour made grey with PIL's ITU-R 601 luma. Images of mixed sizes are
fine: all come out the same size. ``size`` must be a multiple of 4 from 8 to 256 (the nets halve each side
at least twice, explorer/nets.py).

**The split** (:func:`split_indices`): a seeded shuffle within each class (stratified); each class with two or
more images puts ``round(test_fraction * n)`` of them, but at least one and at most n - 1, into the test split.
A class with a single image trains on it; if every class has one image, one seeded pick goes to test. So a
dataset needs at least two readable images; a single image is refused with a message saying so (a model
could only memorise it, and the app's maps need a test split).

**Where**: ``data.cache_dir()/datasets/NAME/`` (``$XDG_CACHE_HOME`` honoured): ``dataset.json`` (name, shape,
classes, source folder, counts, skipped files with reasons) and ``{train,test}-{images,labels}.npy``, plain
uint8 / int64 arrays (``allow_pickle`` never needed; loaded memory-mapped). The build writes into a hidden
temporary folder beside it and renames it into place at the end, so an error or Ctrl-C leaves nothing
half-written (a temporary folder orphaned by a killed process is removed by the next build). Memory stays
bounded for any number of files: images are decoded one at a time and streamed to disk, never held as PIL
images or in one array.

**Registration**: ``explorer.datasets`` registers every dataset found there at its first lookup
(:func:`register_all`), so ``--dataset NAME`` of the training CLI and the app know it. A damaged
``dataset.json`` is skipped with a warning; a name that would shadow a built-in dataset is skipped too.
Names are lowercase letters, digits and dashes.

A small set needs more passes over it: the presets' epochs (sized for 60,000 images) are multiplied by
``round(sqrt(60000 / train images))``, between 1 and 20 (``epoch_scale``).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from . import datasets

FORMAT = 1                    # dataset.json's "format"; bump when the layout changes
NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
SIZES = (8, 256)              # the smallest and largest side accepted
FLAT_CLASS = "all"            # the one class of a folder without subfolders
LISTED_SKIPS = 1000           # dataset.json lists at most this many skipped files (all are counted)
TEST_SUBSET = 5000            # the app shows at most this many test images
SPLITS = ("train", "test")


class FolderDatasetError(ValueError):
    """A folder that cannot become a dataset, or a bad argument; the one-line message says why."""


class Unreadable(Exception):
    """One file that is skipped: ``kind`` (counted in dataset.json) and a detail."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def root() -> Path:
    """Where folder datasets live: ``data.cache_dir()/datasets``."""
    from .data import cache_dir  # imported here: explorer.data imports torch, and explorer.datasets imports us

    return cache_dir() / "datasets"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise FolderDatasetError(f"dataset name {name!r}: use 1-40 lowercase letters, digits and dashes "
                                 "(not starting or ending with a dash), e.g. 'my-pets'")
    return name


def _builtin_names() -> set[str]:
    return set(datasets.names()) - _OURS


# ------------------------------------------------------------------ reading the folder
def _hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(directory: Path, rel: str = "") -> list[str]:
    """Relative paths of the non-hidden files below ``directory`` (symlinked folders are not followed)."""
    out = []
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if _hidden(e.name):
            continue
        path = f"{rel}{e.name}"
        if e.is_dir(follow_symlinks=False):
            out += _walk(Path(e.path), path + "/")
        elif e.is_file():
            out.append(path)
    return out


def list_folder(folder: Path) -> tuple[list[str], np.ndarray, list[str], list[tuple[str, str]]]:
    """(relative file paths, their class index, class names, files skipped before reading (path, reason)).

    Subfolders holding files are the classes; without any, the folder's own files form the class "all"."""
    with os.scandir(folder) as it:
        top = sorted(it, key=lambda e: e.name)
    files, labels, classes, skipped, loose = [], [], [], [], []
    for e in top:
        if _hidden(e.name):
            continue
        if e.is_dir(follow_symlinks=False):
            inside = _walk(Path(e.path), e.name + "/")
            if inside:
                files += inside
                labels += [len(classes)] * len(inside)
                classes.append(e.name)
        elif e.is_file():
            loose.append(e.name)
    if classes:
        skipped = [(f, "outside the class subfolders") for f in loose]
    else:
        files, labels, classes = loose, [0] * len(loose), [FLAT_CLASS]
    return files, np.asarray(labels, np.int64), classes, skipped


def read_image(path, size: int, channels: int, max_pixels: int | None = None) -> np.ndarray:
    """One file -> uint8 (size, size) for one channel or (size, size, 3); raises :class:`Unreadable`.
    Call it with ``PIL.Image.DecompressionBombWarning`` turned into an error (as :func:`build` does) to have
    PIL's guard refuse what it would only warn about."""
    from PIL import Image, UnidentifiedImageError

    if max_pixels is None:
        from .data import MAX_PIXELS as max_pixels
    try:
        with Image.open(path) as im:  # reads the header only
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # animated GIF / WebP, multi-page TIFF: the first frame
            if im.format == "JPEG":
                im.draft("RGB" if channels == 3 else "L", (2 * size, 2 * size))  # decode at a reduced scale
            w, h = im.size
            if w * h > max_pixels:
                raise Unreadable("too large", f"{w}x{h} pixels, more than {max_pixels / 1e6:g} megapixels")
            if w < 1 or h < 1:
                raise Unreadable("corrupt", f"{w}x{h} pixels")
            im.load()
            return _to_array(im, size, channels)
    except Unreadable:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise Unreadable("too large", f"refused by PIL's decompression-bomb guard ({err})") from None
    except UnidentifiedImageError:
        raise Unreadable("not an image") from None
    except MemoryError:
        raise
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, EOFError, ... on damaged files
        raise Unreadable("corrupt", f"{type(err).__name__}: {err}") from None


def _to_array(im, size: int, channels: int) -> np.ndarray:
    from PIL import Image

    from .data import upright

    im = upright(im)  # EXIF orientation: phone photos stored sideways
    if im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    elif im.mode in ("L", "RGB") and "transparency" in im.info:  # a tRNS colour key
        im = im.convert("RGBA")
    elif im.mode.startswith("I;16"):
        im = im.convert("I")
    w, h = im.size
    s = min(w, h)
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)  # the centred largest square
    im = im.resize((size, size), Image.LANCZOS, box=box, reducing_gap=3.0)  # RGBA: resampled premultiplied
    if im.mode in ("I", "F"):  # 16/32-bit grey: 16-bit range where values exceed 8 bits, [0, 1] floats
        a = np.asarray(im, np.float64)
        hi = a.max(initial=0)
        a = a / 257.0 if im.mode == "I" and hi > 255 else a * 255.0 if im.mode == "F" and hi <= 1 else a
        grey = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return grey if channels == 1 else np.repeat(grey[..., None], 3, -1)
    if im.mode in ("RGBA", "LA", "La", "RGBa"):  # composite on white
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        im = white
    return np.asarray(im.convert("RGB" if channels == 3 else "L"), np.uint8)


def split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: stratified by class, seeded (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = len(idx)
        k = min(max(int(round(test_fraction * n)), 1), n - 1) if n >= 2 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    train, test = np.concatenate(train), np.concatenate(test)
    if len(test) == 0 and len(train) >= 2:  # every class has a single image
        j = int(rng.integers(len(train)))
        test, train = train[j:j + 1], np.delete(train, j)
    return rng.permutation(train), rng.permutation(test)


# ------------------------------------------------------------------ building
def _write_npy_header(f, shape: tuple, dtype) -> None:
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                             "fortran_order": False, "shape": tuple(int(s) for s in shape)})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove_orphans(base: Path, name: str) -> None:
    """Temporary folders of ``name`` left by a build that was killed (its process is gone)."""
    for p in base.glob(f".{name}.tmp-*"):
        try:
            pid = int(p.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _check_args(folder, name, size, channels, test_fraction) -> Path:
    check_name(name)
    if name in _builtin_names():
        raise FolderDatasetError(f"{name!r} is a built-in dataset's name; choose another --name")
    if not isinstance(size, int) or not SIZES[0] <= size <= SIZES[1] or size % 4:
        raise FolderDatasetError(f"--size {size}: must be a multiple of 4 from {SIZES[0]} to {SIZES[1]} "
                                 "(the nets halve each side at least twice)")
    if channels not in (1, 3):
        raise FolderDatasetError(f"--channels {channels}: must be 1 (grey) or 3 (colour)")
    if not 0 < test_fraction < 1:
        raise FolderDatasetError(f"--test-fraction {test_fraction}: must be between 0 and 1")
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise FolderDatasetError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise FolderDatasetError(f"{folder}: not a folder")
    return folder.resolve()


def build(folder, name: str, size: int = 32, channels: int = 3, test_fraction: float = 0.1, seed: int = 0,
          replace: bool = False, progress: bool = True) -> dict:
    """Make dataset ``name`` from the images in ``folder`` (see the module's docstring); returns its
    dataset.json contents, with "path" added. Raises :class:`FolderDatasetError`."""
    from tqdm.auto import tqdm

    from .data import MAX_PIXELS
    from PIL import Image

    folder = _check_args(folder, name, size, channels, test_fraction)
    base = root()
    target = base / name
    if target.exists() and not replace:
        raise FolderDatasetError(f"dataset {name!r} already exists ({target}); pass --replace to rebuild it")
    files, labels, classes, skipped = list_folder(folder)
    if not files:
        raise FolderDatasetError(f"{folder}: no files in it (hidden files are ignored)" if not skipped else
                                 f"{folder}: no files inside the class subfolders")
    shape = (size, size) if channels == 1 else (size, size, channels)
    per_image = size * size * channels
    base.mkdir(parents=True, exist_ok=True)
    _remove_orphans(base, name)
    need = 2 * len(files) * per_image + (1 << 20)
    free = shutil.disk_usage(base).free
    if free < need:
        raise FolderDatasetError(f"{base}: {free / 2 ** 30:.1f} GiB free, the build needs about "
                                 f"{need / 2 ** 30:.1f} GiB; free some space or choose a smaller --size")

    tmp = base / f".{name}.tmp-{os.getpid()}-{time.time_ns() % 10 ** 9}"
    tmp.mkdir()
    try:
        # 1. decode each file in turn, appending its pixels to one raw file
        ok = np.zeros(len(files), bool)
        kinds: dict[str, int] = {}
        for _, reason in skipped:
            kinds[reason] = kinds.get(reason, 0) + 1
        raw = tmp / "decoded.u8"
        with open(raw, "wb") as f, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            bar = tqdm(files, desc=f"reading {folder.name or folder}", unit="file", disable=not progress,
                       dynamic_ncols=True, mininterval=0.5)
            for i, rel in enumerate(bar):
                try:
                    a = read_image(folder / rel, size, channels, MAX_PIXELS)
                except Unreadable as err:
                    skipped.append((rel, str(err)))
                    kinds[err.kind] = kinds.get(err.kind, 0) + 1
                    if progress:
                        bar.set_postfix(skipped=len(skipped), refresh=False)
                    continue
                f.write(a.tobytes())
                ok[i] = True
        n_ok = int(ok.sum())
        if n_ok == 0:
            example = "; ".join(f"{p}: {r}" for p, r in skipped[:2])
            raise FolderDatasetError(f"{folder}: no readable image among {len(skipped)} file(s) ({example})")
        if n_ok == 1:
            raise FolderDatasetError(f"{folder}: only one readable image; a dataset needs at least 2 "
                                     "(one to train on, one to test on)")

        # 2. classes left with images, the stratified split, and the arrays in split order
        used = np.unique(labels[ok])
        remap = np.full(len(classes), -1, np.int64)
        remap[used] = np.arange(len(used))
        classes = [classes[c] for c in used]
        kept = remap[labels[ok]]  # the label of the k-th decoded image
        split = dict(zip(SPLITS, split_indices(kept, test_fraction, seed)))
        with open(raw, "rb") as src:
            fd = src.fileno()
            for name_, idx in split.items():
                with open(tmp / f"{name_}-images.npy", "wb") as out:
                    _write_npy_header(out, (len(idx), *shape), np.uint8)
                    for k in idx:
                        out.write(os.pread(fd, per_image, int(k) * per_image))
                np.save(tmp / f"{name_}-labels.npy", kept[idx], allow_pickle=False)
        raw.unlink()

        info = {
            "format": FORMAT, "name": name, "shape": [channels, size, size], "classes": classes,
            "source": str(folder), "size": size, "channels": channels, "test_fraction": test_fraction,
            "seed": seed, "resize": "centre square crop, Lanczos; alpha on white",
            "counts": {"files": len(files) + sum(r == "outside the class subfolders" for _, r in skipped),
                       "images": n_ok, "train": len(split["train"]), "test": len(split["test"]),
                       "per_class": {c: [int((kept[split[s]] == i).sum()) for s in SPLITS]
                                     for i, c in enumerate(classes)}},
            "skipped_count": len(skipped), "skipped_kinds": kinds,
            "skipped": [{"file": p, "reason": r} for p, r in skipped[:LISTED_SKIPS]],
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "dataset.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")

        # 3. into place: a rename, so the dataset is either whole or absent
        if target.exists():
            old = base / f".{name}.tmp-{os.getpid()}-old"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    register_all()
    return {**info, "path": str(target)}


# ------------------------------------------------------------------ reading a built dataset, registration
def read_info(directory: Path) -> dict:
    """A built dataset's dataset.json, checked; raises ValueError naming what is wrong."""
    directory = Path(directory)
    try:
        info = json.loads((directory / "dataset.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"dataset.json unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"dataset.json is not format {FORMAT}")
    name, shape, classes, counts = info.get("name"), info.get("shape"), info.get("classes"), info.get("counts")
    if name != directory.name:
        raise ValueError(f"dataset.json names {name!r}, its folder is {directory.name!r}")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) for s in shape)
            and shape[0] in (1, 3) and shape[1] == shape[2] and shape[1] % 4 == 0 and shape[1] >= SIZES[0]):
        raise ValueError(f"dataset.json: bad shape {shape!r}")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise ValueError("dataset.json: bad classes")
    if not (isinstance(counts, dict) and all(isinstance(counts.get(s), int) and counts[s] > 0 for s in SPLITS)):
        raise ValueError("dataset.json: bad counts")
    for s in SPLITS:
        for part in ("images", "labels"):
            if not (directory / f"{s}-{part}.npy").is_file():
                raise ValueError(f"{s}-{part}.npy is missing")
    return info


def load_split(directory, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, H, W) or (N, H, W, C), labels int64 (N,)) of a built dataset, memory-mapped."""
    directory = Path(directory)
    images = np.load(directory / f"{split}-images.npy", mmap_mode="r", allow_pickle=False)
    labels = np.load(directory / f"{split}-labels.npy", allow_pickle=False)
    if images.dtype != np.uint8 or labels.dtype != np.int64 or len(images) != len(labels):
        raise ValueError(f"{directory / split}: damaged arrays ({images.dtype} {images.shape}, "
                         f"{labels.dtype} {labels.shape}); rebuild with `python -m explorer.folders build ... "
                         f"--name {directory.name} --replace`")
    return (images, labels) if limit is None else (images[:limit], labels[:limit])


def epoch_scale(n_train: int) -> int:
    return int(min(20, max(1, round(math.sqrt(60000 / max(n_train, 1))))))


def spec_for(directory: Path, info: dict) -> datasets.DatasetSpec:
    c = info["counts"]
    return datasets.DatasetSpec(
        info["name"], tuple(info["shape"]), list(info["classes"]),
        loader=functools.partial(load_split, directory),
        test_subset=functools.partial(load_split, directory, "test", TEST_SUBSET),
        upload="picture", epoch_scale=epoch_scale(c["train"]),
        description=f"your images (folder {Path(str(info.get('source', '?'))).name!r}): "  # no path: users see it
                    f"{c['train']:,} train / {c['test']:,} test, "
                    f"{info['shape'][1]}x{info['shape'][2]}x{info['shape'][0]} (explorer/folders.py)")


_OURS: set[str] = set()  # the registry's entries that came from here


def register_all(base: Path | None = None) -> list[str]:
    """Register every dataset built under ``base`` (default :func:`root`), replacing this module's earlier
    entries and dropping those whose folder is gone; returns their names. Never raises: a damaged dataset or
    an unreadable folder is a warning."""
    global _OURS
    found = []
    try:
        base = Path(base) if base is not None else root()
        entries = sorted(p for p in base.iterdir() if NAME_RE.fullmatch(p.name) and p.is_dir()) \
            if base.is_dir() else []
    except Exception as err:  # e.g. a cache folder we may not read
        warnings.warn(f"folder datasets not scanned: {type(err).__name__}: {err}", stacklevel=2)
        entries = []
    builtin = _builtin_names()
    for directory in entries:
        try:
            if directory.name in builtin:
                raise ValueError("its name is a built-in dataset's")
            spec = spec_for(directory, read_info(directory))
        except Exception as err:
            warnings.warn(f"skipped the dataset in {directory}: {err}", stacklevel=2)
            continue
        datasets.register(spec, replace=True)
        found.append(spec.name)
    for gone in _OURS - set(found):
        datasets.unregister(gone)
    _OURS = set(found)
    return found


# ------------------------------------------------------------------ CLI
def _summary(info: dict) -> str:
    c = info["counts"]
    per = ", ".join(f"{k} {sum(v):,}" for k, v in list(c["per_class"].items())[:8])
    more = f", ... ({len(info['classes'])} classes)" if len(info["classes"]) > 8 else ""
    lines = [f"{info['name']}: {c['images']:,} images from {info['source']} ({per}{more}) -> "
             f"{info['size']}x{info['size']}x{info['channels']}; train {c['train']:,} / test {c['test']:,}"]
    if info["skipped_count"]:
        kinds = ", ".join(f"{n:,} {k}" for k, n in info["skipped_kinds"].items())
        lines.append(f"skipped {info['skipped_count']:,} file(s): {kinds} (listed in dataset.json)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.folders", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="make a dataset from a folder of images")
    b.add_argument("folder")
    b.add_argument("--name", required=True, help="lowercase letters, digits and dashes")
    b.add_argument("--size", type=int, default=32, help="side in pixels, a multiple of 4 (default 32)")
    b.add_argument("--channels", type=int, default=3, choices=(1, 3), help="1 grey or 3 colour (default 3)")
    b.add_argument("--test-fraction", type=float, default=0.1, help="share of each class held out (default 0.1)")
    b.add_argument("--seed", type=int, default=0, help="the split's seed (default 0)")
    b.add_argument("--replace", action="store_true", help="rebuild a dataset of the same name")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("list", help="the datasets built from folders")
    a = p.parse_args(argv)
    try:
        if a.command == "build":
            info = build(a.folder, a.name, a.size, a.channels, a.test_fraction, a.seed, a.replace,
                         progress=not a.quiet)
            print(_summary(info))
            print(f"wrote {info['path']}\nnext: python -m explorer.training vae-16 --dataset {a.name} "
                  "--out my-checkpoints && python app.py --checkpoints my-checkpoints")
        else:
            base = root()
            for name in register_all():
                print(_summary({**read_info(base / name), "name": name}))
    except FolderDatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # run the package's copy: explorer.datasets registers into that one's _OURS
    from explorer import folders as _module

    sys.exit(_module.main())
