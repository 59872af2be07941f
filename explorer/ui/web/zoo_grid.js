// The Model zoo's grid drawn in the page (explorer/ui/zoo.py: page_grid): one row per model, its name and label
// as text, its samples and its latent interpolation as images; a click on an image shows it large (Escape or
// a click closes it). Runs inside a gr.HTML component (element, props, watch are Gradio's).
// Registered in window.lsxPanels and mounted per component by LSX.mount (lsx.js); the body is not indented.
(window.lsxPanels = window.lsxPanels || {}).zoo_grid = function (element, trigger, props, server, upload, watch) {
const ESC = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const Z = {draws: 0};
window.lsxZoo = Z;  // tests: Z.draws, Z.shown (the enlarged image's caption)
const img = (src, cap) => src ? `<img class="lsxz-img" src="${src}" alt="${ESC(cap)}" title="${ESC(cap)} (click to enlarge)">`
  : '<span class="lsxz-img lsxz-blank"></span>';
function draw() {
  const G = props.value;
  if (!G || !G.rows) { element.innerHTML = ''; return; }
  const head = `<div class="lsxz-row lsxz-head"><div class="lsxz-label"></div>
      <div class="lsxz-cell"><div class="lsxz-title">${ESC(G.titles[0])}</div></div>
      <div class="lsxz-cell"><div class="lsxz-title">${ESC(G.titles[1])}</div>
        <div class="lsxz-pair">${img(G.pair.images[0], 'test image A')}<span class="lsxz-pairtext">${ESC(G.pair.label)}</span>${img(G.pair.images[1], 'test image B')}</div></div></div>`;
  const rows = G.rows.map(r => `<div class="lsxz-row" data-name="${ESC(r.name)}">
      <div class="lsxz-label"><b>${ESC(r.label)}</b><span>${ESC(r.model)}${r.from ? ' · ' + ESC(r.from) : ''}</span></div>
      <div class="lsxz-cell">${r.samples.length ? r.samples.map((s, i) => img(s, `${r.model}: sample ${i + 1}`)).join('') : `<span class="lsxz-note">${ESC(r.note)}</span>`}</div>
      <div class="lsxz-cell">${r.path.map((s, i) => img(s, `${r.model}: interpolation ${i + 1}/${r.path.length}`)).join('')}${r.tag ? `<span class="lsxz-tag">${ESC(r.tag)}</span>` : ''}</div>
    </div>`).join('');
  element.innerHTML = `<div class="lsxz">${head}${rows}</div><div class="lsxz-big" style="display:none"><figure><img><figcaption></figcaption></figure></div>`;
  Z.draws += 1;
}
function show(src, cap) {
  const big = element.querySelector('.lsxz-big'); if (!big) return;
  big.querySelector('img').src = src; big.querySelector('figcaption').textContent = cap;
  big.style.display = 'flex'; Z.shown = cap;
}
function hide() { const big = element.querySelector('.lsxz-big'); if (big) big.style.display = 'none'; Z.shown = null; }
element.addEventListener('click', ev => {
  const t = ev.target;
  if (t.classList && t.classList.contains('lsxz-img') && t.src) show(t.src, t.alt);
  else if (t.closest && t.closest('.lsxz-big')) hide();
});
document.addEventListener('keydown', ev => { if (ev.key === 'Escape') hide(); });
if (typeof watch === 'function') watch('value', draw);
draw();
};
