// The Latent grid panel's page code: the map of encoded test images, the n x n decoded grid, the
// decoded point and the latent sliders, all decoded in the page (window.LSX, lsx.js).
// Runs inside a gr.HTML component (element, props, trigger, watch, server are Gradio's) and, unchanged,
// inside the standalone page that "Download as a page" writes (which supplies the same five names).
// The server hears only the final point of a drag or slide (trigger('select')), and is asked to decode
// only when the page cannot (LSX's server fallback).
// Registered in window.lsxPanels and mounted per component by LSX.mount (lsx.js); the body is not indented.
(window.lsxPanels = window.lsxPanels || {}).latent_grid = function (element, trigger, props, server, upload, watch) {
const LG = {model: null, values: [], residual: null, decoder: null, hover: null, drag: null, n: 15, span: 2.5,
            scatter: null, gridImages: null, gridKey: null, seq: -1, times: []};
window.lsxLatentGrid = LG;  // tests and benchmarks read LG.times, LG.decoder.mode, LG.frames
LG.frames = 0;
const ESC = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const fmt = (v, d) => Number(v).toFixed(d);

function q(s) { return element.querySelector(s); }
function dom() {
  let root = q('.lsxg');
  if (root) return root;
  element.innerHTML = `
  <div class="lsxg">
    <div class="lsxg-left">
      <div class="lsxg-plots">
        <div class="lsxg-box lsxg-mapbox">
          <div class="lsxg-title">Encoded test set: hover to preview, click or drag to move the point</div>
          <canvas class="lsxg-map" aria-label="map of encoded test images"></canvas>
          <div class="lsxg-tip" style="display:none"><canvas width="84" height="84"></canvas><div class="lsxg-tiptext"></div></div>
          <div class="lsxg-legend"></div>
        </div>
        <div class="lsxg-box lsxg-gridbox">
          <div class="lsxg-title lsxg-gridtitle">Decoded grid: click or drag a cell</div>
          <canvas class="lsxg-grid" aria-label="decoded grid"></canvas>
          <div class="lsxg-gridctl">
            <label>Grid size n <input class="lsxg-n" type="range" min="3" max="30" step="1" value="15"><output class="lsxg-nout">15</output></label>
            <label>Grid range ± sd <input class="lsxg-span" type="range" min="0.5" max="4" step="0.1" value="2.5"><output class="lsxg-spanout">2.5</output></label>
          </div>
        </div>
      </div>
    </div>
    <div class="lsxg-right">
      <div class="lsxg-title">Decoded at the marked point</div>
      <canvas class="lsxg-decoded" width="252" height="252" aria-label="decoded image"></canvas>
      <div class="lsxg-mode"></div>
      <div class="lsxg-z"></div>
      <div class="lsxg-sliders"></div>
    </div>
  </div>`;
  bind();
  return q('.lsxg');
}

// ---- geometry
function mapGeom() {
  const c = q('.lsxg-map'); const w = Math.max(c.clientWidth || 420, 200), h = Math.round(w * 0.82);
  const dpr = window.devicePixelRatio || 1;
  const k = LSX.fs(11) / 11;  // type scale: 1, or larger in presentation mode (lsx.js)
  if (c.width !== Math.round(w * dpr) || LG.mapK !== k) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); c.style.height = h + 'px'; LG.scatter = null; LG.mapK = k; }
  const m = {l: 44 * k, r: 8, t: 8, b: 34 * k}, [[x0, x1], [y0, y1]] = LG.model.lims;
  return {c, w, h, dpr, k, m, pw: w - m.l - m.r, ph: h - m.t - m.b, x0, x1, y0, y1};
}
const toPx = (g, x, y) => [g.m.l + (x - g.x0) / (g.x1 - g.x0) * g.pw, g.m.t + (1 - (y - g.y0) / (g.y1 - g.y0)) * g.ph];
const toData = (g, px, py) => [g.x0 + (px - g.m.l) / g.pw * (g.x1 - g.x0), g.y0 + (1 - (py - g.m.t) / g.ph) * (g.y1 - g.y0)];
function rect() {  // the grid's box on the plane: centre +- span sd on the first two axes
  const M = LG.model;
  return [0, 1].map(i => [M.center[i] - LG.span * M.scale[i], M.center[i] + LG.span * M.scale[i]]);
}
function gridGeom() {
  const c = q('.lsxg-grid'); const w = Math.max(c.clientWidth || 360, 160), h = w;
  const dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); c.style.height = h + 'px'; }
  return {c, w, h, dpr};
}

