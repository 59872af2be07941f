"""What the page needs to decode codes itself: its code and the runtime as static files, each model's ONNX
decoder (built at first use into the user cache by :mod:`explorer.export`), and the server functions the page
calls without the queue: ``onnx_bytes`` (the decoder, once per model and page) and ``decode_codes`` (the
fallback: the same decode on the server, through that ONNX file in onnxruntime when it is built, else PyTorch,
for a browser without WebAssembly or a model without ONNX).

The page's code is loaded once per page, not inlined into each component: ``web_files`` lists the only files
the app's ``GET /web/<name>`` route serves (``http_api.web_routes``): our scripts, stylesheets and templates
in ``web/`` and the pinned runtime's files in ``web/vendor/onnxruntime-web``, looked up by exact name in that
list, so no path from a request ever reaches the file system. Each panel's ``gr.HTML`` names its files in
``head`` (Gradio loads each script once per page, in order, before ``js_on_load`` runs) and mounts with a
one-line ``js_on_load`` (``page_code``). Decoders travel as base64 in server-function answers.
"""
from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .. import export
from ..data import to_uint8_layout
from ..checkpoints import CheckpointError

WEB_DIR = Path(__file__).resolve().parent / "web"
RUNTIME_DIR = WEB_DIR / "vendor" / "onnxruntime-web"
MAX_CODES = 30 * 30  # the largest batch the page asks for: a 30 x 30 grid


SERVED_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8",
                ".json": "application/json", ".wasm": "application/wasm"}
RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "VENDOR.json")
# stored only gzipped (web/vendor/onnxruntime-web/VENDOR.json, "gzipped"): served as the file itself with
# Content-Encoding: gzip, so the browser inflates it (14.2 MB -> 3.7 MB over the wire and in the repository)
RUNTIME_WASM = "ort-wasm-simd-threaded.wasm"
WEB_ROUTE = "/web"
MOUNT = 'LSX.mount("{panel}", element, trigger, props, server, upload, watch)'


@dataclass(frozen=True)
class WebFile:
    path: Path            # the file on disk
    media_type: str       # the Content-Type it is served with
    sha256: str           # of its bytes: the URL's version (?v=) and the ETag
    encoding: str | None = None  # "gzip": a stored .gz, served with Content-Encoding: gzip


def _web_file(path: Path, media_type: str, encoding: str | None = None) -> WebFile:
    return WebFile(path, media_type, hashlib.sha256(path.read_bytes()).hexdigest(), encoding)


@lru_cache(maxsize=None)
def web_files() -> dict[str, WebFile]:
    """{name under /web/: file}: web/*.js, *.css and *.html, and the runtime's RUNTIME_FILES. Nothing else is
    ever served from the folder (not fetch.py, not the licence, no sub-folder but the runtime's)."""
    files = {p.name: _web_file(p, SERVED_TYPES[p.suffix]) for p in sorted(WEB_DIR.iterdir())
             if p.is_file() and p.suffix in (".js", ".css", ".html")}
    for name in RUNTIME_FILES:
        files[f"vendor/{RUNTIME_DIR.name}/{name}"] = _web_file(RUNTIME_DIR / name, SERVED_TYPES[Path(name).suffix])
    files[f"vendor/{RUNTIME_DIR.name}/{RUNTIME_WASM}"] = _web_file(RUNTIME_DIR / f"{RUNTIME_WASM}.gz",
                                                                 SERVED_TYPES[".wasm"], "gzip")
    return files


def web_url(name: str) -> str:
    """The URL of a served file, relative to the page (so it works under a proxy's root path too), versioned
    by its content: the route lets the browser keep it for a year when the version matches."""
    return f"{WEB_ROUTE.lstrip('/')}/{name}?v={web_files()[name].sha256[:16]}"


def page_code(panel: str) -> dict:
    """The ``gr.HTML`` keyword arguments that run ``web/<panel>.js``: ``head`` loads lsx.js, the panel's
    script and its stylesheet (web/<panel>.css, when there is one) once per page, and ``js_on_load`` mounts
    the panel on this component in one line. The config carries ~300 bytes instead of the scripts."""
    files = web_files()
    css = f"{panel}.css"
    head = (f'<link rel="stylesheet" href="{web_url(css)}">' if css in files else "") + "".join(
        f'<script src="{web_url(name)}"></script>' for name in ("lsx.js", f"{panel}.js"))
    return {"head": head, "js_on_load": MOUNT.format(panel=panel)}


