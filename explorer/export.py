"""Decoders -> ONNX, checked against torch, for decoding codes in the page (README.md, "Architecture").

Every checkpoint that maps codes to images gets its decoder as one ONNX file: the families
ae, vae, gmm-vae, dae and gan (the DCGAN generator). The graph is exactly ``model.decode``:

    input  "z"  float32 (batch, D)            batch is dynamic
    output "x"  float32 (batch, C, H, W)      in [0, 1] (the sigmoid is inside the graph); (C, H, W) is the
                                              model's image_shape, e.g. (1, 28, 28) or (3, 64, 64)

Diffusion checkpoints (pixel or latent) have no one-pass decoder; their noise-predicting network
eps_theta (the pixel UNet, or the latent models' MLP denoiser) is exported instead, so the page can run the
sampler itself (``build_unet``; explorer/ui/web/diffusion.js steps it):

    inputs  "x_t" float32 (batch, *sample_shape)  (C, H, W) images in [-1, 1], or (D,) standardised codes
            "t"   int64   (batch,)                0-based timesteps, 0 .. T-1
            "y"   int64   (batch,)                class labels; label ``classes`` (the "null_label" entry of the
                                                  file's metadata) is the unconditional one, so one batch of
                                                  [labels, null] gives both halves of classifier-free guidance
    output  "eps" float32 (batch, *sample_shape)  the predicted noise

The UNet file is ``<preset>-<sha256[:16]>.unet.onnx`` beside the decoders, stamped the same way (plus
"schedule", "timesteps", "space", "classes", "null_label", "clip_x0", "spacing" and, for latent models,
"decoder": the checkpoint whose ONNX decoder turns the codes into images).

Files are built at first use into the user cache, never committed:
``$XDG_CACHE_HOME/latent-space-explorer/onnx/<dataset>/<preset>-<sha256[:16]>.onnx``, keyed by
the SHA-256 of the checkpoint's ``model.safetensors``. Each file records that full SHA-256 in
its ``metadata_props`` ("weights_sha256"), with "checkpoint", "family", "latent_dim", "image_shape",
"exporter", "opset" and the check's "max_abs_diff", so a file built from other weights is
recognised as stale. A build keeps one file per checkpoint name: the previous one is removed.

    >>> from explorer import export, zoo
    >>> export.status(zoo, "fashion-mnist/vae-2d")
    'missing'
    >>> export.build(zoo, "fashion-mnist/vae-2d")      # export + onnxruntime check, ~1 s
    PosixPath('.../onnx/fashion-mnist/vae-2d-3f0c....onnx')

    python -m explorer.export                    # every exportable checkpoint in checkpoints/ (and every UNet)
    python -m explorer.export fashion-mnist/vae-2d --checkpoints DIR
    python -m explorer.export --check-only       # exit 1 if any is missing or stale
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

from . import models
# Families whose checkpoints decode a code in one pass (model.decode: z -> images in [0, 1]): the families'
# own answer (models.capabilities(...).exports_decoder).
EXPORTABLE_FAMILIES = tuple(f for f in models.FAMILIES if models.capabilities(f).exports_decoder)
# The legacy TorchScript exporter (torch.onnx.export(..., dynamo=False)) at opset 17: the path checked
# on our ConvDecoder and DCGAN generator (tests/test_export.py checks its parity). The dynamo exporter, the
# default since torch 2.9, has open ConvTranspose bias issues; one pinned path, tested for parity.
DYNAMO = False
OPSET = 17
EXPORTER = f"torch.onnx TorchScript exporter (dynamo=False), torch {torch.__version__}"
INPUT, OUTPUT = "z", "x"
CHECK_CODES = 256        # random codes the onnxruntime check decodes
CHECK_SCALE = 3.0        # ... drawn from N(0, CHECK_SCALE^2 I): wider than any prior or posterior spread
TOLERANCE = 1e-4         # max |onnxruntime - torch| per pixel that a build accepts
SHA_KEY = "weights_sha256"


class NotExportable(ValueError):
    """The checkpoint has no one-pass decoder (classifier, diffusion)."""


class ExportError(RuntimeError):
    """An exported decoder disagrees with torch; nothing was written."""


def cache_dir() -> Path:
    """Where built decoders go: the user cache (``$XDG_CACHE_HOME/latent-space-explorer/onnx``)."""
    from .data import cache_dir as user_cache

    return user_cache() / "onnx"


def exportable(zoo, name: str) -> bool:
    """Whether checkpoint ``name``'s family has a decoder to export (reads config.json only)."""
    return zoo.handle(name).caps.exports_decoder


