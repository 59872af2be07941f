// The Diffusion panel's page code: the reverse chain runs in the page. The model's eps network (ONNX,
// explorer/export.py: build_unet) runs in onnxruntime-web (window.LSX, lsx.js); this file steps it with the
// same maths as explorer/diffusion.py (DDPM and DDIM, eta, leading/trailing timesteps, x0 clipping, guidance),
// draws x_t beside the predicted x_0 after every step, keeps the frames for the scrubber and encodes the GIF.
// A latent model's codes are decoded by its VAE's ONNX decoder, as on the Latent grid. The server hears nothing
// during a run. Runs inside a gr.HTML component (explorer/ui/diffusion.py) and, unchanged, in the standalone
// page "Download as a page" writes (explorer/ui/standalone.py). When the page cannot run the model (no
// WebAssembly, the ONNX not built yet), it says so and the panel's server controls below it run as before.
// window.LSXD: the sampler alone (no DOM), used by the panel and by the tests. The panel body is not indented.
window.LSXD = window.LSXD || (() => {
  const D = {};
  D.SPACINGS = ['leading', 'trailing'];

  // diffusion.timesteps: `steps` evenly strided timesteps, descending, 0-based
  D.timesteps = (T, steps, spacing) => {
    steps = steps == null ? T : steps | 0;
    if (!(steps >= 1 && steps <= T)) throw new Error('steps must be between 1 and T=' + T + ', not ' + steps);
    if (!D.SPACINGS.includes(spacing)) throw new Error('spacing must be leading or trailing, not ' + spacing);
    const out = [];
    if (spacing === 'trailing') for (let i = 0; i < steps; i++) out.push(T - 1 - Math.floor(i * T / steps));
    else for (let i = steps - 1; i >= 0; i--) out.push(Math.floor(i * T / steps));
    return out;
  };

  // seeded standard normal noise (mulberry32 + Box-Muller): the page's own generator. It does not reproduce
  // torch.Generator's stream; the tests hand the page Python's noise instead (opts.noise).
  D.rng = (seed) => {
    let a = (seed >>> 0) || 0x9e3779b9, spare = null;
    const u = () => { a = (a + 0x6D2B79F5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
    const normal = () => {
      if (spare !== null) { const s = spare; spare = null; return s; }
      let x = 0; while (x === 0) x = u();
      const r = Math.sqrt(-2 * Math.log(x)), th = 2 * Math.PI * u();
      spare = r * Math.sin(th); return r * Math.cos(th);
    };
    return (n) => { const out = new Float32Array(n); for (let i = 0; i < n; i++) out[i] = normal(); return out; };
  };

  // the eps network: {run(x Float32Array (B*per), B, t, y Int32Array(B)) -> Promise<Float32Array eps>}
  D.network = async (spec, bytes) => {
    const ort = await LSX.ort();
    const session = await ort.InferenceSession.create(bytes, {executionProviders: ['wasm'], graphOptimizationLevel: 'all'});
    const shape = spec.shape;
    let chain = Promise.resolve();
    const run = (x, B, t, y) => {
      const p = chain.then(async () => {
        const tt = new BigInt64Array(B).fill(BigInt(t)), yy = new BigInt64Array(B);
        for (let i = 0; i < B; i++) yy[i] = BigInt(y[i]);
        const out = await session.run({x_t: new ort.Tensor('float32', x, [B, ...shape]),
                                       t: new ort.Tensor('int64', tt, [B]), y: new ort.Tensor('int64', yy, [B])});
        return out.eps.data;
      });
      chain = p.catch(() => {});
      return p;
    };
    return {run, session};
  };

  // DDPMModel.eps_fn: classifier-free guidance from one batch of [labels, null]
  async function guidedEps(net, x, n, per, t, labels, nul, w) {
    if (w === 0) return net.run(x, n, t, new Int32Array(n).fill(nul));
    if (w === 1) return net.run(x, n, t, labels);
    const xx = new Float32Array(2 * n * per); xx.set(x); xx.set(x, n * per);                 // (2N, ...)
    const yy = new Int32Array(2 * n); yy.set(labels); yy.fill(nul, n);
    const both = await net.run(xx, 2 * n, t, yy), eps = new Float32Array(n * per);
    // eps = eps_u + w (eps_c - eps_u)   (Ho & Salimans 2021, Eq. 6, w here = their 1 + w)
    for (let k = 0, m = n * per; k < m; k++) { const c = both[k], u = both[m + k]; eps[k] = u + w * (c - u); }
    return eps;
  }

  // The reverse chain (diffusion.sample_progressive): yields {index, t, x_t, pred_x0, prev_sample} after every
  // step. o: {n, shape, ab (alpha_bar_t, t = 0..T-1), steps, sampler 'ddpm'|'ddim', eta, guidance, labels
  // (Int32Array n, the null label for unconditional ones), nul, clip (null: none), spacing,
  // xT (optional Float32Array), noise(count) -> Float32Array (called in the order torch's generator draws:
  // x_T when not given, then each step that adds noise)}
  D.chain = async function* (net, o) {
    const per = o.shape.reduce((a, b) => a * b, 1), n = o.n, N = n * per, ab = o.ab, T = ab.length;
    const ts = D.timesteps(T, o.steps, o.spacing), ddpm = o.sampler === 'ddpm', eta = +o.eta || 0, clip = o.clip;
    const labels = o.labels || new Int32Array(n).fill(o.nul);
    let x = o.xT ? Float32Array.from(o.xT) : o.noise(N);
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i], tp = i + 1 < ts.length ? ts[i + 1] : -1;
      const eps = await guidedEps(net, x, n, per, t, labels, o.nul, +o.guidance);
      const a = ab[t], ap = tp < 0 ? 1 : ab[tp], sa = Math.sqrt(a), s1a = Math.sqrt(1 - a);  // alpha_bar := 1 at t = -1
      const x0 = new Float32Array(N);
      for (let k = 0; k < N; k++) {
        // x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)   (Eq. 4 solved for x_0; DDIM Eq. 12's "predicted x_0")
        let v = (x[k] - s1a * eps[k]) / sa;
        if (clip != null) {
          v = v < -clip ? -clip : v > clip ? clip : v;
          eps[k] = (x[k] - sa * v) / s1a;  // Eq. 4 solved for eps: step with the eps the clamped x_0 implies
        }
        x0[k] = v;
      }
      const prev = new Float32Array(N);
      if (ddpm) {
        const beta = 1 - a / ap;  // beta_t of the (possibly respaced) chain
        // mu_tilde = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x_0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t,
        // beta_tilde = (1 - ab_{t-1}) / (1 - ab_t) beta_t                         (Ho et al. 2020, Eq. 7)
        const c0 = Math.sqrt(ap) * beta / (1 - a), ct = Math.sqrt(1 - beta) * (1 - ap) / (1 - a);
        const sd = Math.sqrt((1 - ap) / (1 - a) * beta);
        // p_theta(x_{t-1} | x_t) = N(mu_tilde(x_t, x0_hat), beta_tilde_t I)   (Ho et al. 2020, Eqs. 6-7 with x0_hat)
        const z = tp >= 0 ? o.noise(N) : null;  // no noise on the last step
        for (let k = 0; k < N; k++) prev[k] = c0 * x0[k] + ct * x[k] + (z ? sd * z[k] : 0);
      } else {
        // sigma_t(eta) = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)   (Song et al. 2021, Eq. 16)
        const sigma = eta * Math.sqrt((1 - ap) / (1 - a)) * Math.sqrt(1 - a / ap);
        const c0 = Math.sqrt(ap), ce = Math.sqrt(Math.max(0, 1 - ap - sigma * sigma));
        const z = eta > 0 && tp >= 0 ? o.noise(N) : null;
        // x_{t-1} = sqrt(a_{t-1}) x0_hat + sqrt(1 - a_{t-1} - sigma_t^2) eps + sigma_t z   (Song et al. 2021, Eq. 12)
        for (let k = 0; k < N; k++) prev[k] = c0 * x0[k] + ce * eps[k] + (z ? sigma * z[k] : 0);
      }
      yield {index: i, t, x_t: x, pred_x0: x0, prev_sample: prev, steps: ts.length};
      x = prev;
    }
  };

  // q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)   (Ho et al. 2020, Eq. 4): the forward view
  D.qSample = (x0, ab, eps) => {
    const out = new Float32Array(x0.length), a = Math.sqrt(ab), b = Math.sqrt(1 - ab);
    for (let k = 0; k < x0.length; k++) out[k] = a * x0[k] + b * eps[k];
    return out;
  };

  // ---- a GIF encoder (GIF89a, LZW, one global palette, looped): frames are RGBA ImageData of one size
  D.gif = (frames, delays, scale = 1) => {
    const W = frames[0].width * scale, H = frames[0].height * scale, bytes = [];
    const put = (...b) => { for (const v of b) bytes.push(v & 255); };
    const word = (v) => put(v, v >> 8);
    const str = (s) => { for (const c of s) bytes.push(c.charCodeAt(0)); };
    // palette: 256 greys for grey frames (exact); for colour frames the 256 most frequent colours at 5 bits per
    // channel over all frames (popularity quantisation), each colour mapped to its nearest entry
    let pal = [], index;
    const grey = frames.every(f => { const d = f.data; for (let i = 0; i < d.length; i += 4 * 7) if (d[i] !== d[i + 1] || d[i] !== d[i + 2]) return false; return true; });
    if (grey) {
      for (let v = 0; v < 256; v++) pal.push([v, v, v]);
      index = (r) => r;
    } else {
      const count = new Uint32Array(32768), key = (r, g, b) => ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
      for (const f of frames) { const d = f.data; for (let i = 0; i < d.length; i += 4) count[key(d[i], d[i + 1], d[i + 2])]++; }
      const used = []; count.forEach((c, k) => { if (c) used.push(k); });
      used.sort((a, b) => count[b] - count[a]);
      pal = used.slice(0, 256).map(k => [((k >> 10) << 3) | 4, (((k >> 5) & 31) << 3) | 4, ((k & 31) << 3) | 4]);
      while (pal.length < 256) pal.push([0, 0, 0]);
      const near = new Int16Array(32768).fill(-1);
      index = (r, g, b) => {
        const k = key(r, g, b);
        if (near[k] < 0) {
          let best = 0, bd = Infinity;
          for (let j = 0; j < 256; j++) { const p = pal[j], dd = (p[0] - r) ** 2 + (p[1] - g) ** 2 + (p[2] - b) ** 2; if (dd < bd) { bd = dd; best = j; } }
          near[k] = best;
        }
        return near[k];
      };
    }
    str('GIF89a'); word(W); word(H); put(0xF7, 0, 0);  // global table of 256 entries
    for (const [r, g, b] of pal) put(r, g, b);
    str('\x21\xFF\x0BNETSCAPE2.0'); put(3, 1); word(0); put(0);  // loop forever
    frames.forEach((f, fi) => {
      put(0x21, 0xF9, 4, 0, 0, 0, 0, 0); const p = bytes.length - 5; bytes[p + 1] = delays[fi] & 255; bytes[p + 2] = (delays[fi] >> 8) & 255;
      put(0x2C); word(0); word(0); word(W); word(H); put(0);
      const px = new Uint8Array(W * H), d = f.data, fw = f.width;
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        const s = ((Math.floor(y / scale) * fw) + Math.floor(x / scale)) * 4;
        px[y * W + x] = index(d[s], d[s + 1], d[s + 2]);
      }
      lzw(px, 8, put);
    });
    put(0x3B);
    return new Uint8Array(bytes);
  };
  function lzw(px, minSize, put) {
    put(minSize);
    const clear = 1 << minSize, end = clear + 1, out = [];
    let size = minSize + 1, next = end + 1, dict = new Map(), cur = 0, nbits = 0;
    const emit = (code) => { cur |= code << nbits; nbits += size; while (nbits >= 8) { out.push(cur & 255); cur >>>= 8; nbits -= 8; } };
    emit(clear);
    let prefix = px[0];
    for (let i = 1; i < px.length; i++) {
      const k = px[i], key = prefix * 256 + k, hit = dict.get(key);
      if (hit !== undefined) { prefix = hit; continue; }
      emit(prefix);
      if (next < 4096) { dict.set(key, next++); if (next > (1 << size) && size < 12) size++; }
      else { emit(clear); dict = new Map(); size = minSize + 1; next = end + 1; }
      prefix = k;
    }
    emit(prefix); emit(end);
    if (nbits > 0) out.push(cur & 255);
    for (let i = 0; i < out.length; i += 255) { const n = Math.min(255, out.length - i); put(n); for (let j = 0; j < n; j++) put(out[i + j]); }
    put(0);
  }
  return D;
})();

