"""2-D maps of latent codes: UMAP, PCA or t-SNE behind one function, cached on disk.

    >>> from explorer import projection, zoo
    >>> p = projection.for_checkpoint(zoo, "fashion-mnist/vae-16", "umap")
    >>> p.coords.shape, p.trustworthiness
    ((5000, 2), 0.97...)

A projection is keyed by the checkpoint's weights (SHA-256 of ``model.safetensors``), the data
subset it encodes, the method and its parameters, so a retrained checkpoint never shows a
stale map. Lookups try the checkpoint's own ``projections/`` folder (shipped with the repo)
and then the user cache; fresh results go to the user cache. Only the 2-D coordinates and
numbers are stored (``.npz`` read with ``allow_pickle=False``): a pickled UMAP object breaks
across umap / numba / Python versions and could run code when loaded.

    python -m explorer.projection                     # UMAP of every shipped encoder, into checkpoints/
    python -m explorer.projection fashion-mnist/vae-16 --method tsne
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METHODS = {"umap": "UMAP", "pca": "PCA", "tsne": "t-SNE"}
DEFAULTS = {
    "umap": {"n_neighbors": 15, "min_dist": 0.1},
    "pca": {},
    "tsne": {"perplexity": 30.0},
}
SEED = 0
TRUST_NEIGHBORS = 10
VERSION = 1  # bump when the computation changes: old cache entries are then ignored


@dataclass
class Projection:
    """A 2-D map of N codes and how faithful it is."""

    coords: np.ndarray          # (N, 2) float32
    method: str
    params: dict
    trustworthiness: float      # sklearn.manifold.trustworthiness with TRUST_NEIGHBORS neighbours
    seconds: float              # time to compute (not to load)
    key: str = ""
    source: str = field(default="computed")  # "shipped", "cache" or "computed"

    @property
    def label(self) -> str:
        return METHODS[self.method]


def check_method(method: str, params: dict | None = None) -> dict:
    """The full parameter dict for ``method`` (defaults overridden by ``params``); clear errors otherwise."""
    if method not in METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose from {list(METHODS)}")
    params = {**DEFAULTS[method], **(params or {})}
    unknown = set(params) - set(DEFAULTS[method])
    if unknown:
        raise ValueError(f"{METHODS[method]} takes {sorted(DEFAULTS[method]) or 'no parameters'}, "
                         f"not {sorted(unknown)}")
    return params


def project(codes: np.ndarray, method: str = "umap", random_state: int = SEED, **params) -> np.ndarray:
    """(N, D) codes -> (N, 2) float32 coordinates. UMAP is imported only here (~20 s the first time)."""
    params = check_method(method, params)
    codes = np.asarray(codes, np.float32)
    if codes.ndim != 2 or len(codes) < 5:
        raise ValueError(f"need at least 5 codes as an (N, D) array, got shape {codes.shape}")
    if codes.shape[1] <= 2 and method == "pca":
        out = codes - codes.mean(0)
        return np.pad(out, ((0, 0), (0, 2 - codes.shape[1]))).astype(np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=random_state).fit_transform(codes).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(float(params["perplexity"]), (len(codes) - 1) / 3)
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state
                    ).fit_transform(codes).astype(np.float32)
    import umap  # noqa: PLC0415  (heavy: numba JIT)

    n_neighbors = int(min(params["n_neighbors"], len(codes) - 1))
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=float(params["min_dist"]),
                        random_state=random_state)
    return reducer.fit_transform(codes).astype(np.float32)


def trustworthiness(codes: np.ndarray, coords: np.ndarray, n_neighbors: int = TRUST_NEIGHBORS) -> float:
    """sklearn's trustworthiness (Venna & Kaski 2001): 1 when every point's nearest neighbours on
    the map are also its neighbours in the latent space; lower when the map invents neighbours."""
    from sklearn.manifold import trustworthiness as tw

    n_neighbors = min(n_neighbors, (len(codes) - 1) // 2)
    return float(tw(np.asarray(codes, np.float64), np.asarray(coords, np.float64), n_neighbors=n_neighbors))


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def cache_key(weights_digest: str, data_digest: str, method: str, params: dict) -> str:
    blob = json.dumps({"w": weights_digest, "d": data_digest, "m": method, "p": params, "v": VERSION,
                       "seed": SEED, "trust_k": TRUST_NEIGHBORS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def user_cache_dir() -> Path:
    from .data import cache_dir

    return cache_dir() / "projections"


class ProjectionCache:
    """``.npz`` files named ``<method>-<key>.npz`` in ``read_dirs`` (searched in order); new ones
    are written to ``write_dir``."""

    def __init__(self, read_dirs, write_dir):
        self.read_dirs = [Path(d) for d in read_dirs]
        self.write_dir = Path(write_dir)

    def get(self, method: str, key: str) -> Projection | None:
        for i, d in enumerate(self.read_dirs):
            path = d / f"{method}-{key}.npz"
            if path.is_file():
                try:
                    with np.load(path, allow_pickle=False) as f:
                        meta = json.loads(str(f["meta"]))
                        coords = f["coords"].astype(np.float32)
                except (OSError, ValueError, KeyError):
                    continue  # a damaged cache file is recomputed, not fatal
                return Projection(coords, method, meta["params"], meta["trustworthiness"], meta["seconds"], key,
                                  "shipped" if i == 0 and len(self.read_dirs) > 1 else "cache")
        return None

    def put(self, p: Projection) -> Path:
        self.write_dir.mkdir(parents=True, exist_ok=True)
        path = self.write_dir / f"{p.method}-{p.key}.npz"
        meta = json.dumps({"params": p.params, "trustworthiness": p.trustworthiness, "seconds": p.seconds,
                           "method": p.method, "n": len(p.coords)})
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, coords=p.coords.astype(np.float32), meta=np.array(meta))
        os.replace(tmp, path)
        return path


def compute(codes: np.ndarray, method: str, params: dict | None = None, key: str = "",
            progress=None) -> Projection:
    """Project and score; ``progress(fraction, text)`` is called between stages when given."""
    params = check_method(method, params)
    say = progress or (lambda *_: None)
    say(0.05, f"{METHODS[method]} of {len(codes):,} codes" +
        (" (the first UMAP in a process also compiles numba: ~20 s more)" if method == "umap" else ""))
    t0 = time.perf_counter()
    coords = project(codes, method, **params)
    seconds = time.perf_counter() - t0
    say(0.85, "measuring trustworthiness")
    trust = trustworthiness(codes, coords)
    return Projection(coords, method, params, trust, round(seconds, 2), key)


def for_checkpoint(zoo, name: str, method: str = "umap", params: dict | None = None, codes=None,
                   progress=None, cache: ProjectionCache | None = None, write_shipped: bool = False) -> Projection:
    """The projection of checkpoint ``name``'s codes of its dataset's shipped test subset.

    ``codes`` may be passed when already computed (the app encodes once); otherwise the model
    is loaded and the subset encoded. Cached as described in the module docstring."""
    from . import data

    params = check_method(method, params)
    ds_name = zoo.info(name)["dataset"]
    ds = data.load_assets(ds_name)
    directory = zoo.path(name)
    key = cache_key(file_digest(directory / "model.safetensors"), array_digest(ds.images.numpy()), method, params)
    shipped = directory / "projections"
    cache = cache or ProjectionCache([shipped, user_cache_dir()], shipped if write_shipped else user_cache_dir())
    hit = cache.get(method, key)
    if hit is not None and (codes is None or len(hit.coords) == len(codes)):
        if write_shipped and hit.source == "cache":  # found in the user cache: ship it too
            cache.put(hit)
        return hit
    if codes is None:
        import torch

        model = zoo.load(name)
        x = ds.floats()
        with torch.no_grad():
            codes = torch.cat([model.encode(x[i:i + 1000]).cpu() for i in range(0, len(x), 1000)]).numpy()
    p = compute(codes, method, params, key, progress)
    try:
        cache.put(p)
    except OSError:
        pass  # a read-only cache still gives the result
    return p


def main(argv=None) -> None:
    from .checkpoints import zoo

    ap = argparse.ArgumentParser(prog="python -m explorer.projection", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="checkpoints (default: every encoder model in checkpoints/)")
    ap.add_argument("--method", default="umap", choices=list(METHODS))
    ap.add_argument("--user-cache", action="store_true",
                    help="write to the user cache instead of the checkpoints' projections/ folders")
    a = ap.parse_args(argv)
    names = a.names or [n for f in ("ae", "vae", "gmm-vae", "dae") for n in zoo.available(f)]
    for name in names:
        p = for_checkpoint(zoo, name, a.method, write_shipped=not a.user_cache,
                           progress=lambda f, t: print(f"  {name}: {t}", flush=True))
        print(f"{name}: {p.label} trustworthiness {p.trustworthiness:.3f}, {p.seconds:.1f} s ({p.source})")


if __name__ == "__main__":
    main()


# --- TensorBoard Embedding Projector export --------------------------------------------------

SPRITE_MAX = 8192  # the projector's limit on the sprite's side, in pixels


THUMB_MAX = 32  # sprite thumbnails larger than this are shrunk (a 64x64 face to 32x32: the hover shows 84 px)


def sprite_step(n: int, h: int, w: int, thumb_max: int | None = THUMB_MAX) -> int:
    """The integer shrink of :func:`sprite` for n thumbnails of h x w."""
    side = int(np.ceil(np.sqrt(n)))
    step = max(1, -(-max(h, w) // thumb_max)) if thumb_max else 1
    while -(-side * h // step) > SPRITE_MAX or -(-side * w // step) > SPRITE_MAX:
        step += 1
    return step


def sprite(images: np.ndarray, thumb_max: int | None = THUMB_MAX) -> np.ndarray:
    """(N, h, w) or (N, h, w, 3) uint8 thumbnails -> one square (s*h', s*w'[, 3]) uint8 mosaic, row-major,
    s = ceil(sqrt N); thumbnails are shrunk (integer steps) to at most ``thumb_max`` pixels a side and until
    the mosaic's side fits in SPRITE_MAX."""
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    rest = images.shape[3:]
    side = int(np.ceil(np.sqrt(n)))
    step = sprite_step(n, h, w, thumb_max)
    if step > 1:  # a box filter, not decimation: a shrunk face keeps its thin lines
        hh, ww = h // step * step, w // step * step
        images = images[:, :hh, :ww].reshape(n, hh // step, step, ww // step, step, *rest).mean((2, 4))
        images = np.round(images).astype(np.uint8)
    h, w = images.shape[1:3]
    padded = np.zeros((side * side, h, w, *rest), images.dtype)
    padded[:n] = images
    return padded.reshape(side, side, h, w, *rest).swapaxes(1, 2).reshape(side * h, side * w, *rest)  # (s*h, s*w[, 3])


def export_projector(path, codes: np.ndarray, labels: np.ndarray, classes: list[str], images: np.ndarray,
                     name: str = "codes") -> Path:
    """Write a zip in the TensorBoard Embedding Projector layout, no TensorFlow needed:
    ``tensors.tsv`` (one code per line, no header), ``metadata.tsv`` (header ``label<TAB>class``:
    a header because there are two columns), ``sprite.png`` and ``projector_config.pbtxt``.
    Load it at projector.tensorflow.org ("Load") or point TensorBoard's projector at the folder."""
    import io
    import zipfile

    from PIL import Image

    codes = np.asarray(codes, np.float64)
    images = np.asarray(images)
    if not len(codes) == len(labels) == len(images):
        raise ValueError(f"codes, labels and images differ in length: {len(codes)}, {len(labels)}, {len(images)}")
    mosaic = sprite(images)
    thumb = mosaic.shape[0] // int(np.ceil(np.sqrt(len(images))))
    png = io.BytesIO()
    Image.fromarray(mosaic).save(png, "PNG", optimize=True)
    tensors = "\n".join("\t".join(f"{v:.6g}" for v in row) for row in codes) + "\n"
    clean = [c.replace("\t", " ").replace("\n", " ") for c in classes]
    metadata = "label\tclass\n" + "".join(f"{int(y)}\t{clean[int(y)]}\n" for y in labels)
    config = (f'embeddings {{\n  tensor_name: "{name}"\n  tensor_path: "tensors.tsv"\n'
              f'  metadata_path: "metadata.tsv"\n  sprite {{\n    image_path: "sprite.png"\n'
              f'    single_image_dim: {thumb}\n    single_image_dim: {thumb}\n  }}\n}}\n')
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("tensors.tsv", tensors)
        z.writestr("metadata.tsv", metadata)
        z.writestr("sprite.png", png.getvalue())
        z.writestr("projector_config.pbtxt", config)
    return path
