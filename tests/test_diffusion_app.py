"""The Diffusion panel through gradio_client and a real browser, over tiny untrained diffusion checkpoints."""
import numpy as np
import pytest
from PIL import Image

from conftest import BROWSER_ARGS, launched_app, randomised
from explorer import checkpoints, diffusion, models


def build_diffusion_zoo(root):
    """digits/{vae-2d, ddpm-tiny, ldm-tiny} under ``root``: random weights are enough to exercise the panel."""
    from explorer import data

    vae_cfg = {"latent_dim": 2, "channels": 8, "hidden": 32}
    vae = models.build("vae", vae_cfg).eval()
    meta = {"dataset": "digits", "command": "python -m explorer.training x --dataset digits"}
    checkpoints.save(vae, root / "digits" / "vae-2d", "vae", meta)
    pixel = randomised(models.build("ddpm", {"channels": 8, "mults": [1, 2], "attention": False, "timesteps": 100}))
    checkpoints.save(pixel, root / "digits" / "ddpm-tiny", "ddpm", meta)
    ldm = models.build("ddpm", {"space": "latent", "vae": "digits/vae-2d", "vae_config": vae_cfg, "latent_dim": 2,
                                "hidden": 32, "blocks": 1, "timesteps": 40})
    ldm.fit_codes(vae, data.load("digits", "test").floats()[:200])
    checkpoints.save(randomised(ldm, 1), root / "digits" / "ldm-tiny", "ddpm", meta)
    return root


@pytest.fixture(scope="module")
def diffusion_zoo(tmp_path_factory):
    return build_diffusion_zoo(tmp_path_factory.mktemp("diffzoo"))


@pytest.fixture(scope="module")
def diffusion_app(diffusion_zoo):
    with launched_app(diffusion_zoo) as (url, demo, _):
        yield url, demo


def _img(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.int16)


@pytest.mark.slow
def test_forward_endpoint_shows_both_schedules_noising_the_same_image(diffusion_app):
    from gradio_client import Client

    client = Client(diffusion_app[0], verbose=False)
    lin0, cos0, curves, text0 = client.predict(5, 0, 0, api_name="/diffusion_forward")
    np.testing.assert_array_equal(_img(lin0), _img(cos0))  # t = 0: the clean image under both
    lin, cos, _, text = client.predict(5, 300, 0, api_name="/diffusion_forward")
    lin_end, _, _, _ = client.predict(5, 1000, 0, api_name="/diffusion_forward")
    d_lin, d_cos = (np.abs(_img(a) - _img(lin0)).mean() for a in (lin, cos))
    assert d_lin > d_cos > 0           # at t = 300 linear has destroyed more of the image than cosine
    assert np.abs(_img(lin_end) - _img(lin0)).mean() > d_lin
    assert "linear" in text and "cosine" in text and "clean" in text0
    assert _img(curves).shape[1] > 400


@pytest.mark.slow
def test_run_streams_every_step_then_scrubs_and_exports_a_gif_and_an_mp4(diffusion_app):
    from gradio_client import Client

    client = Client(diffusion_app[0], verbose=False)
    job = client.submit("digits/ddpm-tiny", "DDIM", 5, 0.0, "each class in turn", 2.0, 3, 4,
                        api_name="/diffusion_run")
    outputs = list(job)
    statuses = [o[1] for o in outputs]
    assert sum("step " in s for s in statuses) == 5 and "done" in statuses[-1]
    final = job.result()
    assert "ms per image" in final[1]
    frame, text = client.predict(1, api_name="/diffusion_scrub")  # frame numbers 1..6, as the caption counts
    # the spacing left out: the control's value, the pixel model's own (trailing: the chain starts at T)
    assert "frame 1/6" in text and f"t = {diffusion.timesteps(100, 5, 'trailing')[0] + 1}" in text
    last, text = client.predict(6, api_name="/diffusion_scrub")
    assert "final sample" in text and not np.array_equal(_img(frame), _img(last))
    gif = Image.open(client.predict(api_name="/diffusion_gif"))
    assert gif.format == "GIF" and gif.n_frames == 6
    import av

    with av.open(client.predict(api_name="/diffusion_mp4")) as video:
        stream = video.streams.video[0]
        decoded = [f.to_ndarray(format="gray") for f in video.decode(stream)]
        assert stream.codec_context.name == "h264"
    first = _img(frame).repeat(3, 0).repeat(3, 1)      # streamed at 1x, exported at 3x
    assert len(decoded) == 5 + 25                      # 5 steps, then the final sample held 1.5 s at 60 ms
    h, w = first.shape
    assert decoded[0].shape == (h + h % 2, w + w % 2)  # padded to even sides for yuv420p
    assert np.abs(decoded[0][:h, :w].astype(float) - first).mean() < 4   # the frames, not a blank video