(window.lsxPanels = window.lsxPanels || {}).diffusion = function (element, trigger, props, server, upload, watch) {
const S = {spec: null, net: null, decoder: null, mode: 'loading', frames: [], frameSteps: [], running: false,
           stop: false, runs: 0};
window.lsxDiffusion = S;  // tests and benchmarks read S.mode, S.frames, S.firstFrame, S.total; S.sample runs a chain
const ESC = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const MAX_FRAMES = 250, GAP = 4, EACH = 'each class in turn', UNCOND = 'unconditional (null label)';
const q = s => element.querySelector(s);
const D = window.LSXD;
const serverColumn = () => document.getElementById('diff-server');

function dom() {
  let root = q('.lsxd');
  if (root) return root;
  element.innerHTML = `
  <div class="lsxd">
    <div class="lsxd-controls">
      <div class="lsxd-row"><span class="lsxd-lab">Sampler</span>
        <label><input type="radio" name="lsxd-sampler" value="ddim" checked> DDIM</label>
        <label><input type="radio" name="lsxd-sampler" value="ddpm"> DDPM</label></div>
      <label class="lsxd-num">Steps <input class="lsxd-steps" type="number" min="1" max="1000" value="50"></label>
      <label class="lsxd-slide">η (DDIM; 0 = deterministic) <input class="lsxd-eta" type="range" min="0" max="1" step="0.05" value="1"><output>1</output></label>
      <label class="lsxd-sel">Class <select class="lsxd-class"></select></label>
      <label class="lsxd-slide">Guidance w <input class="lsxd-w" type="range" min="0" max="6" step="0.25" value="1"><output>1</output></label>
      <div class="lsxd-row"><span class="lsxd-lab">Timesteps</span>
        <label><input type="radio" name="lsxd-spacing" value="leading"> leading</label>
        <label><input type="radio" name="lsxd-spacing" value="trailing"> trailing</label></div>
      <div class="lsxd-row"><label class="lsxd-num">Seed <input class="lsxd-seed" type="number" min="0" value="0"></label>
        <label class="lsxd-num">Batch <input class="lsxd-batch" type="number" min="1" max="16" value="16"></label></div>
      <label class="lsxd-sel">Playback <select class="lsxd-speed">
        <option value="0">as fast as it runs</option><option value="100">10 frames/s</option>
        <option value="250">4 frames/s</option><option value="500">2 frames/s</option></select></label>
      <div class="lsxd-row lsxd-buttons"><button class="lsxd-run lsxd-primary">Run</button><button class="lsxd-stop">Stop</button>
        <button class="lsxd-play">Replay</button></div>
    </div>
    <div class="lsxd-view">
      <div class="lsxd-heads"><span>x<sub>t</sub> (noisy)</span><span>predicted x̂<sub>0</sub></span></div>
      <canvas class="lsxd-frame" aria-label="x_t beside the predicted x_0"></canvas>
      <div class="lsxd-status" aria-live="polite"></div>
      <label class="lsxd-scrubber">Scrub the stored steps <input class="lsxd-scrub" type="range" min="1" max="1" value="1" disabled>
        <output class="lsxd-frameno"></output></label>
      <div class="lsxd-row"><button class="lsxd-gif" disabled>Export GIF</button><a class="lsxd-gif-link" style="display:none"></a></div>
      <div class="lsxd-mode"></div>
    </div>
  </div>`;
  bind();
  return q('.lsxd');
}

function setMode(mode, note) {
  S.mode = mode;
  const m = q('.lsxd-mode'); m.dataset.mode = mode; m.textContent = note;
  // the page runs the model: the panel's server controls (today's path) are not needed; otherwise they are
  const col = serverColumn(); if (col) col.style.display = mode === 'page' ? 'none' : '';
  q('.lsxd-controls').style.opacity = mode === 'page' ? '' : '0.5';
  q('.lsxd-run').disabled = mode !== 'page';
}

// ---- settings
function settings() {
  const M = S.spec, val = s => q(s).value;
  const steps = Math.max(1, Math.min(M.T, Math.round(+val('.lsxd-steps') || 1)));
  const n = Math.max(1, Math.min(16, Math.round(+val('.lsxd-batch') || 1)));
  const label = val('.lsxd-class'), classes = M.classes;
  let labels = new Int32Array(n).fill(M.nul), names = null;
  if (label === EACH) { for (let i = 0; i < n; i++) labels[i] = i % classes.length; names = Array.from(labels, i => classes[i]); }
  else if (label !== UNCOND) { labels.fill(classes.indexOf(label)); names = Array(n).fill(label); }
  return {n, steps, sampler: element.querySelector('input[name=lsxd-sampler]:checked').value, eta: +val('.lsxd-eta'),
          guidance: +val('.lsxd-w'), labels, names, seed: Math.max(0, Math.round(+val('.lsxd-seed') || 0)),
          spacing: element.querySelector('input[name=lsxd-spacing]:checked').value, delay: +val('.lsxd-speed')};
}

// ---- model space -> images in [0, 1] (DDPMModel.to_image): pixels (x + 1) / 2, codes through the VAE decoder
async function toImages(x, n) {
  const M = S.spec;
  if (M.space === 'pixel') {
    const out = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) { const v = (x[k] + 1) / 2; out[k] = v < 0 ? 0 : v > 1 ? 1 : v; }
    out.shape = M.image_shape; return out;
  }
  const D = M.shape[0], z = new Float32Array(x.length);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) z[i * D + j] = x[i * D + j] * M.std[j] + M.mean[j];
  const img = await S.decoder.run(z, n); img.shape = M.image_shape; return img;
}

