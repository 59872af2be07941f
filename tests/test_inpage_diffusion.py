"""Diffusion in the page (explorer/ui/web/diffusion.js): the page's sampler ends where ``model.sample`` ends when
both start from the same x_T and draw the same per-step noise; the standalone page denoises offline from disk;
in the app a Run sends the server nothing; without WebAssembly the page says so and the server path runs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BROWSER_ARGS, launched_app
from explorer import diffusion, export
from explorer.checkpoints import Zoo

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")
pytest.importorskip("onnxruntime")

ZOO = Zoo()
TOL = 1e-3


def chain_noise(model, n, steps, sampler, eta, seed, spacing):
    """x_T and every per-step noise draw, in the order ``model.sample`` draws them from ``Generator(seed)``
    (explorer/diffusion.py: x_T, then one draw per step that adds noise: DDPM and DDIM with eta > 0, never on
    the last step). Handing these to the page gives it exactly the chain's randomness."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, *model.sample_shape)
    x_T = diffusion.randn(shape, g)
    ts = diffusion.timesteps(model.config.timesteps, steps, spacing)
    noisy = sampler == "ddpm" or eta > 0
    noise = [diffusion.randn(shape, g) for i in range(len(ts)) if noisy and i + 1 < len(ts)]
    return x_T, noise


def _open(pg, path):
    pg.goto(Path(path).as_uri())
    pg.wait_for_function("() => window.lsxDiffusion && ['page', 'server'].includes(window.lsxDiffusion.mode)",
                         timeout=90_000)
    assert pg.evaluate("() => window.lsxDiffusion.mode") == "page"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Standalone pages (explorer/ui/standalone.py) of a pixel and a latent model: the page's code, the UNet, the
    latent model's decoder and the runtime, from disk."""
    from explorer.ui.diffusion import PageModels
    from explorer.ui.standalone import write_diffusion_page
    from explorer.ui.store import Store

    store = Store(ZOO)
    models = PageModels(store)
    out = tmp_path_factory.mktemp("pages")
    return {name: write_diffusion_page(store, models, name, out / f"{name.replace('/', '-')}.html")
            for name in ("fashion-mnist/ddpm-cosine", "fashion-mnist/ldm-vae-16")}


CASES = [("ddpm", 0.0, 1.0), ("ddpm", 0.0, 3.0), ("ddim", 0.0, 1.0), ("ddim", 0.0, 3.0), ("ddim", 1.0, 1.0),
         ("ddim", 1.0, 3.0), ("ddim", 0.0, 0.0)]


@pytest.mark.parametrize("name", ["fashion-mnist/ddpm-cosine", "fashion-mnist/ldm-vae-16"])
def test_the_pages_chain_ends_where_model_sample_ends(pages, name):
    model = ZOO.load(name, device="cpu")
    model.precision = "float32"  # the page computes in float32; bfloat16 autocast would differ by ~1e-2
    # 25 steps: with trailing timesteps the first step divides by sqrt(alpha_bar_{T-1}) ~ 4e-5, so the ONNX network's
    # ~1e-6 float differences from torch grow there; at 12 steps and w = 3 onnxruntime in Python already ends
    # 1.5e-3 from torch (and the page 1.2e-3), at 25 steps and more both stay near 1e-4
    n, steps, labels = 3, 25, [0, 7, None]
    spacing = model.config.sampling_spacing
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page()
        _open(pg, pages[name])
        for k, (sampler, eta, w) in enumerate(CASES):
            seed = 10 + k
            x_T, noise = chain_noise(model, n, steps, sampler, eta, seed, spacing)
            def past_x_T():  # Generator(seed) past x_T: where the page's noise list starts
                g = torch.Generator().manual_seed(seed)
                diffusion.randn(x_T.shape, g)
                return g

            kw = dict(steps=steps, sampler=sampler, eta=eta, guidance=w, labels=labels, x_T=x_T)
            *_, last = model.sample_progressive(n, generator=past_x_T(), **kw)
            want_images = model.sample(n, generator=past_x_T(), **kw)
            got = pg.evaluate("(o) => window.lsxDiffusion.sample(o)", {
                "n": n, "steps": steps, "sampler": sampler, "eta": eta, "guidance": w, "spacing": spacing,
                "labels": [model.null_label if v is None else v for v in labels],
                "xT": x_T.flatten().tolist(), "noise": [z.flatten().tolist() for z in noise]})
            assert got["used"] == len(noise)  # every draw consumed, in order
            x = np.asarray(got["x"]).reshape(last.prev_sample.shape)
            assert np.abs(x - last.prev_sample.numpy()).max() <= TOL, (name, sampler, eta, w)
            images = np.asarray(got["images"]).reshape(want_images.shape)
            assert np.abs(images - want_images.numpy()).max() <= TOL, (name, sampler, eta, w)
        browser.close()


