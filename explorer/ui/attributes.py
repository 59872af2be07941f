"""The "Attribute vectors" panel: latent arithmetic on a test image or your own upload (class and
pixel-property vectors, a strength slider that decodes live, a strip that measures whether the
attribute really moves), analogies A − B + C, and anomaly detection by reconstruction error.

Apply sends the page z, v and the model's decoder spec (one gr.HTML component holding the strength
slider, the live image and the −k..+k strip: web/attributes.js); the page decodes z + s·v on every
slider move and the strip in one batch, and tells the server only the strength it was left at. The
server still measures the strip (classifier or pixel property) at Apply, and keeps its torch decode
for the scripted API (/attribute) and as the page's fallback.
"""
from __future__ import annotations

import threading

import numpy as np
import gradio as gr
import torch
from cachetools import TTLCache

from .. import data, datasets, latents, metrics, plotting
from ..checkpoints import CheckpointError
from .store import GeneratedSet, Store
from .panel import Panel, explanation
from .validate import number, page_errors, whole

QUANTILE = 0.2
STRIP = 9
STRENGTH = (-3.0, 3.0, 0.05)  # the strength slider: min, max, step (the page's and the API's)
STRIP_K = (0.5, 3.0, 0.5)     # the strip range slider ±k
PROPERTY_GROUPS = {f"{side} {int(QUANTILE * 100)}% {prop}": (prop, side == "top")
                   for prop in latents.PROPERTIES for side in ("top", "bottom")}
_PCT = int(QUANTILE * 100)
_MORE = {"ink": "more ink", "width": "wider", "height": "taller", "brightness": "brighter"}
# Pixel-property presets, offered for one-channel datasets (their objects are light ink on black); each dataset's
# own presets (classes, factors, yes/no attributes) come from its registry entry (explorer/datasets.py).
PROPERTY_PRESETS = {_MORE[p]: (f"top {_PCT}% {p}", f"bottom {_PCT}% {p}") for p in latents.PROPERTIES}
OOD_SETS = ["the other dataset", "uniform noise", "inverted test images"]
GENERATED_INPUT = "Generated sample"  # a generator's input: one of its own prior samples

EXPLANATION = r"""
### The formulas
**Attribute vector.** With $\mathcal A$ and $\mathcal B$ two groups of test images (two classes, or the top and
bottom 20 % of a pixel property), $v=\frac1{|\mathcal A|}\sum_{x\in\mathcal A}f_\phi(x)-\frac1{|\mathcal B|}
\sum_{x\in\mathcal B}f_\phi(x)$. Moving a code by strength $s$ and decoding, $\hat x(s)=g_\theta(z+s\,v)$, should
add "A-ness": $s=1$ takes a typical B to a typical A, negative $s$ moves the other way. The curve under the strip
checks it: the measured pixel property, or the in-project classifier's $p(A\mid\hat x)$ and $p(B\mid\hat x)$.

**A generator** (the DCGAN) has no encoder $f_\phi$, so its vectors average prior codes, as Radford et al. (2016)
did: 5,000 codes $z\sim\mathcal N(0,I)$ are decoded, the in-project classifier sorts the images, and a code counts
for a class only when the classifier gives that class $p\ge 0.9$; $v$ is the mean code of A's samples minus the mean
code of B's. Its inputs are its own samples (their codes are known), and the note says how many samples each mean
rests on.

**Analogy.** $z=f(A)-f(B)+f(C)$: apply to $C$ the change that turns $B$ into $A$ (Mikolov et al.'s
*king − man + woman*, White 2016 for images). It works as far as the latent is linear in the attribute.

**Anomaly score** = reconstruction error $e(x)=\frac1{784}\lVert x-g_\theta(f_\phi(x))\rVert^2$: a model
reconstructs what resembles its training data. The ROC AUC is the probability that a random out-of-distribution
image scores higher than a random test image; the threshold flags everything above it (false-positive rate on the
test set, detection rate on the other set).

**Your image** is made to look like the dataset before encoding: grey, light object on black (inverted when the
border is light), cropped to the object, then scaled (Fashion-MNIST: longest side 28 px; MNIST: a 20×20 box centred
by its centre of mass).
"""