// one frame: x_t mosaic | gap | x0 mosaic, 1 px per pixel, as ImageData (kept for the scrubber and the GIF)
function compose(a, b, n, labelled = true) {
  const [C, H, W] = S.spec.image_shape, cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols);
  const mw = cols * (W + 1) - 1, mh = rows * (H + 1) - 1, fw = 2 * mw + GAP;
  const im = new ImageData(fw, mh), d = im.data; d.fill(255);
  [[a, 0], [b, mw + GAP]].forEach(([img, ox]) => {
    for (let k = 0; k < n; k++) {
      const x0 = ox + (k % cols) * (W + 1), y0 = Math.floor(k / cols) * (H + 1), base = k * C * H * W;
      for (let r = 0; r < H; r++) for (let c = 0; c < W; c++) {
        const p = ((y0 + r) * fw + x0 + c) * 4, i = base + r * W + c;
        if (C === 1) { const g = Math.round(img[i] * 255); d[p] = d[p + 1] = d[p + 2] = g; }
        else { d[p] = Math.round(img[i] * 255); d[p + 1] = Math.round(img[i + H * W] * 255); d[p + 2] = Math.round(img[i + 2 * H * W] * 255); }
      }
    }
  });
  if (labelled) { im.cols = cols; im.tile = [W, H]; im.mw = mw; }
  return im;
}

