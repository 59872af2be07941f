"""Matplotlib figures from arrays; never imports gradio.

Plot functions take arrays (and an optional ``ax``) and return a Figure. For
images the app shows and people click, :class:`Raster` keeps the pixel<->data
mapping of the axes so a click can be turned back into latent coordinates and a
marker drawn without re-rendering.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

DPI = 100

# How much larger every text of a rendered figure is drawn (presentation mode: read from the back row). The UI
# sets this to a function of the current request (explorer/ui/panel.py: presentation_scale); plotting itself
# never asks who is looking. None: always 1.
scale_source: Callable[[], float] | None = None


def text_scale() -> float:
    """The text scale figures rendered now are drawn at (1 unless the UI says the viewer is presenting)."""
    return float(scale_source()) if scale_source is not None else 1.0


def scale_text(fig, scale: float) -> None:
    """Every text of ``fig`` (titles, labels, tick labels, legends, annotations) ``scale`` times larger; the
    constrained layout makes room for it when the figure is drawn."""
    from matplotlib.text import Text

    if scale == 1:
        return
    ticks = []  # tick labels are made from each axis' template at draw time: scale the template too
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            major, minor = axis.get_major_ticks(), axis.get_minor_ticks()
            ticks.append((axis, major[0].label1.get_fontsize() if major else None,
                          minor[0].label1.get_fontsize() if minor else None))
    for text in fig.findobj(Text):
        text.set_fontsize(text.get_fontsize() * scale)
    for axis, major, minor in ticks:
        if major is not None:
            axis.set_tick_params(which="major", labelsize=major * scale)
        if minor is not None:
            axis.set_tick_params(which="minor", labelsize=minor * scale)
    _wrap_titles(fig)


def _wrap_titles(fig) -> None:
    """Break an axes title that grew wider than its axes onto more lines (side-by-side charts' titles would
    otherwise run into each other)."""
    import textwrap

    renderer = fig.canvas.get_renderer()
    fig_w = fig.get_figwidth() * fig.dpi
    for ax in fig.axes:
        room = ax.get_position().width * fig_w
        for title in (ax.title, ax._left_title, ax._right_title):
            text = title.get_text()
            width = title.get_window_extent(renderer).width if text else 0
            if width > room:
                longest = max(len(line) for line in text.splitlines())
                chars = max(8, int(longest * room / width))
                title.set_text("\n".join(textwrap.fill(line, chars, break_long_words=False)
                                          for line in text.splitlines()))


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: thread-safe, no global state

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def class_colors(n: int) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return np.array([cmap(i % cmap.N) for i in range(n)])


def latent_scatter(coords: np.ndarray, labels: np.ndarray, classes: list[str], ax=None,
                   axis_names=("z1", "z2"), rect=None, title=None, lims=None):
    """Scatter of 2-D codes coloured by class, with a legend of class names.
    ``rect`` = (x0, y0, x1, y1) draws a dashed box (the grid's range)."""
    fig, ax = _figure((6.2, 5.0)) if ax is None else (ax.figure, ax)
    colors = class_colors(len(classes))
    for i, name in enumerate(classes):
        sel = labels == i
        ax.scatter(coords[sel, 0], coords[sel, 1], s=4, color=colors[i], alpha=0.6, label=name,
                   linewidths=0, rasterized=True)
    if rect is not None:
        x0, y0, x1, y1 = rect
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], "--", color="0.25", lw=1, label="grid range")
    if lims is not None:
        ax.set_xlim(lims[0]); ax.set_ylim(lims[1])
    ax.set_xlabel(axis_names[0]); ax.set_ylabel(axis_names[1])
    if title:
        ax.set_title(title, fontsize=10, loc="left")  # the right corner holds the app's download button
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, markerscale=3, frameon=False)
    ax.grid(alpha=0.2)
    return fig


def image_grid(mosaic: np.ndarray, extent, ax=None, axis_names=("z1", "z2"), title=None):
    """A decoded-grid mosaic shown over its latent extent (x0, x1, y0, y1) with ticks."""
    fig, ax = _figure((5.0, 5.0)) if ax is None else (ax.figure, ax)
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest", aspect="auto")
    ax.set_xlabel(axis_names[0]); ax.set_ylabel(axis_names[1])
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig


