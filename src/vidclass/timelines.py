"""Labels over time: sliding windows across a video, merged into segments.

The windows are the engine's work (see engine.prepare: one pass over the file, each
frame dropped once its last window is made); here their scores become segments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np

from .engine import ClipModel, Driver, InProcess, Windows, Work
from .engine.stretch import reads_map
from .errors import VidclassError
from .options import check, option
from .results import UNKNOWN, Segment, Timeline, Window, with_unknown
from .results import top_k as best
from .video.sampling import window_count, window_starts

__all__ = ["Segment", "Timeline", "Window", "compute", "segment", "window_cuts", "window_starts"]

log = logging.getLogger("vidclass")

DEFAULT_WINDOW = 2.0  # for models whose clip has no fixed length (frames spread)


def window_cuts(spans: list[tuple[float, float]], duration: float) -> list[float]:
    """Each window stands for the time nearest its centre: cuts halfway between centres,
    from 0 to the end (n + 1 values for n windows)."""
    centres = [(a + b) / 2 for a, b in spans]
    middle = [(centres[i] + centres[i + 1]) / 2 for i in range(len(centres) - 1)]
    return [0.0, *middle, duration]


def compute(
    clf: ClipModel,
    path: str | os.PathLike,
    window: float | None = None,
    stride: float = 1.0,
    top_k: int = 3,
    smooth: int = 3,
    min_segment: float | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    unknown: str = "auto",
    per_window: bool = False,
) -> Timeline:
    """The timeline of one video, decoded and scored in this process. `progress` is
    called with (windows scored, windows in all, None where unknown) as they are.
    Where the model has a map over time, its windows are read from one pass over the
    video (engine.stretch) unless `per_window`."""
    check("timeline", locals())
    stride = option("timeline", "stride").default if stride is None else stride
    if window is None:
        window = clf.spec.clip_seconds or DEFAULT_WINDOW
    shared = reads_map(clf, per_window)
    work = Work(Windows(window, stride, shared), video_timeout=None, unknown=unknown != "off")
    on_scored = None
    if progress is not None:
        total, done = planned_windows(stated_duration(path), window, stride), 0

        def on_scored(n: int) -> None:
            nonlocal done
            done += n
            progress(done, total)

    driver = Driver(clf, work, InProcess(raise_errors=True), on_scored=on_scored)
    result = next(driver.run([path]))
    probs, spans = result.clip_scores, result.spans
    end = spans[-1][1]
    ood = result.clip_ood if result.clip_ood is not None else [None] * len(spans)
    detector = driver.detector
    windows = [
        Window(a, b, best(clf.labels, p, top_k), *answer(detector, o))
        for (a, b), p, o in zip(spans, probs, ood, strict=True)
    ]
    min_segment = 2 * stride if min_segment is None else min_segment
    unknown = [w.unknown for w in windows] if unknown_known(windows) else None
    segs = segment(probs, spans, end, clf.labels, smooth, min_segment, unknown)
    whole = best(clf.labels, probs.mean(axis=0), top_k, clf.min_score)
    timeline = Timeline(str(path), end, window, stride, windows, segs, whole)
    timeline.ood_score, timeline.unknown = result.ood_score, result.unknown
    return timeline


def answer(detector, ood) -> tuple[float | None, bool | None]:
    """A window's (ood_score, unknown), None where not scored."""
    return (None, None) if ood is None else (float(ood), detector.is_unknown(float(ood)))


def unknown_known(windows: list[Window]) -> bool:
    """Whether the windows say unknown or not (the model has a threshold)."""
    return bool(windows) and all(w.unknown is not None for w in windows)


def stated_duration(path: str | os.PathLike) -> float | None:
    """The duration `path`'s container states (None: unknown until it is decoded)."""
    from .video import probe

    try:
        return probe(path).duration or None
    except VidclassError:
        return None


def planned_windows(duration: float | None, window: float, stride: float) -> int | None:
    """How many windows a timeline of a video of `duration` seconds will have (None
    where the duration is unknown)."""
    return window_count(duration, window, stride) if duration else None


def planned_steps(duration: float | None, fps: float) -> int | None:
    """At most how many passes one map of a video of `duration` seconds takes
    (engine.stretch: its frames at `fps` in steps, and a step past its end for the
    map's lag, which is under a step); None where the duration is unknown."""
    from .engine.stretch import most_steps, video_frames

    return most_steps(video_frames(duration, fps)) if duration else None


def segment(
    probs: np.ndarray,
    spans: list[tuple[float, float]],
    duration: float,
    labels: tuple[str, ...],
    smooth: int = 3,
    min_length: float = 2.0,
    unknown: list[bool] | None = None,
) -> list[Segment]:
    """Merge windows into segments of one top label.

    Scores are averaged over `smooth` neighbouring windows before the top label is
    taken, so one noisy window does not split a segment; a segment shorter than
    `min_length` seconds joins the neighbour whose label scores higher over it.
    `unknown` (each window's answer): an unknown window scores 1 for a label "unknown"
    and a known one 0, so runs of unknown windows become "unknown" segments (their
    score: the share of unknown windows in them).
    """
    if unknown is not None:
        probs, labels = with_unknown(probs, unknown), (*labels, UNKNOWN)
    n = len(probs)
    if smooth > 1 and n > 1:
        half = smooth // 2
        smoothed = np.stack([probs[max(0, i - half) : i + half + 1].mean(axis=0) for i in range(n)])
    else:
        smoothed = probs
    top = smoothed.argmax(axis=1)
    cuts = window_cuts(spans, duration)
    runs = _runs(list(top))  # [label index, first window, last window]
    while len(runs) > 1:
        length = [cuts[r[2] + 1] - cuts[r[1]] for r in runs]
        short = min(range(len(runs)), key=length.__getitem__)
        if length[short] >= min_length:
            break
        _, a, b = runs[short]
        options = [j for j in (short - 1, short + 1) if 0 <= j < len(runs)]
        best = max(options, key=lambda j: probs[a : b + 1, runs[j][0]].mean())
        runs[short][0] = runs[best][0]
        runs = _runs([r[0] for r in runs for _ in range(r[1], r[2] + 1)])
    return [
        Segment(cuts[a], cuts[b + 1], labels[k], float(probs[a : b + 1, k].mean()))
        for k, a, b in runs
    ]


def _runs(top: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i, k in enumerate(top):
        if runs and runs[-1][0] == k:
            runs[-1][2] = i
        else:
            runs.append([int(k), i, i])
    return runs
