"""Presentation mode reaches the figures the server draws: their texts grow by the page's factor."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from explorer import plotting
from explorer.ui import panel


@pytest.fixture
def scaled():
    """Set plotting's text scale for one test; the app's own source (set by build_app) comes back after it."""
    before = plotting.scale_source

    def use(scale):
        plotting.scale_source = (lambda: scale) if scale is not None else None
    yield use
    plotting.scale_source = before


def _sizes(fig):
    ax = fig.axes[0]
    return {"title": ax.title.get_fontsize(), "xlabel": ax.xaxis.label.get_fontsize(),
            "ticks": ax.xaxis.get_ticklabels()[0].get_fontsize(),
            "legend": ax.get_legend().get_texts()[0].get_fontsize()}


def _figure():
    coords = np.random.default_rng(0).normal(size=(50, 2))
    return plotting.latent_scatter(coords, np.arange(50) % 3, ["a", "b", "c"], title="a map")


def test_every_text_of_a_rendered_figure_grows_by_the_scale_and_the_layout_keeps_it_inside(scaled):
    scaled(None)
    plain_fig = _figure()
    plain = plotting.Raster.from_figure(plain_fig)
    scaled(1.6)
    big_fig = _figure()
    big = plotting.Raster.from_figure(big_fig)
    for what, size in _sizes(plain_fig).items():
        assert _sizes(big_fig)[what] == pytest.approx(1.6 * size), what
    assert big.pixels.shape == plain.pixels.shape  # same figure size: the axes give way to the text
    assert (big.bbox[2] - big.bbox[0]) < (plain.bbox[2] - plain.bbox[0])
    drawn = big_fig.get_tightbbox(big_fig.canvas.get_renderer())  # what is drawn, in inches
    w, h = big_fig.get_size_inches()
    assert -0.02 <= drawn.x0 and drawn.x1 <= w + 0.02 and -0.02 <= drawn.y0 and drawn.y1 <= h + 0.02


def test_a_figure_rendered_once_per_axes_is_scaled_once(scaled):
    scaled(1.6)
    fig = _figure()
    before = fig.axes[0].title.get_fontsize()
    for _ in range(3):  # as the Diffusion panel keeps one Raster per axes of one figure
        plotting.Raster.from_figure(fig)
    assert fig.axes[0].title.get_fontsize() == pytest.approx(1.6 * before)


def test_without_a_source_figures_render_at_scale_1(scaled):
    scaled(None)
    assert plotting.text_scale() == 1.0
    fig = _figure()
    before = _sizes(fig)
    plotting.Raster.from_figure(fig)
    assert _sizes(fig) == before


@pytest.mark.parametrize("referer, expected", [
    ("http://127.0.0.1:7860/?present=1", True),
    ("http://127.0.0.1:7860/?model=x&present=true#tab", True),
    ("http://127.0.0.1:7860/?present=0", False),
    ("http://127.0.0.1:7860/", False),
    ("", False),
])
def test_presenting_reads_the_pages_url_from_the_referer(referer, expected):
    request = SimpleNamespace(headers={"referer": referer} if referer else {})
    assert panel.presenting(request) is expected
    assert panel.presenting(None) is False  # outside an event: nobody is presenting


def test_a_presenting_page_gets_the_served_figure_with_larger_text(served_app):
    """End to end: the same analogy asked by a page at ?present=1 (its URL arrives as the Referer) and by a plain
    page renders as wide but taller: its captions are larger, and the row makes room for them."""
    from gradio_client import Client

    url, _, _ = served_app
    shown = {}
    for name, headers in (("plain", {}), ("present", {"Referer": url + "?present=1"})):
        client = Client(url, verbose=False, headers=headers)
        path = client.predict("digits/vae-2d", 0, 1, 2, api_name="/analogy")
        shown[name] = np.asarray(Image.open(path).convert("L"), np.float64)
    assert shown["plain"].shape[1] == shown["present"].shape[1]
    assert shown["present"].shape[0] > shown["plain"].shape[0]
    ink = {k: (v < 128).sum() for k, v in shown.items()}  # dark text on white: larger type, more ink
    assert ink["present"] > ink["plain"]


def test_the_hand_laid_zoo_grid_measures_its_labels_at_the_scale_and_is_not_scaled_twice(scaled):
    rng = np.random.default_rng(0)
    rows = [rng.random((4, 8, 8)) for _ in range(2)]
    sizes, widths = {}, {}
    for scale in (None, 1.6):
        scaled(scale)
        fig = plotting.zoo_grid(["a model with a long label\nits-name-is-long-too", "another\nname"], rows, rows)
        pixels = plotting.Raster.pixels_of(fig)
        sizes[scale] = fig.axes[0].get_yticklabels()[0].get_fontsize()
        widths[scale] = pixels.shape[1]
    assert sizes[1.6] == pytest.approx(1.6 * sizes[None])  # once, not 1.6 squared
    assert widths[1.6] > widths[None]  # the label column measured at the larger size
