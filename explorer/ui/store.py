"""The app's one cache: loaded models, the shipped test subsets, encoded codes and rendered maps.

Nothing is loaded until a panel asks; everything asked for is kept (the shipped
models are small). Thread-safe: Gradio runs plain handlers in a thread pool.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from .. import data, latents, plotting, projection
from ..checkpoints import CheckpointError, Zoo


MAP_RANGE = 4.0  # maps and sliders span the codes' centre +- this many standard deviations


@dataclass
class LatentView:
    """A model's encoded test subset and the plane its panel navigates."""

    name: str
    codes: np.ndarray          # (N, D)
    coords: np.ndarray         # (N, k) along the plane's axes
    labels: np.ndarray         # (N,)
    classes: list[str]
    plane: latents.LatentPlane
    lims: tuple                # ((x0, x1), (y0, y1)) of the map

    @property
    def latent_dim(self) -> int:
        return self.codes.shape[1]


@dataclass
class GeneratedSet:
    """A generator's stand-in for an encoded test set (it has no encoder): codes drawn from its prior, the
    images they decode to, and the class the in-project classifier gives each, -1 where its top probability is
    under ``threshold``. Attribute vectors average the codes of one class, as DCGAN did."""

    name: str
    codes: np.ndarray          # (N, D) from the prior, seed GENERATED_SEED
    images: np.ndarray         # (N, H, W) or (N, H, W, 3) floats in [0, 1]
    labels: np.ndarray         # (N,) class index, -1: the classifier is not sure enough
    confidence: np.ndarray     # (N,) the classifier's top probability
    classes: list[str]
    threshold: float

    @property
    def latent_dim(self) -> int:
        return self.codes.shape[1]


GENERATED = 5000        # samples a generator's attribute vectors are averaged over
GENERATED_SEED = 0
CONFIDENT = 0.9         # the classifier's top probability a sample needs to count for its class
UNSURE = "unsure (p < {p:g})"  # a prior-only model's map: the samples no class reaches CONFIDENT for


