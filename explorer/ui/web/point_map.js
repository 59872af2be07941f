// A clickable map of thousands of points with image tooltips (explorer/ui/point_map.py), inside a gr.HTML
// component (element, props, trigger, watch are Gradio's). props.value: the points; props.sprite: the
// thumbnails' mosaic (data URL); props.sel: picks [A, B] set by the server; props.latent: the map's model
// (float16 codes + decoder spec) for the pick view to decode; props.group: maps sharing their picks.
//
// A click picks a point in the page: this map and every other map of its group move their markers, the
// group's view decodes the pick (web/pick_view.js), and only then is the server told (trigger('select')),
// without anything waiting for its answer.
// Registered in window.lsxPanels and mounted per component by LSX.mount (lsx.js); the body is not indented.
(window.lsxPanels = window.lsxPanels || {}).point_map = function (element, trigger, props, server, upload, watch) {
let hover = -1, sel = (props.sel || []).slice(), spriteImg = null, spriteSrc = null, geom = null, scatter = null;
let codes = null, codesKey = null, rowOf = null;  // the latent prop's codes, (N) Float32Array(D)
function q(s) { return element.querySelector(s); }
let cur = null, curKey = null;  // props.value with its packed arrays unpacked (once per value)
function unpack() {
  const v = props.value;
  if (!v || typeof v !== 'object' || !v.x || !v.n) { cur = null; curKey = null; return; }
  const key = v.n + '|' + v.x + '|' + v.y + '|' + v.title;
  if (key === curKey) return;
  cur = {...v, x: LSX.unpack(v.x, Uint16Array), y: LSX.unpack(v.y, Uint16Array), c: LSX.unpack(v.c, Uint8Array),
         idx: LSX.unpack(v.idx, Int32Array)};
  curKey = key; scatter = null; rowOf = null;
}
function data() { return cur; }
const hostId = LSX.hostId(element, 'map');
let G = null;  // the group of linked maps, joined once props.group is known (a hidden map may mount before it is)
function join() {
  const host = q('.lsx-map'), name = props.group || (host && host.dataset.group);
  if (G || !name) return G;
  G = LSX.group(name);
  G.members[hostId] = api;
  G.on(hostId, (type, e) => {
    if (type === 'pick' && e.from !== hostId) { sel = toRows(e.sel).map(r => r === -1 ? null : r); draw(); }
  });
  return G;
}
function loadSprite() {
  if (props.sprite && props.sprite !== spriteSrc) {
    spriteSrc = props.sprite; const im = new Image();
    im.onload = () => { spriteImg = im; if (G) G.emit('sprite', {from: hostId}); }; im.src = spriteSrc;
  }
}
function layout(canvas) {
  const w = Math.max(canvas.clientWidth || 480, 200), h = Math.round(w * 0.78);
  const dpr = window.devicePixelRatio || 1;
  const k = LSX.fs(12) / 12;  // type scale: larger in presentation mode (lsx.js)
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr) || canvas.lsxK !== k) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); canvas.style.height = h + 'px'; scatter = null;
    canvas.lsxK = k;
  }
  const m = {l: 34 * k, r: 10, t: 10, b: 30 * k};
  return {w, h, dpr, k, m, pw: w - m.l - m.r, ph: h - m.t - m.b};
}
function px(d, g, i) { return [g.m.l + d.x[i] / 10000 * g.pw, g.m.t + (1 - d.y[i] / 10000) * g.ph]; }
function drawScatter(d, g) {  // the points once per map and size, then blitted under the markers
  const off = document.createElement('canvas'); off.width = Math.round(g.w * g.dpr); off.height = Math.round(g.h * g.dpr);
  const ctx = off.getContext('2d'); ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
  ctx.strokeStyle = '#ccc'; ctx.strokeRect(g.m.l, g.m.t, g.pw, g.ph);
  ctx.fillStyle = '#444'; ctx.font = LSX.font(12); ctx.textAlign = 'center';
  ctx.fillText(d.axes[0], g.m.l + g.pw / 2, g.h - 8);
  ctx.save(); ctx.translate(12 * g.k, g.m.t + g.ph / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(d.axes[1], 0, 0); ctx.restore();
  const r = d.x.length > 3000 ? 1.6 : 2.4;
  ctx.globalAlpha = 0.7;
  for (let i = 0; i < d.x.length; i++) {
    const [x, y] = px(d, g, i); ctx.fillStyle = d.colors[d.c[i]];
    ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
  }
  scatter = off; scatter.d = d;
}
function draw() {
  const canvas = q('.lsx-canvas'); const d = data(); if (!canvas) return;
  bind(canvas);
  const g = layout(canvas); geom = g;
  const ctx = canvas.getContext('2d'); ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  q('.lsx-title').textContent = d ? d.title : (props.value && props.value.message) || 'Loading the map…';
  if (!d) return;
  if (!scatter || scatter.d !== d) drawScatter(d, g);
  ctx.drawImage(scatter, 0, 0);
  ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
  const marks = api.drawn = [];  // what was marked, for tests: {kind: 'pick'|'hover', row, label}
  const mark = (i, text, color, kind = 'pick') => {
    if (i === null || i === undefined || i < 0 || i >= d.x.length) return;
    marks.push({kind, row: i, label: text});
    const [x, y] = px(d, g, i);
    ctx.lineWidth = 2.5; ctx.strokeStyle = 'white'; ctx.beginPath(); ctx.arc(x, y, 8, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = 1.8; ctx.strokeStyle = color; ctx.beginPath(); ctx.arc(x, y, 8, 0, 2 * Math.PI); ctx.stroke();
    if (text) { ctx.font = LSX.font(13, 'bold'); ctx.lineWidth = 3; ctx.strokeStyle = 'white';
      ctx.strokeText(text, x + 14, y - 8); ctx.fillStyle = color; ctx.fillText(text, x + 14, y - 8); }
  };
  if (sel.length === 2 && sel[0] !== null && sel[0] >= 0 && sel[1] >= 0) {
    const [ax, ay] = px(d, g, sel[0]), [bx, by] = px(d, g, sel[1]);
    ctx.setLineDash([4, 4]); ctx.strokeStyle = '#333'; ctx.lineWidth = 1.2;
    ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke(); ctx.setLineDash([]);
  }
  // two picks are A and B; a single pick (sel = [null, i]: the first click, or the DAE's one) is a plain marker
  const two = sel.length === 2 && sel[0] !== null && sel[0] >= 0;
  mark(two ? sel[0] : null, 'A', '#1f3a93');
  mark(sel.length ? sel[sel.length - 1] : null, two ? 'B' : '', '#c0392b');
  mark(hover, '', '#111', 'hover');
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
function thumb(ctx, idx, x, y, w, h) {  // the test image `idx` (dataset index) from the sprite; false if absent
  const d = data(); if (!spriteImg || !d) return false;
  const side = d.sprite_side, s = d.thumb;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(spriteImg, (idx % side) * s, Math.floor(idx / side) * s, s, s, x, y, w, h);
  return true;
}
function tip(ev, i) {
  const t = q('.lsx-tip'), d = data(); if (!t) return;
  if (i < 0 || !d) { t.style.display = 'none'; return; }
  const c = t.querySelector('canvas'), ctx = c.getContext('2d');
  ctx.fillStyle = 'black'; ctx.fillRect(0, 0, 84, 84);
  thumb(ctx, d.idx[i], 0, 0, 84, 84);
  t.querySelector('.lsx-tip-text').textContent = '#' + d.idx[i] + ' ' + d.classes[d.c[i]];
  const host = q('.lsx-map').getBoundingClientRect();
  let x = ev.clientX - host.left + 14, y = ev.clientY - host.top + 14;
  if (x + 96 > host.width) x -= 120;
  t.style.left = x + 'px'; t.style.top = y + 'px'; t.style.display = 'block';
}
function rowIndex(idx) {  // dataset index -> this map's row (-1 when not on the map)
  const d = data(); if (!d) return -1;
  if (!rowOf || rowOf.d !== d) { rowOf = new Map(Array.from(d.idx, (v, i) => [v, i])); rowOf.d = d; }
  const r = rowOf.get(idx); return r === undefined ? -1 : r;
}
const toIdx = s => { const d = data(); return s.map(j => (j === null || j < 0 || !d) ? null : d.idx[j]); };
let pending = null;  // the server hears a pick once the page has drawn it (its event dispatch is not free)
function tell(index, picks) {
  if (pending) clearTimeout(pending.timer);
  const go = () => { if (pending && pending.go === go) { pending = null; trigger('select', {index, value: picks}); } };
  pending = {go, timer: setTimeout(go, 300)};
  return go;
}
const toRows = s => s.map(v => (v === null || v === undefined) ? null : rowIndex(v));
function bind(canvas) {
  if (canvas.dataset.bound) return; canvas.dataset.bound = '1';
  canvas.addEventListener('mousemove', ev => { const i = nearest(ev, 10);
    if (i !== hover) { hover = i; draw(); } tip(ev, i); });
  canvas.addEventListener('mouseleave', () => { hover = -1; tip(null, -1); draw(); });
  canvas.addEventListener('click', ev => {
    const t0 = performance.now();
    const i = nearest(ev, 14); if (i < 0) return;
    const d = data(), t1 = performance.now();
    sel = sel.length === 0 ? [null, i] : [sel[sel.length - 1], i];
    const picks = toIdx(sel);
    const t2 = pickRows(sel, t0);
    LSX.state.set({picks: urlPicks(picks)}, {push: true});  // the picks in the URL: a new history entry
    api.lastClick = {nearest: t1 - t0, emit: t2 - t1, draw: performance.now() - t2};
  });
}
// A pick of rows `s` ([A or null, B]): the server keeps it (nobody waits for its answer), the group's view decodes
// it and the other maps follow; returns when the emit was done (for api.lastClick)
function pickRows(s, t0) {
  const d = data(); sel = s.slice();
  const picks = toIdx(sel), last = sel[sel.length - 1];
  const done = tell(last === null ? null : d.idx[last], picks);
  if (join()) { G.sel = picks; G.emit('pick', {from: hostId, sel: picks, t0, done}); }
  const t2 = performance.now();
  draw();
  if (!G || !G.subs.size) done();
  return t2;
}
// ?picks=A,B (test-image indices; ",B" for a single pick), shared by the maps of a group: the first map whose
// points and codes are in reads it once, and again on Back/Forward
const urlPicks = picks => picks.some(v => v !== null) ? picks.map(v => v === null ? '' : v).join(',') : null;
function fromUrl() {
  const d = data(), raw = LSX.state.get('picks');
  if (!d || !model || !join() || G.urlSeen === raw) return;
  // every shown map of the group has its codes (a later one's arrival would reset the view's pick)
  if (!Object.values(G.members).every(m => !m.shown() || m.model())) return;
  G.urlSeen = raw;
  if (!raw) return;
  const rows = toRows(raw.split(',').map(v => v === '' ? null : +v));
  if (rows.length !== 2 || rows[1] === null || rows[1] < 0 || (rows[0] !== null && rows[0] < 0)) return;
  pickRows(rows, performance.now());
}
LSX.state.on(['picks'], () => { if (G) G.urlSeen = undefined; fromUrl(); });
let model = null;  // this map's model for the group's view: {name, label, n, dim, decoder}, codes decoded once
function readLatent() {
  const L = props.latent;
  if (!L || !L.codes || !L.n) { model = null; codes = null; codesKey = null; return; }
  const key = L.codes.length + '|' + L.codes.slice(0, 64) + '|' + L.codes.slice(-64) + '|' + (L.decoder || {}).sha;
  if (key === codesKey) return;
  codesKey = key; codes = LSX.f16codes(L.codes, L.n, L.dim);
  model = {name: L.name, label: L.label, n: L.n, dim: L.dim, decoder: L.decoder, key};
}
const latent = () => model;
const api = {
  pixel: (i) => { const d = data(); return d && geom ? px(d, geom, i) : null; },
  rowOf: (idx) => rowIndex(idx),
  selection: () => sel.slice(),
  picks: () => toIdx(sel),
  model: () => latent(),
  code: (idx) => { const L = latent(), r = rowIndex(idx); return L && r >= 0 && r < codes.length ? codes[r] : null; },
  label: (idx) => { const d = data(), r = rowIndex(idx); return d && r >= 0 ? d.classes[d.c[r]] : ''; },
  thumb,
  marks: () => (api.drawn || []).slice(),
  shown: () => !!data(),
  order: hostId,
};
// For tests and scripting: window.lsxMaps[elem_id].pixel(row) is the canvas pixel of a data row.
window.lsxMaps = window.lsxMaps || {};
window.lsxMaps[hostId] = api;
let lastLatent;
function fromProps() {
  unpack();
  const d = data();
  const s = props.sel || [];
  sel = d ? toRows(s) : [];
  loadSprite(); draw(); readLatent(); join();
  if (G && codesKey !== lastLatent) { lastLatent = codesKey; G.emit('models', {from: hostId}); }
  fromUrl();
}
watch(['value', 'sprite', 'sel', 'latent'], fromProps);
new ResizeObserver(() => draw()).observe(element);
fromProps();
};