def test_the_standalone_page_denoises_from_disk_with_no_request(pages):
    path = pages["fashion-mnist/ldm-vae-16"]
    assert 5_000_000 < path.stat().st_size < 12_000_000  # runtime (gzipped), UNet and decoder inside
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 720})
        requests = []
        pg.on("request", lambda r: requests.append(r.url))
        _open(pg, path)
        pg.locator(".lsxd-steps").fill("20")
        pg.locator(".lsxd-run").click()
        pg.wait_for_function("() => document.querySelector('.lsxd-status').textContent.includes('done')",
                             timeout=60_000)
        frames = pg.evaluate("""() => { const S = window.lsxDiffusion;
            return {n: S.frames.length, first: Array.from(S.frames[0].data.slice(0, 4000)),
                    last: Array.from(S.frames[S.frames.length - 1].data.slice(0, 4000))}; }""")
        assert frames["n"] == 21 and frames["first"] != frames["last"]  # 20 steps and the sample; they change
        assert pg.locator(".lsxd-frameno").inner_text().startswith("frame 21/21")
        # the page takes the app's URL parameters: a prepared run opens with its settings
        pg.goto(path.as_uri() + "?steps=9&seed=5&label=none")
        pg.wait_for_function("() => window.lsxDiffusion && window.lsxDiffusion.mode === 'page'", timeout=90_000)
        assert pg.evaluate("""() => [document.querySelector('.lsxd-steps').value, document.querySelector('.lsxd-seed').value,
            document.querySelector('.lsxd-class').value]""") == ["9", "5", "unconditional (null label)"]
        browser.close()
    leaving = [u for u in requests if not u.startswith(("file:", "blob:", "data:"))]
    assert leaving == [] and requests[0] == path.as_uri()


# ---------------------------------------------------------------- in the app
@pytest.fixture(scope="module")
def diffusion_app(tmp_path_factory):
    from test_diffusion_app import build_diffusion_zoo

    from explorer import checkpoints, models

    root = build_diffusion_zoo(tmp_path_factory.mktemp("diffzoo"))
    zoo = Zoo(root)
    # the tiny latent model's VAE was perturbed with it: ship that VAE as digits/vae-2d, whose ONNX decoder the
    # page runs (PageModels.spec checks that the two are the same weights, else the model samples on the server)
    ldm = zoo.load("digits/ldm-tiny", device="cpu")
    vae = models.build("vae", ldm.config.vae_config).eval()
    vae.load_state_dict(ldm.vae.state_dict())
    checkpoints.save(vae, root / "digits" / "vae-2d", "vae", {"dataset": "digits", "command": "tests"})
    for name in zoo.available("ddpm"):
        export.build_unet(zoo, name)  # what the app's warm-up builds
    with launched_app(root) as served:
        yield served


def _tab(pg, url, query=""):
    pg.goto(url + query)
    pg.get_by_role("tab", name="Diffusion").click()
    pg.wait_for_function("() => window.lsxDiffusion && ['page', 'server'].includes(window.lsxDiffusion.mode)",
                         timeout=60_000)


def _settle(pg):
    pg.wait_for_function("() => window.lsxDiffusionForward?.drawn > 0", timeout=30_000)  # the tab is filled
    pg.mouse.wheel(0, 5000)  # lazy images below load now, not during the run
    pg.wait_for_timeout(300)
    pg.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=30_000)
    pg.locator(".lsxd-run").scroll_into_view_if_needed()
    pg.wait_for_timeout(500)


