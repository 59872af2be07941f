"""A clickable scatter map of thousands of points with image tooltips, as a ``gr.HTML`` with our
own canvas script (Gradio's ScatterPlot has no point click and no image tooltips).

Everything runs in the page: no file is fetched from anywhere. The component's ``value`` holds
the points (coordinates scaled to 0..10000 integers to keep the JSON small), class names and
colours; the ``sprite`` prop holds a data-URL mosaic of the thumbnails (sent once per dataset);
the ``sel`` prop holds the picked points [A, B] so the server can move markers (linked maps).

Hovering shows the nearest point's thumbnail; a click picks it: the previous pick becomes A,
the new one B, and the component fires ``select`` with ``index`` = the point and ``value`` =
[A, B]; the handler reads them from ``gr.SelectData``.
"""
from __future__ import annotations

import base64
import io

import gradio as gr
import numpy as np

from .. import plotting

SCALE = 10000

TEMPLATE = """
<div class="lsx-map">
  <div class="lsx-title"></div>
  <canvas class="lsx-canvas"></canvas>
  <div class="lsx-tip" style="display:none"><canvas width="84" height="84"></canvas><div class="lsx-tip-text"></div></div>
  <div class="lsx-legend"></div>
</div>
"""

CSS = """
.lsx-map { position: relative; width: 100%; user-select: none; }
.lsx-title { font-size: 0.9rem; font-weight: 600; margin: 0 0 4px 2px; min-height: 1.2em; }
.lsx-canvas { width: 100%; display: block; cursor: crosshair; border: 1px solid var(--border-color-primary);
              border-radius: 6px; background: white; touch-action: manipulation; }
.lsx-tip { position: absolute; pointer-events: none; background: white; border: 1px solid #888;
           border-radius: 4px; padding: 3px; box-shadow: 0 2px 6px rgba(0,0,0,.25); z-index: 10; }
.lsx-tip canvas { display: block; image-rendering: pixelated; width: 84px; height: 84px; }
.lsx-tip-text { font-size: 11px; text-align: center; max-width: 84px; color: #222; }
.lsx-legend { display: flex; flex-wrap: wrap; gap: 2px 12px; font-size: 0.8rem; margin: 4px 2px 0; }
.lsx-legend span.sw { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; }
"""