def upscale(x: np.ndarray, scale: int) -> np.ndarray:
    """Float image(s) in [0, 1] -> uint8, each pixel a ``scale`` x ``scale`` block (stays sharp on a projector)."""
    u8 = (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    if u8.ndim >= 3 and u8.shape[-1] == 3:  # colour (..., H, W, 3): repeat rows and columns, keep the channels
        return u8.repeat(scale, axis=-3).repeat(scale, axis=-2)
    return np.kron(u8, np.ones((scale, scale), np.uint8))


@dataclass
class Raster:
    """A rendered figure (H, W, 3) uint8 and the linear map between its pixels and one axes' data."""

    pixels: np.ndarray
    bbox: tuple[float, float, float, float]   # axes box in pixels: left, top, right, bottom
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    @classmethod
    def pixels_of(cls, fig) -> np.ndarray:
        """Just the rendered (H, W, 3) uint8 pixels of a figure."""
        return cls.from_figure(fig).pixels

    @classmethod
    def from_figure(cls, fig, ax=None) -> "Raster":
        """Render ``fig`` (its texts at :func:`text_scale`) and keep the pixel<->data map of ``ax``."""
        ax = ax or fig.axes[0]
        if not getattr(fig, "text_scaled", False):  # a figure laid out by hand measured its texts at the scale
            scale_text(fig, text_scale())
            fig.text_scaled = True  # once: a figure rendered again (one Raster per axes) is not scaled again
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        h = pixels.shape[0]
        b = ax.get_window_extent()  # display coords, origin bottom-left
        return cls(pixels, (b.x0, h - b.y1, b.x1, h - b.y0), tuple(ax.get_xlim()), tuple(ax.get_ylim()))

    def to_data(self, px: float, py: float) -> tuple[float, float] | None:
        """Pixel (column, row) -> data (x, y); None outside the axes."""
        left, top, right, bottom = self.bbox
        if not (left <= px <= right and top <= py <= bottom):
            return None
        fx, fy = (px - left) / (right - left), (bottom - py) / (bottom - top)
        return (self.xlim[0] + fx * (self.xlim[1] - self.xlim[0]),
                self.ylim[0] + fy * (self.ylim[1] - self.ylim[0]))

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        left, top, right, bottom = self.bbox
        fx = (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        fy = (y - self.ylim[0]) / (self.ylim[1] - self.ylim[0])
        return left + fx * (right - left), bottom - fy * (bottom - top)

    def with_marker(self, x: float, y: float, radius: int = 9, color=(220, 20, 60)) -> np.ndarray:
        """A copy with a ring and crosshair at data point (x, y), drawn in numpy (~1 ms)."""
        img = self.pixels.copy()
        px, py = self.to_pixel(x, y)
        left, top, right, bottom = (int(round(v)) for v in self.bbox)
        px = float(np.clip(px, left, right - 1)); py = float(np.clip(py, top, bottom - 1))
        yy, xx = np.ogrid[top:bottom, left:right]
        d = np.sqrt((xx - px) ** 2 + (yy - py) ** 2)
        ring = (np.abs(d - radius) < 1.6)
        cross = ((np.abs(xx - px) < 1.0) | (np.abs(yy - py) < 1.0)) & (d < radius * 2.2) & (d > radius * 0.4)
        region = img[top:bottom, left:right]
        region[ring | cross] = color
        return img


def _strip(ax, images: np.ndarray, gap: int = 2):
    """Draw (T, H, W) or (T, H, W, 3) images side by side on ``ax`` (white gaps), returning the centres' x."""
    t, h, w = images.shape[:3]
    canvas = np.ones((h, t * (w + gap) - gap, *images.shape[3:]))
    for i, im in enumerate(images):
        canvas[:, i * (w + gap):i * (w + gap) + w] = im
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]); ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    return np.arange(t) * (w + gap) + w / 2 - 0.5


