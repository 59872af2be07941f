"""The app through gradio_client and its panel logic, over tiny checkpoints."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app as app_module


def test_safe_defaults():
    args = app_module.parse_args([])
    assert args.host == "127.0.0.1" and args.share is False
    kw = app_module.launch_kwargs(args)
    assert kw["server_name"] == "127.0.0.1" and kw["share"] is False and kw["enable_monitoring"] is False
    assert "allowed_paths" not in kw
    assert kw["auth"] is None


def test_auth_flag_takes_user_and_password(monkeypatch):
    assert app_module.launch_kwargs(app_module.parse_args(["--auth", "teacher:s3cret:x"]))["auth"] == \
        ("teacher", "s3cret:x")
    for bad in ("teacher", ":pw", "teacher:"):
        with pytest.raises(SystemExit):
            app_module.parse_args(["--auth", bad])
    monkeypatch.setenv("EXPLORER_AUTH", "class:room")
    assert app_module.parse_args([]).auth == ("class", "room")
    monkeypatch.setenv("EXPLORER_AUTH", "no-password")
    with pytest.raises(SystemExit):
        app_module.parse_args([])


ROOT = Path(__file__).resolve().parent.parent


def test_the_package_declares_what_requirements_txt_installs_and_the_command_app_py_runs():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from explorer import cli

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert project["dependencies"] == [line for line in lines if line]
    assert project["scripts"]["latent-space-explorer"] == "explorer.cli:main"
    assert app_module.main is cli.main and app_module.create is cli.create


def test_shipped_folders_are_found_in_a_checkout_and_inside_an_installed_package(tmp_path):
    import explorer
    from explorer import checkpoints, data

    assert checkpoints.ROOT == ROOT / "checkpoints" and data.ASSETS == ROOT / "assets"  # this checkout
    package = tmp_path / "site-packages" / "explorer"
    (package / "_shipped" / "checkpoints").mkdir(parents=True)
    assert explorer.shipped("checkpoints", package) == package / "_shipped" / "checkpoints"  # pip install .
    assert explorer.shipped("assets", package) == tmp_path / "site-packages" / "assets"  # not there: beside it


@pytest.mark.slow
def test_login_is_required_when_auth_is_set(tiny_zoo):
    import urllib.error
    import urllib.request

    from conftest import launched_app
    from gradio_client import Client

    with launched_app(tiny_zoo, "--auth", "teacher:s3cret") as (url, _, _):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}config", timeout=10)
        assert err.value.code in (401, 403)
        client = Client(url, auth=("teacher", "s3cret"), verbose=False)
        assert client.predict("digits/vae-2d", 2.5, 7, 1.0, api_name="/sample") is not None


@pytest.mark.slow
def test_file_routes_serve_nothing_the_app_did_not_produce(served_app):
    """Requests for system files, the source and the weights through Gradio's file routes are refused."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from gradio_client import Client

    url, demo, store = served_app
    # a positive control: an image this app just produced is served through the same route
    Client(url, verbose=False).predict("digits/vae-2d", 2.5, 7, 1.0, api_name="/sample")
    produced = max((p for p in Path(demo.GRADIO_CACHE).rglob("*") if p.is_file() and p.suffix in (".png", ".webp")),
                   key=lambda p: p.stat().st_mtime)
    with urllib.request.urlopen(url + "gradio_api/file=" + urllib.parse.quote(str(produced)), timeout=10) as resp:
        assert resp.status == 200 and len(resp.read()) > 0
    root = Path(app_module.__file__).resolve().parent
    weights = next(Path(store.zoo.root).glob("*/*/model.safetensors")).resolve()
    targets = ["/etc/passwd", str(root / "app.py"), "app.py", str(weights), "../../../../etc/passwd"]
    for route in ("gradio_api/file=", "file=", "gradio_api/file/"):
        for target in targets:
            full = url + route + urllib.parse.quote(target, safe="/")
            try:
                with urllib.request.urlopen(full, timeout=10) as resp:
                    body = resp.read()
                    status = resp.status
            except urllib.error.HTTPError as err:
                status, body = err.code, b""
            assert status >= 400 or (b"root:" not in body and b"import" not in body and len(body) < 2000), \
                f"{full} -> {status}"