class AttributePanel(Panel):
    """The panel's logic, callable without widgets (tests use it directly)."""

    def __init__(self, store: Store):
        self.store = store
        self._errors: dict = {}
        self._effects: dict = {}
        # each browser session's model, as its last model change set it: a slower event for the model it
        # had before (the tab's first Apply or anomaly histogram) must not overwrite the new model's results
        self._current = TTLCache(maxsize=4096, ttl=3600)
        self._current_lock = threading.Lock()
        # sessions whose page draws the strip itself (on_live has sent it z and v): their Apply draws only the
        # measurement on the server, so the strip is drawn once; scripts get the strip with its measurement
        self._paged = TTLCache(maxsize=4096, ttl=3600)

    def _stale(self, name: str, request) -> bool:
        """True when this event's session has switched to another model since the event began."""
        session = getattr(request, "session_hash", None)
        if session is None:
            return False
        with self._current_lock:
            return self._current.get(session, name) != name

    def models(self) -> list[str]:
        """Encoder models (each dataset's plain VAE first: vae-16, vae-64), then generators, whose vectors average
        sorted prior samples."""
        names = sorted(self.store.encoder_models(), key=lambda n: (not n.endswith(("/vae-16", "/vae-64")), n))
        return names + self.store.zoo.available("gan")

    def is_generator(self, name: str) -> bool:
        """A model without an encoder (the DCGAN): its inputs are its own samples, not test images."""
        with page_errors():
            return not self.store.model(name).has_encoder  # the loaded model, kept by the store: no file read

    def samples(self, name: str):
        """What vectors average and inputs are picked from: the encoded test set (a LatentView), or a
        generator's classified prior samples (a GeneratedSet). Both have codes, labels and classes."""
        with page_errors():
            return self.store.generated(name) if self.is_generator(name) else self.store.view(name)

    def input_kinds(self, name: str) -> list[str]:
        return [GENERATED_INPUT] if self.is_generator(name) else ["Test image", "Upload"]

    def _class_of(self, sset, i: int) -> str:
        label = int(sset.labels[i])
        if label >= 0:
            return sset.classes[label]
        return f"no class at p ≥ {sset.threshold:g}"

    def group_size(self, name: str, group: str) -> int:
        return int(np.count_nonzero(self._mask(name, group)))

    def spec(self, name: str) -> datasets.DatasetSpec:
        with page_errors():
            return datasets.get(self.store.dataset_of(name))

    def groups(self, name: str) -> list[str]:
        """Classes; for a dataset with labelled factors (and a model with an encoder) "factor: value" and
        yes/no attributes; for one-channel datasets the pixel-property quantiles."""
        spec = self.spec(name)
        out = list(spec.classes)
        if spec.factors and not self.is_generator(name):
            out = spec.groups()
        return out + (list(PROPERTY_GROUPS) if not spec.colour else [])

    def presets(self, name: str) -> dict:
        spec = self.spec(name)
        groups = set(self.groups(name))
        table = {**spec.attribute_presets, **(PROPERTY_PRESETS if not spec.colour else {})}
        return {k: v for k, v in table.items() if all(g in groups for g in v)}

    def _factor_group(self, spec, group: str):
        """(factor index, codes of its values that count, negated) of a factor or yes/no group, else None."""
        names = list(spec.factors)
        negated = group.startswith("not ") and group[4:] in spec.binary
        key = group[4:] if negated else group
        if key in spec.binary:
            factor, yes = spec.binary[key]
            values = spec.factors[factor]
            return names.index(factor), [values.index(v) for v in yes], negated
        factor, sep, value = group.partition(": ")
        if sep and factor in spec.factors and value in spec.factors[factor]:
            return names.index(factor), [spec.factors[factor].index(value)], False
        return None

    def _mask(self, name: str, group: str) -> np.ndarray:
        sset = self.samples(name)
        if group in sset.classes:
            return sset.labels == sset.classes.index(group)
        spec = self.spec(name)
        fg = self._factor_group(spec, group) if spec.factors else None
        if fg is not None and not isinstance(sset, GeneratedSet):
            j, codes, negated = fg
            factors = self.store.dataset(spec.name).factors
            mask = np.isin(factors[:, j].numpy(), codes)
            return ~mask if negated else mask
        if group in PROPERTY_GROUPS and not spec.colour:
            prop, top = PROPERTY_GROUPS[group]
            images = self._images(name)
            hi, lo = latents.quantile_masks(latents.pixel_property(images, prop), QUANTILE)
            return hi if top else lo
        raise gr.Error(f"unknown group {group!r}; choose one of {self.groups(name)}")

    def _images(self, name: str) -> np.ndarray:
        """Floats (N, H, W) or (N, H, W, 3): the test images, or a generator's samples."""
        sset = self.samples(name)
        if isinstance(sset, GeneratedSet):
            return sset.images
        return latents.display(self.store.dataset(self.store.dataset_of(name)).floats())

    def vector(self, name: str, group_a: str, group_b: str) -> np.ndarray:
        if group_a == group_b:
            raise gr.Error("groups A and B are the same: the attribute vector would be zero")
        try:
            return latents.attribute_vector(self.samples(name).codes, self._mask(name, group_a),
                                            self._mask(name, group_b))
        except ValueError:
            sset = self.samples(name)
            empty = group_a if not self._mask(name, group_a).any() else group_b
            raise gr.Error(f"no {'sample' if isinstance(sset, GeneratedSet) else 'test image'} of {name} is in "
                           f"group {empty!r}" + (f" with classifier probability ≥ {sset.threshold:g}"
                                                 if isinstance(sset, GeneratedSet) else "")) from None

    # --- the input image --------------------------------------------------------------------

    def test_input(self, name: str, index) -> tuple[np.ndarray, str]:
        """(the image, what it is) of a test image, or of a generator's sample #index."""
        sset = self.samples(name)
        if isinstance(sset, GeneratedSet):
            i = whole(index, "Sample index", 0, len(sset.codes) - 1)
            return sset.images[i], (f"generated sample #{i} ({self._class_of(sset, i)}; classifier "
                                    f"p = {sset.confidence[i]:.2f})")
        i = whole(index, "Test image index", 0, len(sset.codes) - 1)
        x = latents.display(self.store.dataset(self.store.dataset_of(name)).floats()[i:i + 1])[0]
        return x, f"test image #{i} ({self._class_of(sset, i)})"

    def upload_input(self, name: str, path) -> tuple[np.ndarray, str]:
        if self.is_generator(name):
            raise gr.Error(f"{name} has no encoder, so it cannot place your image in its latent space: pick one "
                           "of its generated samples")
        if not path:
            raise gr.Error("no image uploaded yet: drop a PNG, JPEG, WebP, GIF, BMP or TIFF file on the upload box")
        try:
            x, notes = data.prepare_image(path, self.store.dataset_of(name))
        except data.ImageError as err:
            raise gr.Error(f"That file can't be used: {err}") from err
        return x, "your image: " + "; ".join(notes)

    @torch.no_grad()
    def encode(self, name: str, x: np.ndarray) -> np.ndarray:
        model = self.store.model(name)
        return model.encode(latents.from_display(x)).cpu().numpy()[0].astype(np.float64)

    @torch.no_grad()
    def decode(self, name: str, z: np.ndarray) -> np.ndarray:
        model = self.store.model(name)
        return latents.display(model.decode(torch.as_tensor(np.atleast_2d(z), dtype=torch.float32)).clamp(0, 1))

    def measure(self, name: str, images: np.ndarray, group_a: str, group_b: str) -> tuple[dict, str]:
        """Curves showing whether the attribute moves: a pixel property, or class probabilities."""
        view = self.samples(name)
        spec = self.spec(name)
        for g in (group_a, group_b):
            if g in PROPERTY_GROUPS and not spec.colour:
                prop = PROPERTY_GROUPS[g][0]
                return {prop: latents.pixel_property(images, prop)}, f"measured {prop}"
        clf = self.store.classifier(self.store.dataset_of(name))
        if clf is None:
            if spec.colour:
                return {"brightness": np.asarray(images).mean(tuple(range(1, np.ndim(images))))}, \
                    "mean brightness (no classifier in the zoo)"
            return {"ink": latents.pixel_property(images, "ink")}, "ink (no classifier in the zoo)"
        x = latents.from_display(images)
        p = clf.predict_proba(x).cpu().numpy()
        heads = None

        def prob(group):
            nonlocal heads
            if group in view.classes:
                return p[:, view.classes.index(group)]
            fg = self._factor_group(spec, group) if spec.factors else None
            if fg is None or not getattr(clf, "factor_heads", None):
                return np.full(len(x), np.nan)
            if heads is None:
                heads = [h.cpu().numpy() for h in clf.predict_factors(x)]
            j, codes, negated = fg
            q = heads[j][:, codes].sum(1)
            return 1 - q if negated else q
        return {f"p({group_a})": prob(group_a), f"p({group_b})": prob(group_b)}, plotting.PROBABILITY

    def strip(self, name: str, z: np.ndarray, v: np.ndarray, k: float, s: float, group_a: str, group_b: str,
              images_too: bool = True):
        """The strip z + s·v for s = −k … +k over its measurement (``images_too`` False: the measurement alone,
        for a page that draws the strip itself)."""
        strengths = np.linspace(-k, k, STRIP)
        images = self.decode(name, latents.along(z, v, strengths))
        curves, ylabel = self.measure(name, images, group_a, group_b)
        title = f"z + s·v,  v = mean({group_a}) − mean({group_b})"
        if not images_too:
            return plotting.Raster.pixels_of(plotting.measured_curve(
                strengths, curves, "strength s", ylabel, title=f"Measured along the strip: {title}", marker=s))
        return plotting.Raster.pixels_of(plotting.strip_with_curve(
            images, strengths, curves, "strength s", ylabel, title=title, marker=s))

    @torch.no_grad()
    def strip_labels(self, name, group_a, group_b, source, index, upload, strength, k) -> dict | None:
        """The in-project classifier's top class and its probability for each image of the strip (s = −k … +k),
        for the page to write under its tiles; None without a classifier."""
        with page_errors():
            clf = self.store.classifier(self.store.dataset_of(name))
            if clf is None:
                return None
            k = number(k, "strip range", *STRIP_K[:2])
            _, what, z, v = self.prepare(name, group_a, group_b, source, index, upload)
            strengths = np.linspace(-k, k, STRIP)
            images = self.decode(name, latents.along(z, v, strengths))  # as measure() reads them
            p = clf.predict_proba(latents.from_display(images)).cpu().numpy()
        classes = self.samples(name).classes
        top = p.argmax(1)
        return {"name": name, "a": group_a, "b": group_b, "k": float(k), "what": what,
                "top": [classes[int(i)] for i in top], "p": [round(float(p[j, i]), 4) for j, i in enumerate(top)]}

    def on_labels(self, name, group_a, group_b, source, index, upload, strength, k, request: gr.Request = None):
        if self._stale(name, request):
            return gr.skip()
        return gr.HTML(labels=self.strip_labels(name, group_a, group_b, source, index, upload, strength, k) or {})

    def _page_draws_strip(self, request) -> bool:
        session = getattr(request, "session_hash", None)
        return session is not None and session in self._paged

    # --- handlers -----------------------------------------------------------------------------

    def prepare(self, name, group_a, group_b, source, index, upload) -> tuple[np.ndarray, str, np.ndarray, np.ndarray]:
        """The chosen input image, what it is, its code z and the attribute vector v."""
        with page_errors():
            x, what = self.upload_input(name, upload) if source == "Upload" else self.test_input(name, index)
            v = self.vector(name, group_a, group_b)
            sset = self.samples(name)
            if isinstance(sset, GeneratedSet):  # no encoder: the sample's own prior code
                z = sset.codes[whole(index, "Sample index", 0, len(sset.codes) - 1)]
            else:
                z = self.encode(name, x)
        return x, what, z, v

    def vector_note(self, name: str, group_a: str, group_b: str) -> str:
        """How many codes each mean rests on."""
        sset = self.samples(name)
        gen = isinstance(sset, GeneratedSet)
        what = "samples" if gen else "test images"
        text = (f"v = mean code of {self.group_size(name, group_a):,} {group_a} {what} − mean code of "
                f"{self.group_size(name, group_b):,} {group_b} {what}")
        if gen:
            text += f" (of {len(sset.codes):,} generated; a sample counts for a class at classifier p ≥ {sset.threshold:g})"
        return text + "."

    def on_apply(self, name, group_a, group_b, source, index, upload, strength, k, request: gr.Request = None):
        """Encode the chosen input, build the vector, decode at the slider's strength and draw the strip
        (the /attribute endpoint: everything decoded and measured on the server). Nothing is drawn when the
        session has moved to another model meanwhile."""
        if self._stale(name, request):
            return (gr.skip(),) * 6
        with page_errors():
            strength, k = number(strength, "strength"), number(k, "strip range")
            x, what, z, v = self.prepare(name, group_a, group_b, source, index, upload)
            if self.is_generator(name):
                shown = plotting.Raster.pixels_of(plotting.image_row([x], ["G(z): the sample"]))
            else:
                recon = self.decode(name, z)[0]
                size = "×".join(map(str, self.spec(name).size))
                shown = plotting.Raster.pixels_of(plotting.image_row([x, recon],
                                                                     [f"model input {size}", "reconstruction"]))
            out = self.decode(name, z + strength * v)[0]
            strip = self.strip(name, z, v, k, strength, group_a, group_b,
                               images_too=not self._page_draws_strip(request))
            counts = self.vector_note(name, group_a, group_b)
        note = f"{what}. {counts} |v| = {np.linalg.norm(v):.2f}, |z| = {np.linalg.norm(z):.2f}."
        if self._stale(name, request):
            return (gr.skip(),) * 6
        return shown, note, plotting.upscale(out, 8), strip, z.tolist(), v.tolist()

    def page_state(self, name, group_a, group_b, source, index, upload, strength, k) -> dict:
        """What the page needs to decode z + s·v and the strip itself: z, v, s, k, the strip's size and
        the model's decoder spec (``sha`` None: the page decodes through the server)."""
        strength = number(strength, "strength", *STRENGTH[:2])
        k = number(k, "strip range", *STRIP_K[:2])
        _, what, z, v = self.prepare(name, group_a, group_b, source, index, upload)
        with page_errors():
            spec = self.store.decoders.spec(name)
        self._seq = getattr(self, "_seq", 0) + 1
        return {"name": name, "dim": int(len(z)), "z": z.tolist(), "v": v.tolist(), "s": strength, "k": k,
                "strip": STRIP, "range": list(STRENGTH), "a": group_a, "b": group_b, "what": what,
                "index": None if source == "Upload" else int(index),
                "decoder": spec, "seq": self._seq}

    def on_live(self, name, group_a, group_b, source, index, upload, strength, k, request: gr.Request = None):
        """Apply, for the page: the live component's new value (z, v and the decoder spec)."""
        if self._stale(name, request):
            return gr.skip()
        state = self.page_state(name, group_a, group_b, source, index, upload, strength, k)
        session = getattr(request, "session_hash", None)
        if session is not None:
            self._paged[session] = True
        return gr.HTML(value=state)

    def on_commit(self, evt: gr.SelectData):
        """The page's strength after a drag (sent once, on release): kept for the next Apply."""
        value = evt.value if isinstance(evt.value, dict) else {}
        s = number(value.get("s"), "strength", *STRENGTH[:2])
        return round(round(s / STRENGTH[2]) * STRENGTH[2], 2)

    def on_strength(self, name, z, v, strength):
        """One strength decoded on the server, no re-encoding (the page decodes its own drags; this is
        the same decode for scripts)."""
        if not z or not v:
            raise gr.Error("press Apply first")
        strength = number(strength, "strength")
        return plotting.upscale(self.decode(name, np.asarray(z) + strength * np.asarray(v))[0], 8)

    def on_preset(self, name, preset):
        table = self.presets(name)
        if preset not in table:
            return gr.skip(), gr.skip()
        a, b = table[preset]
        return gr.Dropdown(value=a), gr.Dropdown(value=b)

    def on_model(self, name, request: gr.Request = None):
        """The model's groups and presets, and its kind of input: test images and uploads for an encoder,
        its own samples for a generator (whose sample set is made here the first time, 10-20 s)."""
        session = getattr(request, "session_hash", None)
        if session is not None:
            with self._current_lock:
                self._current[session] = name
        groups = self.groups(name)
        presets = list(self.presets(name))
        a, b = self.presets(name)[presets[0]]
        kinds = self.input_kinds(name)
        gen = self.is_generator(name)
        if gen:
            self.samples(name)
        return (gr.Dropdown(choices=presets, value=presets[0]), gr.Dropdown(choices=groups, value=a),
                gr.Dropdown(choices=groups, value=b), gr.Radio(choices=kinds, value=kinds[0]),
                gr.Number(label="Generated sample index" if gen else "Test image index"),
                gr.File(visible=not gen),  # an upload needs an encoder to find its code
                gr.Button("Random sample of group B" if gen else "Random image of group B"))

    def on_open(self, name, group_a, group_b, request: gr.Request = None):
        """The tab is opened: the groups and input a linked URL names (?a=, ?b=, ?index=, when they are this model's),
        else the menus' groups and a seeded image of group B."""
        from .url_state import query

        q = query(request)
        if not name:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        groups, presets = self.groups(name), self.presets(name)
        if group_a not in groups or group_b not in groups:  # menus still holding another dataset's groups
            group_a, group_b = presets[next(iter(presets))] if presets else (groups[0], groups[1])
        if q.get("a") in groups and q.get("b") in groups and q["a"] != q["b"]:
            group_a, group_b = q["a"], q["b"]
        # the menu names the preset of these groups, or none (groups chosen by hand)
        preset = next((k for k, ab in presets.items() if ab == (group_a, group_b)), None)
        try:
            index = whole(q["index"], "index", 0, len(self.samples(name).codes) - 1)
        except (KeyError, gr.Error):
            index = self.random_index(name, group_b, seed=0)
        return (gr.Dropdown(choices=list(presets), value=preset), gr.Dropdown(choices=groups, value=group_a),
                gr.Dropdown(choices=groups, value=group_b), index)

    def random_index(self, name, group_b, seed=None):
        mask = self._mask(name, group_b)
        rng = np.random.default_rng(seed)
        return int(rng.choice(np.flatnonzero(mask)))

    @torch.no_grad()
    def on_analogy(self, name, a, b, c):
        with page_errors():
            view = self.samples(name)
            xs = [self.test_input(name, i)[0] for i in (a, b, c)]
        za, zb, zc = (view.codes[int(i)] for i in (a, b, c))
        out = self.decode(name, latents.analogy(za, zb, zc))[0]
        names = [f"{t} #{int(i)}\n{self._class_of(view, int(i))}" for t, i in zip("ABC", (a, b, c))]
        return plotting.Raster.pixels_of(plotting.image_row(xs + [out], names + ["A − B + C\ndecoded"]))

    def on_random_analogy(self, name, group_a, group_b, seed=None):
        rng = np.random.default_rng(seed)
        a = self.random_index(name, group_a, rng.integers(1 << 31))
        b = self.random_index(name, group_b, rng.integers(1 << 31))
        c = self.random_index(name, group_b, rng.integers(1 << 31))
        return a, b, c, self.on_analogy(name, a, b, c)

    # --- the measured side effects of a dataset's yes/no vectors (explorer/effects.py) -----------

    def effects_table(self, name: str) -> str:
        """Markdown: every yes/no vector of the model's dataset against every factor, measured (the table
        shipped beside the checkpoint as effects.json, else measured now, ~10-30 s, and kept); "" for a dataset
        without labelled factors or a model without an encoder."""
        from .. import effects

        if not name:
            return ""
        spec = self.spec(name)
        if not spec.factors or self.is_generator(name) or not effects.binary_presets(spec):
            return ""
        if name not in self._effects:
            import json

            path = self.store.zoo.path(name) / effects.FILE
            try:
                found = effects.from_json(json.loads(path.read_text())) if path.is_file() else None
            except (OSError, ValueError, KeyError, TypeError):
                found = None
            if found is None:
                try:
                    found = effects.for_checkpoint(self.store.zoo, name, self.store)
                except ValueError as err:
                    return f"*Side effects not measured: {err}*"
            self._effects[name] = found
        return "#### What each attribute vector does, measured\n" + effects.summary(spec, self._effects[name])

    # --- anomaly detection ---------------------------------------------------------------------

    def ood_images(self, name: str, which: str) -> tuple[torch.Tensor, str]:
        spec = self.spec(name)
        x = self.store.dataset(spec.name).floats()
        g = torch.Generator().manual_seed(0)
        if which == "the other dataset":
            other = spec.other or next(n for n in datasets.names() if n != spec.name)
            ox = latents.to_shape(self.store.dataset(other).floats()[:1000], spec.shape)
            resized = "" if datasets.get(other).shape == spec.shape else f", made {'×'.join(map(str, spec.shape))}"
            return ox, f"{other} test images{resized}"
        if which == "uniform noise":
            return torch.rand(1000, *spec.shape, generator=g), "uniform noise"
        if which == "inverted test images":
            return 1 - x[:1000], "inverted test images"
        raise gr.Error(f"unknown out-of-distribution set {which!r}; choose from {OOD_SETS}")

    def errors(self, name: str, which: str) -> tuple[np.ndarray, np.ndarray, str]:
        key = (name, which)
        if key not in self._errors:
            model = self.store.model(name)
            x = self.store.dataset(self.store.dataset_of(name)).floats()
            ood, label = self.ood_images(name, which)
            self._errors[key] = (metrics.reconstruction_errors(model, x), metrics.reconstruction_errors(model, ood),
                                 label)
        return self._errors[key]

    def on_anomaly(self, name, which, percentile, source, upload, k=8, request: gr.Request = None):
        if self._stale(name, request):  # the session moved to another model: leave its results alone
            return gr.skip(), gr.skip(), gr.skip()
        if self.is_generator(name):
            return None, (f"**{name} has no encoder**, so it cannot reconstruct an image and has no reconstruction "
                          "error to score it with. Pick an encoder model for anomaly detection."), []
        with page_errors():
            percentile = number(percentile, "threshold percentile", 0, 100)
            e_in, e_out, label = self.errors(name, which)
        threshold = float(np.percentile(e_in, percentile))
        marks = {}
        if source == "Upload" and upload:
            try:
                x, _ = self.upload_input(name, upload)
                model = self.store.model(name)
                marks["your image"] = float(metrics.reconstruction_errors(model, latents.from_display(x))[0])
            except gr.Error:
                pass
        auc = metrics.roc_auc(e_in, e_out)
        fig = plotting.error_histogram({"test set": e_in, label: e_out}, threshold, marks,
                                       title=f"{name.split('/')[-1]}: reconstruction error")
        fpr, tpr = float((e_in > threshold).mean()), float((e_out > threshold).mean())
        text = (f"**ROC AUC {auc:.3f}** ({len(e_in):,} test vs {len(e_out):,} {label}). Threshold "
                f"{threshold:.4f} ({percentile:.0f}th percentile of test errors) flags **{fpr:.1%}** of the test set "
                f"and **{tpr:.1%}** of {label}.")
        if "your image" in marks:
            flagged = marks["your image"] > threshold
            text += f" Your image: error {marks['your image']:.4f}, {'flagged' if flagged else 'not flagged'}."
        view = self.store.view(name)
        top = np.argsort(-e_in)[:k]
        images = latents.display(self.store.dataset(self.store.dataset_of(name)).floats()[top])
        gallery = [(plotting.upscale(im, 4), f"#{i} {view.classes[int(view.labels[i])]} · {e_in[i]:.4f}")
                   for im, i in zip(images, top)]
        if self._stale(name, request):  # switched while the errors were being computed (seconds, the first time)
            return gr.skip(), gr.skip(), gr.skip()
        return plotting.Raster.pixels_of(fig), text, gallery


