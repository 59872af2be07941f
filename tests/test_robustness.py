"""A classroom leans on it: every upload a student might try, bad numbers, broken checkpoints, cancelled
runs, and property tests over the API's and the endpoints' input space."""
from __future__ import annotations

import io
import shutil
import struct
import zlib

import gradio as gr
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import launched_app
from explorer import data
from explorer.ui.diffusion import RUN_SLOTS

MODEL = "digits/ae-16"


def _shirt(size=(64, 48)) -> np.ndarray:
    a = np.zeros(size, np.uint8)
    a[size[0] // 5: -size[0] // 5, size[1] // 4: -size[1] // 4] = 220
    return a


def _png_claiming(w: int, h: int) -> bytes:
    """A PNG whose header says w x h (grey) but holds one row of data: a decompression bomb's shape."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * (w + 1), 9))
            + chunk(b"IEND", b""))


def _write(tmp, name, kind):
    """Write one test upload; returns its path."""
    path = tmp / name
    grey = Image.fromarray(_shirt())
    if kind == "png":
        grey.save(path)
    elif kind == "jpeg":
        grey.convert("RGB").save(path, quality=85)
    elif kind == "webp":
        grey.convert("RGB").save(path, "WEBP")
    elif kind == "bmp":
        grey.save(path, "BMP")
    elif kind == "tiff":
        grey.save(path, "TIFF")
    elif kind == "gif-animated":
        grey.save(path, save_all=True, append_images=[Image.fromarray(255 - _shirt())], duration=80, loop=0)
    elif kind == "png-16bit":
        Image.fromarray((_shirt().astype(np.uint16) * 257)).save(path)
    elif kind == "png-palette":
        grey.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=16).save(path)
    elif kind == "jpeg-cmyk":
        grey.convert("CMYK").save(path, "JPEG")
    elif kind == "png-alpha":
        rgba = np.zeros((64, 48, 4), np.uint8)
        rgba[..., 3] = (_shirt() > 0) * 255
        Image.fromarray(rgba, "RGBA").save(path)
    elif kind == "png-1x1":
        Image.fromarray(np.full((1, 1), 200, np.uint8)).save(path)
    elif kind == "png-10000x10000":
        big = np.zeros((10000, 10000), np.uint8)
        big[3000:7000, 3500:6500] = 255
        Image.fromarray(big).save(path, optimize=False, compress_level=9)
    elif kind == "jpeg-10000x10000":
        big = np.zeros((10000, 10000), np.uint8)
        big[3000:7000, 3500:6500] = 255
        Image.fromarray(big).save(path, quality=50)
    elif kind == "png-truncated":
        buf = io.BytesIO()
        grey.save(buf, "PNG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "png-corrupt":
        buf = io.BytesIO()
        grey.save(buf, "PNG")
        b = bytearray(buf.getvalue())
        b[60:90] = b"\xff" * 30          # inside the compressed data
        path.write_bytes(bytes(b))
    elif kind == "text-renamed":
        path.write_text("print('this is not an image')\n")
    elif kind == "zip-renamed":
        path.write_bytes(b"PK\x03\x04" + bytes(200))
    elif kind == "bomb":
        path.write_bytes(_png_claiming(60000, 60000))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(kind)
    return path


GOOD = ["png", "jpeg", "webp", "bmp", "tiff", "gif-animated", "png-16bit", "png-palette", "jpeg-cmyk",
        "png-alpha", "png-1x1", "jpeg-10000x10000"]
BAD = {"png-10000x10000": "megapixels", "png-truncated": "could not read", "png-corrupt": "could not read",
       "text-renamed": "could not read", "zip-renamed": "could not read", "bomb": "too large to decode safely",
       "empty": "could not read"}


@pytest.mark.parametrize("kind", GOOD + list(BAD))
def test_prepare_image_reads_or_refuses_clearly(tmp_path, kind):
    suffix = {"jpeg": ".jpg", "jpeg-cmyk": ".jpg", "jpeg-10000x10000": ".jpg", "webp": ".webp", "bmp": ".bmp",
              "tiff": ".tif", "gif-animated": ".gif"}.get(kind, ".png")
    path = _write(tmp_path, kind + suffix, kind)
    if kind in BAD:
        with pytest.raises(data.ImageError, match=BAD[kind]):
            data.prepare_image(path, "digits")
        return
    x, notes = data.prepare_image(path, "digits")
    assert x.shape == (28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert notes[0].startswith("read ")
    if kind not in ("png-1x1",):
        assert x.max() > 0.5                                 # the object survived the conversion


@pytest.mark.parametrize("as_path", [True, False])
def test_a_phone_photo_stored_sideways_is_read_the_way_it_is_shown(tmp_path, as_path):
    """EXIF orientation 6 ("turn 90 degrees clockwise to show"): stored 40 wide x 20 high with the right half
    light, it is shown 20 wide x 40 high with the light half below, for every upload preparation."""
    stored = Image.new("RGB", (40, 20), (0, 0, 0))
    stored.paste((255, 255, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    source = tmp_path / "phone.jpg" if as_path else Image.open(tmp_path / "phone.jpg")
    picture, notes = data.prepare_picture(source, (3, 8, 4))  # a frame as tall as the photo is shown
    assert notes[0] == "read 20×40" and picture.shape == (8, 4, 3)
    assert picture[:3].mean() < 0.15 and picture[-3:].mean() > 0.85  # dark on top, light below
    source = tmp_path / "phone.jpg" if as_path else Image.open(tmp_path / "phone.jpg")
    _, notes = data.prepare_image(source, "fashion-mnist")
    assert notes[0] == "read 20×40"


@pytest.mark.slow
def test_uploads_through_the_app_give_a_message_and_the_server_keeps_serving(served_app, tmp_path):
    from gradio_client import Client, handle_file

    url, _, _ = served_app
    client = Client(url, verbose=False)
    for kind, suffix in (("jpeg-cmyk", ".jpg"), ("gif-animated", ".gif"), ("png-16bit", ".png"),
                         ("jpeg-10000x10000", ".jpg"), ("tiff", ".tif"), ("webp", ".webp")):
        out = client.predict(MODEL, "7", "1", "Upload", 0, handle_file(str(_write(tmp_path, kind + suffix, kind))),
                             0.5, 2.0, api_name="/attribute")
        assert "your image" in out[1]
    for kind, message in BAD.items():
        path = _write(tmp_path, f"{kind}.png", kind)
        with pytest.raises(Exception, match="can't be used") as err:
            client.predict(MODEL, "7", "1", "Upload", 0, handle_file(str(path)), 0.5, 2.0, api_name="/attribute")
        assert message in str(err.value)
        # no server path, no file name, no traceback in what the user reads
        shown = str(err.value)
        assert "/tmp" not in shown and "/gradio/" not in shown and f"{kind}.png" not in shown, shown
        assert "Traceback" not in shown and 'File "' not in shown, shown
    # still serving
    assert "test image #3" in client.predict(MODEL, "7", "1", "Test image", 3, None, 1.0, 2.0,
                                             api_name="/attribute")[1]


@pytest.mark.slow
def test_uploads_over_the_size_cap_are_refused_at_the_door(served_app, tmp_path):
    from gradio_client import Client, handle_file

    url, _, _ = served_app
    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(11 * 2 ** 20))  # 11 MB > max_file_size
    client = Client(url, verbose=False)
    with pytest.raises(Exception):
        client.predict(MODEL, "7", "1", "Upload", 0, handle_file(str(big)), 0.5, 2.0, api_name="/attribute")
    assert "test image #2" in client.predict(MODEL, "7", "1", "Test image", 2, None, 1.0, 2.0,
                                             api_name="/attribute")[1]


# ---------------------------------------------------------------- broken checkpoints
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing-weights", "truncated-weights", "mismatched-config", "bad-json"])
def test_a_broken_checkpoint_names_its_rebuild_command_and_the_rest_works(tiny_zoo, tmp_path, damage):
    from gradio_client import Client

    root = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, root)
    ckpt = root / "digits" / "ae-16"
    if damage == "missing-weights":
        (ckpt / "model.safetensors").unlink()
    elif damage == "truncated-weights":
        w = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(w[: len(w) // 3])
    elif damage == "mismatched-config":
        cfg = (ckpt / "config.json").read_text().replace('"latent_dim": 16', '"latent_dim": 12')
        (ckpt / "config.json").write_text(cfg)
    else:
        (ckpt / "config.json").write_text("{ not json")
    with launched_app(root) as (url, _, _):            # the app starts
        client = Client(url, verbose=False)
        if damage != "bad-json":                       # a damaged config.json hides the checkpoint from the lists
            with pytest.raises(Exception, match="python -m explorer.training ae-16 --dataset digits") as err:
                client.predict(MODEL, "7", "1", "Test image", 3, None, 1.0, 2.0, api_name="/attribute")
            assert str(root) not in str(err.value) and "Traceback" not in str(err.value)  # no server path
        out = client.predict("digits/vae-2d", 2.5, 7, 1.0, api_name="/sample")   # another panel's model works
        assert out is not None


@pytest.mark.slow
def test_uploaded_files_are_never_loaded_as_checkpoints(served_app, tmp_path):
    """The zoo only reads checkpoints/<dataset>/<name>/ below its root: names with paths are refused."""
    _, _, store = served_app
    for name in ("../../tmp/x", "/tmp/gradio/model", "digits/../../etc"):
        with pytest.raises(ValueError):
            store.zoo.path(name)


# ---------------------------------------------------------------- cancelling frees the slot
def _slowed(panel, delay=0.1):
    """Make the Diffusion panel's runs take ``delay`` s per step (long enough to stop one midway) and count
    the steps computed: a run that really stops computes no more."""
    import time

    computed = []
    original = panel.frames

    def frames(*args):
        for item in original(*args):
            computed.append(time.monotonic())
            time.sleep(delay)
            yield item

    panel.frames = frames
    return computed


def _slots_free(demo, timeout=15.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(demo._queue.active_jobs):
            return True
        time.sleep(0.1)
    return False


def _assert_stopped(demo, computed, slots, steps=100):
    """Every slot is free, no step is computed afterwards, and no long run got near its end."""
    import time

    assert _slots_free(demo), "a slot is still held after its client went away"
    before = len(computed)
    time.sleep(1.0)
    assert len(computed) == before, "a run kept computing after its client went away"
    assert 0 < before < slots * steps / 2


def _short_run_is_served(url):
    from gradio_client import Client

    job = Client(url, verbose=False).submit("digits/ddpm-tiny", "DDIM", 5, 0.0, "each class in turn", 1.0, 4, 2,
                                            api_name="/diffusion_run")
    assert "done" in list(job)[-1][1]


@pytest.mark.slow
def test_cancelled_diffusion_runs_free_their_slots(tmp_path):
    import time

    from gradio_client import Client

    from test_diffusion_app import build_diffusion_zoo

    build_diffusion_zoo(tmp_path)
    with launched_app(tmp_path) as (url, demo, _):
        computed = _slowed(demo.panels["diffusion"])
        slots = RUN_SLOTS
        client = Client(url, verbose=False)
        # fill every slot of the diffusion runs' group with long runs: 100 steps at >= 0.1 s each
        long_runs = [client.submit("digits/ddpm-tiny", "DDPM", 100, 1.0, "each class in turn", 1.0, i, 16,
                                   api_name="/diffusion_run") for i in range(slots)]
        end = time.monotonic() + 30
        while len(computed) < 2 * slots and time.monotonic() < end:
            time.sleep(0.1)
        for job in long_runs:
            job.cancel()
        _assert_stopped(demo, computed, slots)
        _short_run_is_served(url)
        assert all(j.status().code.name in ("CANCELLED", "FINISHED") for j in long_runs)


@pytest.mark.browser
def test_closing_the_tab_stops_its_run_and_frees_the_slot(tmp_path):
    """A student who starts a long run and closes the tab must not keep a slot: Gradio notices the dropped
    event stream and stops iterating the run's generator at its next step."""
    playwright = pytest.importorskip("playwright.sync_api")
    from conftest import BROWSER_ARGS
    from test_diffusion_app import build_diffusion_zoo

    build_diffusion_zoo(tmp_path)
    with launched_app(tmp_path) as (url, demo, _):
        computed = _slowed(demo.panels["diffusion"])
        slots = RUN_SLOTS
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
            pages = []
            for _ in range(slots):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url + "?diffusion=server")  # runs on the server, not in the page
                page.get_by_role("tab", name="Diffusion").click()
                steps = page.locator("#diff-steps input[type=number]")
                steps.fill("100")
                steps.press("Enter")
                page.locator("#diff-run").click()
                pages.append(page)
            for page in pages:
                page.wait_for_function("() => /step \\d+\\/100/.test(document.querySelector('#diff-status')"
                                       "?.innerText || '')", timeout=60_000)
            for page in pages:
                page.close()
            _assert_stopped(demo, computed, slots)
            browser.close()
        _short_run_is_served(url)