def test_a_run_in_the_app_sends_the_server_nothing(diffusion_app, tmp_path):
    url, _, _ = diffusion_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        _tab(pg, url)
        assert pg.evaluate("() => window.lsxDiffusion.mode") == "page"
        assert not pg.locator("#diff-server").is_visible()  # the server's controls are not needed
        requests, recording = [], []
        pg.on("request", lambda r: recording and requests.append(r.url))
        for model in ("digits/ddpm-tiny", "digits/ldm-tiny"):
            if model != pg.evaluate("() => window.lsxDiffusion.spec.name"):
                pg.locator("#diff-model input").click()
                pg.get_by_role("option", name=model).click()
                pg.wait_for_function("(m) => window.lsxDiffusion.spec && window.lsxDiffusion.spec.name === m && "
                                     "window.lsxDiffusion.mode === 'page'", arg=model, timeout=60_000)
            pg.locator(".lsxd-steps").fill("30")
            _settle(pg)  # the tab's own images (forward view, chart) loaded: any request after this is the run's
            recording.append(1)
            pg.locator(".lsxd-run").click()
            pg.wait_for_function("() => document.querySelector('.lsxd-status').textContent.includes('done')",
                                 timeout=60_000)
            recording.clear()
            assert requests == [], requests  # the server heard nothing during the run
            assert pg.evaluate("() => window.lsxDiffusion.frames.length") == 31
        # the "x_t" / "predicted x_0" heading sits above the frame, not over its first tile (issue 29)
        heads, frame = pg.locator(".lsxd-heads").bounding_box(), pg.locator(".lsxd-frame").bounding_box()
        assert heads["y"] + heads["height"] <= frame["y"] + 0.5
        # scrub: the scrubber and the caption count frames the same way
        pg.locator(".lsxd-scrub").fill("16")
        assert pg.locator(".lsxd-frameno").inner_text().startswith("frame 16/31")
        pg.locator(".lsxd-gif").click()
        link = pg.locator(".lsxd-gif-link")
        assert link.is_visible() and "KB" in link.inner_text()
        pg.screenshot(path=str(tmp_path / "diffusion-in-page.png"), full_page=True)
        # the GIF is a GIF of every stored frame
        data = pg.evaluate("""async () => { const a = document.querySelector('.lsxd-gif-link');
            const b = new Uint8Array(await (await fetch(a.href)).arrayBuffer()); return Array.from(b); }""")
        from PIL import Image
        import io

        gif = Image.open(io.BytesIO(bytes(data)))
        assert gif.format == "GIF" and gif.n_frames == 31
        browser.close()


def test_the_run_settings_live_in_the_url_and_back_restores_them(diffusion_app):
    """A slide links to a prepared run (issue 29): ?steps=&seed=&label=... set the controls; Run writes the
    settings into the URL as a new history entry, and Back brings the previous ones back."""
    url, _, _ = diffusion_app
    controls = """() => ({steps: document.querySelector('.lsxd-steps').value, seed: document.querySelector('.lsxd-seed').value,
      eta: document.querySelector('.lsxd-eta').value, label: document.querySelector('.lsxd-class').value,
      sampler: document.querySelector('input[name=lsxd-sampler]:checked').value,
      spacing: document.querySelector('input[name=lsxd-spacing]:checked').value,
      batch: document.querySelector('.lsxd-batch').value})"""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        _tab(pg, url, "?steps=7&seed=3&eta=0&label=none&sampler=ddim&spacing=leading&batch=4")
        assert pg.evaluate(controls) == {"steps": "7", "seed": "3", "eta": "0", "label": "unconditional (null label)",
                                         "sampler": "ddim", "spacing": "leading", "batch": "4"}
        pg.locator(".lsxd-seed").fill("11")
        pg.locator(".lsxd-class").select_option(index=2)  # the first class
        first = pg.evaluate("() => document.querySelector('.lsxd-class').value")
        pg.locator(".lsxd-run").click()
        pg.wait_for_function("() => document.querySelector('.lsxd-status').textContent.includes('done')",
                             timeout=60_000)
        assert "seed=11" in pg.url and "steps=7" in pg.url and "label=" + first in pg.url.replace("%20", " ")
        pg.go_back()
        pg.wait_for_function("() => document.querySelector('.lsxd-seed').value === '3'", timeout=10_000)
        assert pg.evaluate(controls)["label"] == "unconditional (null label)"
        browser.close()


def test_stop_keeps_the_steps_so_far_for_the_scrubber(diffusion_app):
    url, _, _ = diffusion_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        _tab(pg, url)
        pg.locator(".lsxd-steps").fill("100")
        pg.locator(".lsxd-speed").select_option("100")  # 10 frames/s: slow enough to stop half-way
        pg.locator("input[name=lsxd-sampler][value=ddpm]").check()
        pg.locator(".lsxd-run").click()
        pg.wait_for_function("() => window.lsxDiffusion.frames.length >= 3", timeout=60_000)
        pg.locator(".lsxd-stop").click()
        pg.wait_for_function("() => !window.lsxDiffusion.running", timeout=10_000)
        n = pg.evaluate("() => window.lsxDiffusion.frames.length")
        assert 3 <= n < 100 and "stopped" in pg.locator(".lsxd-status").inner_text()
        assert pg.locator(".lsxd-frameno").inner_text().startswith(f"frame {n}/{n}")
        browser.close()