const small = document.createElement('canvas');
function show(k) {  // stored frame k (0-based), numbered as the scrubber numbers it: "frame k+1/n"
  const t = S.frameSteps[k];
  draw(S.frames[k], `frame ${k + 1}/${S.frames.length}` + (t === -1 ? ': the final sample' : `: t = ${t + 1}`));
  q('.lsxd-scrub').value = String(k + 1); S.shown = k;
}
function draw(f, caption) {
  if (!f) return;
  // the frame's room, read once per run (reading it every step would force a layout of the whole page per step)
  const c = q('.lsxd-frame'), box = S.box || (S.box = c.parentElement.clientWidth || 700);
  // whole pixels per pixel where the frame allows it; large frames (64 px faces) fill the space fractionally
  let scale = Math.min((box - 4) / f.width, 420 / f.height);
  scale = scale >= 2 ? Math.floor(scale) : Math.max(scale, 0.5);
  const cw = Math.round(f.width * scale), ch = Math.round(f.height * scale);
  if (c.width !== cw || c.height !== ch) { c.width = cw; c.height = ch; }
  small.width = f.width; small.height = f.height; small.getContext('2d').putImageData(f, 0, 0);
  const ctx = c.getContext('2d'); ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, c.width, c.height);
  labelTiles(ctx, f, scale);
  q('.lsxd-heads').style.width = c.width + 'px';  // "x_t" over the left half, "predicted x_0" over the right
  q('.lsxd-frameno').textContent = caption;
  S.drawn = (S.drawn || 0) + 1;
}
function labelTiles(ctx, f, scale) {  // the class of each image, on its predicted-x_0 tile
  if (!S.names || !f.cols) return;
  const [W, H] = f.tile, px = LSX.fs(Math.max(11, Math.min(16, Math.round(W * scale / 6))));  // larger when presenting
  ctx.font = `600 ${px}px system-ui, sans-serif`; ctx.textBaseline = 'bottom';
  S.names.forEach((name, k) => {
    const x = (f.mw + GAP + (k % f.cols) * (W + 1)) * scale, y = (Math.floor(k / f.cols) * (H + 1) + H) * scale;
    const text = name.length > 12 ? name.slice(0, 11) + '…' : name, w = ctx.measureText(text).width;
    ctx.fillStyle = 'rgba(255,255,255,0.8)'; ctx.fillRect(x, y - px - 2, Math.min(w + 4, W * scale), px + 2);
    ctx.fillStyle = '#111'; ctx.fillText(text, x + 2, y - 1, W * scale - 4);
  });
}
function status(text) { q('.lsxd-status').innerHTML = text; }