def source(*names: str) -> str:
    """The named files of web/, joined: what the standalone page inlines."""
    return "\n".join((WEB_DIR / n).read_text() for n in names)


def template(name: str) -> str:
    """An HTML template from web/ (a component's html_template)."""
    return (WEB_DIR / name).read_text()


class Builds:
    """ONNX files built once per model in a daemon thread (the decoders here, the UNets in ui/diffusion.py): which
    are being built, and why one failed (the page says so and stays on the server path)."""

    def __init__(self, build, what: str):
        self._build, self._what = build, what
        self._lock = threading.Lock()
        self.building: set = set()
        self.failed: dict = {}

    def start(self, name: str) -> None:
        """Build ``name`` in the background unless it is being built already."""
        with self._lock:
            if name in self.building:
                return
            self.building.add(name)

        def run():
            try:
                self._build(name)
            except Exception as err:  # noqa: BLE001 - reported to the page, which stays on the server path
                self.failed[name] = (f"{type(err).__name__}: {str(err).splitlines()[0][:120]}" if str(err)
                                     else type(err).__name__)
            finally:
                with self._lock:
                    self.building.discard(name)
        threading.Thread(target=run, daemon=True, name=f"{self._what} {name}").start()


class Decoders:
    """Per app: which models have a fresh ONNX decoder, building missing ones in the background."""

    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._builds = Builds(lambda name: export.build(self.store.zoo, name), "export")
        self._failed = self._builds.failed  # name -> why its build failed
        self._b64: dict = {}
        self._sessions: dict = {}  # ONNX path -> onnxruntime session (the server's own decodes)

    def spec(self, name: str) -> dict:
        """What the page needs to decode ``name``: {name, dim, sha (None = use the server), note}."""
        zoo = self.store.zoo
        handle = zoo.handle(name)
        dim = int(handle.config.get("latent_dim", 0))
        # shape: (C, H, W) of one decoded image; the page draws planar float32 (N, C, H, W) in [0, 1]
        spec = {"name": name, "dim": dim, "shape": list(handle.image_shape), "sha": None, "note": ""}
        if not export.exportable(zoo, name):
            spec["note"] = "decoding on the server: this model has no in-page decoder"
            return spec
        try:
            path = export.cached(zoo, name)
        except Exception as err:  # an unreadable file counts as missing
            path, spec["note"] = None, f"decoding on the server ({type(err).__name__})"
        if path is not None:
            spec["sha"] = export.weights_sha256(zoo, name)
            return spec
        if name in self._failed:
            spec["note"] = f"decoding on the server: building the in-page decoder failed ({self._failed[name]})"
        else:
            self.build_later(name)
            spec["building"] = True  # the page asks again (decoder_spec) and switches when it is ready
            spec["note"] = ("decoding on the server while the in-page decoder is built "
                            f"(`python -m explorer.export {name}`)")
        return spec

    def build_later(self, name: str) -> None:
        self._builds.start(name)

    def warm(self, names) -> None:
        """Build every missing decoder now (the app's warm-up thread calls this)."""
        for name in names:
            try:
                if export.exportable(self.store.zoo, name) and export.cached(self.store.zoo, name) is None:
                    export.build(self.store.zoo, name)
            except Exception as err:
                self._failed[name] = type(err).__name__

    def session(self, name: str):
        """An onnxruntime session over ``name``'s fresh ONNX decoder, or None: not built (yet), not
        exportable, models on a GPU, or onnxruntime not installed. One per file, shared by all threads
        (``run`` is thread-safe), one intra-op thread each like the app's PyTorch."""
        if self.store.device != "cpu":
            return None
        try:
            path = export.cached(self.store.zoo, name)
        except (OSError, CheckpointError, ValueError):
            return None
        if path is None:
            return None
        session = self._sessions.get(path)
        if session is None:
            try:
                import onnxruntime as ort
            except ImportError:
                return None
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            try:
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception:  # noqa: BLE001 - an unreadable file: PyTorch decodes instead
                return None
            with self._lock:
                session = self._sessions.setdefault(path, session)
        return session

    def decode(self, name: str, z) -> torch.Tensor:
        """Codes (N, D) -> images (N, C, H, W) in [0, 1]: through the same ONNX decoder the page runs
        (onnxruntime, ~0.3 ms for one code on this machine's CPU against ~1.4 ms in PyTorch; the two agree
        to 1e-5), else through the PyTorch model."""
        session = self.session(name)
        if session is None:
            return self.store.model(name).decode(torch.as_tensor(np.asarray(z), dtype=torch.float32))
        x = session.run([export.OUTPUT], {export.INPUT: np.ascontiguousarray(z, dtype=np.float32)})[0]
        return torch.from_numpy(x)

    def onnx_b64(self, name: str, sha: str | None = None) -> str:
        return file_b64(self._b64, self.store.zoo, name, export.cached(self.store.zoo, name), sha, "decoder")


