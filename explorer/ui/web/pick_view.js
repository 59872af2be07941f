// The view of a pick in a group of point maps (explorer/ui/projection.py: pick_view), inside a gr.HTML
// component (element, props, trigger, watch, server are Gradio's). The maps of props.group (point_map.js)
// carry their models' test codes and decoder specs; a click there reaches this view in the page
// (LSX.group), which decodes with every shown model (LSX.decoder: in the page, or on the server when the
// page cannot) and draws:
//   kind "projection": the clicked image and its reconstructions; after two picks A, B the linear and
//                      spherical interpolation strips per model, |z| along each path, and a t slider that
//                      walks along both paths, decoded live;
//   kind "dae":        the clicked image and its reconstruction by each model.
// Nothing here talks to the server except the decoder itself (ONNX bytes once per model, or the fallback).
// Registered in window.lsxPanels and mounted per component by LSX.mount (lsx.js); the body is not indented.
(window.lsxPanels = window.lsxPanels || {}).pick_view = function (element, trigger, props, server, upload, watch) {
const HOST = element.querySelector('.lsxv-host') || {dataset: {}};
const V = {kind: props.kind || HOST.dataset.kind || 'projection', steps: props.steps || 9, t: 0.5, sel: [], models: [], decoders: {},
           times: [], tTimes: [], frames: 0, picks: 0, last: null};
const hostId = LSX.hostId(element, 'view');
window.lsxViews = window.lsxViews || {};
window.lsxViews[hostId] = V;  // tests and benchmarks: V.times (click -> everything drawn, ms), V.last, V.decoders
if (V.kind === 'projection') window.lsxProjection = V; else if (V.kind === 'dae') window.lsxDae = V;
const G = LSX.group(props.group || HOST.dataset.group || 'default');
const ESC = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const COLORS = ['#1f77b4', '#d62728', '#2ca02c'];
function q(s) { return element.querySelector(s); }

function dom() {
  if (q('.lsxv')) return;
  const interp = V.kind !== 'projection' ? '' : `
    <div class="lsxv-section lsxv-interp" style="display:none">
      <div class="lsxv-head">Interpolation A → B</div>
      <div class="lsxv-sub lsxv-ab"></div>
      <canvas class="lsxv-strips" aria-label="interpolation strips"></canvas>
      <label class="lsxv-t"><span>Walk the path: t</span><input class="lsxv-tin" type="range" min="0" max="1" step="0.01" value="0.5" aria-label="t along the path"><output class="lsxv-tout">0.50</output></label>
      <div class="lsxv-row lsxv-at"></div>
      <div class="lsxv-head" style="margin-top:10px">|z| along each path</div>
      <canvas class="lsxv-norms" aria-label="norm of z along each path"></canvas>
    </div>`;
  element.innerHTML = `
  <div class="lsxv">
    <div class="lsxv-section lsxv-detail">
      <div class="lsxv-head lsxv-title">Picked image</div>
      <div class="lsxv-hint lsxv-msg"></div>
      <div class="lsxv-row lsxv-figs"></div>
      <div class="lsxv-code"></div>
      <div class="lsxv-mode"></div>
    </div>${interp}
  </div>`;
  const tin = q('.lsxv-tin');
  if (tin) tin.addEventListener('input', () => { V.t = +tin.value; q('.lsxv-tout').textContent = V.t.toFixed(2); walk(performance.now()); });
}

// ---- the group's models (maps with codes), in the maps' order
function models() {
  return Object.keys(G.members).sort().map(id => ({id, map: G.members[id], L: G.members[id].model()}))
    .filter(m => m.L && m.L.decoder);
}
const keyOf = L => L.name + '|' + (L.decoder.sha || 'server');
function decoderFor(L) {
  const k = keyOf(L);
  if (!V.decoders[k]) {
    V.decoders[k] = LSX.decoder(L.decoder, server).then(d => { V.decoders[k].value = d; showMode(); return d; });
  }
  return V.decoders[k];
}
function showMode() {
  const el = q('.lsxv-mode'); if (!el) return;
  const ds = V.models.map(m => (V.decoders[keyOf(m.L)] || {}).value);
  if (!ds.length) { el.textContent = ''; return; }
  if (ds.some(d => !d)) { el.textContent = 'Loading the decoder…'; el.dataset.mode = ''; return; }
  const server = ds.filter(d => d.mode === 'server');
  el.dataset.mode = server.length ? 'server' : 'page';
  el.textContent = server.length ? 'Decoding on the server: ' + server[0].note
    : 'Decoded in your browser (WebAssembly, onnxruntime-web)';
}
function onModels() {
  const ms = models(), key = ms.map(m => keyOf(m.L)).join(',');
  if (key === V.modelsKey) return;
  V.modelsKey = key; V.models = ms;
  ms.forEach(m => decoderFor(m.L));  // load the decoders now, so the first click is as fast as the rest
  V.sel = []; V.last = null; V.pickSeq = (V.pickSeq || 0) + 1;
  dom(); reset(); showMode();
}
function reset(message) {
  q('.lsxv-title').textContent = 'Picked image';
  q('.lsxv-msg').textContent = message || (props.value && props.value.message) || 'Click a point on the map.';
  q('.lsxv-figs').innerHTML = ''; q('.lsxv-code').innerHTML = '';
  const it = q('.lsxv-interp'); if (it) it.style.display = 'none';
}

// ---- drawing helpers
function textColor() { return getComputedStyle(element).color || '#222'; }
function fig(cls, caption, size) {
  return `<figure class="lsxv-fig ${cls}"><canvas width="${size}" height="${size}"></canvas><figcaption>${caption}</figcaption></figure>`;
}
function fitCanvas(c, h) {  // a canvas as wide as its box, h CSS px tall, at the screen's pixel ratio
  const w = Math.max(c.clientWidth || 300, 160), dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
  c.style.height = h + 'px';
  const ctx = c.getContext('2d'); ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.clearRect(0, 0, w, h);
  return [ctx, w];
}
const norm = z => Math.hypot(...z);
const pathCodes = (kind, a, b, ts) => ts.map(t => kind === 'linear' ? LSX.lerp(a, b, t) : LSX.slerp(a, b, t));
const tsOf = n => Array.from({length: n}, (_, i) => i / (n - 1));
const short = m => m.L.label || m.L.name;

// ---- a pick: decode with every model, then draw everything at once
// Per model one batch: the clicked image's reconstruction (unless cached: the previous B is the new A) and,
// after two picks, the 2 x (steps - 2) inner points of the two paths (both start at A's and end at B's
// reconstruction: slerp(0) = z_A, slerp(1) = z_B exactly). The images at the slider's t follow in a
// second, small batch once everything else is drawn.
const pickJob = LSX.latest(), walkJob = LSX.latest();
const recons = new Map();  // model key + '|' + index -> Float32Array(C*H*W) with .shape, the last 64
function cachedRecon(m, idx) { return recons.get(m.L.key + '|' + idx) || null; }
function keepRecon(m, idx, x) {
  recons.set(m.L.key + '|' + idx, x);
  if (recons.size > 64) recons.delete(recons.keys().next().value);
}
function pick(sel, t0, done = () => {}) {
  dom();
  V.sel = sel.slice(); V.picks += 1;
  const seq = V.pickSeq = (V.pickSeq || 0) + 1;
  const ms = V.models = models();
  pickJob(async () => {
    if (seq !== V.pickSeq) return done();
    const [A, B] = sel, two = V.kind === 'projection' && A !== null && A !== undefined && A !== B;
    if (!ms.length) { reset('These maps have no codes in the page: the server decodes the clicked image (below).'); return done(); }
    const ts = tsOf(V.steps), inner = ts.slice(1, -1);
    const jobs = ms.map(async m => {
      const zB = m.map.code(B), zA = two ? m.map.code(A) : null;
      if (!zB || (two && !zA)) throw new Error('no code for this test image under ' + m.L.name);
      const dim = m.L.dim, want = [];
      let rB = cachedRecon(m, B), rA = two ? cachedRecon(m, A) : null;
      if (!rB) want.push(zB);
      if (two && !rA) want.push(zA);
      if (two) want.push(...pathCodes('linear', zA, zB, inner), ...pathCodes('slerp', zA, zB, inner));
      const z = new Float32Array(want.length * dim);
      want.forEach((c, i) => z.set(c, i * dim));
      const dec = await decoderFor(m.L);
      const x = want.length ? await dec.run(z, want.length) : new Float32Array(0);
      let o = 0;
      const sh = dec.shape || LSX.SHAPE0, P = LSX.px(sh), own = (a) => { a.shape = sh; return a; };
      if (!rB) { rB = own(x.slice(0, P)); keepRecon(m, B, rB); o++; }
      const r = {m, dec, zA, zB, x: rB};
      if (two) {
        if (!rA) { rA = own(x.slice(o * P, (o + 1) * P)); keepRecon(m, A, rA); o++; }
        const k = inner.length, row = (from) => {  // (steps * C*H*W): A's reconstruction, the inner points, B's
          const out = own(new Float32Array(V.steps * P));
          out.set(rA, 0); out.set(x.subarray(from * P, (from + k) * P), P); out.set(rB, (V.steps - 1) * P);
          return out;
        };
        r.strips = {linear: row(o), slerp: row(o + k)};
      }
      return r;
    });
    let res;
    try { res = await Promise.all(jobs); } catch (err) { reset('Could not decode: ' + (err.message || err)); return done(); }
    if (seq !== V.pickSeq) return done();
    drawDetail(res, B);
    if (two) drawInterp(res, A, B); else { V.paths = null; const it = q('.lsxv-interp'); if (it) it.style.display = 'none'; }
    showMode();
    V.frames += 1;
    V.last = {sel: sel.slice(), two, recon: Object.fromEntries(res.map(r => [r.m.L.name, r.x])),
              strips: two ? Object.fromEntries(res.map(r => [r.m.L.name, r.strips])) : null,
              modes: res.map(r => r.dec.mode)};
    if (t0 !== undefined) { V.times.push(performance.now() - t0); if (V.times.length > 5000) V.times.shift(); }
    done();     // now the map tells the server
    if (two) walk();  // the images at t: a small second batch, after the click's result is on screen
  });
}
function drawDetail(res, B) {
  const first = res[0].m, label = first.map.label(B);
  q('.lsxv-title').textContent = `Picked image #${B}` + (label ? ` (${label})` : '');
  q('.lsxv-msg').textContent = V.kind === 'projection' && V.sel[0] === null ? 'Click a second point for the interpolation A → B.' : '';
  const figs = q('.lsxv-figs');
  const want = ['orig', ...res.map((_, i) => 'rec' + i)].join(',');
  if (figs.dataset.key !== want + '|' + res.map(r => short(r.m)).join(',')) {
    figs.dataset.key = want + '|' + res.map(r => short(r.m)).join(',');
    figs.innerHTML = fig('lsxv-orig', 'original', 112) +
      res.map((r, i) => fig('lsxv-rec' + i, `<b>${ESC(short(r.m))}</b><br>reconstruction`, 112)).join('');
    figs.classList.toggle('lsxv-three', res.length > 1);
  }
  const oc = figs.querySelector('.lsxv-orig canvas'), octx = oc.getContext('2d');
  octx.fillStyle = '#111'; octx.fillRect(0, 0, oc.width, oc.height);
  if (!res.some(r => r.m.map.thumb(octx, B, 0, 0, oc.width, oc.height))) {
    Object.values(G.members).some(m => m.thumb(octx, B, 0, 0, oc.width, oc.height));
  }
  res.forEach((r, i) => LSX.image(figs.querySelector('.lsxv-rec' + i + ' canvas'), r.x));
  if (V.kind === 'projection') {
    const z = res[0].zB, shown = Array.from(z, v => (v >= 0 ? '+' : '') + v.toFixed(2));
    q('.lsxv-code').innerHTML = `Code under <b>${ESC(short(first))}</b> (${z.length}-D, |z| = ${norm(z).toFixed(2)}): ` +
      `[${shown.slice(0, 32).join(', ')}${z.length > 32 ? ', …' : ''}]`;
  }
}
function drawInterp(res, A, B) {
  const it = q('.lsxv-interp'); it.style.display = '';
  const la = res[0].m.map.label(A), lb = res[0].m.map.label(B);
  q('.lsxv-ab').textContent = `A = #${A}${la ? ' (' + la + ')' : ''} → B = #${B}${lb ? ' (' + lb + ')' : ''}, ${V.steps} steps`;
  V.paths = res.map(r => ({m: r.m, zA: r.zA, zB: r.zB, strips: r.strips, at: null}));  // at: walk() decodes it
  drawStrips(); drawAt(); drawNorms();
}
function drawStrips() {
  const c = q('.lsxv-strips'), P = V.paths; if (!c || !P) return;
  const k = LSX.fs(11) / 11;  // type scale: larger in presentation mode (lsx.js)
  const compare = P.length > 1, labelW = 50 * k, gap = 3, rowGap = 4, headH = compare ? 16 * k : 0;
  const w0 = Math.max(c.clientWidth || 300, 160), tile = Math.max(16, Math.floor((w0 - labelW - 8 * gap) / V.steps));
  const top = 14 * k, h = top + P.length * (headH + 2 * tile + rowGap + 8) + 4;
  const [ctx, w] = fitCanvas(c, h), ink = textColor();
  const x0 = labelW, stripW = V.steps * tile + (V.steps - 1) * gap;  // the mosaic's 2-px gaps scale to ~gap
  ctx.fillStyle = ink; ctx.font = LSX.font(11); ctx.textBaseline = 'alphabetic';
  ctx.textAlign = 'left'; ctx.fillText('A (t = 0)', x0, 10 * k);
  ctx.textAlign = 'right'; ctx.fillText('B (t = 1)', x0 + stripW, 10 * k);
  let y = top;
  P.forEach((p, mi) => {
    if (compare) { ctx.fillStyle = COLORS[mi]; ctx.font = LSX.font(12, 'bold'); ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
      ctx.fillText(short(p.m), x0, y + headH / 2); y += headH; }
    ['linear', 'slerp'].forEach(kind => {
      ctx.fillStyle = ink; ctx.font = LSX.font(12); ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
      ctx.fillText(kind, labelW - 8, y + tile / 2);
      LSX.mosaic(ctx, p.strips[kind], V.steps, V.steps, x0, y, stripW, tile, 2);
      y += tile + rowGap;
    });
    y += 8;
  });
  // where the t slider is: a marker under the strips
  const mx = x0 + tile / 2 + V.t * (stripW - tile);
  ctx.fillStyle = '#f97316'; ctx.beginPath(); ctx.moveTo(mx, h - 11); ctx.lineTo(mx - 5, h - 3); ctx.lineTo(mx + 5, h - 3); ctx.fill();
  ctx.textBaseline = 'alphabetic';
}
function drawAt() {
  const el = q('.lsxv-at'), P = V.paths; if (!el || !P) return;
  const key = P.map(p => short(p.m)).join(',');
  if (el.dataset.key !== key) {
    el.dataset.key = key;
    el.innerHTML = P.map((p, mi) => ['linear', 'slerp'].map((kind, k) =>
      fig(`lsxv-at${mi}-${k}`, `${P.length > 1 ? `<b style="color:${COLORS[mi]}">${ESC(short(p.m))}</b> ` : ''}${kind}<br><span class="lsxv-atn"></span>`, 84)).join('')).join('');
  }
  P.forEach((p, mi) => ['linear', 'slerp'].forEach((kind, k) => {
    const f = el.querySelector(`.lsxv-at${mi}-${k}`), cv = f.querySelector('canvas');
    if (p.at) LSX.image(cv, p.at, k); else { const c = cv.getContext('2d'); c.fillStyle = '#111'; c.fillRect(0, 0, cv.width, cv.height); }
    const z = kind === 'linear' ? LSX.lerp(p.zA, p.zB, V.t) : LSX.slerp(p.zA, p.zB, V.t);
    f.querySelector('.lsxv-atn').textContent = `t = ${V.t.toFixed(2)}, |z| = ${norm(z).toFixed(2)}`;
  }));
}
function drawNorms() {  // |z| along both paths, one panel per model (their scales differ)
  const c = q('.lsxv-norms'), P = V.paths; if (!c || !P) return;
  const k = LSX.fs(11) / 11, h = Math.round(150 * Math.sqrt(k)), [ctx, w] = fitCanvas(c, h), ink = textColor(), ts = tsOf(41), pw0 = w / P.length;
  P.forEach((p, mi) => {
    const m = {l: pw0 * mi + 40 * k, r: 10, t: P.length > 1 ? 20 * k : 8, b: 30 * k}, pw = pw0 - 40 * k - m.r, ph = h - m.t - m.b;
    const curves = ['linear', 'slerp'].map(kind =>
      ({kind, ys: ts.map(t => norm(kind === 'linear' ? LSX.lerp(p.zA, p.zB, t) : LSX.slerp(p.zA, p.zB, t)))}));
    let lo = Math.min(...curves.flatMap(c => c.ys)), hi = Math.max(...curves.flatMap(c => c.ys));
    const pad = Math.max((hi - lo) * 0.15, 0.05 * hi, 0.05); lo = Math.max(0, lo - pad); hi += pad;
    const X = t => m.l + t * pw, Y = v => m.t + (1 - (v - lo) / (hi - lo)) * ph;
    if (P.length > 1) { ctx.fillStyle = COLORS[mi]; ctx.font = LSX.font(12, 'bold'); ctx.textAlign = 'left'; ctx.fillText(short(p.m), m.l, 12 * k); }
    ctx.strokeStyle = '#ccc'; ctx.lineWidth = 1; ctx.strokeRect(m.l, m.t, pw, ph);
    ctx.fillStyle = ink; ctx.font = LSX.font(11); ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
    for (const v of [lo, (lo + hi) / 2, hi]) ctx.fillText(v.toFixed(v < 10 ? 2 : 1), m.l - 4, Y(v));
    ctx.textAlign = 'center'; ctx.textBaseline = 'alphabetic';
    for (const t of [0, 0.5, 1]) ctx.fillText(String(t), X(t), m.t + ph + 13 * k);
    ctx.fillText('t (A → B)', m.l + pw / 2, h - 3);
    curves.forEach((cv, k) => {
      ctx.strokeStyle = COLORS[k]; ctx.setLineDash(k ? [5, 3] : []); ctx.lineWidth = 1.8; ctx.beginPath();
      cv.ys.forEach((v, i) => i ? ctx.lineTo(X(ts[i]), Y(v)) : ctx.moveTo(X(ts[i]), Y(v))); ctx.stroke();
    });
    ctx.setLineDash([]);
    ctx.strokeStyle = '#f97316'; ctx.lineWidth = 1.5; ctx.beginPath(); ctx.moveTo(X(V.t), m.t); ctx.lineTo(X(V.t), m.t + ph); ctx.stroke();
    if (mi === P.length - 1) {  // legend, inside the last panel's top right
      ctx.font = LSX.font(11); ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
      const items = [['linear', COLORS[0], []], ['slerp', COLORS[1], [5, 3]]];
      const lw = Math.max(...items.map(i => ctx.measureText(i[0]).width)) + 30, lx = m.l + pw - lw - 4;
      let ly = m.t + 10 * k;
      ctx.fillStyle = 'rgba(255,255,255,0.85)'; ctx.fillRect(lx - 4, m.t + 2, lw + 6, items.length * 14 * k + 4);
      items.forEach(([text, color, dash]) => {
        ctx.strokeStyle = color; ctx.setLineDash(dash); ctx.lineWidth = 1.8; ctx.beginPath(); ctx.moveTo(lx, ly); ctx.lineTo(lx + 22, ly); ctx.stroke();
        ctx.setLineDash([]); ctx.fillStyle = '#222'; ctx.fillText(text, lx + 26, ly); ly += 14 * k;
      });
    }
    ctx.textBaseline = 'alphabetic';
  });
}

// ---- the t slider: decode both paths at t for every model, in the page
function walk(t0) {
  const P = V.paths; if (!P) return;
  const t = V.t, seq = V.pickSeq;
  walkJob(async () => {
    const out = await Promise.all(P.map(async p => {
      const z = new Float32Array(2 * p.m.L.dim);
      z.set(LSX.lerp(p.zA, p.zB, t), 0); z.set(LSX.slerp(p.zA, p.zB, t), p.m.L.dim);
      return (await decoderFor(p.m.L)).run(z, 2);
    }));
    if (seq !== V.pickSeq || P !== V.paths) return;
    P.forEach((p, i) => { p.at = out[i]; });
    drawAt(); drawStrips(); drawNorms();
    if (t0 !== undefined) { V.tTimes.push(performance.now() - t0); if (V.tTimes.length > 5000) V.tTimes.shift(); }
  });
}

// ---- wiring
dom(); reset();
G.on(hostId, (type, e) => {
  if (type === 'pick') pick(e.sel, e.t0, e.done);
  else if (type === 'models') onModels();
});
onModels();
new ResizeObserver(() => { if (V.paths && q('.lsxv-interp').style.display !== 'none') { drawStrips(); drawNorms(); } }).observe(element);
};