@pytest.mark.slow
def test_same_seed_same_samples_and_pixel_vs_latent(diffusion_app):
    _, demo = diffusion_app
    panel = demo.panels["diffusion"]
    runs = [list(panel.frames("digits/ddpm-tiny", "DDIM", 4, 0.0, "unconditional (null label)", 1.0, s, 2))
            for s in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0][-1][0], runs[1][-1][0])
    assert not np.array_equal(runs[0][-1][0], runs[2][-1][0])
    a, a_text, b, b_text = panel.compare("digits/ddpm-tiny", "digits/ldm-tiny", 5, 0.0, "each class in turn", 0, 4)
    assert a.shape == b.shape and "ms per image" in a_text and "ldm-tiny" in b_text
    assert "trailing timesteps" in a_text and "leading timesteps" in b_text  # each model's own, named
    with pytest.raises(Exception, match="Steps must be between"):
        list(panel.frames("digits/ddpm-tiny", "DDIM", 101, 0.0, "each class in turn", 1.0, 0, 2))
    for eta, guidance, message in ((float("nan"), 1.0, "eta must be between 0 and 1"),
                                   (1.5, 1.0, "eta must be between 0 and 1"),
                                   (0.0, -1.0, "guidance scale must be between 0 and 6"),
                                   (0.0, float("inf"), "guidance scale must be between 0 and 6")):
        with pytest.raises(Exception, match=message):
            list(panel.frames("digits/ddpm-tiny", "DDIM", 4, eta, "each class in turn", guidance, 0, 2))
    with pytest.raises(Exception, match="eta must be between"):
        panel.compare("digits/ddpm-tiny", "digits/ldm-tiny", 5, -0.1, "each class in turn", 0, 4)


@pytest.mark.slow
def test_the_timestep_spacing_control_changes_the_chain_and_says_so(diffusion_app):
    from explorer import diffusion

    _, demo = diffusion_app
    panel = demo.panels["diffusion"]
    args = ("digits/ddpm-tiny", "DDIM", 4, 0.0, "each class in turn", 1.0, 3, 2)
    lead, trail = (list(panel.frames(*args, spacing)) for spacing in ("leading", "trailing"))
    T = panel.store.zoo.info("digits/ddpm-tiny")["config"]["timesteps"]
    assert [t for *_, t in trail[:-1]] == diffusion.timesteps(T, 4, "trailing")  # starts at T-1
    assert [t for *_, t in lead[:-1]] == diffusion.timesteps(T, 4)
    assert not np.array_equal(lead[-1][0], trail[-1][0])
    assert "trailing timesteps" in trail[-1][1] and "leading timesteps" in lead[-1][1]
    full = list(panel.frames("digits/ddpm-tiny", "DDIM", T, 0.0, "each class in turn", 1.0, 3, 1, "trailing"))
    assert "timesteps" not in full[-1][1]  # all T steps: nothing to choose
    with pytest.raises(Exception, match="Timesteps must be one of leading, trailing"):
        list(panel.frames(*args, "middle"))
    # unset: the model's own spacing, which choosing the model also puts in the control
    assert [t for *_, t in list(panel.frames(*args))[:-1]] == diffusion.timesteps(T, 4, "trailing")  # pixels
    T_ldm = panel.store.zoo.info("digits/ldm-tiny")["config"]["timesteps"]
    assert [t for *_, t in list(panel.frames("digits/ldm-tiny", *args[1:]))[:-1]] == diffusion.timesteps(T_ldm, 4)
    assert [u.get("value") for u in (panel.on_model("digits/ddpm-tiny", 4)[1], panel.on_model("digits/ldm-tiny", 4)[1])] \
        == ["trailing", "leading"]


