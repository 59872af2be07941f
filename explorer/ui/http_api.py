"""Plain HTTP routes beside Gradio's API, for requests too small for Gradio's event machinery.

    GET /api/decode.png?model=fashion-mnist/vae-2d&a=0.5&b=-1     the image at (a, b) of the model's plane
    GET /api/decode.png?model=fashion-mnist/vae-16&z=0.1,-0.3,...  the image of one whole latent code

One decode costs ~0.3 ms (onnxruntime, :meth:`Decoders.decode`), while a Gradio endpoint costs its server
7-8 ms of CPU for a number and 11-14 ms for an image before any work is done (event bookkeeping, the session,
the file cache; README.md, "Run it for a classroom"). This route answers with the PNG itself, in one request,
for 5-7 ms (benchmarks/load_http.py, endpoint png).
The same decode stays on Gradio's API as ``/decode`` (gradio_client, the queue, the page's scripts).

    GET /web/<name>?v=<version>    the page's code and the runtime (inpage.web_files), loaded once per page

The second route serves only the files ``inpage.web_files`` lists, looked up by exact name (anything else is
404), with a year's ``Cache-Control: immutable`` when ``v`` is the file's current version and an ETag always.
The runtime's .wasm is stored gzipped and sent with ``Content-Encoding: gzip`` (inflated here for a client that
does not accept gzip).

It obeys the app's login (``--auth``): without the session cookie Gradio sets at ``/login`` it answers 401.
Errors are JSON ``{"error": message}`` with status 400 (bad input), 404 (unknown model) or 503 (a damaged
checkpoint: the message names the command that rebuilds it); no path or traceback is shown.
"""
from __future__ import annotations

import gzip
import io
import threading

import cachetools
import gradio as gr
import numpy as np
from PIL import Image
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .. import export
from .inpage import WEB_ROUTE, web_files
from ..checkpoints import CheckpointError

DECODE_ROUTE = "/api/decode.png"
PARAMS = ("model", "a", "b", "z")
NAMES_TTL = 10.0  # seconds a listing of the checkpoint folder is reused (a new checkpoint shows within it)
MAX_ABS = 1e3  # coordinates and code entries beyond this are refused (float32 decoders overflow far sooner)


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def authorised(request: Request) -> bool:
    """Whether ``request`` may use the app: no login configured, or the login cookie Gradio set at /login."""
    app = request.app
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return True
    if getattr(app, "auth_dependency", None) is not None:
        try:
            user = app.auth_dependency(request)
        except Exception:  # noqa: BLE001 - an external check that fails refuses
            return False
        return user is not None and not hasattr(user, "__await__")
    cookie_id = getattr(app, "cookie_id", "")
    token = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(
        f"access-token-unsecure-{cookie_id}")
    return token is not None and token in getattr(app, "tokens", {})


def _finite(text: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadRequest(f"{what} must be a number, got {text[:40]!r}") from None
    if not np.isfinite(value) or abs(value) > MAX_ABS:
        raise BadRequest(f"{what} must be a finite number between {-MAX_ABS:g} and {MAX_ABS:g}, got {text[:40]}")
    return value


def decode_request(store, grid, query, names=None) -> np.ndarray:
    """The uint8 (H, W) or (H, W, 3) image a decode query asks for, or BadRequest/CheckpointError. ``names(kind)``:
    the models of a kind ("plane": with an encoder, so a plane; "code": any one-pass decoder)."""
    names = names or (lambda kind: model_names(store, kind))
    extra = sorted(set(query) - set(PARAMS))
    if extra:
        raise BadRequest(f"unknown parameter {extra[0]!r}; this route takes {', '.join(PARAMS)}")
    planes = names("plane")
    name = query.get("model") or (planes[0] if planes else "")
    if "z" in query:
        if name not in names("code"):
            raise BadRequest(f"unknown model {name[:80]!r}; one of: {', '.join(names('code'))}", 404)
        if "a" in query or "b" in query:
            raise BadRequest("give either z (a whole code) or a and b (a point of the plane), not both")
        dim = int(store.zoo.info(name)["config"].get("latent_dim", 0))
        parts = [p for p in query["z"].split(",") if p.strip()]
        if len(parts) != dim:
            raise BadRequest(f"z must be {dim} comma-separated numbers for {name}, got {len(parts)}")
        return grid.decode_code(name, np.array([[_finite(p, f"z[{i}]") for i, p in enumerate(parts)]]))
    if name not in planes:
        raise BadRequest(f"unknown model {name[:80]!r}; one of: {', '.join(planes)}", 404)
    store.view(name)  # a damaged checkpoint raises CheckpointError here (503), naming its rebuild command
    values = grid.centre(name)
    for i, key in enumerate(("a", "b")):
        if key in query:
            values[i] = _finite(query[key], key)
    return grid.decode_coords(name, values)


def model_names(store, kind: str) -> list[str]:
    """"plane": the models with an encoder (their plane is the Latent grid's); "code": every model that
    decodes a code in one pass. Reads every config.json (~14 ms for 16 checkpoints): routes() keeps it 10 s."""
    if kind == "plane":
        return store.encoder_models()
    return [n for n in store.zoo.available() if export.exportable(store.zoo, n)]


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="png", compress_level=1)  # 28x28 grey: ~0.1 ms, ~500 bytes; RGB too
    return buf.getvalue()


def routes(store, grid) -> list[Route]:
    """The routes to put on the app's FastAPI (``demo.launch(app_kwargs={"routes": ...})``), before
    Gradio's own. ``grid``: the Latent grid panel, whose plane and decode the route shares."""

    listing = cachetools.TTLCache(maxsize=4, ttl=NAMES_TTL)

    @cachetools.cached(listing, lock=threading.Lock())
    def names(kind: str) -> list[str]:
        return model_names(store, kind)

    def decode_png(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "not logged in: POST your user name and password to /login first"},
                                status_code=401)
        try:
            image = decode_request(store, grid, request.query_params, names)
        except BadRequest as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        except CheckpointError as err:
            return JSONResponse({"error": str(err)}, status_code=503)
        except gr.Error as err:  # a check shared with the panel
            return JSONResponse({"error": str(err.message)}, status_code=400)
        return Response(png_bytes(image), media_type="image/png", headers={"Cache-Control": "no-store"})

    return [Route(DECODE_ROUTE, decode_png, methods=["GET"], name="decode_png")]


def web_routes() -> list[Route]:
    """``GET /web/<name>``: the files of ``inpage.web_files`` and nothing else, under the app's login."""

    def serve(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "not logged in"}, status_code=401)
        entry = web_files().get(request.path_params["name"])
        if entry is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        etag = f'"{entry.sha256[:32]}"'
        fresh = request.query_params.get("v") == entry.sha256[:16]
        headers = {"ETag": etag, "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "public, max-age=31536000, immutable" if fresh else "no-cache"}
        body = None
        if entry.encoding:  # a stored .gz: sent as it is to a client that takes gzip (every browser), else inflated
            headers["Vary"] = "Accept-Encoding"
            if "gzip" in request.headers.get("accept-encoding", ""):
                headers["Content-Encoding"] = entry.encoding
            else:
                body = gzip.decompress(entry.path.read_bytes())
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if body is not None:
            return Response(body, media_type=entry.media_type, headers=headers)
        # streamed from disk in chunks: reading the runtime whole into memory on every page grew the server
        return FileResponse(entry.path, media_type=entry.media_type, headers=headers)

    return [Route(WEB_ROUTE + "/{name:path}", serve, methods=["GET"], name="web_files")]