# ---------------------------------------------------------------- properties: no crash, no hang
@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                 st.text(max_size=8), st.booleans()))
def test_widget_checks_accept_or_refuse_with_a_message(value):
    from explorer.ui.validate import number, valid_seed, whole

    for check in (lambda v: number(v, "x"), lambda v: number(v, "x", 0, 1), lambda v: whole(v, "x", 0, 100),
                  valid_seed):
        try:
            out = check(value)
        except gr.Error as err:
            assert "x" in err.message or "Seed" in err.message
        else:
            assert np.isfinite(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 3, 4]),
       st.sampled_from([np.uint8, np.float32, np.float64, np.int64]), st.integers(0, 2 ** 31 - 1),
       st.sampled_from(["fashion-mnist", "digits"]))
def test_prepare_image_on_any_array_gives_a_28x28_image_or_an_image_error(h, w, c, dtype, seed, dataset):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-2, 300, size=(h, w) if c == 1 else (h, w, c)).astype(dtype)
    if rng.random() < 0.2:
        a = a.astype(np.float64)
        a.flat[rng.integers(a.size)] = np.nan
    try:
        x, notes = data.prepare_image(a, dataset)
    except data.ImageError as err:
        assert str(err)
        return
    assert x.shape == (28, 28) and np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(index=st.one_of(st.integers(-5, 6000), st.floats(allow_nan=True), st.none()),
       t=st.one_of(st.integers(-5, 1005), st.floats(allow_nan=True)),
       seed=st.one_of(st.integers(-1, 2 ** 64), st.floats(allow_nan=True)))