_sha_lock = threading.Lock()


def weights_sha256(zoo, name: str) -> str:
    """SHA-256 (hex) of the checkpoint's model.safetensors (remembered per file version by checkpoints.py)."""
    from .checkpoints import WEIGHTS, weights_sha256 as sha256_of

    return sha256_of(zoo.path(name) / WEIGHTS)


def path_for(zoo, name: str, sha: str | None = None) -> Path:
    """The cache path of ``name``'s decoder for weights ``sha`` (default: its current weights)."""
    dataset, preset = zoo.path(name).parts[-2:]  # zoo.path validates the name
    sha = sha or weights_sha256(zoo, name)
    return cache_dir() / dataset / f"{preset}-{sha[:16]}.onnx"


_meta_memo: dict[tuple, dict] = {}


def metadata(path: str | os.PathLike) -> dict:
    """The ``metadata_props`` of an ONNX file as a dict ({} if it cannot be read), parsed once per
    (path, mtime, size): a decoder is ~1.6 MB, a few milliseconds to parse."""
    import onnx

    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return {}
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _sha_lock:
        if key in _meta_memo:
            return _meta_memo[key]
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # a truncated or foreign file is treated as absent (rebuilt), never fatal  # noqa: BLE001
        return {}
    props = {p.key: p.value for p in model.metadata_props}
    with _sha_lock:
        _meta_memo[key] = props
    return props


def cached(zoo, name: str) -> Path | None:
    """The fresh decoder of ``name``: its path if the file exists and records the current weights'
    SHA-256, else None (missing, stale, or not exportable)."""
    if not exportable(zoo, name):
        return None
    sha = weights_sha256(zoo, name)
    path = path_for(zoo, name, sha)
    return path if path.is_file() and metadata(path).get(SHA_KEY) == sha else None


def _others(zoo, name: str, keep: Path | None = None) -> list[Path]:
    """Decoders built for checkpoint ``name`` from other weights (same dataset/preset, other hash)."""
    dataset, preset = zoo.path(name).parts[-2:]
    own = re.compile(re.escape(preset) + r"-[0-9a-f]{16}")  # so vae-16's are not vae-16-patchgan's
    return [p for p in (cache_dir() / dataset).glob(f"{preset}-*.onnx") if p != keep and own.fullmatch(p.stem)]


def status(zoo, name: str) -> str:
    """"ready" (fresh file), "missing" (none built), "stale" (built from other weights: retrained or
    changed since) or "not exportable"."""
    if not exportable(zoo, name):
        return "not exportable"
    if cached(zoo, name) is not None:
        return "ready"
    path = path_for(zoo, name)
    return "stale" if path.is_file() or _others(zoo, name, keep=path) else "missing"


