// Latent Space Explorer: decoding in the page.
//
// window.LSX is shared by every panel's gr.HTML component. The app serves this file and each panel's script
// once per page (GET /web/<name>, explorer/ui/inpage.py: page_code names them in the component's `head`);
// a panel's script registers its code in window.lsxPanels, and the component's one-line js_on_load calls
// LSX.mount(panel, element, trigger, props, server, upload, watch). The standalone page inlines the same files.
// LSX loads onnxruntime-web's single-threaded WebAssembly build from the app's /web/vendor/ folder (or from
// bytes inlined in a standalone page), keeps one
// inference session per decoder (keyed by the SHA-256 of the weights it was exported from), and
// draws decoded images onto canvases. When WebAssembly is missing, a model has no ONNX yet, or a
// decoder fails to load, decoders fall back to the server (a Gradio server function that decodes the
// same codes with PyTorch): same interface, nothing for the user to do.
window.LSX = window.LSX || (() => {
  const L = {version: 1};
  const me = document.currentScript;  // this file, served from the app's /web/ (none in a standalone page)
  // URL of the folder holding ort.wasm.bundle.min.mjs and its .wasm
  L.base = me && me.src ? new URL('vendor/onnxruntime-web/', me.src).href : null;
  L.wasmBinary = null;     // the .wasm's bytes, once loaded
  L.wasmGz = null;         // standalone page: the .wasm inlined gzipped (inflated by DecompressionStream)
  L.ortSource = null;      // standalone page: the runtime's source inlined as text
  let ortPromise = null;

  L.b64bytes = (s) => {  // base64 -> Uint8Array (a table loop: fast for megabytes, no fetch of a data: URL)
    const tbl = L._tbl || (L._tbl = (() => { const t = new Uint8Array(128);
      'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => t[c.charCodeAt(0)] = i);
      return t; })());
    let n = s.length; while (n && s[n - 1] === '=') n--;
    const out = new Uint8Array((n * 3) >> 2);
    let j = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
      const v = (tbl[s.charCodeAt(i)] << 18) | (tbl[s.charCodeAt(i + 1)] << 12) | (tbl[s.charCodeAt(i + 2)] << 6) | tbl[s.charCodeAt(i + 3)];
      out[j++] = v >> 16; out[j++] = (v >> 8) & 255; out[j++] = v & 255;
    }
    if (n - i === 2) { out[j++] = ((tbl[s.charCodeAt(i)] << 18) | (tbl[s.charCodeAt(i + 1)] << 12)) >> 16; }
    else if (n - i === 3) { const v = (tbl[s.charCodeAt(i)] << 18) | (tbl[s.charCodeAt(i + 1)] << 12) | (tbl[s.charCodeAt(i + 2)] << 6);
      out[j++] = v >> 16; out[j++] = (v >> 8) & 255; }
    return out;
  };

  // gzip bytes -> their inflated bytes, in the browser's own inflater (the app's route sends the .wasm with
  // Content-Encoding: gzip instead, which the browser inflates by itself)
  L.gunzip = async (bytes) => {
    if (typeof DecompressionStream !== 'function') throw new Error('this browser cannot inflate gzip (no DecompressionStream)');
    return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer());
  };

  // base64 of little-endian values (inpage.pack on the server) -> a typed array over the same bytes
  L.unpack = (s, T) => { const b = L.b64bytes(s); return new T(b.buffer, b.byteOffset, b.length / T.BYTES_PER_ELEMENT); };
  // the elem_id of the gr.HTML block holding `element` (Gradio wraps it in html-* elements)
  L.hostId = (element, fallback) => {
    let h = element;
    while (h && (!h.id || h.id.startsWith('html-'))) h = h.parentElement;
    return h ? h.id : fallback;
  };

  L.wasmOk = () => typeof WebAssembly === 'object' && typeof WebAssembly.instantiate === 'function';

  L.ort = () => {
    if (!ortPromise) ortPromise = (async () => {
      if (!L.wasmOk()) throw new Error('this browser has no WebAssembly');
      let url;
      if (L.ortSource) url = URL.createObjectURL(new Blob([L.ortSource], {type: 'text/javascript'}));
      else if (L.base) url = L.base + 'ort.wasm.bundle.min.mjs';
      else throw new Error('no runtime folder given');
      const ort = await import(url);
      ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation; one thread decodes in < 1 ms
      // the bundle carries its own Emscripten glue; we hand it the .wasm's bytes (inlined in a standalone
      // page, else from the browser's cache or the static folder)
      ort.env.wasm.wasmBinary = L.wasmBinary || (L.wasmBinary = L.wasmGz ? await L.gunzip(L.wasmGz) : await runtimeWasm());
      return ort;
    })();
    return ortPromise;
  };

  // ---- decoders: {mode: 'page'|'server', note, dim, shape: [C, H, W],
  //      run(z: Float32Array, n) -> Promise<Float32Array n*C*H*W in [0,1], planar (N, C, H, W), .shape = [C, H, W]>}
  L.SHAPE0 = [1, 28, 28];  // what a spec without a shape means (the grey datasets)
  L.px = (shape) => { const s = shape || L.SHAPE0; return s[0] * s[1] * s[2]; };  // floats per image
  const shaped = (a, shape) => { a.shape = shape; return a; };
  const sessions = new Map();  // sha -> Promise<decoder>

  function serial(fn) {  // one run at a time per session (a wasm session is not re-entrant)
    let chain = Promise.resolve();
    return (...a) => { const p = chain.then(() => fn(...a)); chain = p.catch(() => {}); return p; };
  }

  function serverDecoder(spec, server, reason) {
    const fn = server && server.decode_codes;
    return {
      mode: 'server', note: reason, dim: spec.dim, name: spec.name, shape: spec.shape || L.SHAPE0,
      run: serial(async (z, n) => {
        if (!fn) throw new Error('no server to decode on');
        const r = await fn({name: spec.name, z: Array.from(z, v => Math.round(v * 1e5) / 1e5), n});
        if (!r || r.error) throw new Error((r && r.error) || 'the server did not answer');
        const bytes = L.b64bytes(r.pixels), out = new Float32Array(bytes.length);
        for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 255;
        return shaped(out, spec.shape || L.SHAPE0);
      }),
    };
  }

  // The browser keeps each decoder by the SHA-256 of its weights, and the runtime's .wasm by its own SHA-256
  // (from VENDOR.json), in Cache Storage where the page is a secure context such as localhost: a second
  // visit loads neither from the server. (Gradio's file route sends no Cache-Control, and Chromium fetched
  // the 14 MB .wasm again on every visit.)
  const CACHE = 'lsx-v1';
  async function cached(key) {
    try {
      if (!self.caches) return null;
      const hit = await (await caches.open(CACHE)).match(key);
      return hit ? new Uint8Array(await hit.arrayBuffer()) : null;
    } catch (e) { return null; }
  }
  async function keep(key, bytes) {
    try { if (self.caches) await (await caches.open(CACHE)).put(key, new Response(bytes)); } catch (e) {}
  }
  async function runtimeWasm() {
    const name = 'ort-wasm-simd-threaded.wasm';
    let key = null;
    try { key = '/lsx-wasm/' + (await (await fetch(L.base + 'VENDOR.json')).json()).files[name]; } catch (e) {}
    const hit = key && await cached(key);
    if (hit) return hit;
    const resp = await fetch(L.base + name);
    if (!resp.ok) throw new Error('the runtime could not be loaded (' + resp.status + ')');
    const bytes = new Uint8Array(await resp.arrayBuffer());
    if (key) keep(key, bytes);
    return bytes;
  }

  L.cached = cached; L.keep = keep;  // Cache Storage by key (the Diffusion panel keeps its UNet there too)
  L.serverDecoder = serverDecoder;  // a panel can draw its first image through the server while the runtime loads

  // spec: {name, dim, sha (null when the model has no ONNX yet), note}; server: the component's server
  // object (decode_codes, onnx_bytes); inline: base64 ONNX (standalone page).
  L.decoder = (spec, server, inline) => {
    if (!spec) return Promise.reject(new Error('no model'));
    if (!spec.sha) return Promise.resolve(serverDecoder(spec, server, spec.note || 'no in-page decoder for this model yet'));
    if (L.forceServer) return Promise.resolve(serverDecoder(spec, server, 'in-page decoding switched off'));
    const key = spec.sha;
    if (!sessions.has(key)) sessions.set(key, (async () => {
      const ort = await L.ort();
      let bytes;
      if (inline) bytes = L.b64bytes(inline);
      else if (!(bytes = await cached('/lsx-onnx/' + spec.sha))) {
        const r = await server.onnx_bytes({name: spec.name, sha: spec.sha});
        if (!r || r.error) throw new Error((r && r.error) || 'no ONNX file');
        bytes = L.b64bytes(r.onnx);
        keep('/lsx-onnx/' + spec.sha, bytes);
      }
      const session = await ort.InferenceSession.create(bytes, {executionProviders: ['wasm'], graphOptimizationLevel: 'all'});
      const dim = spec.dim, shape = spec.shape || L.SHAPE0;
      return {
        mode: 'page', note: 'decoding in your browser (WebAssembly)', dim, name: spec.name, shape,
        run: serial(async (z, n) => {
          const out = await session.run({z: new ort.Tensor('float32', z, [n, dim])});
          return shaped(out.x.data, shape);
        }),
      };
    })());
    return sessions.get(key).catch(err => {
      sessions.delete(key);
      console.warn('LSX: in-page decoder failed, using the server:', err);
      return serverDecoder(spec, server, 'in-page decoder failed to load (' + String(err.message || err).slice(0, 80) + ')');
    });
  };

  // While a model's ONNX is still being built on the server, ask again every 2 s (up to a minute) and
  // hand the in-page decoder to onReady once it loads.
  L.whenBuilt = (spec, server, onReady) => {
    if (!spec || spec.sha || !spec.building || !server || !server.decoder_spec) return;
    let tries = 0;
    const poll = async () => {
      if (++tries > 30) return;
      const s = await server.decoder_spec({name: spec.name}).catch(() => null);
      if (s && s.sha) { const d = await L.decoder(s, server); if (d.mode === 'page') onReady(d, s); }
      else setTimeout(poll, 2000);
    };
    setTimeout(poll, 2000);
  };

  // a new task (not a microtask): pending input events, and a paint when one is due, run before it resolves
  L.yieldTask = () => new Promise(res => { const ch = new MessageChannel(); ch.port1.onmessage = () => res(); ch.port2.postMessage(0); });

  // ---- always-last scheduling: while one decode for a target runs, keep only the newest request
  L.latest = () => {
    let running = false, next = null;
    const pump = async () => {
      running = true;
      while (next) { const job = next; next = null; try { await job(); } catch (e) { console.warn('LSX:', e); } }
      running = false;
    };
    return (job) => { next = job; if (!running) pump(); };
  };

  // ---- presentation mode (?present=1, or the header's toggle): the page's root carries the class lsx-present
  // (set by the app's head script, explorer/ui/__init__.py, or here for the standalone page) and canvas text
  // follows it: L.fs(11) is 11 px normally, 1.6x and never under 18 px (the back row's floor) when presenting.
  if (/[?&]present=(1|true|on)\b/.test(location.search)) document.documentElement.classList.add('lsx-present');
  L.present = () => document.documentElement.classList.contains('lsx-present');
  L.fs = (size) => L.present() ? Math.max(18, Math.round(size * 1.6)) : size;
  L.font = (size, weight = '') => (weight ? weight + ' ' : '') + L.fs(size) + 'px sans-serif';

  // ---- drawing
  const tiles = {};
  function tileCanvas(w, h) {
    const k = w + 'x' + h;
    if (!tiles[k]) { const c = document.createElement('canvas'); c.width = w; c.height = h; tiles[k] = c; }
    return tiles[k];
  }
  // images: Float32Array (count * C*H*W) in [0,1], planar (N, C, H, W) with C = 1 (grey) or 3 (RGB);
  // `shape` [C, H, W] (default: images.shape, set by the decoders, else 28x28 grey). Draws a cols x rows mosaic
  // with `gap` white pixels between tiles, scaled to fill (x, y, w, h) of ctx with crisp pixels.
  L.mosaic = (ctx, images, count, cols, x, y, w, h, gap = 0, invert = false, shape = null) => {
    const [C, SH, SW] = shape || images.shape || L.SHAPE0, plane = SH * SW, per = C * plane;
    const rows = Math.ceil(count / cols);
    const W = cols * SW + (cols - 1) * gap, H = rows * SH + (rows - 1) * gap;
    const c = tileCanvas(W, H), cctx = c.getContext('2d');
    const im = cctx.createImageData(W, H), d = im.data;
    d.fill(255);
    const byte = (v) => { v = v < 0 ? 0 : v > 1 ? 1 : v; return Math.round((invert ? 1 - v : v) * 255); };
    for (let k = 0; k < count; k++) {
      const ox = (k % cols) * (SW + gap), oy = Math.floor(k / cols) * (SH + gap), base = k * per;
      for (let r = 0; r < SH; r++) {
        let p = ((oy + r) * W + ox) * 4;
        for (let col = 0; col < SW; col++, p += 4) {
          const i = base + r * SW + col;
          if (C === 1) { const g = byte(images[i]); d[p] = g; d[p + 1] = g; d[p + 2] = g; }
          else { d[p] = byte(images[i]); d[p + 1] = byte(images[i + plane]); d[p + 2] = byte(images[i + 2 * plane]); }
          d[p + 3] = 255;
        }
      }
    }
    cctx.putImageData(im, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(c, 0, 0, W, H, x, y, w, h);
  };
  // one row of a cols-wide mosaic at the tiles' own resolution (`gap` white pixels between): the `cols` images of
  // `images` (planar C x H x W each, `shape` or images.shape) written as row `row` of ctx's canvas (the Latent
  // grid fills its grid this way)
  L.tileRow = (ctx, images, cols, row, gap = 0, shape = null) => {
    const [C, SH, SW] = shape || images.shape || L.SHAPE0, plane = SH * SW, per = C * plane;
    const W = cols * SW + (cols - 1) * gap, im = ctx.createImageData(W, SH), d = im.data;
    d.fill(255);
    const byte = (v) => Math.round((v < 0 ? 0 : v > 1 ? 1 : v) * 255);
    for (let k = 0; k < cols; k++) {
      const base = k * per;
      for (let r = 0; r < SH; r++) {
        let p = (r * W + k * (SW + gap)) * 4;
        for (let col = 0; col < SW; col++, p += 4) {
          const i = base + r * SW + col;
          if (C === 1) { const g = byte(images[i]); d[p] = g; d[p + 1] = g; d[p + 2] = g; }
          else { d[p] = byte(images[i]); d[p + 1] = byte(images[i + plane]); d[p + 2] = byte(images[i + 2 * plane]); }
        }
      }
    }
    ctx.putImageData(im, 0, row * (SH + gap));
  };
  L.image = (canvas, images, offset = 0, shape = null) => {  // one image (image `offset` of a batch) filling a canvas
    const ctx = canvas.getContext('2d'), sh = shape || images.shape || L.SHAPE0, n = L.px(sh);
    L.mosaic(ctx, offset ? images.subarray(offset * n, offset * n + n) : images, 1, 1, 0, 0, canvas.width, canvas.height,
             0, false, sh);
  };

  // ---- latent maths shared by the panels
  L.lerp = (a, b, t) => a.map((v, i) => (1 - t) * v + t * b[i]);
  L.slerp = (a, b, t) => {  // great circle between the directions (falls back to lerp when (anti)parallel)
    const dot = a.reduce((s, v, i) => s + v * b[i], 0), na = Math.hypot(...a), nb = Math.hypot(...b);
    if (na < 1e-12 || nb < 1e-12) return L.lerp(a, b, t);
    const om = Math.acos(Math.max(-1, Math.min(1, dot / (na * nb))));
    if (Math.sin(om) < 1e-6) return L.lerp(a, b, t);
    const s0 = Math.sin((1 - t) * om) / Math.sin(om), s1 = Math.sin(t * om) / Math.sin(om);
    return a.map((v, i) => s0 * v + s1 * b[i]);
  };
  L.f16codes = (b64, n, dim) => {  // float16 little-endian base64 -> array of n Float32Array(dim)
    const bytes = L.b64bytes(b64), dv = new DataView(bytes.buffer), out = [];
    for (let i = 0; i < n; i++) {
      const z = new Float32Array(dim);
      for (let j = 0; j < dim; j++) {
        const h = dv.getUint16(2 * (i * dim + j), true), s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, f = h & 1023;
        z[j] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
      }
      out.push(z);
    }
    return out;
  };
  // ---- linked components: the maps of a panel and the view of their pick share state in the page
  // (a click moves the other maps' markers and reaches the view without a server round trip).
  // group.on(id, fn) subscribes (one handler per id: a component that mounts again replaces its own),
  // group.emit(type, data) calls every handler; group.members[id] is what each component exposes.
  L.group = (name) => L._groups[name] || (L._groups[name] = {
    name, members: {}, subs: new Map(), sel: [],
    on(id, fn) { this.subs.set(id, fn); },
    emit(type, data) {
      for (const [id, fn] of this.subs) { try { fn(type, data); } catch (e) { console.warn('LSX group ' + name + ', ' + id + ':', e); } }
    },
  });
  L._groups = {};
  // ---- the state that matters, in the page's URL query (a slide links straight to a prepared example; Back works)
  // One mechanism for every panel: LSX.state.get(key) reads ?key=, LSX.state.set({key: value}, {push}) writes
  // (null removes; push: a new history entry, as after a click or a release; else the entry is replaced, as while
  // dragging), LSX.state.on(keys, fn) calls fn({key: value}) when Back/Forward changes one of those keys.
  // Keys in use: tab (the panel), model, point (Latent grid: plane coordinates), picks (Projection and DAE maps:
  // test-image indices A,B), s (Attribute vectors: strength); Diffusion (web/diffusion.js): sampler, steps, eta,
  // guidance, label, seed, spacing, batch, written when Run is pressed. The standalone page takes the same keys.
  L.state = (() => {
    const subs = [];
    const S = {
      params: () => new URLSearchParams(location.search),
      get: (key) => S.params().get(key),
      numbers: (key) => { const v = S.get(key); if (v === null || v === '') return null;
        const out = v.split(',').map(Number); return out.every(Number.isFinite) ? out : null; },
      set(values, {push = false} = {}) {
        const p = S.params(), before = p.toString();
        for (const [k, v] of Object.entries(values)) { if (v === null || v === undefined || v === '') p.delete(k); else p.set(k, String(v)); }
        const after = p.toString();
        if (after === before) return false;
        try { history[push ? 'pushState' : 'replaceState'](history.state, '', (after ? '?' + after : location.pathname) + location.hash); }
        catch (e) { return false; }  // a page where history cannot be written (sandboxed): the state stays in the page
        S.last = S.params().toString();
        return true;
      },
      on(keys, fn) { subs.push({keys, fn}); },
      last: null,
    };
    S.last = S.params().toString();
    window.addEventListener('popstate', () => {
      const before = new URLSearchParams(S.last || ''), now = S.params();
      S.last = now.toString();
      for (const {keys, fn} of subs) {
        if (keys.some(k => before.get(k) !== now.get(k))) {
          try { fn(Object.fromEntries(keys.map(k => [k, now.get(k)]))); } catch (e) { console.warn('LSX.state:', e); }
        }
      }
    });
    // the panel (Gradio's tab buttons): a click writes ?tab=; the URL's tab is opened once the tabs exist, and on Back
    const tabName = b => b.textContent.trim().toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    const tabs = () => Array.from(document.querySelectorAll('button[role="tab"]'));
    S.openTab = (name) => { const b = tabs().find(t => tabName(t) === name);
      if (b && b.getAttribute('aria-selected') !== 'true') { S.tabbing = true; b.click(); S.tabbing = false; } return !!b; };
    document.addEventListener('click', ev => {
      const b = ev.target.closest && ev.target.closest('button[role="tab"]');
      if (b && !S.tabbing && ev.isTrusted) S.set({tab: tabName(b)}, {push: true});
    }, true);
    S.on(['tab'], v => S.openTab(v.tab || tabName(tabs()[0] || {textContent: ''})));
    if (S.get('tab')) {  // the tabs are rendered by Gradio after this file runs: wait for them (10 s at most)
      let tries = 0;
      const t = setInterval(() => { if (S.openTab(S.get('tab')) || ++tries > 100) clearInterval(t); }, 100);
    }
    return S;
  })();
  // ---- panels: web/<panel>.js sets window.lsxPanels[panel] = function (element, trigger, props, server,
  // upload, watch) {...}; a component mounts it with the names Gradio gives its js_on_load
  L.mount = (panel, element, trigger, props, server, upload, watch) => {
    const code = (window.lsxPanels || {})[panel];
    if (!code) throw new Error('LSX: no page code for the panel ' + panel + ' (web/' + panel + '.js did not load)');
    return code(element, trigger, props, server, upload, watch);
  };
  return L;
})();