def test_diffusion_forward_endpoint_input_space(served_app, index, t, seed):
    _, demo, _ = served_app
    panel = demo.panels["diffusion"]
    try:
        a, b, curves, text = panel.forward(index, t, seed, dataset="digits")
    except gr.Error as err:
        assert err.message
    else:
        assert a.shape == b.shape and "t = " in text


@pytest.mark.slow
def test_latent_grid_numbers_are_checked_on_the_server(served_app):
    _, demo, _ = served_app
    panel = demo.panels["latent_grid"]
    for n, span, message in ((float("nan"), 2.5, "Grid size"), (2.5, 2.5, "Grid size"), (15, float("nan"), "Grid range"),
                             (15, 99, "Grid range")):
        with pytest.raises(gr.Error, match=message):
            panel.grid_raster("digits/vae-2d", n, span)
    with pytest.raises(gr.Error, match="Temperature"):
        panel.on_sample("digits/vae-2d", 2.5, 0, float("inf"))
    with pytest.raises(gr.Error, match="a must be"):
        panel.api_decode("digits/vae-2d", float("nan"), 0.0)
    assert panel.grid_raster("digits/vae-2d", 5, 2.0).pixels.ndim == 3


def _call(url: str, api: str, *values) -> tuple[str, dict | list]:
    """One request through Gradio's HTTP API, as any client could send it: the body is written by Python's
    json, which spells non-finite floats as NaN/Infinity (the server's parser reads them; gradio_client
    refuses to send them at all). Returns the event ("complete" or "error") and its data."""
    import json

    import httpx

    sent = httpx.post(f"{url}gradio_api/call/{api}", content=json.dumps({"data": list(values)}),
                      headers={"content-type": "application/json"}, timeout=30)
    sent.raise_for_status()
    with httpx.stream("GET", f"{url}gradio_api/call/{api}/{sent.json()['event_id']}", timeout=60) as stream:
        lines = stream.read().decode().splitlines()
    event = next(line.split(": ", 1)[1] for line in lines if line.startswith("event: "))
    payload = next(line.split(": ", 1)[1] for line in lines if line.startswith("data: "))
    return event, json.loads(payload)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 9, 10 ** 9), st.none(),
                   st.text(max_size=8), st.booleans()),
       b=st.floats(-1e6, 1e6))
@example(a=float("inf"), b=0.0)
@example(a=float("nan"), b=0.0)
@example(a=0.5, b=-0.5)
def test_decode_endpoint_over_http_answers_or_refuses(served_app, a, b):
    import httpx

    url, _, _ = served_app
    event, data = _call(url, "decode", "digits/vae-2d", a, b)
    if event == "error":
        assert "must be" in data["error"], data
    else:
        assert event == "complete", (event, data)
        image = httpx.get(data[0]["url"], timeout=30)
        assert np.asarray(Image.open(io.BytesIO(image.content))).ndim >= 2