class _Decode(torch.nn.Module):
    """The graph to trace: exactly the model's own ``decode`` (decoder, then sigmoid)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z):
        return self.model.decode(z)  # (N, D) -> (N, C, H, W) in [0, 1]


def _export_bytes(model) -> bytes:
    f = io.BytesIO()
    z = torch.zeros(2, model.latent_dim)  # batch 2: a traced batch of 1 could be folded into constants
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is pinned on purpose (above)
        torch.onnx.export(_Decode(model).eval(), (z,), f, dynamo=DYNAMO, opset_version=OPSET,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    return f.getvalue()


def half_initializers(proto, min_size: int = 1024):
    """Store every large float32 weight that float16 holds exactly (the shipped weights are float16) as a float16
    initializer followed by a Cast back to float32: the same numbers, half the file (a 64x64x3 decoder 4.5 ->
    2.2 MB; the page downloads it). Weights float16 cannot hold exactly are left as they are."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    casts = []
    for init in list(g.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_size:
            continue
        half = arr.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), arr):
            continue
        g.initializer.remove(init)
        g.initializer.append(numpy_helper.from_array(half, init.name + "__f16"))
        casts.append(helper.make_node("Cast", [init.name + "__f16"], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    nodes = casts + list(g.node)  # the casts first: the graph stays topologically sorted
    del g.node[:]
    g.node.extend(nodes)
    return proto


def max_abs_diff(onnx_model: bytes | str | os.PathLike, model, z: torch.Tensor) -> float:
    """max |onnxruntime(z) - model.decode(z)| over all pixels, on CPUExecutionProvider."""
    import onnxruntime as ort

    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {INPUT: z.float().numpy()})[0]
    want = model.decode(z).cpu().numpy()
    return float(abs(got - want).max())


_locks_guard = threading.Lock()
_locks: dict[tuple, threading.Lock] = {}


def _lock(zoo, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((str(Path(zoo.root).resolve()), name), threading.Lock())


def build(zoo, name: str, check: bool = True, force: bool = False) -> Path:
    """Export ``name``'s decoder into the cache and return its path.

    When ``check``, onnxruntime must agree with torch within TOLERANCE on CHECK_CODES random codes,
    else ExportError and nothing is written (without onnxruntime the check is skipped with a warning,
    and the file records "max_abs_diff": "unchecked"). A fresh file is returned as it is unless
    ``force``. Thread-safe: concurrent calls for one checkpoint export once; the file appears
    atomically and the one built from earlier weights is removed."""
    import onnx

    from .checkpoints import WEIGHTS

    info = zoo.handle(name)
    if not info.caps.exports_decoder:
        what = "a diffusion model: it decodes by iterating a denoiser" if info.family == "ddpm" \
            else f"a {info.family} checkpoint: it has no decoder"
        raise NotExportable(f"{name} is {what}, so it is not exported to ONNX "
                            f"(exportable families: {', '.join(EXPORTABLE_FAMILIES)})")
    with _lock(zoo, name):
        if not force and (fresh := cached(zoo, name)) is not None:
            return fresh
        sha = weights_sha256(zoo, name)
        model = zoo.load(name, device="cpu")
        if weights_sha256(zoo, name) != sha:  # rewritten while loading: stamp what was loaded, never a guess
            raise ExportError(f"{name}: {zoo.path(name) / WEIGHTS} changed during the export; run it again")
        proto = half_initializers(onnx.load_from_string(_export_bytes(model)))
        diff = "unchecked"
        if check:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                warnings.warn(f"{name}: onnxruntime is not installed, so the exported decoder was not "
                              "checked against torch (pip install onnxruntime)", stacklevel=2)
            else:
                z = CHECK_SCALE * torch.randn(CHECK_CODES, model.latent_dim, generator=torch.Generator().manual_seed(0))
                d = max_abs_diff(proto.SerializeToString(), model, z)
                if not d <= TOLERANCE:
                    raise ExportError(f"{name}: the ONNX decoder differs from torch by up to {d:.3g} per pixel on "
                                      f"{CHECK_CODES} random codes (tolerance {TOLERANCE:g}); nothing was written")
                diff = f"{d:.3g}"
        props = {SHA_KEY: sha, "checkpoint": name, "family": info.family, "latent_dim": str(model.latent_dim),
                 "image_shape": ",".join(map(str, model.image_shape)),
                 "exporter": EXPORTER, "opset": str(OPSET), "max_abs_diff": diff}
        onnx.helper.set_model_props(proto, props)
        path = path_for(zoo, name, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(proto.SerializeToString())
        os.replace(tmp, path)  # never a half-written file under the real name
        for old in _others(zoo, name, keep=path):
            old.unlink(missing_ok=True)
        return path


# ------------------------------------------------------------------ diffusion: the eps network
UNET_INPUTS, UNET_OUTPUT = ("x_t", "t", "y"), "eps"
UNET_CHECK = 64          # random (x_t, t, y) the onnxruntime check feeds the network


def unet_exportable(zoo, name: str) -> bool:
    """Whether checkpoint ``name`` is a diffusion model, whose eps network is exported (config.json only)."""
    return zoo.handle(name).family == "ddpm"


def unet_path_for(zoo, name: str, sha: str | None = None) -> Path:
    """The cache path of ``name``'s eps network for weights ``sha`` (default: its current weights)."""
    return path_for(zoo, name, sha).with_suffix(".unet.onnx")


def unet_cached(zoo, name: str) -> Path | None:
    """The fresh eps network of ``name``: its path if the file exists and records the current weights'
    SHA-256, else None (missing, stale, or not a diffusion model)."""
    if not unet_exportable(zoo, name):
        return None
    sha = weights_sha256(zoo, name)
    path = unet_path_for(zoo, name, sha)
    return path if path.is_file() and metadata(path).get(SHA_KEY) == sha else None


def _unet_others(zoo, name: str, keep: Path | None = None) -> list[Path]:
    dataset, preset = zoo.path(name).parts[-2:]
    own = re.compile(re.escape(preset) + r"-[0-9a-f]{16}\.unet")
    return [p for p in (cache_dir() / dataset).glob(f"{preset}-*.unet.onnx") if p != keep and own.fullmatch(p.stem)]


def unet_status(zoo, name: str) -> str:
    """"ready", "missing", "stale" or "not exportable", as :func:`status` says for decoders."""
    if not unet_exportable(zoo, name):
        return "not exportable"
    if unet_cached(zoo, name) is not None:
        return "ready"
    path = unet_path_for(zoo, name)
    return "stale" if path.is_file() or _unet_others(zoo, name, keep=path) else "missing"


def _unet_bytes(model) -> bytes:
    f = io.BytesIO()
    x = torch.zeros(2, *model.sample_shape)  # batch 2, as the decoders: a batch of 1 could be folded
    t, y = torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    batch = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # GroupNorm's batch-size sanity check is traced as a constant; it computes nothing (the parity
        # check and tests/test_unet_export.py run batches 1 to 32 through the traced graph)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model.net.float().eval(), (x, t, y), f, dynamo=DYNAMO, opset_version=OPSET,
                          input_names=list(UNET_INPUTS), output_names=[UNET_OUTPUT],
                          dynamic_axes={k: batch for k in (*UNET_INPUTS, UNET_OUTPUT)})
    return f.getvalue()


def unet_check_inputs(model, n: int = UNET_CHECK, seed: int = 0) -> tuple:
    """Seeded random (x_t, t, y) for a parity check: x_t ~ N(0, I) (what the chain starts from; every
    x_t of a chain has about unit variance), t uniform over 0..T-1, y uniform over the classes and the
    null label."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *model.sample_shape, generator=g)
    t = torch.randint(0, model.config.timesteps, (n,), generator=g)
    y = torch.randint(0, model.null_label + 1, (n,), generator=g)
    return x, t, y


def unet_max_abs_diff(onnx_model: bytes | str | os.PathLike, model, x, t, y) -> float:
    """max |onnxruntime(x_t, t, y) - model.net(x_t, t, y)| over all outputs, in float32 on the CPU."""
    import onnxruntime as ort

    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    got = session.run([UNET_OUTPUT], {"x_t": x.float().numpy(), "t": t.numpy(), "y": y.numpy()})[0]
    with torch.no_grad():
        want = model.net.float()(x.float(), t, y).numpy()
    return float(abs(got - want).max())


def build_unet(zoo, name: str, check: bool = True, force: bool = False) -> Path:
    """Export diffusion checkpoint ``name``'s eps network into the cache and return its path: like
    :func:`build` (same stamp, check, atomic write and removal of stale files), the check on UNET_CHECK
    random (x_t, t, y) at TOLERANCE per output."""
    import onnx

    from .checkpoints import WEIGHTS

    info = zoo.handle(name)
    if not unet_exportable(zoo, name):
        raise NotExportable(f"{name} is a {info.family} checkpoint, not a diffusion model: it has no eps network")
    with _lock(zoo, name):
        if not force and (fresh := unet_cached(zoo, name)) is not None:
            return fresh
        sha = weights_sha256(zoo, name)
        model = zoo.load(name, device="cpu")
        if weights_sha256(zoo, name) != sha:
            raise ExportError(f"{name}: {zoo.path(name) / WEIGHTS} changed during the export; run it again")
        proto = half_initializers(onnx.load_from_string(_unet_bytes(model)))
        diff = "unchecked"
        if check:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                warnings.warn(f"{name}: onnxruntime is not installed, so the exported network was not "
                              "checked against torch (pip install onnxruntime)", stacklevel=2)
            else:
                d = unet_max_abs_diff(proto.SerializeToString(), model, *unet_check_inputs(model))
                if not d <= TOLERANCE:
                    raise ExportError(f"{name}: the ONNX network differs from torch by up to {d:.3g} on {UNET_CHECK} "
                                      f"random inputs (tolerance {TOLERANCE:g}); nothing was written")
                diff = f"{d:.3g}"
        c = model.config
        props = {SHA_KEY: sha, "checkpoint": name, "family": info.family, "space": c.space,
                 "sample_shape": ",".join(map(str, model.sample_shape)),
                 "image_shape": ",".join(map(str, c.image_shape)), "schedule": c.schedule,
                 "timesteps": str(c.timesteps), "classes": str(c.classes), "null_label": str(model.null_label),
                 "clip_x0": "" if model.clip is None else f"{model.clip:g}", "spacing": c.sampling_spacing,
                 "decoder": c.vae if c.space == "latent" else "",
                 "exporter": EXPORTER, "opset": str(OPSET), "max_abs_diff": diff}
        onnx.helper.set_model_props(proto, props)
        path = unet_path_for(zoo, name, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(proto.SerializeToString())
        os.replace(tmp, path)
        for old in _unet_others(zoo, name, keep=path):
            old.unlink(missing_ok=True)
        return path


def build_all(zoo, names=None, check: bool = True) -> dict[str, Path]:
    """Build every exportable checkpoint of ``zoo`` (or those of ``names`` that are exportable);
    returns {name: path}. Fresh files are kept as they are."""
    names = zoo.available() if names is None else list(names)
    return {n: build(zoo, n, check=check) for n in names if exportable(zoo, n)}


def main(argv=None) -> int:
    from .checkpoints import Zoo

    p = argparse.ArgumentParser(prog="python -m explorer.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="checkpoints (default: every exportable one, diffusion models' UNets too)")
    p.add_argument("--checkpoints", help="checkpoint root (default: the shipped checkpoints/)")
    p.add_argument("--check-only", action="store_true",
                   help="build nothing; exit 1 if any decoder is missing or stale")
    p.add_argument("--force", action="store_true", help="re-export even fresh decoders")
    a = p.parse_args(argv)
    zoo = Zoo(a.checkpoints)
    names = a.names or [n for n in zoo.available() if exportable(zoo, n) or unet_exportable(zoo, n)]
    print(f"cache: {cache_dir()}")
    bad = 0
    for name in names:
        unet = unet_exportable(zoo, name)  # a diffusion model: its eps network, not a decoder
        before = (unet_status if unet else status)(zoo, name)
        if a.check_only:
            path = (unet_cached if unet else cached)(zoo, name)
            size = f"{path.stat().st_size / 1e6:.1f} MB" if path else "-"
            print(f"{name:34s} {before:14s} {size:>8s}")
            bad += before in ("missing", "stale")
            continue
        if before == "not exportable":
            print(f"{name:34s} {before}")
            continue
        t0 = time.perf_counter()
        try:
            path = (build_unet if unet else build)(zoo, name, force=a.force)
        except ExportError as err:
            print(f"{name:34s} FAILED: {err}")
            bad += 1
            continue
        seconds = time.perf_counter() - t0
        print(f"{name:34s} {before:8s} -> ready {path.stat().st_size / 1e6:5.1f} MB  "
              f"max |ort - torch| {metadata(path).get('max_abs_diff', '?'):>8s}  {seconds:5.2f} s  {path.name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
