"""A timeline picture: the leading labels over time, score as intensity, segments above."""

from __future__ import annotations

import os

import numpy as np

from .errors import VidclassError
from .timeline import Timeline, window_cuts

MAX_ROWS = 12
MIN_SCORE = 0.05  # labels that never reach this in a window are left out


def plot_timeline(tl: Timeline, out: str | os.PathLike) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise VidclassError("--plot needs matplotlib: pip install 'vidclass[plot]'") from None
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