def interpolation_strips(rows: dict, ts: np.ndarray, norms: dict | None = None, title: str | None = None):
    """Decoded interpolations, one strip per path (e.g. {"linear": (T,28,28), "slerp": ...}), with the
    code norm |z| along each path plotted underneath when ``norms`` is given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(rows) + (1 if norms else 0)
    fig = Figure(figsize=(7.0, 1.05 * len(rows) + (1.5 if norms else 0) + 0.3), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    heights = [1.0] * len(rows) + ([1.25] if norms else [])
    axes = fig.subplots(n, 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for ax, (name, images) in zip(axes, rows.items()):
        _strip(ax, images)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    if title:
        axes[0].set_title(title, fontsize=10, loc="left")
    if norms:
        ax = axes[-1]
        for name, values in norms.items():
            ax.plot(ts, values, marker="o", ms=3, label=name)
        ax.set_xlabel("t (0 = A, 1 = B)"); ax.set_ylabel("|z|")
        ax.legend(fontsize=8, frameon=False, ncol=len(norms)); ax.grid(alpha=0.3)
        ax.set_xlim(-0.03, 1.03)
    return fig


PROBABILITY = "classifier probability"  # the y label that makes a curve's axis a probability axis (in %)


def probability_axis(ax, values) -> None:
    """Probabilities on ``ax`` in percent, always up to 100 %: a linear 0-100 % axis, or a log axis with decade
    ticks (100 %, 1 %, 0.01 %, ...) when some probability is below 1 %, so that 4e-5 reads as "almost never"
    instead of filling the plot on an axis in units of 1e-5."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    small = v[v > 0].min() if (v > 0).any() else 1.0
    if small < 0.01:
        lo = max(10.0 ** np.floor(np.log10(small)), 1e-6)
        ax.set_yscale("log")
        ax.set_ylim(lo * 0.5, 1.5)
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=12))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(-0.04, 1.04)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda p, _: f"{p * 100:.6g}%"))


def _curves(ax, xs, curves: dict, xlabel: str, ylabel: str, marker: float | None):
    floor = 1e-6 if ylabel == PROBABILITY else None  # a probability of 0 on a log axis: drawn at the floor
    for name, values in curves.items():
        values = np.asarray(values, np.float64)
        ax.plot(xs, values if floor is None else np.maximum(values, floor), marker="o", ms=3, label=name)
    if marker is not None:
        ax.axvline(marker, color="crimson", lw=1, ls="--", label="slider")
    if ylabel == PROBABILITY:
        probability_axis(ax, np.concatenate([np.ravel(v) for v in curves.values()]))
    ax.set_xlabel(xlabel); ax.set_ylabel(ylabel); ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="best")


def strip_with_curve(images: np.ndarray, xs: np.ndarray, curves: dict, xlabel: str, ylabel: str,
                     title: str | None = None, marker: float | None = None):
    """A strip of decoded images over a line plot of measured values at the same positions
    (``curves`` = {name: values}); ``marker`` draws a vertical line at that x. A ``ylabel`` of PROBABILITY
    puts the values on a probability axis (probability_axis)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # margins placed by hand: the constrained layout engine was half of the /attribute request's CPU (~180 ms)
    fig = Figure(figsize=(7.0, 3.3), dpi=DPI)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1.0, 1.5], "left": 0.15, "right": 0.98,
                                                  "top": 0.9 if title else 0.97, "bottom": 0.13, "hspace": 0.3})
    _strip(top, images)
    if title:
        top.set_title(title, fontsize=10, loc="left")
    _curves(bottom, xs, curves, xlabel, ylabel, marker)
    return fig


def measured_curve(xs: np.ndarray, curves: dict, xlabel: str, ylabel: str, title: str | None = None,
                   marker: float | None = None):
    """strip_with_curve's plot without the strip: for a page that draws the strip itself."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 2.2), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots(1, 1, gridspec_kw={"left": 0.15, "right": 0.98, "top": 0.87 if title else 0.95,
                                         "bottom": 0.2})
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    _curves(ax, xs, curves, xlabel, ylabel, marker)
    return fig


def image_row(images: list, titles: list[str], title: str | None = None):
    """A row of images with titles (e.g. A − B + C = result). Laid out by hand at the current text scale (the
    titles' room grows with their size and lines), so the figure is not scaled again when rendered."""
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = text_scale()
    if k != 1:  # larger type: a title wider than its image goes onto more lines, whole words kept
        chars = max(8, int(1.45 * 72 / (0.55 * 9 * k)))
        titles = ["\n".join(textwrap.fill(line, chars, break_long_words=False) for line in str(t).splitlines())
                  for t in titles]
    lines = max([str(t).count("\n") + 1 for t in titles] + [1])
    head = (lines * 9 * k * 1.3 + 8 + (10 * k * 1.5 if title else 0)) / 72  # inches above the images
    width, height = 1.45 * len(images) + 0.3, 1.56 + 0.076 + head
    fig = Figure(figsize=(width, height), dpi=DPI)  # margins by hand (see strip_with_curve)
    fig.text_scaled = True
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(images), squeeze=False, gridspec_kw={
        "left": 0.15 / width, "right": 1 - 0.15 / width, "bottom": 0.076 / height, "top": 1 - head / height,
        "wspace": 0.12})[0]
    for ax, im, t in zip(axes, images, titles):
        ax.imshow(im, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(t, fontsize=9 * k); ax.set_xticks([]); ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10 * k, x=0.01, ha="left")
    return fig