def file_b64(memo: dict, zoo, name: str, path, sha: str | None, what: str) -> str:
    """The fresh ONNX file ``path`` of ``name`` (None: not built) in base64, kept in ``memo`` by the weights'
    SHA-256; ``sha`` is the version the page asks for (a stale one is refused: the model changed on the server)."""
    if path is None:
        raise CheckpointError(f"{name} has no in-page {what} yet: `python -m explorer.export {name}`")
    current = export.weights_sha256(zoo, name)
    if sha and sha != current:
        raise CheckpointError(f"{name} changed on the server; pick the model again")
    if current not in memo:
        memo[current] = base64.b64encode(path.read_bytes()).decode()
    return memo[current]


def pack(values, dtype) -> str:
    """``values`` as little-endian ``dtype`` bytes in base64: how arrays travel to the page (LSX.unpack reads
    them). Gradio copies every component's props on each event, so thousands of JSON numbers are costly."""
    return base64.b64encode(np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (N, C, H, W) floats in [0, 1] -> uint8 (N, H, W) for one channel, (N, H, W, 3) for colour, rounded:
    what is drawn, streamed and sent as PNG."""
    return to_uint8_layout(images.detach().float().cpu()).numpy()


def pixels_b64(images: torch.Tensor) -> str:
    """(N, C, H, W) floats in [0, 1] -> base64 of N*C*H*W uint8 (planar, as the ONNX decoder outputs), the page's
    fallback format."""
    x = images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()  # planar, not to_uint8's layout
    return base64.b64encode(x.tobytes()).decode()


def _known(store, name) -> str:
    if not isinstance(name, str) or name not in store.zoo.available():
        raise ValueError(f"unknown model {name!r}")
    return name


def server_functions(store, decoders: Decoders):
    """The functions a panel's component exposes to its page (called without the queue). They
    answer {"error": message} instead of raising, so the page can say what went wrong."""

    def onnx_bytes(data):
        try:
            name = _known(store, (data or {}).get("name"))
            return {"onnx": decoders.onnx_b64(name, (data or {}).get("sha"))}
        except (ValueError, CheckpointError, OSError, AttributeError) as err:
            return {"error": str(err)}

    def decode_codes(data):
        try:
            name = _known(store, (data or {}).get("name"))
            n = int(data.get("n", 1))
            z = np.asarray(data.get("z"), dtype=np.float64)
            dim = store.model(name).latent_dim
            if not 1 <= n <= MAX_CODES or z.size != n * dim:
                raise ValueError(f"expected {n} codes of {dim} numbers (at most {MAX_CODES} codes)")
            if not np.isfinite(z).all():
                raise ValueError("codes must be finite numbers")
            x = decoders.decode(name, z.reshape(n, dim))
            return {"pixels": pixels_b64(x)}
        except (ValueError, TypeError, CheckpointError, AttributeError) as err:
            return {"error": str(err)}

    def decoder_spec(data):
        try:
            return decoders.spec(_known(store, (data or {}).get("name")))
        except (ValueError, CheckpointError, AttributeError) as err:
            return {"error": str(err)}

    return [onnx_bytes, decode_codes, decoder_spec]
