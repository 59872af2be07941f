// The Attribute vectors panel's page code: the strength slider, the live image decode(z + s·v) and the
// −k..+k strip, all decoded in the page (window.LSX, lsx.js).
// Runs inside a gr.HTML component (element, props, trigger, watch, server are Gradio's). Apply sends
// props.value = {name, dim, z, v, s, k, strip, range, a, b, what, decoder, seq}; from then on every
// slider move decodes here with no server request, the strip is one batched decode, and the server
// hears only the strength the slider was left at (trigger('select'), for the next Apply). Without
// WebAssembly, or for a model with no ONNX decoder, LSX hands back the server decoder (same interface).
// Registered in window.lsxPanels and mounted per component by LSX.mount (lsx.js); the body is not indented.
(window.lsxPanels = window.lsxPanels || {}).attributes = function (element, trigger, props, server, upload, watch) {
const AT = {model: null, decoder: null, s: 1, times: [], frames: 0, stripFrames: 0, commits: 0,
            last: null, lastS: null, strip: null, stripS: null, stripMs: null, stripCanvas: null};
window.lsxAttributes = AT;
AT.labels = () => labelsFor();  // tests: the labels drawn under the strip, or null  // tests and benchmarks read AT.times (input event -> image drawn, ms), AT.last, AT.decoder.mode
const ESC = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const signed = (v, d = 2) => (v > 0 ? '+' : v < 0 ? '−' : '') + Math.abs(v).toFixed(d);

function q(s) { return element.querySelector(s); }
function dom() {  // the template may be re-rendered when the value changes: rebuild and redraw from AT
  let root = q('.lsxa');
  if (root) return root;
  element.innerHTML = `
  <div class="lsxa">
    <div class="lsxa-top">
      <div>
        <div class="lsxa-title">decode(z + s·v)</div>
        <canvas class="lsxa-live" width="224" height="224" aria-label="decoded image at strength s"></canvas>
      </div>
      <div class="lsxa-ctl">
        <label class="lsxa-slider"><span>Strength s</span><output class="lsxa-sout"></output>
          <input class="lsxa-s" type="range" id="attr-s" min="-3" max="3" step="0.05" value="1" disabled>
          <div class="lsxa-ticks"><span>−3 (more B)</span><span>0 = the input</span><span>+3 (more A)</span></div></label>
        <div class="lsxa-what"></div>
        <div class="lsxa-mode"></div>
      </div>
    </div>
    <div>
      <div class="lsxa-title lsxa-striptitle">Strip: z + s·v for s = −k … +k</div>
      <canvas class="lsxa-strip" aria-label="strip of decoded images from s = -k to +k"></canvas>
    </div>
  </div>`;
  AT.stripCanvas = null;
  return q('.lsxa');
}

// ---- decoding
function zAt(s, out, offset = 0) {  // z + s·v as float32 (z and v arrive as float64 lists)
  const M = AT.model;
  for (let j = 0; j < M.dim; j++) out[offset + j] = M.z[j] + s * M.v[j];
  return out;
}
const liveJob = LSX.latest(), stripJob = LSX.latest();
function decodeLive(t0) {
  const s = AT.s, dec = AT.decoder, M = AT.model;
  liveJob(async () => {
    if (!dec || !M) return;
    const img = await dec.run(zAt(s, new Float32Array(M.dim)), 1);
    if (dec !== AT.decoder || M !== AT.model) return;
    AT.last = img; AT.lastS = s;
    const c = q('.lsxa-live'); if (c) LSX.image(c, img);
    AT.frames += 1;
    if (t0 !== undefined) { AT.times.push(performance.now() - t0); if (AT.times.length > 5000) AT.times.shift(); }
  });
}
function strengths() {
  const M = AT.model, n = M.strip, k = M.k;
  return Array.from({length: n}, (_, i) => n > 1 ? -k + 2 * k * i / (n - 1) : 0);
}
function decodeStrip() {
  const M = AT.model, dec = AT.decoder;
  stripJob(async () => {
    if (!dec || !M) return;
    const ss = strengths(), z = new Float32Array(ss.length * M.dim);
    ss.forEach((s, i) => zAt(s, z, i * M.dim));
    const t0 = performance.now();
    const images = await dec.run(z, ss.length);  // one batched run for the whole strip
    if (dec !== AT.decoder || M !== AT.model) return;
    AT.strip = images; AT.stripS = ss; AT.stripMs = performance.now() - t0; AT.stripCanvas = null; AT.stripFrames += 1;
    const where = dec.mode === 'page' ? 'decoded in your browser' : 'decoded on the server';
    q('.lsxa-striptitle').textContent = `Strip: z + s·v for s = −${M.k} … +${M.k} (${ss.length} images, ${where} in one batch)`;  // AT.stripMs: its wall time
    drawStrip();
  });
}

// ---- drawing
function drawStrip() {
  const c = q('.lsxa-strip'); if (!c || !AT.model) return;
  const dpr = window.devicePixelRatio || 1, w = Math.max(c.clientWidth || 560, 240);
  const f = LSX.fs(11) / 11, most = LSX.present() ? 160 : 72;  // type scale and largest tile: bigger when presenting (lsx.js)
  const n = AT.model.strip, pad = 10, gap = 6, tile = Math.min(most, (w - 2 * pad - gap * (n - 1)) / n);
  const L = labelsFor(), lh = L ? 30 * f : 0;  // the classifier's top class and p under each tile (props.labels)
  const left = (w - n * tile - (n - 1) * gap) / 2, top = 8, h = Math.round(top + tile + 48 * f + lh);
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); c.style.height = h + 'px'; AT.stripCanvas = null;
  }
  const ctx = c.getContext('2d');
  ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.fillStyle = 'white'; ctx.fillRect(0, 0, c.width, c.height);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const cx = i => left + i * (tile + gap) + tile / 2;
  if (AT.strip) {
    if (!AT.stripCanvas) {  // the tiles once per decoded strip and size, then blitted under the moving marker
      const off = document.createElement('canvas'); off.width = c.width; off.height = c.height;
      const o = off.getContext('2d');
      for (let i = 0; i < n; i++) {
        const sh = AT.strip.shape, n = LSX.px(sh);
        LSX.mosaic(o, AT.strip.subarray(i * n, (i + 1) * n), 1, 1, (left + i * (tile + gap)) * dpr, top * dpr, tile * dpr, tile * dpr, 0, false, sh);
      }
      AT.stripCanvas = off;
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.drawImage(AT.stripCanvas, 0, 0); ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  } else {
    ctx.fillStyle = '#eee';
    for (let i = 0; i < n; i++) ctx.fillRect(left + i * (tile + gap), top, tile, tile);
  }
  const ss = strengths(), k = AT.model.k;
  if (L) {
    ctx.textAlign = 'center'; ctx.fillStyle = '#222';
    L.top.forEach((c, i) => {
      ctx.font = LSX.font(11, '600'); ctx.fillText(fitText(ctx, c, tile + gap - 2), cx(i), top + tile + 13 * f);
      const p = L.p[i] >= 0.995 ? L.p[i].toFixed(3) : L.p[i].toFixed(2);  // presenting: the number alone fits a tile
      ctx.font = LSX.font(11); ctx.fillText(fitText(ctx, LSX.present() ? p : `p = ${p}`, tile + gap - 2), cx(i), top + tile + 26 * f);
    });
  }
  const y = top + tile + lh;
  ctx.font = LSX.font(11); ctx.textAlign = 'center'; ctx.fillStyle = '#444';
  ss.forEach((s, i) => ctx.fillText(signed(s, 1), cx(i), y + 15 * f));
  // the slider's strength on the strip's axis (tile centres are at -k .. +k); a tile at that strength is outlined
  const x0 = cx(0), x1 = cx(n - 1), inside = AT.s >= -k - 1e-9 && AT.s <= k + 1e-9;
  const xs = x0 + (Math.max(-k, Math.min(k, AT.s)) + k) / (2 * k) * (x1 - x0);
  ctx.strokeStyle = '#ccc'; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(x0, y + 24 * f); ctx.lineTo(x1, y + 24 * f); ctx.stroke();
  ctx.fillStyle = '#dc143c'; ctx.beginPath();
  ctx.moveTo(xs, y + 20 * f); ctx.lineTo(xs - 6, y + 20 * f + 10); ctx.lineTo(xs + 6, y + 20 * f + 10); ctx.closePath(); ctx.fill();
  ctx.textAlign = xs < x0 + 40 ? 'left' : xs > x1 - 40 ? 'right' : 'center';
  ctx.fillText(`s = ${signed(AT.s)}${inside ? '' : (AT.s < 0 ? ' (left of the strip)' : ' (right of the strip)')}`, xs, y + 42 * f);
  const near = ss.findIndex(s => Math.abs(s - AT.s) < 1e-6);
  if (near >= 0) { ctx.strokeStyle = '#dc143c'; ctx.lineWidth = 2; ctx.strokeRect(left + near * (tile + gap) - 1.5, top - 1.5, tile + 3, tile + 3); }
}
// props.labels (the server's classifier at Apply), when they belong to the strip shown: same model, groups, input, k
function labelsFor() {
  const L = props.labels, M = AT.model;
  if (!L || !L.top || !M || L.name !== M.name || L.a !== M.a || L.b !== M.b || L.what !== M.what || L.k !== M.k
      || L.top.length !== M.strip) return null;
  return L;
}
function fitText(ctx, text, width) {  // the text, cut with an ellipsis to fit `width` px
  if (ctx.measureText(text).width <= width) return text;
  let t = text;
  while (t.length > 1 && ctx.measureText(t + '…').width > width) t = t.slice(0, -1);
  return t + '…';
}
function showSlider() {
  const r = q('.lsxa-s'), o = q('.lsxa-sout'); if (!r) return;
  if (AT.model) {
    const [lo, hi, step] = AT.model.range; r.min = lo; r.max = hi; r.step = step; r.disabled = false;
    if (+r.value !== AT.s) r.value = AT.s;  // also when focused: a new Apply's strength moves the handle
  }
  o.textContent = signed(AT.s);
}
function showText() {
  const M = AT.model, what = q('.lsxa-what'), mode = q('.lsxa-mode'); if (!what) return;
  what.innerHTML = M ? `<b>z</b>: ${ESC(M.what)}<br><b>v</b> = mean(${ESC(M.a)}) − mean(${ESC(M.b)}): ` +
    `s &gt; 0 moves towards <i>${ESC(M.a)}</i>, s &lt; 0 towards <i>${ESC(M.b)}</i>.` : '';
  const d = AT.decoder;
  mode.textContent = !M ? '' : !d ? 'Loading the decoder…' : d.mode === 'page'
    ? 'Decoded in your browser (WebAssembly) on every move: nothing is sent to the server while you drag.'
    : 'Decoded on the server: ' + d.note + '.';
  mode.dataset.mode = d ? d.mode : '';
}
function redrawAll() {
  dom(); showSlider(); showText();
  if (AT.last) { const c = q('.lsxa-live'); if (c) LSX.image(c, AT.last); }
  drawStrip();
}

