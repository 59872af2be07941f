"""The app's one cache: loaded models, the shipped test subsets, encoded codes and rendered maps.

Nothing is loaded until a panel asks; everything asked for is kept (the shipped
models are small). Thread-safe: Gradio runs plain handlers in a thread pool.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import wraps

import numpy as np
import torch

from .. import data, latents, plotting
from ..checkpoints import CheckpointError, Zoo

ENCODER_FAMILIES = ("ae", "vae", "gmm-vae")
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


def _locked(fn):
    @wraps(fn)
    def inner(self, *a, **k):
        with self._lock:
            return fn(self, *a, **k)
    return inner


class Store:
    def __init__(self, zoo: Zoo, device: str | None = None):
        self.zoo = zoo
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = threading.RLock()
        self._models: dict = {}
        self._views: dict = {}
        self._rasters: OrderedDict = OrderedDict()

    def encoder_models(self) -> list[str]:
        """Names of the checkpoints with an encoder, 2-D models first."""
        names = [n for f in ENCODER_FAMILIES for n in self.zoo.available(f)]
        dims = {}
        for n in names:
            try:
                dims[n] = self.zoo.info(n)["config"].get("latent_dim", 99)
            except CheckpointError:
                dims[n] = 99
        return sorted(names, key=lambda n: (dims[n] != 2, n))

    @_locked
    def model(self, name: str):
        """The loaded model; raises CheckpointError with the rebuild command when broken."""
        if name not in self._models:
            self._models[name] = self.zoo.load(name, device=self.device)
        return self._models[name]

    @_locked
    def view(self, name: str) -> LatentView:
        if name not in self._views:
            model = self.model(name)
            ds = data.load_assets(self.zoo.info(name)["dataset"])
            x = ds.floats()
            codes = torch.cat([model.encode(x[i:i + 1000]).cpu() for i in range(0, len(x), 1000)]).numpy()
            plane = latents.LatentPlane(n_components=6).fit(codes)
            coords = plane.transform(codes)
            lo, hi = plane.bounds(MAP_RANGE)  # the sliders' range: every slider position is on the map
            lims = ((lo[0], hi[0]), (lo[1], hi[1]))
            self._views[name] = LatentView(name, codes, coords, ds.labels.numpy(), ds.classes, plane, lims)
        return self._views[name]

    @_locked
    def raster(self, key, render):
        """A rendered figure cached by ``key`` (LRU of 32); ``render()`` returns a Figure."""
        if key in self._rasters:
            self._rasters.move_to_end(key)
            return self._rasters[key]
        raster = plotting.Raster.from_figure(render())
        self._rasters[key] = raster
        if len(self._rasters) > 32:
            self._rasters.popitem(last=False)
        return raster