// ---- a run, all in the page
async function run() {
  if (S.running || S.mode !== 'page') return;
  const o = settings(), M = S.spec, t0 = performance.now();
  S.running = true; S.stop = false; S.frames = []; S.frameSteps = []; S.names = o.names; S.runs++;
  S.firstFrame = null; S.stepTimes = []; S.box = 0;
  q('.lsxd-scrub').disabled = true; q('.lsxd-gif').disabled = true; q('.lsxd-gif-link').style.display = 'none';
  const stride = Math.max(1, Math.ceil(o.steps / MAX_FRAMES));
  let last = null, shownAt = 0;
  try {
    const rng = D.rng(o.seed), N = o.n * M.shape.reduce((a, b) => a * b, 1), xT = rng(N);
    // the first frame at once, before the network's first call: x_T, the pure noise the chain starts from
    const start = await toImages(xT, o.n), blank = new Float32Array(start.length).fill(0.5);
    draw(compose(start, blank, o.n, false), `x_T: pure noise; step 1/${Math.min(o.steps, M.T)} is running`);
    S.firstFrame = performance.now() - t0;
    await LSX.yieldTask();
    for await (const step of D.chain(S.net, {...o, shape: M.shape, ab: M.ab, nul: M.nul, clip: M.clip, xT, noise: rng})) {
      const [a, b] = await Promise.all([toImages(step.x_t, o.n), toImages(step.pred_x0, o.n)]);
      const f = compose(a, b, o.n);
      if (step.index % stride === 0) { S.frames.push(f); S.frameSteps.push(step.t); }
      const wait = o.delay - (performance.now() - shownAt);
      if (wait > 0) await new Promise(r => setTimeout(r, wait));
      draw(f, `step ${step.index + 1}/${step.steps}: t = ${step.t + 1}`);
      shownAt = performance.now();
      S.stepTimes.push(shownAt - t0);
      status(`step ${step.index + 1}/${step.steps}, t = ${step.t + 1}, ${((shownAt - t0) / 1000).toFixed(1)} s ` +
             `<span class="lsxd-where">(in your browser)</span>`);
      last = step;
      await LSX.yieldTask();  // paint, and let Stop's click in
      if (S.stop) break;
    }
    if (last && !S.stop) {
      const fin = await toImages(last.prev_sample, o.n), f = compose(fin, fin, o.n);
      S.frames.push(f); S.frameSteps.push(-1);
      S.final = {x: last.prev_sample, images: fin};
      const dt = (performance.now() - t0) / 1000;
      status(`<b>done</b>: ${o.steps} ${o.sampler.toUpperCase()} steps` + (o.sampler === 'ddim' ? `, η = ${o.eta}` : '') +
             (o.steps < M.T ? `, ${o.spacing} timesteps` : '') + `, guidance ${o.guidance}, ${dt.toFixed(2)} s for ${o.n} image(s) ` +
             `(${Math.round(1000 * dt / o.n)} ms per image, in your browser)`);
    } else if (last) status(`stopped after step ${last.index + 1}/${last.steps}: scrub through the stored steps`);
    S.total = performance.now() - t0;
  } catch (err) {
    status('the run failed in the page: ' + ESC(err.message || err));
    console.warn('LSXD:', err);
  } finally {
    S.running = false;
    const n = S.frames.length, sc = q('.lsxd-scrub');
    sc.max = String(Math.max(n, 1)); sc.disabled = n < 2; q('.lsxd-gif').disabled = n === 0;
    if (n) show(n - 1);
  }
}
async function replay() {
  if (S.running || !S.frames.length) return;
  S.running = true; S.stop = false;
  const delay = Math.max(40, +q('.lsxd-speed').value || 0);
  for (let k = 0; k < S.frames.length && !S.stop; k++) { show(k); await new Promise(r => setTimeout(r, delay)); }
  S.running = false;
}