// ---- input (bound once on the component; the inner DOM may be rebuilt)
let frameQueued = false;
function bind() {
  element.addEventListener('input', ev => {
    if (!ev.target.classList || !ev.target.classList.contains('lsxa-s') || !AT.model) return;
    const t0 = performance.now();
    AT.s = +ev.target.value; q('.lsxa-sout').textContent = signed(AT.s);
    decodeLive(t0);
    if (!frameQueued) { frameQueued = true; requestAnimationFrame(() => { frameQueued = false; drawStrip(); }); }
  });
  element.addEventListener('change', ev => {  // let go of the slider: the server keeps s for the next Apply
    if (!ev.target.classList || !ev.target.classList.contains('lsxa-s') || !AT.model) return;
    AT.commits += 1;
    trigger('select', {index: 0, value: {s: AT.s}});
    LSX.state.set({s: AT.s}, {push: true});  // the strength in the URL (?s=), a new history entry
  });
}
// ?s= (a linked URL, or Back/Forward): the strength the slider shows, told to the server as a release would
function strengthFromUrl() {
  const M = AT.model, v = LSX.state.numbers('s');
  if (!M || !v) return false;
  const [lo, hi] = M.range, s = Math.min(hi, Math.max(lo, v[0]));
  if (s === AT.s) return true;
  AT.s = s; showSlider(); decodeLive(); drawStrip();
  trigger('select', {index: 0, value: {s: AT.s}});
  return true;
}
LSX.state.on(['s'], () => { if (element.offsetParent) strengthFromUrl(); });  // (hidden tab: not this panel's entry)
// Back/Forward to other groups or another input: the server applies them, from the URL, as for a linked page
LSX.state.on(['a', 'b', 'index'], v => {
  const M = AT.model;
  if (!element.offsetParent) return;  // another panel's history entry (this one is in a hidden tab)
  if (M && (v.a !== M.a || v.b !== M.b || String(v.index) !== String(M.index))) location.reload();
});