@pytest.mark.slow
def test_decode_endpoint_gives_28x28_images_that_depend_on_z(served_app):
    from gradio_client import Client

    url, _, _ = served_app
    client = Client(url, verbose=False)
    a = np.asarray(Image.open(client.predict("digits/vae-2d", -1.5, 1.0, api_name="/decode")))
    b = np.asarray(Image.open(client.predict("digits/vae-2d", 1.5, -1.0, api_name="/decode")))
    again = np.asarray(Image.open(client.predict("digits/vae-2d", -1.5, 1.0, api_name="/decode")))
    assert a.shape[:2] == (28, 28) and b.shape[:2] == (28, 28)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0
    np.testing.assert_array_equal(a, again)


@pytest.mark.slow
def test_decode_answers_one_direct_post_and_queued_endpoints_cannot_skip_the_queue(served_app):
    import json
    import urllib.error
    import urllib.request

    url, _, _ = served_app

    def post(name, data):
        req = urllib.request.Request(f"{url}gradio_api/run/{name}", data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    status, body = post("decode", ["digits/vae-2d", -1.5, 1.0])  # unqueued: one request, the image's URL back
    assert status == 200 and body["data"][0]["url"].endswith(".png"), body
    with urllib.request.urlopen(body["data"][0]["url"], timeout=30) as r:
        assert np.asarray(Image.open(r)).shape[:2] == (28, 28)
    status, body = post("decode", ["digits/vae-2d", "nan", 1.0])
    assert status >= 400 and "a" in str(body)
    # a queued event (a prior sample here; a diffusion run, an encode alike) is refused on the direct route
    status, body = post("sample", ["digits/vae-2d", 2.5, 0, 1.0])
    assert status == 404 and "join the queue" in str(body), (status, body)


@pytest.mark.slow
def test_sample_endpoint_is_seeded(served_app):
    from gradio_client import Client

    url, _, _ = served_app
    client = Client(url, verbose=False)
    r1 = client.predict("digits/vae-2d", 2.5, 7, 1.0, api_name="/sample")
    r2 = client.predict("digits/vae-2d", 2.5, 7, 1.0, api_name="/sample")
    r3 = client.predict("digits/vae-2d", 2.5, 8, 1.0, api_name="/sample")
    img = [np.asarray(Image.open(r[0])) for r in (r1, r2, r3)]
    np.testing.assert_array_equal(img[0], img[1])
    assert not np.array_equal(img[0], img[2])


@pytest.mark.slow
def test_panel_switches_to_a_16d_model_with_pc_sliders(served_app):
    """The page gets everything it needs to decode a 16-D model on its own: six PC axes, their limits,
    the plane to map slider values back to z, and the map of encoded test images."""
    _, demo, store = served_app
    panel = demo.panels["latent_grid"]
    m = panel.page_model("digits/ae-16")
    assert m["dim"] == 16 and m["k"] == 6 and m["axes"][0] == "PC1" and not m["identity"]
    view = store.view("digits/ae-16")
    assert np.shape(m["components"]) == (6, 16) and m["map"]["n"] == len(view.codes)
    import base64

    xs = np.frombuffer(base64.b64decode(m["map"]["x"]), "<f4")  # the map travels packed, not as JSON numbers
    np.testing.assert_allclose(xs, view.coords[:, 0], rtol=1e-6, atol=1e-6)
    assert np.array_equal(np.frombuffer(base64.b64decode(m["map"]["c"]), np.uint8), view.labels)
    assert all(lo < v < hi for v, (lo, hi) in zip(m["point"]["values"], m["limits"]))
    # the page's own maths (z = mean + values @ components + residual) gives the server's decode
    values = [0.8 * hi for _, hi in m["limits"]]
    z = np.asarray(m["mean"]) + np.asarray(values) @ np.asarray(m["components"])
    np.testing.assert_allclose(z, view.plane.inverse_transform(np.asarray(values)[None])[0], atol=1e-9)
    moved = panel.decode_coords("digits/ae-16", values)
    assert not np.array_equal(moved, panel.decode_coords("digits/ae-16", m["point"]["values"]))
    assert "16-D" in panel.headline("digits/ae-16") or "principal" in panel.headline("digits/ae-16")


def _select(value):
    import gradio as gr

    return gr.SelectData(None, {"index": 0, "value": value, "selected": True})


@pytest.mark.slow
def test_the_final_point_is_checked_clipped_and_kept_per_session(served_app):
    from types import SimpleNamespace

    import gradio as gr

    _, demo, store = served_app
    panel = demo.panels["latent_grid"]
    me, other = SimpleNamespace(session_hash="me"), SimpleNamespace(session_hash="other")
    m = panel.page_model("digits/vae-2d", me)
    panel.page_model("digits/vae-2d", other)
    (lo0, hi0), (lo1, hi1) = m["limits"]
    mid1 = (lo1 + hi1) / 2
    info = panel.on_commit("digits/vae-2d", _select({"values": [hi0 + 10 * (hi0 - lo0), mid1]}), request=me)
    assert "(2-D)" in info
    name, values, _ = panel._point(me)
    assert name == "digits/vae-2d"
    assert values[0] == pytest.approx(hi0)  # clipped to the slider's limit
    assert values[1] == pytest.approx(mid1, abs=(hi1 - lo1) / 200)  # rounded to the slider's step
    assert panel._point(other)[1][0] != values[0]  # another session keeps its own point
    for bad, message in (({"values": [float("nan"), 0.0]}, "Slider 1"), ({"values": [0.0]}, "expected 2"),
                         ("junk", "expected 2"), ({"values": ["x", 0]}, "must be a number")):
        with pytest.raises(gr.Error, match=message):
            panel.on_commit("digits/vae-2d", _select(bad), request=me)


@pytest.mark.slow
def test_bad_input_gets_a_clear_message(served_app):
    import gradio as gr

    _, demo, _ = served_app
    panel = demo.panels["latent_grid"]
    with pytest.raises(gr.Error, match="Seed"):
        panel.on_sample("digits/vae-2d", 2.5, -3, 1.0)
    with pytest.raises(gr.Error, match="Pick a model"):
        panel.page_model(None)


@pytest.mark.slow
def test_sample_sends_the_page_a_point_that_decodes_to_the_same_image(served_app):
    _, demo, store = served_app
    panel = demo.panels["latent_grid"]
    image, update = panel.on_sample("digits/ae-16", 2.5, 3, 1.0)
    point = update.get("point") if isinstance(update, dict) else update.props["point"]
    view = store.view("digits/ae-16")
    z = view.plane.inverse_transform(np.asarray(point["values"])[None], np.asarray(point["residual"]))
    x = store.model("digits/ae-16").decode(__import__("torch").as_tensor(z, dtype=__import__("torch").float32))
    again = (x.clamp(0, 1).mul(255).round().to(__import__("torch").uint8).numpy())[0, 0]
    assert np.abs(again.astype(int) - image.astype(int)).max() <= 1  # the slider clip is within a step


def test_damaged_checkpoint_is_reported_and_the_server_keeps_serving(tiny_zoo, tmp_path):
    import shutil

    import gradio as gr

    root = tmp_path / "ck"
    shutil.copytree(tiny_zoo, root)
    w = root / "digits" / "ae-16" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:500])
    demo, _ = app_module.create(str(root))
    panel = demo.panels["latent_grid"]
    with pytest.raises(gr.Error, match=r"python -m explorer.training ae-16 --dataset digits"):
        panel.on_model("digits/ae-16")
    assert panel.page_model("digits/vae-2d")["dim"] == 2  # the others still work


