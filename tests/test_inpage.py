"""Decoding in the page: the vendored runtime, the route serving it with our page code, the fallback to the server when the
browser has no WebAssembly, and the standalone page that works from file:// with no request."""
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import BROWSER_ARGS

RUNTIME = Path(__file__).resolve().parent.parent / "explorer" / "ui" / "web" / "vendor" / "onnxruntime-web"


def _fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_vendored_runtime_matches_its_recorded_hashes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("vendor_fetch", RUNTIME.parent / "fetch.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    assert fetch.verify(RUNTIME) == []
    meta = json.loads((RUNTIME / "VENDOR.json").read_text())
    assert meta["license"] == "MIT" and (RUNTIME / "LICENSE").is_file() and meta["version"]


def test_vendor_fetch_checks_integrity_and_hashes_on_a_local_tarball(tmp_path):
    """The re-fetch script, run against a small local tarball: a good one is written, a tampered file or a
    wrong integrity is refused and nothing is written."""
    import base64
    import hashlib
    import importlib.util
    import io
    import tarfile

    spec = importlib.util.spec_from_file_location("vendor_fetch", RUNTIME.parent / "fetch.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)

    def tarball(content: bytes) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("package/dist/a.js")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        return buf.getvalue()

    good = tarball(b"console.log(1)")
    folder = tmp_path / "pkg"
    folder.mkdir()
    meta = {"tarball": "https://example.invalid/pkg.tgz",
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(good).digest()).decode(),
            "files": {"a.js": hashlib.sha256(b"console.log(1)").hexdigest()}}
    (folder / "VENDOR.json").write_text(json.dumps(meta))

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    fetch.fetch(folder, opener=lambda url: Resp(good))
    assert (folder / "a.js").read_bytes() == b"console.log(1)" and fetch.verify(folder) == []
    (folder / "a.js").unlink()
    with pytest.raises(ValueError, match="integrity"):
        fetch.fetch(folder, opener=lambda url: Resp(tarball(b"console.log(2)")))
    evil = tarball(b"evil")  # the right integrity for its tarball, but not the recorded file hash
    meta["integrity"] = "sha512-" + base64.b64encode(hashlib.sha512(evil).digest()).decode()
    (folder / "VENDOR.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="SHA-256"):
        fetch.fetch(folder, opener=lambda url: Resp(evil))
    assert not (folder / "a.js").exists()

    # a file stored gzipped: the .gz is written (not the file), checked against both recorded hashes
    meta["integrity"] = "sha512-" + base64.b64encode(hashlib.sha512(good).digest()).decode()
    meta["gzipped"] = {"a.js": hashlib.sha256(fetch.gzipped(b"console.log(1)")).hexdigest()}
    (folder / "VENDOR.json").write_text(json.dumps(meta))
    assert fetch.fetch(folder, opener=lambda url: Resp(good)) == []
    assert not (folder / "a.js").exists() and (folder / "a.js.gz").is_file() and fetch.verify(folder) == []
    (folder / "a.js.gz").write_bytes(fetch.gzipped(b"console.log(2)"))
    assert any("SHA-256" in line for line in fetch.verify(folder))
    meta["gzipped"]["a.js"] = hashlib.sha256(fetch.gzipped(b"console.log(2)")).hexdigest()  # the .gz's own hash
    (folder / "VENDOR.json").write_text(json.dumps(meta))
    assert any("inflate" in line for line in fetch.verify(folder))  # ... but not the recorded original's


def _get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, b""


def test_the_web_route_serves_the_listed_files_and_nothing_else(served_app):
    """GET /web/<name>: our scripts, stylesheets and the runtime with their types and a year's cache when
    versioned; no other file of the folder, no traversal, and Gradio's file route serves none of them."""
    from explorer.ui.inpage import WEB_DIR, web_files, web_url

    url, _, _ = served_app
    files = web_files()
    assert {"lsx.js", "latent_grid.js", "latent_grid.css", "vendor/onnxruntime-web/ort.wasm.bundle.min.mjs"} <= set(files)
    status, headers, body = _get(url + web_url("lsx.js"))
    assert status == 200 and b"window.LSX" in body and headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in headers["Cache-Control"] and headers["X-Content-Type-Options"] == "nosniff"
    assert _get(url + web_url("lsx.js"), {"If-None-Match": headers["ETag"]})[0] == 304
    status, headers, _ = _get(url + "web/lsx.js?v=stale")
    assert status == 200 and headers["Cache-Control"] == "no-cache"  # an old page's URL: revalidated, not kept
    status, headers, body = _get(url + web_url("latent_grid.css"))
    assert status == 200 and headers["Content-Type"].startswith("text/css") and b".lsxg" in body
    status, _, body = _get(url + web_url("vendor/onnxruntime-web/ort.wasm.bundle.min.mjs"))
    assert status == 200 and body.startswith(b"/*!")
    for target in ["vendor/fetch.py", "vendor/onnxruntime-web/LICENSE", "../inpage.py", "..%2finpage.py",
                   "vendor/onnxruntime-web/../../lsx.js", "%2e%2e/%2e%2e/%2e%2e/app.py", "/etc/passwd",
                   "vendor", "vendor/onnxruntime-web/", "./lsx.js", "LSX.JS"]:
        status, _, body = _get(url + "web/" + target)
        assert status == 404 and b"import" not in body, (target, status)
    base = url + "gradio_api/file="  # no static folder is registered with Gradio any more
    for target in [WEB_DIR / "lsx.js", WEB_DIR / "vendor" / "onnxruntime-web" / "ort.wasm.bundle.min.mjs"]:
        status, _, body = _get(base + urllib.parse.quote(str(target)))
        assert status >= 400 and b"LSX" not in body, (target, status)


def test_the_runtime_wasm_is_stored_gzipped_and_served_with_content_encoding(served_app):
    """The repository holds only the .gz; the route sends it as application/wasm with Content-Encoding: gzip (the
    browser inflates it: the in-page tests decode with it), and inflated to a client that takes no gzip."""
    import gzip
    import hashlib

    from explorer.ui.inpage import web_url

    url, _, _ = served_app
    meta = json.loads((RUNTIME / "VENDOR.json").read_text())
    name = "ort-wasm-simd-threaded.wasm"
    assert not (RUNTIME / name).exists() and (RUNTIME / (name + ".gz")).stat().st_size < 4_500_000
    status, headers, body = _get(url + web_url("vendor/onnxruntime-web/" + name), {"Accept-Encoding": "gzip, br"})
    assert status == 200 and headers["Content-Encoding"] == "gzip" and headers["Content-Type"] == "application/wasm"
    assert hashlib.sha256(body).hexdigest() == meta["gzipped"][name]
    assert hashlib.sha256(gzip.decompress(body)).hexdigest() == meta["files"][name]
    status, headers, body = _get(url + "web/vendor/onnxruntime-web/" + name, {"Accept-Encoding": "identity"})
    assert status == 200 and headers.get("Content-Encoding") is None and body[:4] == b"\0asm"
    assert hashlib.sha256(body).hexdigest() == meta["files"][name]


def test_the_page_code_is_loaded_once_not_inlined_in_the_config(served_app):
    """Every gr.HTML mounts its panel with a one-line js_on_load and names its files in head; no copy of any
    script or stylesheet of web/ is in the config a page fetches."""
    from explorer.ui.inpage import WEB_DIR

    url, _, _ = served_app
    with urllib.request.urlopen(url + "config", timeout=30) as resp:
        body = resp.read().decode()
    config = json.loads(body)
    htmls = [c["props"] for c in config["components"] if c["type"] == "html" and c["props"].get("js_on_load")]
    assert len(htmls) >= 8
    for props in htmls:
        assert props["js_on_load"].startswith("LSX.mount(") and "\n" not in props["js_on_load"], props["js_on_load"][:80]
        assert "web/lsx.js?v=" in props["head"] and len(props["head"]) < 600
        assert not props.get("css_template")
    for path in sorted(WEB_DIR.glob("*.js")) + sorted(WEB_DIR.glob("*.css")):
        lines = [ln.strip() for ln in path.read_text().splitlines() if len(ln.strip()) > 40]
        for line in lines[:3] + lines[-3:]:  # a few distinctive lines of each file, as JSON would carry them
            assert json.dumps(line)[1:-1] not in body, (path.name, line)
    assert len(body) < 400_000  # was ~520 KB with the scripts inlined


def _wait_ready(pg, mode):
    pg.wait_for_function(f"() => window.lsxLatentGrid?.decoder?.mode === '{mode}' && window.lsxLatentGrid.frames > 0",
                         timeout=90_000)


@pytest.mark.browser
def test_without_webassembly_the_page_decodes_on_the_server(served_app):
    """A browser without WebAssembly: the same panel works through the server fallback. (Chromium 156 keeps
    WebAssembly under --js-flags=--noexpose_wasm, so the page's WebAssembly is deleted before any script.)"""
    import numpy as np

    playwright = pytest.importorskip("playwright.sync_api")
    url, _, store = served_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=BROWSER_ARGS + ["--js-flags=--noexpose_wasm"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.add_init_script("delete globalThis.WebAssembly")
        pg.goto(url)
        _wait_ready(pg, "server")
        assert pg.evaluate("() => typeof WebAssembly") == "undefined"
        assert "Server:" in pg.locator(".lsxg-mode").inner_text()
        frames = pg.evaluate("() => window.lsxLatentGrid.frames")
        box = pg.locator("#lsx-z-2").bounding_box()
        pg.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)
        pg.wait_for_function("(f) => window.lsxLatentGrid.frames > f", arg=frames, timeout=30_000)
        last = pg.evaluate("() => ({values: window.lsxLatentGrid.last.values, image: Array.from(window.lsxLatentGrid.last.image)})")
        import torch

        z = store.view("digits/vae-2d").plane.inverse_transform(np.asarray(last["values"])[None])
        want = store.model("digits/vae-2d").decode(torch.as_tensor(z, dtype=torch.float32)).numpy().ravel()
        assert np.abs(np.asarray(last["image"]) - want).max() <= 0.5 / 255 + 1e-6  # uint8 over the wire
        pg.wait_for_function("() => window.lsxLatentGrid.gridKey && window.lsxLatentGrid.gridKey.endsWith('server')",
                             timeout=60_000)
        browser.close()


@pytest.mark.browser
def test_the_standalone_page_works_from_disk_with_no_request(served_app, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    _, demo, _ = served_app
    path = Path(demo.panels["latent_grid"].standalone("digits/vae-2d"))
    assert path.suffix == ".html" and 4_000_000 < path.stat().st_size < 9_000_000  # the runtime is inside, gzipped
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        requests = []
        pg.on("request", lambda r: requests.append(r.url))
        pg.goto(path.as_uri())
        _wait_ready(pg, "page")
        first = pg.evaluate("() => Array.from(window.lsxLatentGrid.last.image)")
        box = pg.locator("#lsx-z-1").bounding_box()
        y = box["y"] + box["height"] / 2
        pg.mouse.move(box["x"] + box["width"] * 0.2, y)
        pg.mouse.down()
        for i in range(20):
            pg.mouse.move(box["x"] + box["width"] * (0.2 + 0.03 * i), y)
        pg.mouse.up()
        pg.wait_for_timeout(200)
        assert pg.evaluate("() => Array.from(window.lsxLatentGrid.last.image)") != first
        assert pg.evaluate("() => window.lsxLatentGrid.gridKey").endswith("page")
        browser.close()
    leaving = [u for u in requests if not u.startswith(("file:", "blob:", "data:"))]
    assert leaving == [] and requests[0] == path.as_uri()