// ---- drawing
function ticks(lo, hi) {
  const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 4))), k = (hi - lo) / step > 8 ? 2 : 1, s = step * k, out = [];
  for (let v = Math.ceil(lo / s) * s; v <= hi + 1e-9; v += s) out.push(Math.round(v / s) * s);
  return out;
}
function drawMap() {
  const M = LG.model; if (!M) return;
  const g = mapGeom(), ctx = g.c.getContext('2d');
  if (!LG.scatter) {  // the 5,000 points once per model and size, then blitted every frame
    const off = document.createElement('canvas'); off.width = g.c.width; off.height = g.c.height;
    const o = off.getContext('2d'); o.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
    o.fillStyle = 'white'; o.fillRect(0, 0, g.w, g.h);
    o.strokeStyle = '#bbb'; o.strokeRect(g.m.l, g.m.t, g.pw, g.ph);
    o.fillStyle = '#444'; o.font = LSX.font(11); o.textAlign = 'center';
    for (const v of ticks(g.x0, g.x1)) { const [x] = toPx(g, v, g.y0); o.fillText(+v.toPrecision(3), x, g.m.t + g.ph + 13 * g.k);
      o.fillRect(x, g.m.t + g.ph, 1, 4); }
    o.textAlign = 'right';
    for (const v of ticks(g.y0, g.y1)) { const [, y] = toPx(g, g.x0, v); o.fillText(+v.toPrecision(3), g.m.l - 5, y + 4 * g.k);
      o.fillRect(g.m.l - 4, y, 4, 1); }
    o.font = LSX.font(12); o.textAlign = 'center'; o.fillText(M.axes[0], g.m.l + g.pw / 2, g.h - 4);
    o.save(); o.translate(11 * g.k, g.m.t + g.ph / 2); o.rotate(-Math.PI / 2); o.fillText(M.axes[1], 0, 0); o.restore();
    o.save(); o.beginPath(); o.rect(g.m.l, g.m.t, g.pw, g.ph); o.clip();
    const r = M.map.x.length > 3000 ? 1.4 : 2.2; o.globalAlpha = 0.65;
    for (let i = 0; i < M.map.x.length; i++) {
      const [x, y] = toPx(g, M.map.x[i], M.map.y[i]); o.fillStyle = M.colors[M.map.c[i]]; o.fillRect(x - r, y - r, 2 * r, 2 * r);
    }
    o.restore(); LG.scatter = off;
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.drawImage(LG.scatter, 0, 0);
  ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
  const [[rx0, rx1], [ry0, ry1]] = rect(), [a, b] = toPx(g, rx0, ry1), [c, d] = toPx(g, rx1, ry0);
  ctx.setLineDash([5, 4]); ctx.strokeStyle = '#333'; ctx.lineWidth = 1.2; ctx.strokeRect(a, b, c - a, d - b); ctx.setLineDash([]);
  if (LG.hover) { const [hx, hy] = toPx(g, LG.hover[0], LG.hover[1]);
    ctx.strokeStyle = 'rgba(0,0,0,.35)'; ctx.beginPath(); ctx.moveTo(hx, g.m.t); ctx.lineTo(hx, g.m.t + g.ph);
    ctx.moveTo(g.m.l, hy); ctx.lineTo(g.m.l + g.pw, hy); ctx.stroke(); }
  const [mx, my] = toPx(g, LG.values[0], LG.values[1]);
  ctx.lineWidth = 3; ctx.strokeStyle = 'white'; ctx.beginPath(); ctx.arc(mx, my, 9, 0, 2 * Math.PI); ctx.stroke();
  ctx.lineWidth = 2; ctx.strokeStyle = '#dc143c'; ctx.beginPath(); ctx.arc(mx, my, 9, 0, 2 * Math.PI); ctx.stroke();
  ctx.beginPath(); ctx.arc(mx, my, 2, 0, 2 * Math.PI); ctx.fillStyle = '#dc143c'; ctx.fill();
}
function drawGrid() {
  const M = LG.model; if (!M) return;
  const g = gridGeom(), ctx = g.c.getContext('2d');
  ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.fillStyle = 'white'; ctx.fillRect(0, 0, g.c.width, g.c.height);
  const mos = LG.gridMosaic;  // the decoded tiles at their own resolution, filled row by row (decodeGrid)
  if (mos) { ctx.imageSmoothingEnabled = false; ctx.drawImage(mos, 0, 0, mos.width, mos.height, 0, 0, g.c.width, g.c.height); }
  // the marked point, where it falls inside the grid's box
  const [[x0, x1], [y0, y1]] = rect(), n = LG.gridN || LG.n, cell = g.w / n;
  const fx = (LG.values[0] - x0) / (x1 - x0), fy = (y1 - LG.values[1]) / (y1 - y0);
  if (fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1) {
    ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
    const px = cell / 2 + fx * (g.w - cell), py = cell / 2 + fy * (g.h - cell);
    ctx.lineWidth = 2.5; ctx.strokeStyle = '#dc143c'; ctx.beginPath(); ctx.arc(px, py, Math.max(5, cell * 0.45), 0, 2 * Math.PI); ctx.stroke();
  }
}
function zOf(vals, residual = true) {  // plane coordinates (+ the part of z off the plane) -> z (D)
  const M = LG.model, z = new Float32Array(M.dim);
  for (let j = 0; j < M.dim; j++) {
    let s = M.mean[j] + (residual && LG.residual ? LG.residual[j] : 0);
    for (let i = 0; i < M.k; i++) s += vals[i] * M.components[i][j];
    z[j] = s;
  }
  return z;
}
function showInfo() {
  const M = LG.model, z = zOf(LG.values), shown = Array.from(z.slice(0, 8), v => (v >= -0.005 ? '+' : '') + Math.abs(v).toFixed(2).replace(/^/, v >= -0.005 ? '' : '-')).join(', ');
  q('.lsxg-z').innerHTML = `<b>z</b> (${M.dim}-D) = [${shown}${M.dim > 8 ? ', …' : ''}]`;
  const sl = q('.lsxg-sliders');
  M.axes.forEach((_, i) => { const r = sl.querySelector(`input[data-axis="${i}"]`), o = sl.querySelector(`output[data-axis="${i}"]`);
    // every handle follows the point, the focused slider too (a map click after a slide leaves the focus on the
    // slider); the one being dragged already holds this value, so setting it is a no-op there
    if (r && +r.value !== LG.values[i]) r.value = LG.values[i]; if (o) o.textContent = fmt(LG.values[i], M.digits[i]); });
}
function setMode() {
  const d = LG.decoder, el = q('.lsxg-mode'); if (!el) return;
  el.textContent = d ? (d.mode === 'page' ? 'In-page: ' : 'Server: ') + d.note : 'Loading the decoder…';
  el.dataset.mode = d ? d.mode : '';
}

// ---- decoding
const pointJob = LSX.latest(), gridJob = LSX.latest(), tipJob = LSX.latest();
function decodePoint(t0) {
  const vals = LG.values.slice(), dec = LG.decoder;
  pointJob(async () => {
    if (!dec) return;
    const img = await dec.run(zOf(vals), 1);
    if (dec !== LG.decoder) return;
    LSX.image(q('.lsxg-decoded'), img);
    LG.last = {values: vals, image: img, mode: dec.mode};
    LG.frames += 1;
    if (t0 !== undefined) { LG.times.push(performance.now() - t0); if (LG.times.length > 5000) LG.times.shift(); }
  });
}
// In the page the grid fills progressively: one decoder run per row, each row drawn as soon as it is decoded
// (the first within a frame: 20 codes take ~9 ms), so a slider's or the map's decode waits at most one row
// (the decoder runs one call at a time, in the order asked), never the whole grid (~180 ms for 20x20). Until
// a row is replaced the previous grid's row stays (same n), or the cell is blank; a newer grid stops this one.
// The server fallback still decodes the whole grid in one request.
function decodeGrid() {
  const M = LG.model, dec = LG.decoder, n = LG.n, key = `${M.name}|${n}|${LG.span}`, gen = LG.gridGen = (LG.gridGen || 0) + 1;
  gridJob(async () => {
    if (!dec || LG.gridKey === key + dec.mode) return;
    // the other axes at the codes' centre, as on the server (latents.decode_grid)
    const [[x0, x1], [y0, y1]] = rect(), base = M.center.slice(), z = new Float32Array(n * n * M.dim);
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {  // row-major from the top-left (high axis 2) down
      const v = base.slice(); v[0] = x0 + (x1 - x0) * (n > 1 ? c / (n - 1) : 0.5); v[1] = y1 - (y1 - y0) * (n > 1 ? r / (n - 1) : 0.5);
      z.set(zOf(v, false), (r * n + c) * M.dim);
    }
    const sh = dec.shape || LSX.SHAPE0, P = LSX.px(sh);  // one image: C x H x W floats (planar)
    const t0 = performance.now(), W = n * sh[2] + (n - 1), H = n * sh[1] + (n - 1), images = new Float32Array(n * n * P);
    images.shape = sh;
    const old = LG.gridMosaic, mos = document.createElement('canvas');
    mos.width = W; mos.height = H;
    const mctx = mos.getContext('2d');
    if (old && old.width === W && old.height === H) mctx.drawImage(old, 0, 0); else { mctx.fillStyle = 'white'; mctx.fillRect(0, 0, W, H); }
    LG.gridMosaic = mos; LG.gridN = n; LG.gridRows = []; LG.gridZ = z;
    const step = dec.mode === 'page' ? 1 : n;  // the server fallback: one request for the whole grid, as before
    for (let r = 0; r < n; r += step) {
      const rows = Math.min(step, n - r);
      const out = await dec.run(z.slice(r * n * M.dim, (r + rows) * n * M.dim), rows * n);  // (rows * n, C*H*W)
      if (dec !== LG.decoder || gen !== LG.gridGen) return;  // a newer grid (or decoder) took over
      images.set(out, r * n * P);
      for (let i = 0; i < rows; i++) {
        LSX.tileRow(mctx, out.subarray(i * n * P, (i + 1) * n * P), n, r + i, 1, sh);
        LG.gridRows.push(performance.now() - t0);  // ms from the start to each row drawn (tests, benchmarks)
      }
      drawGrid();
      await LSX.yieldTask();  // let input events and a paint in between rows
    }
    LG.gridImages = images; LG.gridKey = key + dec.mode; LG.gridMs = performance.now() - t0;
    q('.lsxg-gridtitle').textContent = `${n}×${n} decoded grid (${dec.mode === 'page' ? 'in the page' : 'on the server'}, ${LG.gridMs.toFixed(0)} ms): click or drag a cell`;
  });
}
let drawQueued = false;
function redraw() {  // map, grid and numbers once per animation frame, after the decode was started
  if (drawQueued) return; drawQueued = true;
  requestAnimationFrame(() => { drawQueued = false; drawMap(); drawGrid(); showInfo(); });
}
function moved(t0) { decodePoint(t0); redraw(); }

// ---- the server hears the final point only
function commit(fromUrl = false) {
  LG.commits = (LG.commits || 0) + 1;
  trigger('select', {index: 0, value: {name: LG.model.name, values: LG.values.slice(0, LG.model.k)}});
  if (!fromUrl) LSX.state.set({model: LG.model.name, point: urlPoint()}, {push: true});  // a new history entry
}
// the point in the URL (?point=a,b,...: plane coordinates, 4 decimals), read when a model arrives and on Back
const urlPoint = () => LG.values.slice(0, LG.model.k).map(v => +v.toFixed(4)).join(',');
function fromUrl() {
  const M = LG.model, want = LSX.state.get('model'), p = LSX.state.numbers('point');
  if (!M || !p || (want && want !== M.name)) return false;
  p.slice(0, M.k).forEach((v, i) => { LG.values[i] = clip(i, v); });
  moved(); commit(true);
  return true;
}
LSX.state.on(['model', 'point'], v => {
  if (!element.offsetParent) return;  // another panel's history entry (this one is in a hidden tab)
  if (v.model && LG.model && v.model !== LG.model.name) { location.reload(); return; }  // the server loads that model
  if (LG.model && !fromUrl()) { LG.values = LG.model.point.values.slice(); moved(); commit(true); }  // Back to no point
});
function clip(i, v) { const [lo, hi] = LG.model.limits[i]; return Math.min(hi, Math.max(lo, v)); }

// ---- input
function buildSliders() {
  const M = LG.model, sl = q('.lsxg-sliders');
  sl.innerHTML = M.axes.map((a, i) => {
    const [lo, hi] = M.limits[i], step = Math.pow(10, -M.digits[i]);
    const label = ESC(a) + (M.identity ? '' : `<span class="lsxg-evr"> (${Math.round(M.evr[i] * 100)}% of variance)</span>`);
    return `<label class="lsxg-slider"><span>${label}</span><output data-axis="${i}"></output>
      <input type="range" data-axis="${i}" id="lsx-z-${i + 1}" min="${lo}" max="${hi}" step="${step}" value="${LG.values[i]}"></label>`;
  }).join('');
}
function bind() {  // listeners live on the component's root, which survives a re-render of its template: once
  if (element.dataset.lsxBound) return;
  element.dataset.lsxBound = '1';
  element.addEventListener('input', ev => {
    const t = ev.target, t0 = performance.now();
    if (t.dataset && t.dataset.axis !== undefined) { LG.values[+t.dataset.axis] = +t.value; moved(t0); }
    else if (t.classList.contains('lsxg-n') || t.classList.contains('lsxg-span')) {
      LG.n = +q('.lsxg-n').value; LG.span = +q('.lsxg-span').value;
      q('.lsxg-nout').textContent = LG.n; q('.lsxg-spanout').textContent = LG.span.toFixed(1);
      decodeGrid(); drawMap();
    }
  });
  element.addEventListener('change', ev => { if (ev.target.dataset && ev.target.dataset.axis !== undefined) commit(); });
  const fromMap = ev => { const g = mapGeom(), b = g.c.getBoundingClientRect(); return toData(g, ev.clientX - b.left, ev.clientY - b.top); };
  const fromGrid = ev => {
    const g = gridGeom(), b = g.c.getBoundingClientRect(), n = LG.gridN || LG.n, cell = g.w / n;
    const [[x0, x1], [y0, y1]] = rect();
    const fx = (ev.clientX - b.left - cell / 2) / (g.w - cell), fy = (ev.clientY - b.top - cell / 2) / (g.h - cell);
    return [x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)];
  };
  const place = (p, t0) => { LG.values[0] = clip(0, p[0]); LG.values[1] = clip(1, p[1]); moved(t0); };
  element.addEventListener('pointerdown', ev => {
    if (!LG.model || ev.button !== 0) return;
    const src = ev.target.classList.contains('lsxg-map') ? fromMap : ev.target.classList.contains('lsxg-grid') ? fromGrid : null;
    if (!src) return;
    ev.preventDefault(); LG.drag = src; hideTip(); place(src(ev), performance.now());
    const move = e => place(LG.drag(e), performance.now());
    const up = () => { window.removeEventListener('pointermove', move); window.removeEventListener('pointerup', up); LG.drag = null; commit(); };
    window.addEventListener('pointermove', move); window.addEventListener('pointerup', up);
  });
  element.addEventListener('pointermove', ev => {
    if (!LG.model || LG.drag || !ev.target.classList.contains('lsxg-map')) return;
    const t0 = performance.now(), p = fromMap(ev); LG.hover = p; tipAt(ev, p, t0); redraw();  // decode first
  });
  element.addEventListener('pointerout', ev => { if (ev.target.classList.contains('lsxg-map')) { LG.hover = null; hideTip(); drawMap(); } });
}
function hideTip() { const t = q('.lsxg-tip'); if (t) t.style.display = 'none'; }
function tipAt(ev, p, t0) {  // the decoded image under the cursor (other coordinates from the sliders)
  const t = q('.lsxg-tip'), host = q('.lsxg-mapbox').getBoundingClientRect(), dec = LG.decoder;
  let x = ev.clientX - host.left + 16, y = ev.clientY - host.top + 16;
  if (x + 100 > host.width) x -= 124;
  t.style.left = x + 'px'; t.style.top = y + 'px'; t.style.display = 'block';
  t.querySelector('.lsxg-tiptext').textContent = `${fmt(p[0], 2)}, ${fmt(p[1], 2)}`;
  const v = LG.values.slice(); v[0] = p[0]; v[1] = p[1];
  tipJob(async () => {
    if (!dec) return;
    const img = await dec.run(zOf(v), 1);
    if (LG.hover) { LSX.image(t.querySelector('canvas'), img); LG.times.push(performance.now() - t0); LG.hoverFrames = (LG.hoverFrames || 0) + 1; }
  });
}