JS = r"""
let hover = -1, sel = (props.sel || []).slice(), spriteImg = null, spriteSrc = null, geom = null;
function q(s) { return element.querySelector(s); }
function data() { const v = props.value; return (v && typeof v === 'object' && v.x) ? v : null; }
function loadSprite() {
  if (props.sprite && props.sprite !== spriteSrc) {
    spriteSrc = props.sprite; const im = new Image();
    im.onload = () => { spriteImg = im; }; im.src = spriteSrc;
  }
}
function layout(canvas) {
  const w = Math.max(canvas.clientWidth || 480, 200), h = Math.round(w * 0.78);
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); canvas.style.height = h + 'px';
  }
  const m = {l: 34, r: 10, t: 10, b: 30};
  return {w, h, dpr, m, pw: w - m.l - m.r, ph: h - m.t - m.b};
}
function px(d, g, i) { return [g.m.l + d.x[i] / 10000 * g.pw, g.m.t + (1 - d.y[i] / 10000) * g.ph]; }
function draw() {
  const canvas = q('.lsx-canvas'); const d = data(); if (!canvas) return;
  bind(canvas);
  const g = layout(canvas); geom = g;
  const ctx = canvas.getContext('2d'); ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
  ctx.clearRect(0, 0, g.w, g.h);
  q('.lsx-title').textContent = d ? d.title : (props.value && props.value.message) || 'Loading the map…';
  if (!d) return;
  ctx.strokeStyle = '#ccc'; ctx.strokeRect(g.m.l, g.m.t, g.pw, g.ph);
  ctx.fillStyle = '#444'; ctx.font = '12px sans-serif'; ctx.textAlign = 'center';
  ctx.fillText(d.axes[0], g.m.l + g.pw / 2, g.h - 8);
  ctx.save(); ctx.translate(12, g.m.t + g.ph / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(d.axes[1], 0, 0); ctx.restore();
  const r = d.x.length > 3000 ? 1.6 : 2.4;
  ctx.globalAlpha = 0.7;
  for (let i = 0; i < d.x.length; i++) {
    const [x, y] = px(d, g, i); ctx.fillStyle = d.colors[d.c[i]];
    ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
  }
  ctx.globalAlpha = 1;
  const mark = (i, text, color) => {
    if (i === null || i === undefined || i < 0 || i >= d.x.length) return;
    const [x, y] = px(d, g, i);
    ctx.lineWidth = 2.5; ctx.strokeStyle = 'white'; ctx.beginPath(); ctx.arc(x, y, 8, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = 1.8; ctx.strokeStyle = color; ctx.beginPath(); ctx.arc(x, y, 8, 0, 2 * Math.PI); ctx.stroke();
    if (text) { ctx.font = 'bold 13px sans-serif'; ctx.lineWidth = 3; ctx.strokeStyle = 'white';
      ctx.strokeText(text, x + 14, y - 8); ctx.fillStyle = color; ctx.fillText(text, x + 14, y - 8); }
  };
  if (sel.length === 2 && sel[0] !== null) {
    const [ax, ay] = px(d, g, sel[0]), [bx, by] = px(d, g, sel[1]);
    ctx.setLineDash([4, 4]); ctx.strokeStyle = '#333'; ctx.lineWidth = 1.2;
    ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke(); ctx.setLineDash([]);
  }
  mark(sel[0], sel.length === 2 ? 'A' : '', '#1f3a93');
  mark(sel.length === 2 ? sel[1] : null, 'B', '#c0392b');
  mark(hover, '', '#111');
  const legend = q('.lsx-legend');
  const key = d.classes.join('|');
  if (legend.dataset.key !== key) {
    legend.dataset.key = key;
    legend.innerHTML = d.classes.map((c, i) =>
      `<span><span class="sw" style="background:${d.colors[i]}"></span>${c.replace(/</g, '&lt;')}</span>`).join('');
  }
}
function nearest(ev, radius) {
  const d = data(), canvas = q('.lsx-canvas'); if (!d || !geom) return -1;
  const b = canvas.getBoundingClientRect(), mx = ev.clientX - b.left, my = ev.clientY - b.top;
  let best = -1, bd = radius * radius;
  for (let i = 0; i < d.x.length; i++) {
    const [x, y] = px(d, geom, i), dd = (x - mx) ** 2 + (y - my) ** 2;
    if (dd < bd) { bd = dd; best = i; }
  }
  return best;
}
function tip(ev, i) {
  const t = q('.lsx-tip'), d = data(); if (!t) return;
  if (i < 0 || !d) { t.style.display = 'none'; return; }
  const c = t.querySelector('canvas'), ctx = c.getContext('2d');
  ctx.imageSmoothingEnabled = false; ctx.fillStyle = 'black'; ctx.fillRect(0, 0, 84, 84);
  if (spriteImg) { const side = d.sprite_side, s = d.thumb;
    ctx.drawImage(spriteImg, (d.idx[i] % side) * s, Math.floor(d.idx[i] / side) * s, s, s, 0, 0, 84, 84); }
  t.querySelector('.lsx-tip-text').textContent = '#' + d.idx[i] + ' ' + d.classes[d.c[i]];
  const host = q('.lsx-map').getBoundingClientRect(), b = q('.lsx-canvas').getBoundingClientRect();
  let x = ev.clientX - host.left + 14, y = ev.clientY - host.top + 14;
  if (x + 96 > host.width) x -= 120;
  t.style.left = x + 'px'; t.style.top = y + 'px'; t.style.display = 'block';
}
function bind(canvas) {
  if (canvas.dataset.bound) return; canvas.dataset.bound = '1';
  canvas.addEventListener('mousemove', ev => { const i = nearest(ev, 10);
    if (i !== hover) { hover = i; draw(); } tip(ev, i); });
  canvas.addEventListener('mouseleave', () => { hover = -1; tip(null, -1); draw(); });
  canvas.addEventListener('click', ev => {
    const i = nearest(ev, 14); if (i < 0) return;
    const d = data();
    sel = sel.length === 0 ? [null, i] : [sel[sel.length - 1], i];
    draw();
    trigger('select', {index: d.idx[i], value: sel.map(j => j === null ? null : d.idx[j])});
  });
}
// For tests and scripting: window.lsxMaps[elem_id].pixel(row) is the canvas pixel of a data row.
{ let host = element; while (host && (!host.id || host.id.startsWith('html-'))) host = host.parentElement;
  window.lsxMaps = window.lsxMaps || {};
  window.lsxMaps[host ? host.id : 'map'] = {
    pixel: (i) => { const d = data(); return d && geom ? px(d, geom, i) : null; },
    rowOf: (idx) => { const d = data(); return d ? d.idx.indexOf(idx) : -1; },
    selection: () => sel.slice() }; }
function fromProps() {
  const d = data();
  const s = props.sel || [];
  sel = d ? s.map(v => (v === null || v === undefined) ? null : d.idx.indexOf(v)) : [];
  loadSprite(); draw();
}
watch(['value', 'sprite', 'sel'], fromProps);
new ResizeObserver(() => draw()).observe(element);
fromProps();
"""


def payload(coords: np.ndarray, labels: np.ndarray, classes: list[str], title: str,
            axes=("1", "2"), thumb: int = 28, sprite_side: int | None = None,
            index: np.ndarray | None = None) -> dict:
    """The map's value: coordinates rescaled to 0..SCALE integers with a 4% margin."""
    coords = np.asarray(coords, np.float64)
    lo, hi = coords.min(0), coords.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = (coords - lo) / span * 0.92 + 0.04  # (N, 2) in [0.04, 0.96]
    ints = np.round(unit * SCALE).astype(int)
    colors = plotting.class_colors(len(classes))
    hexes = ["#%02x%02x%02x" % tuple(int(255 * c) for c in rgba[:3]) for rgba in colors]
    n = len(coords)
    return {"x": ints[:, 0].tolist(), "y": ints[:, 1].tolist(), "c": np.asarray(labels).astype(int).tolist(),
            "idx": (np.arange(n) if index is None else np.asarray(index)).astype(int).tolist(),
            "classes": list(classes), "colors": hexes, "title": title, "axes": list(axes),
            "thumb": thumb, "sprite_side": sprite_side or int(np.ceil(np.sqrt(n)))}


def sprite_url(mosaic: np.ndarray) -> str:
    """A uint8 mosaic as a WebP data URL (~1 MB for 5,000 Fashion-MNIST thumbnails)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mosaic).save(buf, "WEBP", quality=85)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()


def point_map(elem_id: str, message: str = "Loading the map…") -> gr.HTML:
    return gr.HTML(value={"message": message}, html_template=TEMPLATE, css_template=CSS, js_on_load=JS,
                   elem_id=elem_id, sprite="", sel=[], apply_default_css=False)
