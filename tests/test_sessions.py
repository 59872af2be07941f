"""The app's one session cache (cachetools) and the store's per-key locks."""
import threading
import time

import pytest

from explorer.ui.sessions import SessionCache


def test_session_entries_are_per_session_and_bounded_per_kind():
    c = SessionCache(max_sessions=3, idle_s=60, per_kind=2)
    for i in range(3):
        c.put("a", "run", i, f"run {i}")
    assert c.get("a", "run", 0) is None and c.get("a", "run", 2) == "run 2"  # a's own oldest went
    c.put("b", "run", 0, "b's")
    assert c.get("b", "run", 0) == "b's" and c.count("a") == 2  # b's entries never evict a's
    assert c.get(None, "run", 0, "default") == "default"  # calls without a session keep nothing
    c.put(None, "run", 0, "x")
    assert c.count() == 3


def test_sessions_expire_by_age_and_least_recently_used_go_first():
    c = SessionCache(max_sessions=2, idle_s=0.3, per_kind=4)
    c.put("a", "point", "p", 1)
    c.put("b", "point", "p", 2)
    c.get("a", "point", "p")          # a was used last
    c.put("c", "point", "p", 3)       # over max_sessions: b (least recently used) goes
    assert c.get("b", "point", "p") is None and c.get("a", "point", "p") == 1
    time.sleep(0.4)
    assert c.count() == 0 and c.get("a", "point", "p") is None


def test_closing_a_tab_drops_its_entries():
    from types import SimpleNamespace

    c = SessionCache()
    c.put("tab", "run", "last", object())
    c.put("tab", "point", "latent_grid", (1, 2))
    c.put("other", "point", "latent_grid", (3, 4))
    assert c.drop(c.key_of(SimpleNamespace(session_hash="tab"))) == 2
    assert c.count("tab") == 0 and c.count("other") == 1


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot()
    return fig


def test_a_ready_view_is_served_while_another_model_encodes(tiny_zoo):
    """Per-key locks: a decode for a model whose view is ready does not wait behind another session's
    5,000-image encode (before, Store.view held one lock for everything)."""
    from explorer.checkpoints import Zoo
    from explorer.ui.store import Store

    store = Store(Zoo(tiny_zoo), device="cpu")
    store.view("digits/vae-2d")
    slow = store.model("digits/ae-16")
    started, release = threading.Event(), threading.Event()
    real = slow.encode

    def encode(x):
        started.set()
        release.wait(10)
        return real(x)

    slow.encode = encode
    t = threading.Thread(target=store.view, args=("digits/ae-16",))
    t.start()
    try:
        assert started.wait(10)
        t0 = time.perf_counter()
        store.view("digits/vae-2d")
        store.model("digits/vae-2d")
        store.raster(("grid", "digits/vae-2d", 5, 2.0), lambda: _figure())
        assert time.perf_counter() - t0 < 2.0 and t.is_alive()  # answered while the encode still runs
    finally:
        release.set()
        t.join()
    assert store.view("digits/ae-16").codes.shape[1] == 16


def test_a_raster_renders_once_for_concurrent_requests(tiny_zoo):
    from explorer.checkpoints import Zoo
    from explorer.ui.store import Store

    store = Store(Zoo(tiny_zoo), device="cpu")
    calls = []

    def render():
        calls.append(1)
        time.sleep(0.2)
        return _figure()

    threads = [threading.Thread(target=store.raster, args=(("k",), render)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


@pytest.mark.browser
def test_a_closed_tab_frees_its_session_entries(served_app, monkeypatch):
    """In a real browser: the page's session holds its latent point; closing the tab (demo.unload) frees it.
    Gradio notices the closed tab when its next heartbeat write fails (every 15 s by default; 1 s here)."""
    playwright = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "1")
    from conftest import BROWSER_ARGS

    url, _, store = served_app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        def sessions():
            with store.sessions._lock:
                return set(store.sessions._sessions.keys())

        before = sessions()
        pg = browser.new_page()
        pg.goto(url)
        pg.wait_for_function("() => window.lsxLatentGrid && window.lsxLatentGrid.model", timeout=90_000)
        mine = None
        for _ in range(100):  # the load event that stored the point has been handled
            new = sessions() - before
            if new:
                mine = new.pop()
                break
            time.sleep(0.1)
        assert mine and store.sessions.count(mine) >= 1
        pg.close()
        for _ in range(600):
            if store.sessions.count(mine) == 0:
                break
            time.sleep(0.1)
        browser.close()
    assert store.sessions.count(mine) == 0


def test_gradio_sessions_build_component_configs_only_when_read(monkeypatch):
    """The lazy per-session configs (sessions.lazy_session_configs) give what Gradio's own SessionState
    gives, after the same updates, without building any config when the session is created."""
    import gradio as gr
    from gradio import blocks as gr_blocks
    from gradio import state_holder

    from explorer.ui.sessions import lazy_session_configs

    stock = state_holder.SessionState
    if getattr(stock, "lazy_configs", False):
        stock = stock.__mro__[1]
    with gr.Blocks() as demo:
        a, b = gr.Slider(0, 10, 3, label="a"), gr.Textbox("x", label="b")
        out = gr.Image(label="out")
        gr.Button().click(lambda x, y: None, [a, b], out)
    assert lazy_session_configs() and lazy_session_configs()  # installs once; a second call changes nothing
    lazy_cls = state_holder.SessionState
    assert lazy_cls.lazy_configs and gr_blocks.SessionState is lazy_cls

    built = []
    real = gr_blocks.BlocksConfig.config_for_block
    monkeypatch.setattr(gr_blocks.BlocksConfig, "config_for_block",  # a staticmethod in Gradio 6
                        staticmethod(lambda _id, *args, **kw: built.append(_id) or real(_id, *args, **kw)))
    lazy, eager = lazy_cls(demo), stock(demo)
    assert built.count(a._id) == 1  # the stock one built every block's config; the lazy one none
    built.clear()
    for state in (lazy, eager):  # what an event does: record the inputs' values, replace a component
        state._update_value_in_config(a._id, 7)
        state._update_value_in_config(b._id, "changed")
        state[b._id] = gr.Textbox("replaced", label="b2")
    assert built == [b._id, b._id]  # each built only what was replaced; the recorded values wait
    assert a._id in lazy.config_values and lazy.config_values[a._id]["props"]["value"] == 7
    assert list(lazy.components) == list(eager.components)
    assert set(lazy.config_values) == set(eager.config_values)
