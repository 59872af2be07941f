"""What the page needs to decode codes itself: the runtime's static folder, each model's ONNX decoder
(built at first use into the user cache by :mod:`explorer.export`), and the server functions the page
calls without the queue: ``onnx_bytes`` (the decoder, once per model and page) and ``decode_codes``
(the fallback: the same decode on the server, through that ONNX file in onnxruntime when it is built, else PyTorch,
for a browser without WebAssembly or a model without ONNX).

Only one folder is served statically: ``web/vendor/onnxruntime-web`` (the pinned runtime). Our own
JavaScript is inlined into each panel's component, and decoders travel as base64 in server-function
answers, so no other file route is opened.
"""
from __future__ import annotations

import base64
import threading
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


@lru_cache(maxsize=None)
def script(*names: str) -> str:
    """lsx.js (the shared page library) followed by the named panel scripts from web/."""
    return "\n".join((WEB_DIR / n).read_text() for n in ("lsx.js", *names))


def runtime_path() -> str:
    """The runtime folder as the page's static URL wants it (``/gradio_api/file=<this>/<file>``)."""
    return RUNTIME_DIR.as_posix() + "/"


def serve_runtime() -> None:
    """Let Gradio serve the runtime folder, and nothing else, as static files."""
    import gradio as gr

    gr.set_static_paths([RUNTIME_DIR])


class Decoders:
    """Per app: which models have a fresh ONNX decoder, building missing ones in the background."""

    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._building: set = set()
        self._failed: dict = {}
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
        with self._lock:
            if name in self._building:
                return
            self._building.add(name)

        def run():
            try:
                export.build(self.store.zoo, name)
            except Exception as err:
                self._failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}" if str(err) else \
                    type(err).__name__
            finally:
                with self._lock:
                    self._building.discard(name)
        threading.Thread(target=run, daemon=True, name=f"export {name}").start()

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
        zoo = self.store.zoo
        path = export.cached(zoo, name)
        if path is None:
            raise CheckpointError(f"{name} has no in-page decoder yet: `python -m explorer.export {name}`")
        current = export.weights_sha256(zoo, name)
        if sha and sha != current:
            raise CheckpointError(f"{name} changed on the server; pick the model again")
        if current not in self._b64:
            self._b64[current] = base64.b64encode(path.read_bytes()).decode()
        return self._b64[current]


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