def test_without_webassembly_the_page_says_so_and_the_server_runs(diffusion_app):
    url, _, _ = diffusion_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=BROWSER_ARGS + ["--js-flags=--noexpose_wasm"])
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.add_init_script("delete globalThis.WebAssembly")
        _tab(pg, url)
        assert pg.evaluate("() => window.lsxDiffusion.mode") == "server"
        assert "no WebAssembly" in pg.locator(".lsxd-mode").inner_text()
        assert pg.locator("#diff-server").is_visible() and pg.locator(".lsxd-run").is_disabled()
        pg.locator("#diff-steps input[type=number]").fill("5")
        pg.locator("#diff-steps input[type=number]").press("Enter")
        pg.locator("#diff-run").click()
        pg.wait_for_function("() => document.querySelector('#diff-status')?.innerText.includes('done')",
                             timeout=60_000)
        browser.close()


def test_before_the_onnx_exists_the_page_says_so_then_switches(diffusion_app, monkeypatch):
    """A model whose UNet is not built: the page runs on the server and says why, while the app builds it."""
    url, demo, store = diffusion_app
    models = demo.panels["diffusion"].page_models
    name = "digits/ddpm-tiny"
    path = export.unet_cached(store.zoo, name)
    held = path.read_bytes()
    path.unlink()
    import threading

    release = threading.Event()  # the build waits until the page has been seen saying so
    real = export.build_unet
    monkeypatch.setattr(export, "build_unet", lambda *a, **k: (release.wait(120), real(*a, **k))[-1])
    try:
        spec = models.spec(name)
        assert spec["sha"] is None and spec["building"] and "being built" in spec["note"]
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            _tab(pg, url)
            assert pg.evaluate("() => window.lsxDiffusion.mode") == "server"
            assert "being built" in pg.locator(".lsxd-mode").inner_text()
            assert pg.locator("#diff-server").is_visible()
            release.set()
            pg.wait_for_function("() => window.lsxDiffusion.mode === 'page'", timeout=60_000)  # built: it switches
            assert not pg.locator("#diff-server").is_visible()
            browser.close()
    finally:
        release.set()
        if not path.exists():
            path.write_bytes(held)
    assert json.loads(json.dumps(models.spec(name)))["sha"]


def test_the_forward_view_computes_the_closed_form_in_the_page(diffusion_app):
    from explorer import data, schedules

    url, _, _ = diffusion_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        _tab(pg, url)
        _settle(pg)
        requests, recording = [], [1]
        pg.on("request", lambda r: recording and requests.append(r.url))
        drawn = pg.evaluate("() => window.lsxDiffusionForward.drawn")
        t = pg.locator(".lsxf-t")
        t.focus()
        for _ in range(10):
            t.press("ArrowRight")  # 250 -> 260, one closed form per step
        pg.wait_for_function("(d) => window.lsxDiffusionForward.drawn >= d + 10", arg=drawn)
        assert requests == []  # t moves in the page alone
        got = pg.evaluate("""() => { const F = window.lsxDiffusionForward;
            return {t: F.last.t, eps: Array.from(F.eps), x: {linear: Array.from(F.last.linear), cosine: Array.from(F.last.cosine)},
                    index: F.spec.image.index, dataset: F.spec.dataset, caption: document.querySelector('.lsxf-caption').textContent}; }""")
        assert got["t"] == 260 and "t = 260" in got["caption"]
        x0 = data.load_assets(got["dataset"]).floats()[got["index"]:got["index"] + 1] * 2 - 1
        eps = torch.tensor(got["eps"]).reshape(x0.shape)
        for name in ("linear", "cosine"):
            want = diffusion.q_sample(schedules.make_schedule(name, 1000), x0, got["t"] - 1, eps)
            assert np.abs(np.asarray(got["x"][name]).reshape(want.shape) - want.numpy()).max() <= 1e-5
        # a new test image: the view's one request, a server function (no queue)
        pg.locator(".lsxf-index").focus()
        pg.locator(".lsxf-index").press("ArrowRight")
        pg.wait_for_function("() => window.lsxDiffusionForward.spec.image.index === 1", timeout=10_000)
        assert len(requests) == 1 and "component_server" in requests[0]
        browser.close()


def test_download_as_a_page_from_the_panel(diffusion_app):
    _, demo, _ = diffusion_app
    for name in ("digits/ddpm-tiny", "digits/ldm-tiny"):
        path = Path(demo.panels["diffusion"].standalone(name))
        text = path.read_text()
        assert path.name.endswith("-diffusion.html") and '"inline_unet": "' in text
        assert ('"inline_decoder": "' in text) == (name == "digits/ldm-tiny")  # the latent model's codes' decoder
        assert "connect-src 'none'" in text  # the page may not fetch anything
