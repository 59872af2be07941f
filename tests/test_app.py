"""The app through gradio_client and its panel logic, over tiny checkpoints."""
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


def test_login_is_required_when_auth_is_set(tiny_zoo):
    import urllib.error
    import urllib.request

    from conftest import free_port

    demo, _ = app_module.create(str(tiny_zoo))
    args = app_module.parse_args(["--port", str(free_port()), "--auth", "teacher:s3cret"])
    demo.launch(prevent_thread_lock=True, quiet=True, **app_module.launch_kwargs(args))
    try:
        url = f"http://127.0.0.1:{args.port}"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/config", timeout=10)
        assert err.value.code in (401, 403)
        from gradio_client import Client

        client = Client(url, auth=("teacher", "s3cret"), verbose=False)
        assert client.predict("digits/vae-2d", 2.5, 7, 1.0, api_name="/sample") is not None
    finally:
        demo.close()


def test_file_routes_serve_nothing_the_app_did_not_produce(served_app):
    """Requests for system files, the source and the weights through Gradio's file routes are refused."""
    import urllib.error
    import urllib.parse
    import urllib.request
    from pathlib import Path

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


def test_panel_switches_to_a_16d_model_with_pc_sliders(served_app):
    _, demo, _ = served_app
    panel = demo.panels["latent_grid"]
    out = panel.on_model("digits/ae-16", 10, 2.0)
    map_px, grid_px, decoded = out[0], out[1], out[2]
    assert map_px.ndim == 3 and grid_px.ndim == 3 and decoded.shape == (28, 28)
    sliders = out[6:]
    visible = [u for u in sliders if u.get("visible")]
    assert len(visible) == 6 and visible[0]["label"].startswith("PC1")
    assert "16-D" in out[4]
    moved = panel.decode_coords("digits/ae-16", [visible[0]["maximum"] * 0.8, 0, 0, 0, 0, 0], out[3])
    assert not np.array_equal(moved, decoded)


def test_map_click_moves_the_point(served_app):
    import gradio as gr

    _, demo, _ = served_app
    panel = demo.panels["latent_grid"]
    raster = panel.map_raster("digits/vae-2d", 2.5)
    view = panel.store.view("digits/vae-2d")
    target = view.plane.center_ + 0.5 * view.plane.scale_ * np.array([1, -1])
    px, py = raster.to_pixel(*target)
    evt = gr.SelectData(None, {"index": [px, py], "value": None, "selected": True})
    image, marked, info, z1, z2 = panel.on_map_click("digits/vae-2d", 2.5, [0.0, 0.0], 0, 0, 0, 0, 0, 0,
                                                     evt=evt)
    assert (z1, z2) == pytest.approx(tuple(target), abs=0.02 * view.plane.scale_.max())
    assert image.shape == (28, 28) and (marked != raster.pixels).any()
    outside = gr.SelectData(None, {"index": [1, 1], "value": None, "selected": True})
    with pytest.raises(gr.Error, match="inside the plot"):
        panel.on_map_click("digits/vae-2d", 2.5, [0.0, 0.0], 0, 0, 0, 0, 0, 0, evt=outside)


def test_bad_input_gets_a_clear_message(served_app):
    import gradio as gr

    _, demo, _ = served_app
    panel = demo.panels["latent_grid"]
    from types import SimpleNamespace

    me = SimpleNamespace(session_hash="bad-input")
    panel.on_model_point("digits/vae-2d", request=me)
    with pytest.raises(gr.Error, match="finite"):
        panel.slide_axis(0)(float("nan"), request=me)
    with pytest.raises(gr.Error, match="Seed"):
        panel.on_sample("digits/vae-2d", 2.5, -3, 1.0)
    with pytest.raises(gr.Error, match="Pick a model"):
        panel.slide_axis(1)(0.0, request=SimpleNamespace(session_hash="never-seen"))


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
        panel.on_model("digits/ae-16", 5, 2.0)
    assert panel.on_model("digits/vae-2d", 5, 2.0)[2].shape == (28, 28)  # the others still work


def test_live_drag_combines_the_moved_slider_with_the_session_point(served_app):
    from types import SimpleNamespace

    _, demo, _ = served_app
    panel = demo.panels["latent_grid"]
    me, other = SimpleNamespace(session_hash="me"), SimpleNamespace(session_hash="other")
    name = "digits/ae-16"
    out = panel.on_model(name, 5, 2.0, request=me)
    panel.on_model(name, 5, 2.0, request=other)
    hi = [u["maximum"] for u in out[6:]]
    values = [0.5 * h for h in hi]
    panel.on_release(name, 2.0, out[3], *values, request=me)
    dragged = panel.slide_axis(2)(0.2 * hi[2], request=me)
    expected = panel.decode_coords(name, values[:2] + [0.2 * hi[2]] + values[3:], out[3])
    np.testing.assert_array_equal(dragged, expected)
    # another session's drag starts from its own point, not mine
    theirs = panel.slide_axis(2)(0.2 * hi[2], request=other)
    assert not np.array_equal(theirs, dragged)


def test_widget_values_are_checked_by_one_pair_of_helpers():
    import gradio as gr

    from explorer.ui.store import number, valid_seed, whole

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