// ---- props from the server
async function fromModel() {
  const M = props.value; if (!M || !M.name) { dom(); const z = q('.lsxg-z'); if (z && M && M.message) z.textContent = M.message; return; }
  dom();
  if (LG.model && LG.model.name === M.name && LG.model.sha === M.decoder.sha && LG.decoder) return;
  if (typeof M.map.x === 'string') {  // packed on the server: base64 float32 coordinates, uint8 classes
    M.map = {n: M.map.n, x: LSX.unpack(M.map.x, Float32Array), y: LSX.unpack(M.map.y, Float32Array),
             c: LSX.unpack(M.map.c, Uint8Array)};
  }
  const switched = LG.model && LG.model.name !== M.name;
  LG.model = M; LG.model.sha = M.decoder.sha; LG.values = M.point.values.slice(); LG.residual = M.point.residual;
  LG.scatter = null; LG.gridKey = null; LG.gridImages = null; LG.gridMosaic = null; LG.decoder = null;
  const urlModel = LSX.state.get('model');
  if (!urlModel || urlModel === M.name) fromUrl();  // a linked URL's model (or none named): its prepared point, if any
  else if (switched) LSX.state.set({model: M.name, point: null}, {push: true});  // Back returns to the previous one
  // else: the page's first model, while the URL names another that the server's URL load switches to
  q('.lsxg-mapbox .lsxg-title').textContent = M.map_title || 'Encoded test set: hover to preview, click or drag to move the point';
  q('.lsxg-legend').innerHTML = M.classes.map((c, i) => `<span><span class="sw" style="background:${M.colors[i]}"></span>${ESC(c)}</span>`).join('');
  buildSliders(); setMode(); drawMap(); drawGrid(); showInfo();
    const pending = LSX.decoder(M.decoder, server, props.inline_onnx || null);
  if (server && !LG.pageSeen) {  // first visit: the 14 MB runtime is still loading; show the point from the server
    LG.decoder = LSX.serverDecoder(M.decoder, server, 'loading the in-page decoder…'); setMode(); decodePoint();
  }
  const dec = await pending;
  if (LG.model !== M) return;
  if (dec.mode === 'page') LG.pageSeen = true;
  LG.decoder = dec; setMode(); decodePoint(); decodeGrid();
  LSX.whenBuilt(M.decoder, server, (d, s) => {
    if (LG.model !== M) return;
    M.decoder = s; M.sha = s.sha; LG.decoder = d; LG.gridKey = null; setMode(); decodePoint(); decodeGrid();
  });
}
function fromPoint() {
  LG.seq = P.seq; LG.values = P.values.slice(); LG.residual = P.residual; LG.gridKey = null;
  moved(); decodeGrid();
}
if (typeof watch === 'function') { watch('value', fromModel); watch('point', () => { fromModel().then(fromPoint); }); }
new ResizeObserver(() => { if (LG.model) { drawMap(); drawGrid(); } }).observe(element);
fromModel().then(fromPoint);
};