class Store:
    """Loaded models, encoded views, rendered rasters and per-session entries, shared by every panel.

    Locking: each (kind, key) has its own lock, held only while that one thing is loaded, encoded or
    rendered, so a request for a ready model or view never waits behind another session's encode or
    render. The shared lock guards dictionary operations only; no figure is drawn under it."""

    def __init__(self, zoo: Zoo, device: str | None = None):
        from cachetools import LRUCache

        from .inpage import Decoders
        from .sessions import SessionCache

        self.zoo = zoo
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = threading.Lock()      # dictionary operations only
        self._models: dict = {}
        self._views: dict = {}
        self._generated: dict = {}
        self._rasters = LRUCache(maxsize=32)
        self._datasets: dict = {}
        self._sprites: dict = {}
        self._projections: dict = {}
        self._key_locks: dict = {}
        self.decoders = Decoders(self)     # in-page (ONNX) decoders: which are ready, building the rest
        self.sessions = SessionCache()     # what each browser tab left here; freed when it closes

    def _once(self, table: dict, kind: str, key, make):
        """``table[key]``, made by ``make()`` under (kind, key)'s own lock the first time."""
        value = table.get(key)
        if value is not None:
            return value
        with self._key_lock((kind, key)):
            value = table.get(key)
            if value is None:
                value = make()
                with self._lock:
                    table[key] = value
            return value

    def encoder_models(self) -> list[str]:
        """Names of the checkpoints with an encoder, 2-D models first."""
        names = self.zoo.with_capability("has_encoder")
        dims = {}
        for n in names:
            try:
                dims[n] = self.zoo.info(n)["config"].get("latent_dim", 99)
            except CheckpointError:
                dims[n] = 99
        return sorted(names, key=lambda n: (dims[n] != 2, n))

    def model(self, name: str):
        """The loaded model; raises CheckpointError with the rebuild command when broken."""
        return self._once(self._models, "model", name, lambda: self.zoo.load(name, device=self.device))

    def view(self, name: str) -> LatentView:
        """The model's encoded test subset and its plane (encoded once, under this model's own lock)."""
        return self._once(self._views, "view", name, lambda: self._encode(name))

    def _encode(self, name: str) -> LatentView:
        model = self.model(name)
        if not getattr(model, "has_encoder", True):
            return self._prior_view(name)
        ds = self.dataset(self.zoo.info(name)["dataset"])
        x = ds.floats()
        codes = torch.cat([model.encode(x[i:i + 1000]).cpu() for i in range(0, len(x), 1000)]).numpy()
        return self._plane_view(name, codes, ds.labels.numpy(), ds.classes)

    def _prior_view(self, name: str) -> LatentView:
        """A prior-only model (the DCGAN) has no test codes: its plane is fitted to its 5,000 prior samples
        (``generated``), each coloured by the class the classifier gives its image; the samples it is unsure of
        form the last class, so the map shows where the prior decodes to which class."""
        gen = self.generated(name)
        classes = list(gen.classes) + [UNSURE.format(p=gen.threshold)]
        labels = np.where(gen.labels >= 0, gen.labels, len(gen.classes))
        return self._plane_view(name, gen.codes, labels, classes)

    @staticmethod
    def _plane_view(name, codes, labels, classes) -> LatentView:
        plane = latents.LatentPlane(n_components=6).fit(codes)
        coords = plane.transform(codes)
        lo, hi = plane.bounds(MAP_RANGE)  # the sliders' range: every slider position is on the map
        lims = ((lo[0], hi[0]), (lo[1], hi[1]))
        return LatentView(name, codes, coords, labels, classes, plane, lims)

    def prior_models(self) -> list[str]:
        """Models with a one-pass decoder but no encoder (the DCGAN): the Latent grid shows them through a plane
        of their prior samples."""
        has_encoder = set(self.zoo.with_capability("has_encoder"))
        return [n for n in self.zoo.with_capability("exports_decoder") if n not in has_encoder]

    def generated(self, name: str) -> GeneratedSet:
        """A generator's (the DCGAN's) sorted prior samples, made once under this model's own lock (~10 s for
        5,000 on one core: decoding, then classifying). CheckpointError without the dataset's classifier."""
        return self._once(self._generated, "generated", name, lambda: self._generate(name))

    @torch.no_grad()
    def _generate(self, name: str) -> GeneratedSet:
        from ..checkpoints import rebuild_command

        model = self.model(name)
        dataset = self.dataset_of(name)
        clf = self.classifier(dataset)
        if clf is None:
            raise CheckpointError(f"attribute vectors of {name} sort its samples with {dataset}/classifier, which "
                                  f"is missing or damaged. Rebuild it with "
                                  f"`{rebuild_command(dataset + '/classifier')}`.")
        g = torch.Generator().manual_seed(GENERATED_SEED)
        codes = model.sample_latent(GENERATED, generator=g)
        images = torch.cat([model.decode(codes[i:i + 500]).clamp(0, 1).cpu() for i in range(0, GENERATED, 500)])
        probs = torch.cat([clf.predict_proba(images[i:i + 500].to(self.device)).cpu()
                           for i in range(0, GENERATED, 500)]).numpy()
        return GeneratedSet(name, codes.cpu().numpy().astype(np.float64), latents.display(images),
                            latents.confident_labels(probs, CONFIDENT), probs.max(axis=1), data.class_names(dataset),
                            CONFIDENT)

    def raster(self, key, render):
        """A rendered figure cached by ``key`` (LRU of 32); ``render()`` returns a Figure. Rendering holds
        only this key's lock: other requests (and other renders) go on meanwhile."""
        key = (key, plotting.text_scale())  # a presenting page's copy has larger text
        with self._lock:
            raster = self._rasters.get(key)
        if raster is not None:
            return raster
        with self._key_lock(("raster", key)):
            with self._lock:
                raster = self._rasters.get(key)
            if raster is None:
                raster = plotting.Raster.from_figure(render())
                with self._lock:
                    self._rasters[key] = raster
            return raster

    def dataset(self, name: str) -> data.Dataset:
        """The shipped test subset of dataset ``name`` (assets/), loaded once."""
        return self._once(self._datasets, "dataset", name, lambda: data.load_assets(name))

    def dataset_of(self, model_name: str) -> str:
        return self.zoo.info(model_name)["dataset"]

    def sprite(self, dataset: str) -> tuple[str, int]:
        """(data URL of the thumbnail mosaic, thumbnails per row) for the map's hover tooltips."""
        def make():
            from .point_map import sprite_url

            images = self.dataset(dataset).images.numpy()
            return sprite_url(projection.sprite(images)), int(np.ceil(np.sqrt(len(images))))
        return self._once(self._sprites, "sprite", dataset, make)

    def sprite_thumb(self, dataset: str) -> int:
        """Pixels a side of one thumbnail in :meth:`sprite`'s mosaic."""
        images = self.dataset(dataset).images
        n, h, w = images.shape[:3]
        return h // projection.sprite_step(n, h, w)

    def _key_lock(self, key) -> threading.RLock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.RLock())

    def projection(self, name: str, method: str, progress=None) -> projection.Projection:
        """The 2-D map of model ``name``'s test codes by ``method`` (shipped, cached or computed).

        Computing holds only this (model, method)'s lock, so other requests keep being served."""
        key = (name, method)
        with self._key_lock(key):
            if key not in self._projections:
                view = self.view(name)
                self._projections[key] = projection.for_checkpoint(self.zoo, name, method, codes=view.codes,
                                                                    progress=progress)
            return self._projections[key]

    def metrics(self, name: str) -> dict:
        """The checkpoint's metrics.json (empty when absent or unreadable)."""
        import json

        try:
            return json.loads((self.zoo.path(name) / "metrics.json").read_text())
        except (OSError, ValueError):
            return {}

    def classifier(self, dataset: str):
        """The dataset's in-project classifier, or None when it is not in the zoo or broken."""
        name = f"{dataset}/classifier"
        if name not in self.zoo.available("classifier"):
            return None
        try:
            return self.model(name)
        except CheckpointError:
            return None