@pytest.mark.slow
def test_server_functions_decode_and_refuse_like_the_page_expects(served_app):
    """The page's fallback (decode_codes) gives the same decode as uint8 (onnxruntime over the page's own ONNX file:
    PyTorch's pixels to a grey level); bad requests get a message."""
    import base64

    import torch

    _, demo, store = served_app
    fns = {f.__name__: f for f in demo.panels["latent_grid"].components["explorer"].server_fns}
    assert set(fns) >= {"decode_codes", "onnx_bytes", "decoder_spec"}
    z = np.random.default_rng(0).normal(size=(3, 2))
    out = fns["decode_codes"]({"name": "digits/vae-2d", "z": z.ravel().tolist(), "n": 3})
    got = np.frombuffer(base64.b64decode(out["pixels"]), np.uint8).reshape(3, 28, 28)
    want = store.model("digits/vae-2d").decode(torch.as_tensor(z, dtype=torch.float32))[:, 0]
    want = want.mul(255).round().to(torch.uint8).numpy().astype(int)
    assert np.abs(got.astype(int) - want).max() <= 1 and np.abs(got.astype(int) - want).mean() < 0.05
    for bad, message in (({"name": "../../etc/passwd", "z": [0, 0], "n": 1}, "unknown model"),
                         ({"name": "digits/vae-2d", "z": [0, 0, 0], "n": 1}, "expected 1 codes of 2"),
                         ({"name": "digits/vae-2d", "z": [0, float("nan")], "n": 1}, "finite"),
                         ({"name": "digits/vae-2d", "z": [0] * 2000, "n": 1000}, "at most 900"),
                         (None, "unknown model")):
        assert message in fns["decode_codes"](bad)["error"]
    assert "unknown model" in fns["onnx_bytes"]({"name": "/etc/passwd"})["error"]