def error_histogram(errors: dict, threshold: float | None = None, marks: dict | None = None,
                    title: str | None = None, xlabel: str = "reconstruction error (MSE per pixel)"):
    """Overlaid histograms of per-image errors for several sets ({name: values}), a threshold line
    and named vertical marks (e.g. the uploaded image's error). Log-spaced bins."""
    fig, ax = _figure((6.4, 3.2))
    values = np.concatenate([np.asarray(v, np.float64) for v in errors.values()])
    values = values[values > 0]
    lo, hi = (values.min(), values.max()) if len(values) else (1e-4, 1.0)
    for v in (marks or {}).values():
        lo, hi = min(lo, v), max(hi, v)
    bins = np.geomspace(max(lo, 1e-6) * 0.9, hi * 1.1, 50)
    for name, v in errors.items():
        ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, alpha=0.55, label=f"{name} ({len(v):,})", density=True)
    ax.set_xscale("log")
    if threshold is not None:
        ax.axvline(threshold, color="black", lw=1.2, ls="--", label="threshold")
    for name, v in (marks or {}).items():
        ax.axvline(v, color="crimson", lw=2, label=name)
    ax.set_xlabel(xlabel); ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, frameon=False)
    return fig


def schedule_curves(ts: np.ndarray, alpha_bars: dict, log_snrs: dict, title: str | None = None):
    """Noise schedules side by side: alpha_bar_t (left) and log-SNR (right) against t, one line per
    schedule ({name: values}). Two axes; mark a t on both with :func:`vline` on their Rasters."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.6, 2.9), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for name, v in alpha_bars.items():
        left.plot(ts, v, lw=1.8, label=name)
    for name, v in log_snrs.items():
        right.plot(ts, v, lw=1.8, label=name)
    left.set_ylabel(r"$\bar\alpha_t$ (signal kept)"); right.set_ylabel(r"log-SNR $\log(\bar\alpha_t/(1-\bar\alpha_t))$")
    for ax in (left, right):
        ax.set_xlabel("t"); ax.grid(alpha=0.3); ax.set_xlim(ts[0], ts[-1])
    left.set_ylim(-0.02, 1.02)
    left.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    return fig


def vline(pixels: np.ndarray, raster: "Raster", x: float, color=(220, 20, 60), width: int = 2) -> np.ndarray:
    """Draw a vertical line at data x across ``raster``'s axes, in place on ``pixels`` (~0.1 ms)."""
    px, _ = raster.to_pixel(x, raster.ylim[0])
    left, top, right, bottom = (int(round(v)) for v in raster.bbox)
    c = int(np.clip(round(px), left, right - 1))
    pixels[top:bottom, max(c - width // 2, left):min(c + (width + 1) // 2, right)] = color
    return pixels


def fid_vs_steps(results: list, title: str | None = None):
    """Classifier-FID against sampling steps (log x), one line per (model, eta), each model's
    real-vs-real floor dashed. ``results``: dicts as benchmarks/diffusion_tradeoff.py writes them."""
    fig, ax = _figure((7.6, 3.6))
    colors = class_colors(max(len(results), 1))
    shared_floor = len({r["fid_floor"] for r in results}) == 1  # same N, same real subsets: one floor line
    for color, r in zip(colors, results):
        short = r["model"].split("/")[-1]
        for eta, style in ((0.0, "-o"), (1.0, "--s")):
            rows = sorted((row for row in r["rows"] if row["eta"] == eta), key=lambda row: row["steps"])
            if rows:
                label = f"{short}, DDIM eta=0" if eta == 0 else f"{short}, eta=1 (DDPM)"
                ax.plot([row["steps"] for row in rows], [row["fid"] for row in rows], style, color=color,
                        ms=4, lw=1.5, label=label)
        if not shared_floor:
            ax.axhline(r["fid_floor"], color=color, lw=0.8, ls=":", label=f"{short} floor (real vs real)")
    if shared_floor:
        ax.axhline(results[0]["fid_floor"], color="0.35", lw=1.0, ls=":", label="floor (real vs real)")
    ax.set_xscale("log"); ax.set_yscale("log")
    # plain numbers on both log axes (a lecture hall reads "20", not "2 x 10^1"); x ticks at the measured steps
    from matplotlib.ticker import FuncFormatter, NullFormatter
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    steps = sorted({row["steps"] for r in results for row in r["rows"]})
    if steps:
        ax.set_xticks(steps)
    ax.xaxis.set_major_formatter(plain); ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(plain); ax.yaxis.set_minor_formatter(plain)
    ns = sorted({r["fid_n"] for r in results})
    ax.set_xlabel("sampling steps")
    ax.set_ylabel(f"classifier-FID (N={ns[0]})" if len(ns) == 1 else "classifier-FID (N per model: see caption)")
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


ANIMATION_FORMATS = ("gif", "mp4")


def save_animation(frames: list, path, frame_ms: int = 60, hold_ms: int = 1500) -> None:
    """Write uint8 greyscale frames (H, W) as an animated GIF or an H.264 MP4, chosen by the suffix.

    Every frame shows ``frame_ms``; the last one is held ``hold_ms`` (the finished sample). The MP4 goes
    through PyAV (FFmpeg's libx264, yuv420p so every player opens it); odd sides are padded white to even.
    """
    from fractions import Fraction
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ANIMATION_FORMATS:
        raise ValueError(f"animation format must be one of {ANIMATION_FORMATS}, not {path.suffix!r}")
    if not frames:
        raise ValueError("no frames to write")
    if kind == "gif":
        images = [Image.fromarray(f) for f in frames]
        durations = [frame_ms] * (len(images) - 1) + [hold_ms]
        images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False)
        return
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is in requirements.txt
        raise RuntimeError("MP4 export needs PyAV: pip install av") from err
    h, w = frames[0].shape
    H, W = h + h % 2, w + w % 2
    repeats = [1] * (len(frames) - 1) + [max(1, round(hold_ms / frame_ms))]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(1000, frame_ms))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "18", "preset": "medium"}
        for frame, n in zip(frames, repeats):
            padded = np.full((H, W), 255, np.uint8)
            padded[:h, :w] = frame
            rgb = np.repeat(padded[:, :, None], 3, axis=2)
            for _ in range(n):
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():  # flush
            container.mux(packet)


