"""Cartoon faces in colour with every factor known, generated offline from a seed.

Each face is drawn by ``python_avatars`` (the avataaars art, MIT) as SVG from named parts and rendered
by ``resvg-py``; nothing of the set ships as bytes: face ``i`` of seed ``s`` is a pure function of
``(s, i)`` (its own ``numpy`` generator), so the set is built at first use into the user cache and any
part of it can be rebuilt or checked alone.

The factor distribution is chosen, not ``Avatar.random()``'s: one plain white background (no circle),
no hats, no joke parts (vomit mouth, X eyes, eye patch, costume clothing), and each factor drawn
independently and uniformly from the values below, except glasses and facial hair, which are present
one time in two (so "glasses" and "beard" are balanced yes/no attributes). The picture is cropped to the
head (the SVG's 264x280 view box narrowed to 180x180 around the face) so the mouth spans ~10 of 64
pixels, and rendered straight at the target size (vector anti-aliasing, no resampling).

The class label of a face is its mouth: the factor the lecture's smile vector is about.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VERSION = 1  # bump when the drawing changes: the cache file names carry it
SIZE = 64
N_TRAIN, N_TEST = 24_000, 4_000
VIEW_BOX = "42 8 180 180"  # x y w h within the avataaars 264x280 canvas: the head and the top of the shoulders

# factor -> (its values as shown to people, the python_avatars enum member names, one per value).
# "none" values are drawn with probability 1/2, the others share the rest.
FACTORS: dict[str, tuple[list[str], list[str]]] = {
    "mouth": (["smile", "big smile", "default", "serious", "sad", "concerned", "disbelief", "scream"],
              ["SMILE", "BIG_SMILE", "DEFAULT", "SERIOUS", "SAD", "CONCERNED", "DISBELIEF", "SCREAM_OPEN"]),
    "eyes": (["default", "happy", "squint", "surprised", "side", "closed"],
             ["DEFAULT", "HAPPY", "SQUINT", "SURPRISED", "SIDE", "CLOSED"]),
    "eyebrows": (["default", "natural", "raised", "sad", "angry", "flat"],
                 ["DEFAULT", "DEFAULT_NATURAL", "RAISED_EXCITED", "SAD_CONCERNED", "ANGRY", "FLAT_NATURAL"]),
    "glasses": (["none", "round", "prescription", "wayfarers", "sunglasses"],
                ["NONE", "ROUND", "PRESCRIPTION_2", "WAYFARERS", "SUNGLASSES"]),
    "facial hair": (["none", "light beard", "medium beard", "majestic beard", "moustache"],
                    ["NONE", "BEARD_LIGHT", "BEARD_MEDIUM", "BEARD_MAGESTIC", "MOUSTACHE_FANCY"]),
    "hair": (["short flat", "short round", "short waved", "buzzcut", "bob", "long", "curly", "fro", "bun",
              "straight", "bald"],
             ["SHORT_FLAT", "SHORT_ROUND", "SHORT_WAVED", "BUZZCUT", "BOB", "LONG_NOT_TOO_LONG", "CURLY", "FRO",
              "BUN", "STRAIGHT_1", "NONE"]),
    "hair colour": (["black", "brown", "dark brown", "auburn", "blonde", "red", "platinum", "silver grey"],
                    ["BLACK", "BROWN", "BROWN_DARK", "AUBURN", "BLONDE", "RED", "PLATINUM", "SILVER_GRAY"]),
    "skin": (["pale", "light", "yellow", "tanned", "brown", "dark brown", "black"],
             ["PALE", "LIGHT", "YELLOW", "TANNED", "BROWN", "DARK_BROWN", "BLACK"]),
    "clothing": (["crew neck", "v neck", "hoodie", "blazer", "sweater"],
                 ["SHIRT_CREW_NECK", "SHIRT_V_NECK", "HOODIE", "BLAZER_SHIRT", "COLLAR_SWEATER"]),
    "clothing colour": (["black", "blue", "grey", "pastel green", "pastel orange", "pink", "red", "white"],
                        ["BLACK", "BLUE_02", "GRAY_01", "PASTEL_GREEN", "PASTEL_ORANGE", "PINK", "RED", "WHITE"]),
}
FACTOR_NAMES = list(FACTORS)
HALF_NONE = {"glasses", "facial hair"}  # "none" one time in two
CLASSES = FACTORS["mouth"][0]           # the label of a face is its mouth

# Yes/no attributes derived from the factors (what attribute vectors and the judge speak of).
BINARY = {
    "smiling": ("mouth", {"smile", "big smile"}),
    "mouth open": ("mouth", {"big smile", "disbelief", "scream"}),
    "glasses": ("glasses", {"round", "prescription", "wayfarers", "sunglasses"}),
    "beard": ("facial hair", {"light beard", "medium beard", "majestic beard"}),
    "blond hair": ("hair colour", {"blonde", "platinum"}),
    "dark hair": ("hair colour", {"black", "dark brown"}),
}


def binary_attribute(factors: np.ndarray, name: str) -> np.ndarray:
    """A yes/no attribute (see :data:`BINARY`) of faces whose factor codes are ``factors`` (N, F) -> bool (N,)."""
    factor, yes = BINARY[name]
    values = FACTORS[factor][0]
    codes = [values.index(v) for v in yes]
    return np.isin(factors[:, FACTOR_NAMES.index(factor)], codes)


def draw_factors(seed: int, index: int) -> np.ndarray:
    """The factor codes (F,) of face ``index`` of set ``seed``: its own generator, so any face is drawn alone."""
    rng = np.random.default_rng([VERSION, seed, index])
    out = np.empty(len(FACTORS), np.int64)
    for j, (name, (values, _)) in enumerate(FACTORS.items()):
        if name in HALF_NONE:
            out[j] = 0 if rng.random() < 0.5 else rng.integers(1, len(values))
        else:
            out[j] = rng.integers(len(values))
    return out


def svg(factors: np.ndarray) -> str:
    """The SVG of a face with factor codes ``factors`` (F,), cropped to the head."""
    import python_avatars as pa

    part = {name: FACTORS[name][1][int(c)] for name, c in zip(FACTOR_NAMES, factors)}
    avatar = pa.Avatar(
        style=pa.AvatarStyle.TRANSPARENT,
        top=pa.HairType[part["hair"]],
        mouth=pa.MouthType[part["mouth"]],
        eyes=pa.EyeType[part["eyes"]],
        eyebrows=pa.EyebrowType[part["eyebrows"]],
        nose=pa.NoseType.DEFAULT,
        accessory=pa.AccessoryType[part["glasses"]],
        facial_hair=pa.FacialHairType[part["facial hair"]],
        hair_color=pa.HairColor[part["hair colour"]],
        facial_hair_color=pa.HairColor[part["hair colour"]],
        skin_color=pa.SkinColor[part["skin"]],
        clothing=pa.ClothingType[part["clothing"]],
        clothing_color=pa.ClothingColor[part["clothing colour"]],
    )
    text = avatar.render()
    text = text.replace('width="264px" height="280px" viewBox="0 0 264 280"',
                        f'width="180px" height="180px" viewBox="{VIEW_BOX}"', 1)
    if VIEW_BOX not in text:
        raise RuntimeError("python_avatars' SVG header changed; the head crop cannot be applied")
    return text


def render(factors: np.ndarray, size: int = SIZE) -> np.ndarray:
    """A face as uint8 (size, size, 3) on a white background."""
    import resvg_py
    from PIL import Image

    png = bytes(resvg_py.svg_to_bytes(svg_string=svg(factors), width=size, height=size))
    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    if rgba.size != (size, size):
        raise RuntimeError(f"resvg rendered {rgba.size}, expected {size}x{size}")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    return np.asarray(canvas.convert("RGB"), np.uint8)


def make(seed: int, start: int, stop: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Faces ``start``..``stop-1`` of set ``seed``: images uint8 (N, size, size, 3), factor codes int64 (N, F)."""
    factors = np.stack([draw_factors(seed, i) for i in range(start, stop)]) if stop > start else \
        np.zeros((0, len(FACTORS)), np.int64)
    images = np.stack([render(f, size) for f in factors]) if len(factors) else np.zeros((0, size, size, 3), np.uint8)
    return images, factors