function exportGif() {
  if (!S.frames.length) return;
  const delays = S.frames.map((_, k) => k === S.frames.length - 1 ? 150 : 8);  // hundredths; the sample held 1.5 s
  const bytes = D.gif(S.frames, delays, 3), a = q('.lsxd-gif-link');
  if (a.href) URL.revokeObjectURL(a.href);
  a.href = URL.createObjectURL(new Blob([bytes], {type: 'image/gif'}));
  a.download = 'diffusion.gif'; a.textContent = `diffusion.gif (${Math.round(bytes.length / 1024)} KB)`;
  a.style.display = ''; S.gif = bytes;  // kept for tests (a standalone page's CSP forbids fetching the blob)
}

// ---- the settings in the page's URL (LSX.state, web/lsx.js): a slide links to a prepared run, Back restores the last
// one. Class: its name, or "each" / "none" for each class in turn / the null label. Written when Run is pressed.
const URL_KEYS = ['sampler', 'steps', 'eta', 'guidance', 'label', 'seed', 'spacing', 'batch'];
const LABEL_IN_URL = {[EACH]: 'each', [UNCOND]: 'none'};
function urlState() {
  const o = settings(), label = q('.lsxd-class').value;
  return {sampler: o.sampler, steps: o.steps, eta: o.eta, guidance: o.guidance, label: LABEL_IN_URL[label] || label,
          seed: o.seed, spacing: o.spacing, batch: o.n};
}
function fromUrl(values) {  // {key: string or null}: set the controls the URL names (unknown values are ignored)
  if (!values || !S.spec) return;
  const num = (k, lo, hi) => { const v = values[k]; if (v === null || v === undefined || v === '' || !Number.isFinite(+v)) return null;
    return Math.max(lo, Math.min(hi, +v)); };
  const radio = (name, v) => { const r = v && element.querySelector(`input[name=lsxd-${name}][value="${CSS.escape(v)}"]`); if (r) r.checked = true; };
  radio('sampler', values.sampler); radio('spacing', values.spacing);
  const set = (sel, v) => { if (v === null) return; const inp = q(sel); inp.value = String(v);
    if (inp.nextElementSibling && inp.nextElementSibling.tagName === 'OUTPUT') inp.nextElementSibling.textContent = inp.value; };
  set('.lsxd-steps', num('steps', 1, S.spec.T)); set('.lsxd-eta', num('eta', 0, 1)); set('.lsxd-w', num('guidance', 0, 6));
  set('.lsxd-seed', num('seed', 0, 2 ** 31 - 1)); set('.lsxd-batch', num('batch', 1, 16));
  if (values.label) {
    const name = Object.keys(LABEL_IN_URL).find(k => LABEL_IN_URL[k] === values.label) || values.label;
    if ([EACH, UNCOND, ...S.spec.classes].includes(name)) q('.lsxd-class').value = name;
  }
}
const urlNow = () => Object.fromEntries(URL_KEYS.map(k => [k, LSX.state ? LSX.state.get(k) : null]));
if (LSX.state) LSX.state.on(URL_KEYS, fromUrl);

window.addEventListener('resize', () => { S.box = 0; });
function bind() {
  q('.lsxd-run').addEventListener('click', () => { if (LSX.state && S.mode === 'page') LSX.state.set(urlState(), {push: true}); run(); });
  q('.lsxd-stop').addEventListener('click', () => { S.stop = true; });
  q('.lsxd-play').addEventListener('click', replay);
  q('.lsxd-gif').addEventListener('click', exportGif);
  q('.lsxd-scrub').addEventListener('input', ev => { if (!S.running) show(+ev.target.value - 1); });
  element.querySelectorAll('.lsxd-slide input').forEach(inp => inp.addEventListener('input', () => { inp.nextElementSibling.textContent = inp.value; }));
}

