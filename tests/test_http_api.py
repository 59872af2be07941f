"""The app's plain decode route (GET /api/decode.png) and the server's onnxruntime decodes."""
from __future__ import annotations

import io
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import launched_app

MODEL = "digits/vae-2d"


def get(base: str, headers: dict | None = None, **params) -> tuple[int, str, bytes]:
    url = base.rstrip("/") + "/api/decode.png" + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as r:
            return r.status, r.headers.get("content-type"), r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type"), err.read()


def png(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    assert image.format == "PNG" and image.mode == "L" and image.size == (28, 28)
    return np.asarray(image)


def torch_uint8(store, name, z) -> np.ndarray:
    x = store.model(name).decode(torch.as_tensor(np.asarray(z), dtype=torch.float32))
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()[:, 0]


@pytest.mark.slow
def test_the_route_answers_the_same_image_as_the_decode_endpoint(served_app):
    from gradio_client import Client

    url, demo, store = served_app
    status, kind, body = get(url, model=MODEL, a=-1.5, b=1.0)
    assert (status, kind) == (200, "image/png")
    ours = png(body)
    client = Client(url, verbose=False)
    theirs = np.asarray(Image.open(client.predict(MODEL, -1.5, 1.0, api_name="/decode")))
    np.testing.assert_array_equal(ours, theirs)
    # the point of the plane (a, b) is z = (a, b) on a 2-D model; PyTorch agrees to a grey level
    assert np.abs(ours.astype(int) - torch_uint8(store, MODEL, [[-1.5, 1.0]])[0]).max() <= 1
    assert not np.array_equal(ours, png(get(url, model=MODEL, a=1.5, b=-1.0)[2]))  # it depends on z
    # no model: the first model's centre
    assert get(url)[0] == 200


@pytest.mark.slow
def test_a_whole_code_decodes_on_a_16d_model(served_app):
    url, _, store = served_app
    z = np.random.default_rng(1).normal(size=(1, 16)).round(4)
    status, _, body = get(url, model="digits/ae-16", z=",".join(map(str, z[0])))
    assert status == 200
    assert np.abs(png(body).astype(int) - torch_uint8(store, "digits/ae-16", z)[0]).max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("params, status, message", [
    (dict(model="../../etc/passwd"), 404, "unknown model"),
    (dict(model="digits/classifier", z="0,0"), 404, "unknown model"),
    (dict(model=MODEL, a="nan"), 400, "a must be a finite number"),
    (dict(model=MODEL, b="1e9"), 400, "b must be a finite number between"),
    (dict(model=MODEL, a="two"), 400, "a must be a number"),
    (dict(model=MODEL, path="/etc/passwd"), 400, "unknown parameter 'path'"),
    (dict(model="digits/ae-16", z="1,2,3"), 400, "z must be 16 comma-separated numbers"),
    (dict(model="digits/ae-16", z=",".join(["0"] * 15 + ["inf"])), 400, "z[15] must be a finite number"),
    (dict(model="digits/ae-16", z=",".join(["0"] * 16), a=1), 400, "either z"),
])
def test_bad_requests_get_a_message_and_no_server_detail(served_app, params, status, message):
    url, _, _ = served_app
    got, kind, body = get(url, **params)
    assert (got, kind) == (status, "application/json")
    error = json.loads(body)["error"]
    assert message in error
    assert "Traceback" not in error and "/tmp" not in error and ".py" not in error
    assert get(url, model=MODEL)[0] == 200  # and the server keeps serving


@pytest.mark.slow
def test_a_damaged_checkpoint_answers_503_with_its_rebuild_command(tiny_zoo, tmp_path):
    root = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, root)
    weights = root / "digits" / "ae-16" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with launched_app(root) as (url, _, _):
        status, _, body = get(url, model="digits/ae-16", a=0, b=0)
        assert status == 503
        error = json.loads(body)["error"]
        assert "python -m explorer.training ae-16 --dataset digits" in error and str(root) not in error
        assert get(url, model=MODEL)[0] == 200


@pytest.mark.slow
def test_the_route_asks_for_the_apps_login(tiny_zoo):
    with launched_app(tiny_zoo, "--auth", "teacher:s3cret") as (url, _, _):
        status, _, body = get(url, model=MODEL)
        assert status == 401 and "/login" in json.loads(body)["error"]
        assert get(url, headers={"Cookie": "access-token-x=forged"}, model=MODEL)[0] == 401
        form = urllib.parse.urlencode({"username": "teacher", "password": "s3cret"}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{url}login", data=form), timeout=30) as r:
            cookies = "; ".join(c.split(";")[0] for c in r.headers.get_all("set-cookie"))
        status, kind, body = get(url, headers={"Cookie": cookies}, model=MODEL, a=0.5, b=0.5)
        assert (status, kind) == (200, "image/png")
        png(body)


@pytest.mark.slow
def test_server_decodes_run_the_pages_onnx_decoder_when_it_is_built(served_app, tmp_path, monkeypatch):
    from explorer import export
    from explorer.ui.inpage import Decoders

    _, _, store = served_app
    z = np.random.default_rng(2).normal(size=(5, 16)).astype(np.float32)
    session = store.decoders.session("digits/ae-16")
    assert session is not None
    got = store.decoders.decode("digits/ae-16", z)
    want = store.model("digits/ae-16").decode(torch.as_tensor(z))
    assert got.shape == want.shape == (5, 1, 28, 28)
    assert (got - want).abs().max() < 1e-4
    # no built decoder (an empty cache), a GPU store, or a model without one: PyTorch decodes
    monkeypatch.setattr(export, "cache_dir", lambda: tmp_path / "empty")
    fresh = Decoders(store)
    assert fresh.session("digits/ae-16") is None
    assert torch.equal(fresh.decode("digits/ae-16", z), want)
    assert Decoders(store).session("digits/classifier") is None