def _make_chunk(args):
    return make(*args)


@dataclass
class FaceSet:
    images: np.ndarray   # uint8 (N, H, W, 3)
    factors: np.ndarray  # int64 (N, F)


def cache_path(seed: int = 0, size: int = SIZE, split: str = "train") -> Path:
    """One file per split (the app reads only the 4,000 test faces: 49 MB, not the whole set)."""
    from .data import cache_dir

    n = N_TRAIN if split == "train" else N_TEST
    return cache_dir() / "faces" / f"faces-v{VERSION}-seed{seed}-{size}px-{split}-{n}.npz"


def build(seed: int = 0, size: int = SIZE, n: int | None = None, path: Path | None = None,
          progress: bool = True, workers: int | None = None) -> Path:
    """Generate faces 0..n-1 (default: the whole set) into ``path`` (default: the user cache, train and test
    files), with a progress bar. Each file is written to a temporary name and renamed at the end: an interrupted
    build leaves nothing half-written. Returns the (last) file written."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    n = n or N_TRAIN + N_TEST
    cache_dir_path = Path(path or cache_path(seed, size)).parent
    cache_dir_path.mkdir(parents=True, exist_ok=True)
    chunk = 500
    jobs = [(seed, a, min(a + chunk, n), size) for a in range(0, n, chunk)]
    workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    images, factors = [], []
    with tqdm(total=n, desc=f"generating {n:,} faces", unit="face", disable=not progress) as bar:
        if workers == 1:
            results = map(_make_chunk, jobs)
        else:
            pool = ProcessPoolExecutor(workers)
            results = pool.map(_make_chunk, jobs)
        for im, fa in results:
            images.append(im)
            factors.append(fa)
            bar.update(len(fa))
        if workers != 1:
            pool.shutdown()
    images, factors = np.concatenate(images), np.concatenate(factors)
    if path is not None:
        parts = [(Path(path), slice(0, n))]
    else:  # the cache: train and test files (test last: its presence means the set is complete)
        parts = [(cache_path(seed, size, "train"), slice(0, N_TRAIN)), (cache_path(seed, size, "test"), slice(N_TRAIN, n))]
    for dest, sl in parts:
        _write(dest, images[sl], factors[sl])
    return parts[-1][0]


def _write(path: Path, images: np.ndarray, factors: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.part.npz")
    try:
        np.savez(tmp, images=images, factors=factors)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(split: str, seed: int = 0, size: int = SIZE, progress: bool = True) -> FaceSet:
    """The train (faces 0..N_TRAIN-1) or test (the next N_TEST) faces, generated into the cache at first use."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    path = cache_path(seed, size, split)
    if not (path.is_file() and cache_path(seed, size, "test").is_file()):
        build(seed, size, progress=progress)
    with np.load(path, allow_pickle=False) as z:
        return FaceSet(z["images"], z["factors"])


def digest(images: np.ndarray) -> str:
    """SHA-256 of images' bytes (the determinism test's fingerprint)."""
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def loader(split: str):
    """The registry's loader (explorer/datasets.py): (images (N, H, W, 3), labels = mouth codes, factors)."""
    s = load(split)
    return s.images, s.factors[:, FACTOR_NAMES.index("mouth")].copy(), s.factors


def test_subset():
    """What the app shows: the whole test split (4,000 faces)."""
    return loader("test")