// ---- the model: its spec from the server (or inlined in a standalone page), its network and decoder
async function unetBytes(M) {
  if (props.inline_unet) return LSX.b64bytes(props.inline_unet);
  const key = '/lsx-unet/' + M.sha;
  let bytes = LSX.cached ? await LSX.cached(key) : null;
  if (bytes) return bytes;
  const r = await server.unet_bytes({name: M.name, sha: M.sha});
  if (!r || r.error) throw new Error((r && r.error) || 'no ONNX file');
  bytes = LSX.b64bytes(r.onnx);
  if (LSX.keep) LSX.keep(key, bytes);
  return bytes;
}
S.loadTimes = [];
async function fromModel() {
  const M = props.value; dom();
  if (!M || !M.name) { setMode('none', (M && M.message) || 'no diffusion model'); return; }
  if (S.spec && S.spec.name === M.name && S.spec.sha === M.sha && S.net) return;
  if (typeof M.ab === 'string') {
    M.ab = LSX.unpack(M.ab, Float32Array);
    if (M.mean) { M.mean = LSX.unpack(M.mean, Float32Array); M.std = LSX.unpack(M.std, Float32Array); }
  }
  S.spec = M; S.net = null; S.decoder = null;
  q('.lsxd-class').innerHTML = [EACH, UNCOND, ...M.classes].map(c => `<option>${ESC(c)}</option>`).join('');
  q('.lsxd-steps').max = String(M.T); q('.lsxd-steps').value = String(Math.min(+q('.lsxd-steps').value || 50, M.T));
  element.querySelector(`input[name=lsxd-spacing][value=${M.spacing}]`).checked = true;
  fromUrl(urlNow());  // a prepared lecture's settings (?steps=&seed=...) over the model's defaults
  if (!M.sha) {
    setMode('server', 'Running on the server: ' + (M.note || 'this model has no in-page network yet'));
    if (M.building) whenBuilt(M);
    return;
  }
  if (!LSX.wasmOk()) { setMode('server', 'Running on the server: this browser has no WebAssembly'); return; }
  if (S.forceServer || /[?&]diffusion=server\b/.test(location.search)) {
    setMode('server', 'Running on the server: in-page sampling switched off (?diffusion=server)'); return;
  }
  setMode('loading', 'Loading the model into your browser…');
  try {
    const t0 = performance.now();
    const [net, dec] = await Promise.all([unetBytes(M).then(b => D.network(M, b)),
      M.space === 'latent' ? LSX.decoder(M.decoder, server, props.inline_decoder || null) : null]);
    if (S.spec !== M) return;
    if (dec && dec.mode !== 'page') throw new Error('the decoder of its codes cannot run in the page (' + dec.note + ')');
    S.net = net; S.decoder = dec; S.loadTimes.push(performance.now() - t0);
    setMode('page', `Runs in your browser (WebAssembly): ${M.name}, ONNX of weights ${M.sha.slice(0, 12)}…; the server is not asked during a run`);
  } catch (err) {
    console.warn('LSXD: in-page sampling failed, using the server:', err);
    setMode('server', 'Running on the server: the in-page model failed to load (' + String(err.message || err).slice(0, 100) + ')');
  }
}
function whenBuilt(M) {  // the server builds the ONNX in the background: ask again every 2 s for a minute
  let tries = 0;
  const poll = async () => {
    if (S.spec !== M || ++tries > 30 || !server || !server.diffusion_spec) return;
    const s = await server.diffusion_spec({name: M.name}).catch(() => null);
    if (S.spec !== M) return;
    if (s && s.sha) { props.value = s; fromModel(); } else setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
}

// For tests: one chain with given x_T and per-step noise (arrays in torch's draw order); returns the final
// state in model space and its images.
S.sample = async (o) => {
  const M = S.spec, N = o.n * M.shape.reduce((a, b) => a * b, 1), draws = (o.noise || []).map(a => Float32Array.from(a));
  let used = 0;
  const noise = (count) => { if (count !== N || used >= draws.length) throw new Error('noise draw ' + used + ' not given'); return draws[used++]; };
  let last = null;
  const labels = Int32Array.from(o.labels || Array(o.n).fill(M.nul));
  for await (const step of D.chain(S.net, {...o, labels, shape: M.shape, ab: M.ab, nul: M.nul,
                                           clip: o.clip === undefined ? M.clip : o.clip, noise})) last = step;
  const images = await toImages(last.prev_sample, o.n);
  return {x: Array.from(last.prev_sample), images: Array.from(images), used};
};

if (typeof watch === 'function') watch('value', fromModel);
new ResizeObserver(() => { if (S.shown != null && !S.running) show(S.shown); }).observe(element);
fromModel();
};