def test_widget_values_are_checked_by_one_pair_of_helpers():
    import gradio as gr

    from explorer.ui.validate import number, valid_seed, whole

    assert number("2.5", "strength") == 2.5 and number(0, "eta", 0, 1) == 0.0 and valid_seed(7.0) == 7
    for value, bounds, message in (("abc", (), "strength must be a number"),
                                   (float("inf"), (), "strength must be a finite number"),
                                   (float("nan"), (0, 1), "strength must be between 0 and 1"),
                                   (float("-inf"), (0, 1), "strength must be between 0 and 1"),
                                   (1.5, (0, 1), "strength must be between 0 and 1, got 1.5")):
        with pytest.raises(gr.Error, match=message):
            number(value, "strength", *bounds)
    for value, message in (("x", "whole number"), (float("nan"), "whole number"), (-1, "between 0 and 2"),
                           (2 ** 63, "between 0 and 2")):
        with pytest.raises(gr.Error, match=message):
            valid_seed(value)
    assert whole("12", "t", 0, 1000) == 12 and whole(3.0, "t", 0, 1000) == 3
    for value, message in ((2.5, "t must be a whole number between 0 and 1000, got 2.5"), (float("nan"), "between"),
                           (1001, "between 0 and 1000"), (None, "must be a number")):
        with pytest.raises(gr.Error, match=message):
            whole(value, "t", 0, 1000)


def _package_imports(path: Path) -> set[str]:
    """The modules a file of explorer/ imports (absolute names, relative imports resolved), anywhere in it."""
    import ast

    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


def test_the_layers_import_the_way_readme_architecture_says():
    files = {p: _package_imports(p) for p in (ROOT / "explorer").rglob("*.py") if "web" not in p.parts}
    assert len(files) > 30
    outside_ui = {p: imps for p, imps in files.items()
                  if "ui" not in p.relative_to(ROOT / "explorer").parts and p.name != "cli.py"}
    for p, imps in outside_ui.items():
        assert not any(i == "gradio" or i.startswith(("gradio.", "explorer.ui")) for i in imps), p
    blocks = ["schedules", "nets", "metrics", "latents", "plotting", "diffusion"]
    lower = [ROOT / "explorer" / f"{b}.py" for b in blocks] + list((ROOT / "explorer" / "models").glob("*.py"))
    for p in lower:
        later = {i for i in files[p] if i.startswith(("explorer.checkpoints", "explorer.training", "explorer.ui",
                                                       "explorer.evaluation", "explorer.studies", "explorer.cli"))}
        assert not later, (p, later)
    for b in blocks[:5]:  # the building blocks import no other part of the package
        p = ROOT / "explorer" / f"{b}.py"
        assert not {i for i in files[p] if i.startswith("explorer.")}, p
