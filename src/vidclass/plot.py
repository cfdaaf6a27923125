"""Pictures: a timeline (labels over time), an explanation (the seconds and regions
behind a label) and evaluation charts (confusion matrix)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .errors import VidclassError
from .results import UNKNOWN
from .timelines import Timeline, window_cuts

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .explanations import Explanation

MAX_ROWS = 12
MIN_SCORE = 0.05  # labels that never reach this in a window are left out
DPI = 110  # the figure's own, so that text measured while drawing is as saved
FONT = 8  # points: segment labels, legend, ticks
UNKNOWN_COLOUR = "#6b7280"  # grey: no label, and kept out of the labels' palette
CLOCK_FROM = 90.0  # seconds: longer videos' axes read m:ss (h:mm:ss from an hour)
STEPS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400)


def _figure(option: str, size: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas: no pyplot, so nothing global to close or leak."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise VidclassError(f"{option} needs matplotlib: pip install 'vidclass[plot]'") from None
    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: str | os.PathLike) -> None:
    fig.savefig(out, dpi=DPI, bbox_inches="tight")


def _short(name: str) -> str:
    """A file's or folder's own name (not its whole path); a hub id as it is."""
    if not os.path.exists(name):
        return name
    return os.path.basename(os.path.normpath(name)) or name


def _palette() -> list:
    """Distinct colours, greys left out (grey is unknown's); tab10's first."""
    from matplotlib import colormaps
    from matplotlib.colors import rgb_to_hsv

    colours: list = []
    for name in ("tab10", "tab20", "tab20b", "tab20c"):
        for c in colormaps[name].colors:
            if rgb_to_hsv(c[:3])[1] > 0.15 and c not in colours:
                colours.append(c)
    return colours


def _ink(colour) -> str:
    """Black or white, whichever reads better on `colour`."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def _clock(seconds: float, hours: bool) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if hours else f"{s // 60}:{s % 60:02d}"


def _time_axis(ax, duration: float) -> None:
    """Seconds for short videos; m:ss (h:mm:ss) at a round step for long ones, about ten
    ticks whatever the length, so that they never crowd."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

    if duration <= CLOCK_FROM:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 2.5, 5, 10]))
        ax.set_xlabel("time (s)")
        return
    hours = duration >= 3600
    step = next((s for s in STEPS if duration / s <= 10), STEPS[-1])
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _clock(x, hours)))
    ax.set_xlabel("time (h:mm:ss)" if hours else "time (m:ss)")


def _width_px(fig: Figure, renderer, text: str, size: float) -> float:
    t = fig.text(0, 0, text, fontsize=size)
    width = t.get_window_extent(renderer).width
    t.remove()
    return width


def _legend(fig: Figure, renderer, labels: list[str], colour: dict, room: float):
    """The segment labels' legend in as many columns as fit in `room` pixels (measured:
    each column is as wide as its longest label); (legend, its height in inches)."""
    from matplotlib.patches import Patch

    if not labels:
        return None, 0.0
    handles = [Patch(facecolor=colour[k], label=k) for k in labels]
    em = FONT * fig.dpi / 72
    narrowest = min(_width_px(fig, renderer, k, FONT) for k in labels) + 3.2 * em
    ncol = max(1, min(len(labels), int(room // narrowest)))
    while True:
        legend = fig.legend(
            handles=handles,
            loc="upper left",
            ncol=ncol,
            fontsize=FONT,
            frameon=False,
            handlelength=1.2,
            handletextpad=0.5,
            columnspacing=1.5,
            borderaxespad=0,
            borderpad=0,
        )
        box = legend.get_window_extent(renderer)
        if box.width <= room or ncol == 1:
            return legend, box.height / fig.dpi
        legend.remove()
        ncol -= 1


def timeline_figure(tl: Timeline, model: str | None = None) -> Figure:
    """The timeline as a figure: a legend of the segments' labels, the segments (each
    labelled where its label fits inside it), and below the leading labels' scores over
    time. `model`: its name for the title (else the Timeline's, where it has one)."""
    # Rows: labels that lead a window or a segment, strongest first ("unknown" is no
    # score, so it is only a segment).
    best: dict[str, float] = {}
    for w in tl.windows:
        for p in w.predictions:
            best[p["label"]] = max(best.get(p["label"], 0.0), p["score"])
    for s in tl.segments:
        best[s.label] = max(best.get(s.label, 0.0), s.score)
    shown = {k for k, v in best.items() if v >= MIN_SCORE} | {s.label for s in tl.segments}
    shown.discard(UNKNOWN)
    rows = sorted(shown, key=best.get, reverse=True)[:MAX_ROWS]

    # Segment labels, the longest in all first: they get tab10's most distinct colours.
    total: dict[str, float] = {}
    for s in tl.segments:
        total[s.label] = total.get(s.label, 0.0) + s.end - s.start
    named = sorted(total, key=lambda k: (-total[k], k))
    palette = _palette()
    known = [k for k in named if k != UNKNOWN]
    colour = {k: palette[i % len(palette)] for i, k in enumerate(known)}
    colour[UNKNOWN] = UNKNOWN_COLOUR

    # The layout in inches, from the text it has to hold as drawn.
    width = 11.0
    fig = _figure("--plot", (width, 4.0))
    renderer = fig.canvas.get_renderer()
    inch = fig.dpi
    left = 0.25 + max(_width_px(fig, renderer, r, FONT) / inch for r in [*rows, "segments"])
    right = 0.9  # the colour bar
    plot_w = width - left - right
    legend, legend_h = _legend(fig, renderer, named, colour, plot_w * inch)
    title_h, strip_h, gap, bottom = 0.45, 0.45, 0.15, 0.6
    heat_h = max(0.28 * len(rows), 0.56)
    height = title_h + legend_h + gap + strip_h + gap + heat_h + bottom
    fig.set_size_inches(width, height)
    if legend is not None:
        legend.set_bbox_to_anchor((left, height - title_h), transform=fig.dpi_scale_trans)

    def box(y: float, h: float) -> list[float]:  # inches from the bottom -> fractions
        return [left / width, y / height, plot_w / width, h / height]

    heat = fig.add_axes(box(bottom, heat_h), label="scores")
    top = fig.add_axes(box(bottom + heat_h + gap, strip_h), sharex=heat, label="segments")
    duration = max(tl.duration, max((s.end for s in tl.segments), default=0.0), 1e-3)
    heat.set_xlim(0, duration)
    _time_axis(heat, duration)

    top.broken_barh(
        [(s.start, s.end - s.start) for s in tl.segments],
        (0, 1),
        facecolors=[colour[s.label] for s in tl.segments],
    )
    top.set_ylim(0, 1)
    top.set_yticks([])
    top.tick_params(axis="x", bottom=False, labelbottom=False)
    top.set_ylabel("segments", rotation=0, ha="right", va="center", fontsize=FONT + 1)

    if rows and tl.windows:
        grid = np.zeros((len(rows), len(tl.windows)))
        for j, w in enumerate(tl.windows):
            for p in w.predictions:
                if p["label"] in rows:
                    grid[rows.index(p["label"]), j] = p["score"]
        cuts = window_cuts([(w.start, w.end) for w in tl.windows], tl.duration)
        mesh = heat.pcolormesh(cuts, np.arange(len(rows) + 1), grid, cmap="Blues", vmin=0, vmax=1)
        bar = fig.add_axes(
            [(width - right + 0.15) / width, bottom / height, 0.12 / width, heat_h / height]
        )
        fig.colorbar(mesh, cax=bar, label="score")
    heat.set_yticks(np.arange(len(rows)) + 0.5, rows, fontsize=FONT)
    heat.set_ylim(max(len(rows), 1), 0)
    heat.tick_params(axis="x", labelsize=FONT)

    # Each segment's label where it fits inside the segment, as drawn; else only the
    # legend names it (never cut, never over a neighbour).
    pad = 0.4 * FONT * inch / 72
    for s in tl.segments:
        text = top.text(
            (s.start + s.end) / 2,
            0.5,
            s.label,
            transform=top.get_xaxis_transform(),
            ha="center",
            va="center",
            fontsize=FONT,
            color=_ink(colour[s.label]),
        )
        drawn = text.get_window_extent(renderer)
        (x0, _), (x1, _) = top.transData.transform([(s.start, 0), (s.end, 0)])
        if drawn.x0 < x0 + pad or drawn.x1 > x1 - pad:
            text.remove()

    name = os.path.basename(tl.video) or tl.video
    model = model or getattr(tl, "model", None)  # a Timeline may come to carry its model
    about = f"{_short(model)}, " if model else ""
    hours = tl.duration >= 3600
    length = f"{tl.duration:.1f} s" if tl.duration <= CLOCK_FROM else _clock(tl.duration, hours)
    fig.suptitle(
        f"{name} ({length}): {about}windows of {tl.window:g} s every {tl.stride:g} s",
        y=1 - 0.12 / height,
        fontsize=10,
    )
    return fig


def plot_timeline(tl: Timeline, out: str | os.PathLike, model: str | None = None) -> None:
    _save(timeline_figure(tl, model), out)


MAX_FRAMES = 8  # frames in an explanation's strip: its most important windows


def plot_explanation(ex: Explanation, out: str | os.PathLike) -> None:
    """A strip of frames, one per explained window (the middle frame the model sees),
    each cell tinted by how much greying it out lowers the label's score; below, each
    window's importance over time, the explained ones marked."""
    best = sorted(range(len(ex.regions)), key=lambda i: ex.regions[i].score, reverse=True)
    shown = sorted(best[:MAX_FRAMES])
    columns = max(1, len(shown))
    fig = _figure("--format png", (max(6.0, 1.9 * columns), 4.6))
    grid = fig.add_gridspec(2, columns, height_ratios=[1.1, 1], hspace=0.45)
    top = max((max(map(max, r.grid)) for r in ex.regions), default=0.0)
    for column, i in enumerate(shown):
        region, ax = ex.regions[i], fig.add_subplot(grid[0, column])
        frame = ex.frames[i] if i < len(ex.frames) else None
        height, width = frame.shape[:2] if frame is not None else (1, 1)
        if frame is not None:
            ax.imshow(frame)
        # Red, as opaque as the cell's drop is large (none where it is not positive).
        heat = np.clip(np.asarray(region.grid), 0, None) / max(top, 1e-6)
        tint = np.zeros((*heat.shape, 4))
        tint[..., 0], tint[..., 3] = 0.85, 0.7 * heat
        ax.imshow(tint, extent=(0, width, height, 0), interpolation="nearest")
        cells = len(region.grid)
        for k in range(1, cells):
            ax.axhline(k * height / cells, color="white", linewidth=0.5, alpha=0.6)
            ax.axvline(k * width / cells, color="white", linewidth=0.5, alpha=0.6)
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{region.start:g}-{region.end:g} s\nscore {region.score:.2f}", fontsize=8)
    curve = fig.add_subplot(grid[1, :])
    centres = [(s.start + s.end) / 2 for s in ex.seconds]
    curve.axhline(0, color="grey", linewidth=0.8)
    curve.plot(centres, [s.importance for s in ex.seconds], marker="o", markersize=3)
    for region in ex.regions:
        curve.axvspan(region.start, region.end, color="tab:red", alpha=0.08)
    end = max((s.end for s in ex.seconds), default=1.0)
    curve.set_xlim(0, end)
    curve.set_xlabel("time (s): each window at its centre; shaded: the windows above")
    curve.set_ylabel("importance")
    title = f"{os.path.basename(ex.video)}: why {ex.label} ({ex.score:.2f}), {ex.passes} passes"
    if len(shown) < len(ex.regions):
        title += f"; the {len(shown)} best of {len(ex.regions)} explained windows shown"
    fig.suptitle(title, fontsize=10)
    _save(fig, out)


def _about(model: str, data: str) -> str:
    return f"{_short(model)} on {_short(data)}"


def confusion_figure(
    labels: list[str], matrix: list[list[int]], *, model: str, data: str, accuracy: float
) -> Figure:
    """Rows: true labels; columns: predicted; each row coloured by its share."""
    m = np.asarray(matrix, dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    side = 2.5 + 0.45 * len(labels)
    fig = _figure("--plots", (side + 1.5, side))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                colour = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, int(m[i, j]), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(m.shape[0]), labels[: m.shape[0]], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, label="share of the true label", fraction=0.046, pad=0.04)
    fig.suptitle(
        f"{_about(model, data)}: accuracy {accuracy:.3f} ({int(m.sum())} videos)", fontsize=10
    )
    return fig


def plot_confusion(
    labels: list[str],
    matrix: list[list[int]],
    out: str | os.PathLike,
    *,
    model: str,
    data: str,
    accuracy: float,
) -> None:
    _save(confusion_figure(labels, matrix, model=model, data=data, accuracy=accuracy), out)


def reliability_figure(calibration: dict, *, model: str, data: str) -> Figure:
    """A reliability diagram: each confidence bin's accuracy against its confidence
    (on the diagonal: calibrated), with how many videos fall in each bin."""
    bins = calibration["reliability"]
    fig = _figure("--plots", (4.5, 4.8))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#9ca3af", linestyle="--", linewidth=1, label="calibrated")
    width = 1.0 / calibration["bins"]
    ax.bar(
        [b["low"] for b in bins],
        [b["accuracy"] for b in bins],
        width=width,
        align="edge",
        color="#2563eb",
        alpha=0.8,
        label="accuracy",
    )
    ax.plot(
        [b["confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        "o",
        color="#b91c1c",
        markersize=4,
        label="mean confidence",
    )
    for b in bins:
        ax.text(b["low"] + width / 2, b["accuracy"] + 0.02, b["count"], ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("confidence (top score)")
    ax.set_ylabel("accuracy")
    ax.set_title(
        f"ECE {calibration['ece']:.3f} at temperature {calibration['temperature']:.3g} "
        f"(1: {calibration['ece_at_temperature_1']:.3f})",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{_about(model, data)}: calibration", fontsize=10)
    return fig


def plot_reliability(calibration: dict, out: str | os.PathLike, *, model: str, data: str) -> None:
    _save(reliability_figure(calibration, model=model, data=data), out)


def per_label_figure(
    rows: list[dict], *, model: str, data: str, mean_ap: float | None = None
) -> Figure:
    """Multi-label models: precision, recall, F1 and average precision per label."""
    names = [r["label"] for r in rows]
    keys = ["precision", "recall", "f1", "average_precision"]
    fig = _figure("--plots", (3 + 0.6 * len(names), 4))
    ax = fig.subplots()
    width = 0.2
    for k, key in enumerate(keys):
        values = [r.get(key) or 0.0 for r in rows]
        ax.bar(np.arange(len(names)) + (k - 1.5) * width, values, width, label=key)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    mean = f" (mAP {mean_ap:.3f})" if mean_ap is not None else ""
    fig.suptitle(f"{_about(model, data)}: each label{mean}", fontsize=10)
    return fig


def plot_per_label(
    rows: list[dict],
    out: str | os.PathLike,
    *,
    model: str,
    data: str,
    mean_ap: float | None = None,
) -> None:
    _save(per_label_figure(rows, model=model, data=data, mean_ap=mean_ap), out)