def build(store: Store) -> AttributePanel:
    from .inpage import page_code, server_functions

    panel = AttributePanel(store)
    models = panel.models()
    default = models[0] if models else None
    try:
        groups, presets = (panel.groups(default), list(panel.presets(default))) if default else ([], [])
        a0, b0 = panel.presets(default)[presets[0]] if presets else (None, None)
    except CheckpointError:
        groups, presets, a0, b0 = [], [], None, None
    with gr.Row(equal_height=False):
        model = gr.Dropdown(models, value=default, label="Model", scale=2, elem_id="attr-model")
        preset = gr.Dropdown(presets, value=presets[0] if presets else None, label="Ready-made attribute", scale=2,
                             elem_id="attr-preset")
        group_a = gr.Dropdown(groups, value=a0, label="Group A (towards)", scale=2, elem_id="attr-a")
        group_b = gr.Dropdown(groups, value=b0, label="Group B (away from)", scale=2, elem_id="attr-b")
    z_state, v_state = gr.State([]), gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            source = gr.Radio(["Test image", "Upload"], value="Test image", label="Input", elem_id="attr-source")
            with gr.Row():
                index = gr.Number(value=0, precision=0, minimum=0, label="Test image index", elem_id="attr-index")
                rand = gr.Button("Random image of group B", size="sm")
            upload = gr.File(label="Or upload your own (PNG, JPEG, WebP, GIF, BMP, TIFF; any size)",
                             file_types=["image"], type="filepath", elem_id="attr-upload", height=110)
            apply = gr.Button("Apply", variant="primary", elem_id="attr-apply")
            shown = gr.Image(show_label=False, interactive=False, buttons=[], elem_id="attr-input", height=200)
            note = gr.Markdown(elem_id="attr-note")
        with gr.Column(scale=5, min_width=360):
            live = gr.HTML(value={"message": "Press Apply: the page then decodes z + s·v as you drag."},
                           html_template='<div class="lsxa-host"></div>', **page_code("attributes"),
                           elem_id="attr-live", apply_default_css=False, labels={},
                           server_functions=server_functions(store, store.decoders))
            k = gr.Slider(*STRIP_K[:2], value=2.0, step=STRIP_K[2], label="Strip range ±k",
                          info="the strip above and the measurement below span s = −k … +k", elem_id="attr-k")
            gr.Markdown("**Measured along the strip above**: the pixel property, or the classifier's probability, "
                        "of each image (decoded and measured on the server at Apply); the dashed line is s at Apply.",
                        elem_id="attr-strip-note")
            strip = gr.Image(show_label=False, interactive=False, elem_id="attr-strip", buttons=["download"])
            # Scripting: the strength Apply uses (the page reports where its slider was left) and the
            # server's decode at that strength, returned by /attribute.
            strength = gr.Slider(*STRENGTH[:2], value=1.0, step=STRENGTH[2], label="Strength s", visible=False,
                                 elem_id="attr-strength")
            decoded = gr.Image(label="decode(z + s·v)", visible=False, format="png", elem_id="attr-decoded")
    effects_md = gr.Markdown(elem_id="attr-effects")  # full width: one column per factor
    gr.Markdown("### Analogies: A − B + C")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=260):
            with gr.Row():
                ia = gr.Number(value=0, precision=0, label="A (index)", min_width=70)
                ib = gr.Number(value=1, precision=0, label="B", min_width=70)
                ic = gr.Number(value=2, precision=0, label="C", min_width=70)
            with gr.Row():
                analogy_btn = gr.Button("Decode A − B + C", elem_id="attr-analogy")
                analogy_rand = gr.Button("Random: A from group A, B and C from group B")
        analogy_img = gr.Image(show_label=False, interactive=False, buttons=[], scale=3, elem_id="attr-analogy-img",
                               height=200)
    gr.Markdown("### Anomaly detection by reconstruction error")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=280):
            ood = gr.Dropdown(OOD_SETS, value=OOD_SETS[0], label="Out-of-distribution set", elem_id="attr-ood")
            pct = gr.Slider(50, 100, value=95, step=0.5, label="Threshold: percentile of test-set errors",
                            elem_id="attr-threshold")
            anomaly_text = gr.Markdown(elem_id="attr-auc")
        hist = gr.Image(show_label=False, interactive=False, scale=3, elem_id="attr-hist", buttons=["download"])
    gr.Markdown("**Most anomalous test images** (highest reconstruction error)")
    # height "auto" and "contain": the whole image and its caption at any width (a fixed 170 px cut both off);
    # the captions wrap (attributes.css)
    worst = gr.Gallery(show_label=False, columns=8, height="auto", object_fit="contain", elem_id="attr-worst",
                       allow_preview=False)
    explanation("The formulas", EXPLANATION, open=False)

    common = dict(concurrency_id="model")
    apply_in = [model, group_a, group_b, source, index, upload, strength, k]
    apply_out = [shown, note, decoded, strip, z_state, v_state]
    anomaly_in = [model, ood, pct, source, upload]
    anomaly_out = [hist, anomaly_text, worst]

    def applied(event):
        """After ``event``: the page gets z, v and the decoder first (it draws at once), then the server
        draws the input, the note and the measured strip (the /attribute endpoint's work)."""
        return event.success(panel.on_live, apply_in, live, api_name=False, show_progress="hidden", **common).success(
            panel.on_apply, apply_in, apply_out, api_name=False, show_progress="hidden", **common).success(
            panel.on_labels, apply_in, live, api_name=False, show_progress="hidden", **common)

    apply.click(panel.on_live, apply_in, live, api_name=False, **common).success(
        panel.on_apply, apply_in, apply_out, api_name="attribute", **common).success(
        panel.on_labels, apply_in, live, api_name=False, show_progress="hidden", **common)
    # the page decodes every strength itself; the server hears where the slider was left
    live.select(panel.on_commit, None, strength, api_name=False, show_progress="hidden", trigger_mode="always_last")
    applied(k.release(lambda: None, None, None, api_name=False, show_progress="hidden"))
    # A preset chosen by hand brings an input of its group B and Apply: the view never shows the previous input
    # under a new vector's name. (A model change sets the preset and groups itself, then applies: on_model.)
    applied(preset.input(panel.on_preset, [model, preset], [group_a, group_b], api_name=False).then(
        lambda m, b: panel.random_index(m, b, seed=0), [model, group_b], index, api_name=False).then(
        lambda m: panel.input_kinds(m)[0], model, source, api_name=False))
    for g in (group_a, group_b):  # groups chosen by hand: a new vector for the same input
        applied(g.input(lambda: None, None, None, api_name=False, show_progress="hidden"))
    event = applied(model.change(panel.on_model, model, [preset, group_a, group_b, source, index, upload, rand],
                                 api_name=False, **common))
    event.then(panel.effects_table, model, effects_md, api_name=False, **common).then(
        panel.on_anomaly, anomaly_in, anomaly_out, api_name=False, **common).then(
        lambda m, a, b: panel.on_random_analogy(m, a, b, seed=0), [model, group_a, group_b],
        [ia, ib, ic, analogy_img], api_name=False, **common)  # the indices mean this model's images now
    applied(rand.click(lambda m, b: panel.random_index(m, b), [model, group_b], index, api_name=False).then(
        lambda m: panel.input_kinds(m)[0], model, source, api_name=False))
    event = applied(upload.upload(lambda: "Upload", None, source, api_name=False))
    event.then(panel.on_anomaly, anomaly_in, anomaly_out, api_name=False, **common)
    analogy_btn.click(panel.on_analogy, [model, ia, ib, ic], analogy_img, api_name="analogy", **common)
    analogy_rand.click(panel.on_random_analogy, [model, group_a, group_b], [ia, ib, ic, analogy_img],
                       api_name=False, **common)
    ood.change(panel.on_anomaly, anomaly_in, anomaly_out, api_name="anomaly", **common)
    pct.release(panel.on_anomaly, anomaly_in, anomaly_out, api_name=False, show_progress="hidden", **common)
    panel.opens = [(panel.on_open, [model, group_a, group_b], [preset, group_a, group_b, index], {}),
                         (panel.on_live, apply_in, live, common),
                         (panel.on_apply, apply_in, apply_out, common),
                         (panel.on_labels, apply_in, [live], common),
                         (panel.effects_table, [model], [effects_md], common),
                         (panel.on_anomaly, anomaly_in, anomaly_out, common),
                         (lambda m, a, b: panel.on_random_analogy(m, a, b, seed=0), [model, group_a, group_b],
                          [ia, ib, ic, analogy_img], common)]
    panel.model_choices = [(model, panel.models)]
    panel.components = dict(model=model, live=live, strength=strength, k=k, strip=strip, decoded=decoded, note=note)
    return panel
