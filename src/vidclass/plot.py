"""Pictures: a timeline (labels over time), an explanation (the seconds and regions
behind a label) and evaluation charts (confusion matrix)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .errors import VidclassError
from .timelines import Timeline, window_cuts

if TYPE_CHECKING:
    from .explanations import Explanation

MAX_ROWS = 12
MIN_SCORE = 0.05  # labels that never reach this in a window are left out


def _pyplot(option: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise VidclassError(f"{option} needs matplotlib: pip install 'vidclass[plot]'") from None
    return plt


def plot_timeline(tl: Timeline, out: str | os.PathLike) -> None:
    plt = _pyplot("--plot")
    # Rows: labels that lead a segment or a window, strongest first.
    best: dict[str, float] = {}
    for w in tl.windows:
        for p in w.predictions:
            best[p["label"]] = max(best.get(p["label"], 0.0), p["score"])
    for s in tl.segments:
        best[s.label] = max(best.get(s.label, 0.0), s.score)
    shown = {k for k, v in best.items() if v >= MIN_SCORE} | {s.label for s in tl.segments}
    rows = sorted(shown, key=best.get, reverse=True)[:MAX_ROWS]
    grid = np.zeros((len(rows), len(tl.windows)))
    for j, w in enumerate(tl.windows):
        for p in w.predictions:
            if p["label"] in rows:
                grid[rows.index(p["label"]), j] = p["score"]
    cuts = window_cuts([(w.start, w.end) for w in tl.windows], tl.duration)

    height = 1.6 + 0.35 * len(rows)
    fig, (top, heat) = plt.subplots(
        2, 1, figsize=(11, height), sharex=True, gridspec_kw={"height_ratios": [1, len(rows)]}
    )
    colours = plt.get_cmap("tab10")
    for s in tl.segments:
        c = colours(rows.index(s.label) % 10 if s.label in rows else 9)
        top.axvspan(s.start, s.end, color=c, alpha=0.85)
        top.text(
            (s.start + s.end) / 2, 0.5, s.label, ha="center", va="center", fontsize=8, clip_on=True
        )
    top.set_yticks([])
    top.set_ylabel("segments", rotation=0, ha="right", va="center")
    mesh = heat.pcolormesh(cuts, np.arange(len(rows) + 1), grid, cmap="Blues", vmin=0, vmax=1)
    heat.set_yticks(np.arange(len(rows)) + 0.5, rows)
    heat.invert_yaxis()
    heat.set_xlabel("time (s)")
    heat.set_xlim(0, tl.duration)
    fig.colorbar(mesh, ax=[top, heat], label="score", fraction=0.03, pad=0.01)
    fig.suptitle(os.path.basename(tl.video), fontsize=10)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


MAX_FRAMES = 8  # frames in an explanation's strip: its most important windows


def plot_explanation(ex: Explanation, out: str | os.PathLike) -> None:
    """A strip of frames, one per explained window (the middle frame the model sees),
    each cell tinted by how much greying it out lowers the label's score; below, each
    window's importance over time, the explained ones marked."""
    plt = _pyplot("--format png")
    best = sorted(range(len(ex.regions)), key=lambda i: ex.regions[i].score, reverse=True)
    shown = sorted(best[:MAX_FRAMES])
    columns = max(1, len(shown))
    fig = plt.figure(figsize=(max(6.0, 1.9 * columns), 4.6))
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
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(labels: list[str], matrix: list[list[int]], out: str | os.PathLike) -> None:
    """Rows: true labels; columns: predicted; each row coloured by its share."""
    plt = _pyplot("--plots")
    m = np.asarray(matrix, dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    side = 2.5 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
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
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_reliability(calibration: dict, out: str | os.PathLike) -> None:
    """A reliability diagram: each confidence bin's accuracy against its confidence
    (on the diagonal: calibrated), with how many videos fall in each bin."""
    plt = _pyplot("--plots")
    bins = calibration["reliability"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
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
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_per_label(rows: list[dict], out: str | os.PathLike) -> None:
    """Multi-label models: precision, recall, F1 and average precision per label."""
    plt = _pyplot("--plots")
    names = [r["label"] for r in rows]
    keys = ["precision", "recall", "f1", "average_precision"]
    fig, ax = plt.subplots(figsize=(3 + 0.6 * len(names), 4))
    width = 0.2
    for k, key in enumerate(keys):
        values = [r.get(key) or 0.0 for r in rows]
        ax.bar(np.arange(len(names)) + (k - 1.5) * width, values, width, label=key)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
