"""Pictures: a timeline (labels over time) and evaluation charts (confusion matrix)."""

from __future__ import annotations

import os

import numpy as np

from .errors import VidclassError
from .timelines import Timeline, window_cuts

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