// ---- props from the server
async function fromValue() {
  const M = props.value;
  dom();
  if (!M || !M.z) {
    if (!AT.model) { q('.lsxa-what').innerHTML = `<div class="lsxa-msg">${ESC((M && M.message) || 'Press Apply.')}</div>`; drawStrip(); }
    else redrawAll();
    return;
  }
  if (AT.model && AT.model.seq === M.seq) { redrawAll(); return; }  // a re-render of the same state
  const sameDecoder = AT.model && AT.decoder && AT.model.name === M.name && AT.model.decoder.sha === M.decoder.sha;
  const first = !AT.model;
  AT.model = M; AT.s = M.s; AT.strip = null; AT.stripCanvas = null;
  if (first) strengthFromUrl();  // the first Apply of a linked URL takes its strength
  // the groups and the input in the URL (?a=, ?b=, ?index=; the server reads them when the tab opens): each
  // Apply after the first is a new history entry
  LSX.state.set(first ? {a: M.a, b: M.b, index: M.index, s: AT.s} : {model: M.name, a: M.a, b: M.b, index: M.index, s: AT.s},
                {push: !first});  // (the model only once chosen here: ?model= sets every panel that offers it)
  if (!sameDecoder) AT.decoder = null;
  redrawAll();
  if (!AT.decoder) {
        const dec = await LSX.decoder(M.decoder, server);
    if (AT.model !== M) return;
    AT.decoder = dec; showText();
    if (dec.mode === 'server' && LSX.whenBuilt) {  // the ONNX is still being built: switch when it is ready
      LSX.whenBuilt(M.decoder, server, d => { if (AT.model !== M) return; AT.decoder = d; showText(); decodeLive(); decodeStrip(); });
    }
  }
  decodeLive(); decodeStrip();
}
if (!element.__lsxaBound) { element.__lsxaBound = true; bind(); }
if (typeof watch === 'function') { watch('value', fromValue); watch('labels', () => { if (AT.model) drawStrip(); }); }
new ResizeObserver(() => { if (AT.model) drawStrip(); }).observe(element);
fromValue();
};