@pytest.mark.slow
def test_tradeoff_chart_reads_the_shipped_measurements(diffusion_app, diffusion_zoo):
    import json

    _, demo = diffusion_app
    panel = demo.panels["diffusion"]
    pixels, text = panel.tradeoff()
    assert pixels is None and "diffusion_tradeoff.py" in text
    rows = [{"sampler": "ddim", "eta": eta, "steps": s, "fid": 100.0 / s ** (0.5 - eta / 4), "ms_per_image": 1.0}
            for eta in (0.0, 1.0) for s in (10, 50, 100)]
    (diffusion_zoo / "digits" / "ddpm-tiny" / "tradeoff.json").write_text(json.dumps(
        {"model": "digits/ddpm-tiny", "fid_n": 100, "fid_floor": 2.0, "rows": rows}))
    try:
        pixels, text = panel.tradeoff()
        assert pixels.ndim == 3 and "N = 100" in text and "floor 2.00" in text
        assert "weights" not in text  # an older file that does not say which weights it measured
        assert "leading timesteps" in text  # ... nor its spacing: those were leading
        from explorer import export

        sha = export.weights_sha256(panel.store.zoo, "digits/ddpm-tiny")
        for recorded, stale in ((sha, False), ("0" * 64, True)):
            (diffusion_zoo / "digits" / "ddpm-tiny" / "tradeoff.json").write_text(json.dumps(
                {"model": "digits/ddpm-tiny", "fid_n": 100, "fid_floor": 2.0, "rows": rows, "epochs": 33,
                 "weights_sha256": recorded}))
            again, text = panel.tradeoff()
            assert "(33-epoch weights)" in text and "leading timesteps" in text
            assert ("measured on other weights" in text) == stale
            assert ("diffusion_tradeoff.py --models digits/ddpm-tiny" in text) == stale
        rows[0]["fid"] *= 3  # re-measured while the server runs: charted afresh, not from the cache
        (diffusion_zoo / "digits" / "ddpm-tiny" / "tradeoff.json").write_text(json.dumps(
            {"model": "digits/ddpm-tiny", "fid_n": 100, "fid_floor": 2.0, "rows": rows, "spacing": "trailing"}))
        pixels, text = panel.tradeoff()
        assert not np.array_equal(pixels, again) and "trailing timesteps (chains shorter than T)" in text
    finally:
        (diffusion_zoo / "digits" / "ddpm-tiny" / "tradeoff.json").unlink()


playwright = pytest.importorskip("playwright.sync_api")


@pytest.mark.browser
def test_browser_run_animates_and_the_scrubber_moves(diffusion_app, tmp_path):
    url, _ = diffusion_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.goto(url + "?diffusion=server")  # the server path (tests/test_inpage_diffusion.py covers the page's)
        page.get_by_role("tab", name="Diffusion").click()
        page.wait_for_function("() => window.lsxDiffusionForward?.drawn > 0", timeout=30_000)  # the tab is filled
        assert page.locator("#diff-steps input[type=number]").input_value() == "50"
        page.locator("#diff-run").click()
        page.wait_for_function("() => document.querySelector('#diff-status')?.innerText.includes('done')",
                               timeout=60_000)
        assert page.locator("#diff-frame img").count() == 1
        first = page.eval_on_selector("#diff-frame img", "img => img.src")
        number = page.locator("#diff-scrub input[type=number]")
        number.fill("1")
        number.press("Enter")
        page.wait_for_function("() => document.querySelector('#diff-status')?.innerText.includes('frame 1/')",
                               timeout=15_000)
        assert page.eval_on_selector("#diff-frame img", "img => img.src") != first
        # Stop: a long DDPM run ends early, keeps no "done", and what was computed can be scrubbed
        steps = page.locator("#diff-steps input[type=number]")
        steps.fill("100")
        steps.press("Enter")
        page.locator("#diff-server").get_by_role("radio", name="DDPM").check()
        page.locator("#diff-run").click()
        # streamed frames may be coalesced under load: wait for any step >= 3 of 100, not exactly step 3
        page.wait_for_function("""() => { const m = (document.querySelector('#diff-status')?.innerText || '')
                                              .match(/step (\\d+)\\/100/);
                                          return m && +m[1] >= 3; }""", timeout=60_000)
        page.locator("#diff-stop").click()
        page.wait_for_timeout(2000)
        status = page.locator("#diff-status").inner_text()
        assert "done" not in status and "/100" in status
        # "step k/100" shown means k frames kept, so the scrubber's last frame number is at least k >= 3 (under load
        # Stop can land before another frame arrives)
        assert 3 <= int(page.locator("#diff-scrub input[type=number]").input_value()) <= 100
        page.screenshot(path=str(tmp_path / "diffusion.png"), full_page=True)
        browser.close()


@pytest.mark.slow
def test_light_events_are_served_while_diffusion_runs_fill_their_slots(diffusion_app):
    """Diffusion runs have their own concurrency group (half the cores): with as many runs submitted as the
    model group has slots, a prior sample on the Latent grid is still answered before any run has ended."""
    import os
    import time

    from gradio_client import Client

    client = Client(diffusion_app[0], verbose=False)
    runs = [Client(diffusion_app[0], verbose=False).submit("digits/ddpm-tiny", "DDPM", 100, 1.0, "each class in turn",
                                                           2.0, i, 16, api_name="/diffusion_run")
            for i in range(os.cpu_count() or 2)]
    end = time.monotonic() + 60
    while not any(j.status().code.name in ("PROCESSING", "ITERATING", "PROGRESS") or j.done() for j in runs):
        assert time.monotonic() < end, [j.status().code.name for j in runs]
        time.sleep(0.02)
    image, _ = client.predict("digits/vae-2d", 2.5, 1, 1.0, api_name="/sample")
    running = [not j.done() for j in runs]
    results = [j.result() for j in runs]
    assert _img(image).shape[:2] == (28, 28)
    assert all(running), "the sample waited behind the diffusion runs"
    assert all("done" in r[1] for r in results)