def training_curves(curves: dict, xlabel: str = "epoch", ylabel: str = "train MSE per pixel",
                    boundary: float | None = None, title: str | None = None, ax=None):
    """Loss curves: ``curves`` maps a label to a list of runs (xs, ys), e.g. one per seed; each run is
    drawn thin and, when the runs share their xs, their mean thick. ``boundary`` marks a stage change."""
    fig, ax = (_figure((6.4, 3.2)) if ax is None else (ax.figure, ax))
    colors = {}
    for i, (label, runs) in enumerate(curves.items()):
        color = colors.setdefault(label, f"C{i}")
        style = "--" if "stage 1" in label else "-"
        for xs, ys in runs:
            ax.plot(xs, ys, style, color=color, lw=0.8 if len(runs) > 1 else 1.6, alpha=0.35 if len(runs) > 1 else 1.0,
                    label=None if len(runs) > 1 else label)
        if len(runs) > 1 and all(np.array_equal(runs[0][0], xs) for xs, _ in runs):
            ax.plot(runs[0][0], np.mean([ys for _, ys in runs], axis=0), style, color=color, lw=2.2, marker="o", ms=3,
                    label=f"{label} (mean of {len(runs)})")
    if boundary is not None:
        ax.axvline(boundary, color="0.4", lw=1, ls=":")
        ax.text(boundary, 0.98, "  stage 1 | stage 2", transform=ax.get_xaxis_transform(), fontsize=8,
                va="top", ha="center", color="0.3")
    ax.set_xlabel(xlabel); ax.set_ylabel(ylabel); ax.set_yscale("log"); ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig


def _tile_canvas(rows: list, n: int, gap: int = 2, row_gap: int = 8, blank: float = 1.0,
                 missing: float = 0.93) -> tuple[np.ndarray, list[float]]:
    """Stack rows of up to ``n`` (H, W) or (H, W, 3) tiles into one float canvas: white gaps, a light grey band
    for a row that is None, and the y centre of every row (in canvas pixels)."""
    first = next(np.asarray(im) for images in rows if images is not None for im in images if im is not None)
    h, w = first.shape[:2]
    width = n * (w + gap) - gap
    canvas = np.full((len(rows) * (h + row_gap) - row_gap, width, *first.shape[2:]), blank)
    centres = []
    for r, images in enumerate(rows):
        top = r * (h + row_gap)
        centres.append(top + h / 2 - 0.5)
        if images is None:
            canvas[top:top + h] = missing
            continue
        for c, im in enumerate(images[:n]):
            if im is not None:
                canvas[top:top + h, c * (w + gap):c * (w + gap) + w] = np.clip(im, 0, 1)
    return canvas, centres


def zoo_grid(labels: list[str], left: list, right: list, notes: list | None = None,
             titles: tuple[str, str] = ("samples", "interpolation"), header: tuple | None = None,
             title: str | None = None, tags: list | None = None, note_colors: list | None = None):
    """Labelled rows of image strips side by side, e.g. one row per model: its samples (``left[i]``,
    (k, 28, 28) in [0, 1]) and a latent interpolation (``right[i]``). A row whose images are None is a grey
    band carrying ``notes[i]`` (why it is missing). ``header`` = (label, images) adds a first row to the right
    panel only (e.g. the two test images an interpolation runs between, None for a blank tile). ``tags[i]``
    is a short grey note right of row i (e.g. how its interpolation was made); ``note_colors[i]`` the colour
    of note i (default firebrick)."""
    notes = list(notes or [None] * len(labels))
    tags = list(tags or [None] * len(labels))
    colors = list(note_colors or ["firebrick"] * len(labels))
    n_left = max([len(x) for x in left if x is not None] or [8])
    n_right = max([len(x) for x in right if x is not None] or [8])
    rows_l, rows_r, names = list(left), list(right), list(labels)
    if header is not None:
        rows_l, rows_r = [[]] + rows_l, [list(header[1])] + rows_r
        names, notes, tags, colors = [header[0]] + names, [None] + notes, [None] + tags, ["k"] + colors
    # a row is missing when both halves are; a row with only one half (e.g. no latent) leaves the other blank
    gone = [a is None and b is None for a, b in zip(rows_l, rows_r)]
    rows_l = [None if g else (a if a is not None else []) for a, g in zip(rows_l, gone)]
    rows_r = [None if g else (b if b is not None else []) for b, g in zip(rows_r, gone)]
    canvas_l, centres = _tile_canvas(rows_l, n_left)
    canvas_r, _ = _tile_canvas(rows_r, n_right)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # placed by hand, not by a layout engine: every image pixel is exactly scale x scale figure pixels; the texts
    # are measured at the current text scale (presentation mode), so the figure is not scaled again when rendered
    k = text_scale()
    scale, gap, top, bottom = 2, 30, round(k * (30 + (18 if title else 0))), 6
    fig = Figure(dpi=DPI)
    fig.text_scaled = True
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    label_px = 20 + max([fig.text(0, 0, str(n), fontsize=9 * k).get_window_extent(renderer).width for n in names]
                        + [140])  # the row labels' measured width
    tag_px = max([fig.text(0, 0, str(t), fontsize=8 * k).get_window_extent(renderer).width for t in tags if t]
                 + [0])
    tag_px = tag_px + 12 if tag_px else 0
    for t in list(fig.texts):
        t.remove()
    h = canvas_l.shape[0] * scale
    wl, wr = canvas_l.shape[1] * scale, canvas_r.shape[1] * scale
    W, H = int(label_px + wl + gap + wr + tag_px + 8), top + h + bottom
    fig.set_size_inches(W / DPI, H / DPI)
    ax_l = fig.add_axes([label_px / W, bottom / H, wl / W, h / H])
    ax_r = fig.add_axes([(label_px + wl + gap) / W, bottom / H, wr / W, h / H])
    for ax, canvas, head in ((ax_l, canvas_l, titles[0]), (ax_r, canvas_r, titles[1])):
        ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        ax.set_xticks([]); ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
        ax.set_title(head, fontsize=10 * k, loc="left", pad=6)
    ax_l.set_yticks(centres, names, fontsize=9 * k)
    ax_l.tick_params(left=False, pad=6)
    for y, note, g, color in zip(centres, notes, gone, colors):
        if g and note:
            ax_l.text(4, y, note, fontsize=8.5 * k, color=color, va="center", ha="left", clip_on=False)
    for y, tag in zip(centres, tags):
        if tag:
            ax_r.text(canvas_r.shape[1] + 6 / scale, y, tag, fontsize=8 * k, color="0.35", va="center", ha="left",
                      clip_on=False)
    if title:
        fig.suptitle(title, fontsize=10 * k, x=0.01, y=1 - 4 / H, ha="left", va="top")
    return fig