// ---- the forward process in the page: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps under both
// schedules with the same eps, for every t the slider passes through; the server sends the chosen test image
// (forward_image, when the index changes) and, once, both schedules and the chart of their curves.
(window.lsxPanels = window.lsxPanels || {}).diffusion_forward = function (element, trigger, props, server, upload, watch) {
const F = {spec: null, x0: null, eps: null, seed: null, drawn: 0, requests: 0};
window.lsxDiffusionForward = F;
const q = s => element.querySelector(s), ESC = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
function dom() {
  if (q('.lsxf')) return;
  element.innerHTML = `
  <div class="lsxf">
    <div class="lsxf-controls">
      <label class="lsxd-slide">Test image # <input class="lsxf-index" type="range" min="0" max="0" step="1" value="0"><output>0</output></label>
      <label class="lsxd-slide">t (0 = clean, 1000 = pure noise) <input class="lsxf-t" type="range" min="0" max="1000" step="1" value="250"><output>250</output></label>
      <label class="lsxd-num">Noise seed <input class="lsxf-seed" type="number" min="0" value="0"></label>
    </div>
    <figure class="lsxf-fig"><figcaption>linear</figcaption><canvas class="lsxf-linear" width="196" height="196"></canvas></figure>
    <figure class="lsxf-fig"><figcaption>cosine</figcaption><canvas class="lsxf-cosine" width="196" height="196"></canvas></figure>
    <canvas class="lsxf-curves" aria-label="alpha_bar_t and log-SNR of both schedules"></canvas>
  </div>
  <div class="lsxf-caption"></div>`;
  element.querySelectorAll('.lsxd-slide input').forEach(inp => inp.addEventListener('input', () => { inp.nextElementSibling.textContent = inp.value; }));
  q('.lsxf-t').addEventListener('input', draw);
  q('.lsxf-seed').addEventListener('change', draw);
  let pending = null;
  q('.lsxf-index').addEventListener('input', () => { clearTimeout(pending); pending = setTimeout(fetchImage, 60); });
}
async function fetchImage() {  // the one request of this view: a new test image (784 bytes for Fashion-MNIST)
  const index = +q('.lsxf-index').value;
  if (!server || !server.forward_image) return;
  F.requests++;
  const r = await server.forward_image({index, dataset: F.spec.dataset}).catch(() => null);
  if (r && !r.error && +q('.lsxf-index').value === index) { F.spec.image = r; F.x0 = null; draw(); }
}
const chart = new Image();
function draw() {
  const M = F.spec; if (!M || !M.image) return;
  const t = +q('.lsxf-t').value, seed = Math.max(0, Math.round(+q('.lsxf-seed').value || 0)), [C, H, W] = M.image.shape;
  if (!F.x0 || F.x0.index !== M.image.index) {
    const b = LSX.b64bytes(M.image.pixels); F.x0 = Float32Array.from(b, v => v / 255 * 2 - 1); F.x0.index = M.image.index;  // [-1, 1]
  }
  if (F.seed !== seed || !F.eps || F.eps.length !== F.x0.length) { F.eps = window.LSXD.rng(seed)(F.x0.length); F.seed = seed; }
  const caption = [];
  for (const name of ['linear', 'cosine']) {
    const ab = M.ab[name], a = t === 0 ? 1 : ab[t - 1];
    const x = t === 0 ? F.x0 : window.LSXD.qSample(F.x0, a, F.eps);
    const img = Float32Array.from(x, v => (v + 1) / 2);
    F.last = F.last || {}; F.last[name] = x; F.last.t = t;
    LSX.mosaic(q('.lsxf-' + name).getContext('2d'), img, 1, 1, 0, 0, 196, 196, 0, false, [C, H, W]);
    if (t) caption.push(`${name}: ᾱ_t = ${a.toFixed(4)}, log-SNR = ${(Math.log(a / (1 - a)) >= 0 ? '+' : '') + Math.log(a / (1 - a)).toFixed(2)}`);
  }
  q('.lsxf-caption').textContent = `Test image ${M.image.index} (${M.image.label}), t = ${t}` + (t ? ': ' + caption.join('; ') : ' (clean)') +
    ' — computed in your browser from the closed form q(x_t | x_0)';
  const c = q('.lsxf-curves');
  if (chart.complete && chart.naturalWidth) {
    if (c.width !== chart.naturalWidth) { c.width = chart.naturalWidth; c.height = chart.naturalHeight; }
    const ctx = c.getContext('2d'); ctx.drawImage(chart, 0, 0);
    ctx.fillStyle = 'rgb(220,20,60)';
    for (const [l, top, r, bottom, x0, x1] of M.axes) {
      const px = l + (Math.max(t, 1) - x0) / (x1 - x0) * (r - l);
      ctx.fillRect(Math.round(px) - 1, top, 2, bottom - top);
    }
  }
  F.drawn++;
}
function fromSpec() {
  const M = props.value; dom();
  if (!M || !M.ab) return;
  if (typeof M.ab.linear === 'string') for (const k of Object.keys(M.ab)) M.ab[k] = LSX.unpack(M.ab[k], Float32Array);
  F.spec = M; F.x0 = null;
  const idx = q('.lsxf-index'); idx.max = String(M.n_images - 1);
  chart.onload = draw; chart.src = 'data:image/png;base64,' + M.chart;
  draw();
}
if (typeof watch === 'function') watch('value', fromSpec);
fromSpec();
};
