"""A clickable scatter map of thousands of points with image tooltips, as a ``gr.HTML`` with our
own canvas script (Gradio's ScatterPlot has no point click and no image tooltips).

Everything runs in the page: no file is fetched from anywhere. The component's ``value`` holds
the points (coordinates scaled to 0..10000 integers, packed as base64 arrays), class names and
colours; the ``sprite`` prop holds a data-URL mosaic of the thumbnails (sent once per dataset);
the ``sel`` prop holds the picked points [A, B] so the server can move markers (linked maps).

Hovering shows the nearest point's thumbnail; a click picks it: the previous pick becomes A,
the new one B, and the component fires ``select`` with ``index`` = the point and ``value`` =
[A, B]; the handler reads them from ``gr.SelectData``.

Maps of one ``group`` (the projection panel's two maps, the DAE panel's two) share their picks in the
page (``LSX.group``, lsx.js): a click moves the other maps' markers and reaches the group's pick view
(web/pick_view.js) without a server round trip. The ``latent`` prop carries the map's model: its test
codes as float16 base64 and its decoder spec, for that view to decode in the page. The page code is
web/point_map.js.
"""
from __future__ import annotations

import base64
import html
import io

import gradio as gr
import numpy as np

from .. import plotting
from .inpage import pack, page_code, template

SCALE = 10000


def payload(coords: np.ndarray, labels: np.ndarray, classes: list[str], title: str,
            axes=("1", "2"), thumb: int = 28, sprite_side: int | None = None,
            index: np.ndarray | None = None) -> dict:
    """The map's value: coordinates rescaled to 0..SCALE integers with a 4% margin, packed as base64
    little-endian arrays ("x", "y": uint16; "c": uint8 class; "idx": int32 dataset index of each point).

    Packed, not JSON lists: Gradio deep-copies a component's props value by value whenever one of its
    events fires, and 20,000 numbers took ~0.3-1 s per click here; four strings take a millisecond."""
    coords = np.asarray(coords, np.float64)
    lo, hi = coords.min(0), coords.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = (coords - lo) / span * 0.92 + 0.04  # (N, 2) in [0.04, 0.96]
    ints = np.round(unit * SCALE).astype("<u2")  # (N, 2)
    colors = plotting.class_colors(len(classes))
    hexes = ["#%02x%02x%02x" % tuple(int(255 * c) for c in rgba[:3]) for rgba in colors]
    n = len(coords)
    idx = np.arange(n) if index is None else np.asarray(index)
    return {"n": n, "x": pack(ints[:, 0], "u2"), "y": pack(ints[:, 1], "u2"), "c": pack(labels, "u1"),
            "idx": pack(idx, "i4"), "classes": list(classes), "colors": hexes, "title": title,
            "axes": list(axes), "thumb": thumb, "sprite_side": sprite_side or int(np.ceil(np.sqrt(n)))}


def unpack(value: dict) -> dict:
    """A payload's packed arrays as numpy arrays (x, y, c, idx), for tests and scripts."""
    kinds = {"x": "<u2", "y": "<u2", "c": "u1", "idx": "<i4"}
    return {k: np.frombuffer(base64.b64decode(value[k]), dtype=t) for k, t in kinds.items()}


def sprite_url(mosaic: np.ndarray) -> str:
    """A uint8 mosaic as a WebP data URL (~1 MB for 5,000 Fashion-MNIST thumbnails)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mosaic).save(buf, "WEBP", quality=85)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()


def latent_prop(codes: np.ndarray, spec: dict, label: str) -> dict:
    """A map's ``latent`` prop: (N, D) codes as little-endian float16 base64 (row i = the map's point i),
    the decoder spec (``Decoders.spec``) and a short label for the model."""
    codes = np.asarray(codes)  # (N, D) as float16: ~1e-3 relative error, invisible once decoded
    return {"name": spec["name"], "label": label, "n": int(codes.shape[0]), "dim": int(codes.shape[1]),
            "codes": pack(codes, "f2"), "decoder": spec}


def point_map(elem_id: str, message: str = "Loading the map…", group: str = "") -> gr.HTML:
    # the group is also written into the template: a map inside an initially hidden column gets only the
    # props that later updates carry, not those given here (Gradio 6.31)
    html_template = template("point_map.html").replace("@GROUP@", html.escape(group, quote=True))
    return gr.HTML(value={"message": message}, html_template=html_template, **page_code("point_map"),
                   elem_id=elem_id, sprite="", sel=[], latent={}, group=group, apply_default_css=False)
