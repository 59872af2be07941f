""""Download as a page": one self-contained HTML file with a model's map, its ONNX decoder and the
onnxruntime-web runtime inlined, running the Latent grid's own page code. It works opened from disk
(file://), offline, with no Python and no request leaving the page.

The Diffusion panel's page (:func:`write_diffusion_page`) is built the same way: the model's eps network
(ONNX), for a latent model its VAE's decoder, the sampler (web/diffusion.js) and the runtime."""
from __future__ import annotations

import base64
import html
import json
import re
import tempfile
from pathlib import Path

from .. import export
from .inpage import RUNTIME_DIR, RUNTIME_WASM, source

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval' blob: 'wasm-unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; connect-src 'none'">
<title>@@TITLE@@ · Latent Space Explorer</title>
<style>
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1280px; padding: 0 16px; color: #1f2937; }
h1 { font-size: 1.3rem; margin: 0 0 4px; } p.note { color: #555; font-size: 0.9rem; margin: 0 0 16px; }
@@CSS@@
</style></head>
<body>
<h1>@@TITLE@@</h1>
<p class="note">Drag the sliders, or click and drag on the map or the grid; hover the map to preview. Everything runs in
this page: the decoder (ONNX, exported from the checkpoint's weights, SHA-256 @@SHA@@) and onnxruntime-web @@ORTV@@.
Made by Latent Space Explorer.</p>
<div id="lsx-root"></div>
<script type="text/plain" id="lsx-ort">@@ORT@@</script>
<script type="text/plain" id="lsx-wasm">@@WASM@@</script>
<script type="application/json" id="lsx-model">@@MODEL@@</script>
<script>
(function () {
  const element = document.getElementById('lsx-root');
  const props = JSON.parse(document.getElementById('lsx-model').textContent);
  const trigger = () => {};  // no server: the final point stays in the page
@@LSX@@
  LSX.ortSource = document.getElementById('lsx-ort').textContent;
  LSX.wasmGz = LSX.b64bytes(document.getElementById('lsx-wasm').textContent);  // inflated when first needed
@@PANEL@@
  LSX.mount('latent_grid', element, trigger, props, null, null, null);
})();
</script>
</body></html>
"""


def _embed(text: str) -> str:
    """Text that is safe inside <script type="text/plain">: no closing tag can appear in it."""
    return text.replace("</", "<\\/")


def write_page(store, model: dict, out: str | Path | None = None) -> Path:
    """Write the standalone page for ``model`` (LatentGridPanel.page_model's dict), with the panel's own script
    and stylesheet inlined (the app loads the same files from /web/); returns its path."""
    name = model["name"]
    zoo = store.zoo
    path = export.cached(zoo, name) or export.build(zoo, name)
    sha = export.weights_sha256(zoo, name)
    # the same props the gr.HTML component has in the app, plus the decoder's bytes
    props = {"value": dict(model, decoder=dict(model["decoder"], sha=sha, note="", building=False)),
             "inline_onnx": base64.b64encode(Path(path).read_bytes()).decode(), "point": {}}
    vendor = json.loads((RUNTIME_DIR / "VENDOR.json").read_text())
    ort_source = (RUNTIME_DIR / "ort.wasm.bundle.min.mjs").read_text()
    # the .wasm as the repository stores it, gzipped (the page inflates it with DecompressionStream)
    wasm = base64.b64encode((RUNTIME_DIR / f"{RUNTIME_WASM}.gz").read_bytes()).decode()
    # lsx.js first, then the inlined runtime is handed to it, then the panel's code registers and is mounted
    # present.css: ?present=1 (read by lsx.js) gives the page presentation mode as in the app
    lsx, panel, css = source("lsx.js"), source("latent_grid.js"), source("latent_grid.css", "present.css")
    page = (PAGE.replace("@@CSS@@", css)
                .replace("@@TITLE@@", html.escape(name))
                .replace("@@SHA@@", sha[:16] + "…")
                .replace("@@ORTV@@", html.escape(vendor["version"]))
                .replace("@@MODEL@@", _embed(json.dumps(props)))
                .replace("@@LSX@@", lsx)
                .replace("@@PANEL@@", panel)
                .replace("@@ORT@@", _embed(ort_source))
                .replace("@@WASM@@", wasm))
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="lsx-page-")) / f"{name.replace('/', '-')}-latent-grid.html"
    out = Path(out)
    out.write_text(page)
    return out


DIFFUSION_NOTE = """Press Run: the reverse chain (DDPM or DDIM) runs in this page, x_t beside the predicted x_0
after every step. Everything runs in this page: the model's noise predictor (ONNX, exported from the checkpoint's
weights, SHA-256 @@SHA@@), @@DECODER@@the sampler and onnxruntime-web @@ORTV@@. Made by Latent Space Explorer."""


def write_diffusion_page(store, page_models, name: str, out: str | Path | None = None) -> Path:
    """Write the standalone Diffusion page for diffusion checkpoint ``name`` (its UNet and, for a latent model,
    its codes' decoder inlined, with the runtime and web/diffusion.js); returns its path."""
    zoo = store.zoo
    path = export.unet_cached(zoo, name) or export.build_unet(zoo, name)
    spec = page_models.spec(name)
    sha = export.weights_sha256(zoo, name)
    spec.update(sha=sha, note="", building=False)
    props = {"value": spec, "inline_unet": base64.b64encode(Path(path).read_bytes()).decode()}
    decoder_note = ""
    if spec["space"] == "latent":
        vae = spec["decoder"]["name"] if spec.get("decoder") else None
        if not vae:
            raise ValueError(f"{name}: {spec['note'] or 'its codes have no in-page decoder'}")
        dpath = export.cached(zoo, vae) or export.build(zoo, vae)
        spec["decoder"] = dict(spec["decoder"], sha=export.weights_sha256(zoo, vae), note="", building=False)
        props["inline_decoder"] = base64.b64encode(Path(dpath).read_bytes()).decode()
        decoder_note = f"the decoder of its codes ({html.escape(vae)}), "
    vendor = json.loads((RUNTIME_DIR / "VENDOR.json").read_text())
    note = (DIFFUSION_NOTE.replace("@@SHA@@", sha[:16] + "…").replace("@@DECODER@@", decoder_note)
            .replace("@@ORTV@@", html.escape(vendor["version"])))
    page = re.sub(r'<p class="note">.*?</p>', lambda _: f'<p class="note">{note}</p>', PAGE, count=1, flags=re.S)
    page = page.replace("@@CSS@@", source("diffusion.css"))
    page = (page.replace("@@TITLE@@", html.escape(name) + " · diffusion")
                .replace("@@MODEL@@", _embed(json.dumps(props)))
                .replace("@@LSX@@", source("lsx.js"))
                .replace("@@PANEL@@", source("diffusion.js"))
                .replace("LSX.mount('latent_grid'", "LSX.mount('diffusion'")
                .replace("@@ORT@@", _embed((RUNTIME_DIR / "ort.wasm.bundle.min.mjs").read_text()))
                .replace("@@WASM@@", base64.b64encode((RUNTIME_DIR / f"{RUNTIME_WASM}.gz").read_bytes()).decode()))
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="lsx-page-")) / f"{name.replace('/', '-')}-diffusion.html"
    out = Path(out)
    out.write_text(page)
    return out