def sigma_per_epoch(arms: dict, title: str | None = None):
    """One panel per arm: each mixture component's mean sigma at the end of every epoch, one line per
    component and seed. ``arms``: label -> list over seeds of (epochs, K) nested lists (None: not run)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * max(1, len(arms)), 3.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(arms)), sharey=True, squeeze=False)[0]
    colors = class_colors(10)
    for ax, (label, runs) in zip(axes, arms.items()):
        runs = [np.asarray(r, dtype=float) for r in runs if r]
        for s, hist in enumerate(runs):
            for k in range(hist.shape[1]):
                ax.plot(np.arange(1, len(hist) + 1), hist[:, k], color=colors[k], alpha=0.9 if s == 0 else 0.45,
                        lw=1.4, label=f"component {k + 1}" if s == 0 else None)
        ax.set_title(f"{label}\n({len(runs)} seed{'s' if len(runs) != 1 else ''})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if not runs:
            ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    axes[0].set_ylabel("mean sigma of the component")
    axes[0].set_ylim(bottom=0)
    if any(ax.get_legend_handles_labels()[0] for ax in axes):
        next(ax for ax in axes if ax.get_legend_handles_labels()[0]).legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


SWEEP_METRICS = (("fid_gmm", "FID, mixture samples"), ("fid_ldm", "FID, latent diffusion"),
                 ("test_mse", "reconstruction MSE"), ("gmm_loglik", "mixture log-lik / dim (simpler: higher)"),
                 ("ldm_eps_mse", "latent diffusion eps-MSE (simpler: lower)"))


def _wrap(label: str, width: int = 12) -> str:
    """Break a tick label into lines of about ``width`` characters."""
    import textwrap

    return "\n".join(textwrap.wrap(label, width))


def sweep_chart(summary: dict, levels: list[str], stage2s, stage1: int, title: str | None = None):
    """The DAE sweep: each metric against the stage-1 decoder's capacity (weak -> as the real decoder), one
    line per stage-2 length with a band of +-1 sd over seeds; the joint baseline with the same total epochs
    as a dashed line with its band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15.5, 3.4), dpi=DPI, layout="constrained")
    # the top 12 % (~40 px) left blank: the app's image toolbar (download, full screen) sits over the top right
    # corner, where it covered the last chart's title
    fig.get_layout_engine().set(rect=(0, 0, 1, 0.88))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(SWEEP_METRICS), squeeze=False)[0]
    xs = np.arange(len(levels))
    colors = {s2: c for s2, c in zip(stage2s, ("#1f77b4", "#d62728", "#2ca02c", "#9467bd"))}
    for ax, (key, label) in zip(axes, SWEEP_METRICS):
        row = summary["table"].get(key)
        if row is None:
            ax.set_visible(False)
            continue
        for s2 in stage2s:
            cells = [row.get(f"dae-l{i}-s{s2}", {}) for i in range(len(levels))]
            have = [i for i, c in enumerate(cells) if c.get("mean") is not None]
            c = colors[s2]
            if have:
                m = np.array([cells[i]["mean"] for i in have])
                sd = np.array([cells[i]["sd"] for i in have])
                ax.plot(xs[have], m, "o-", color=c, label=f"DAE, {stage1} + {s2} epochs")
                ax.fill_between(xs[have], m - sd, m + sd, color=c, alpha=0.18, lw=0)
            joint = row.get(f"joint-s{s2}", {})
            if joint.get("mean") is not None:
                ax.axhline(joint["mean"], color=c, ls="--", lw=1.2, label=f"joint, {stage1 + s2} epochs")
                ax.axhspan(joint["mean"] - joint["sd"], joint["mean"] + joint["sd"], color=c, alpha=0.08, lw=0)
        ax.set_title(label, fontsize=9)
        ax.set_xticks(xs, [_wrap(lv) for lv in levels], fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("stage-1 decoder: weak -> strong", fontsize=8)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
