"""Labels over time: sliding windows across a video, merged into segments.

All windows' frames come from one pass over the file; a frame shared by overlapping
windows is decoded once and dropped as soon as the last window using it is scored, so
memory does not grow with the video's length.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import VidclassError
from .limits import check_frame_memory, check_time, max_windows
from .video import FrameStream, probe, spread_clip
from .video.decode import Resize, no_frames_error
from .video.transforms import frames_to_tensor

if TYPE_CHECKING:
    from .pipeline import VideoClassifier

log = logging.getLogger("vidclass")

DEFAULT_STRIDE = 1.0
DEFAULT_WINDOW = 2.0  # for models whose clip has no fixed length (frames spread)


@dataclass
class Window:
    start: float
    end: float
    predictions: list[dict]  # top-k [{"label", "score"}], best first


@dataclass
class Segment:
    start: float
    end: float
    label: str
    score: float  # mean probability of the label over the segment's windows


@dataclass
class Timeline:
    video: str
    duration: float
    window: float
    stride: float
    windows: list[Window] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def window_count(duration: float, window: float, stride: float) -> int:
    """How many windows `window_starts` gives, without making them."""
    if duration <= window:
        return 1
    count = int((duration - window) / stride + 1e-9) + 1
    return count + (duration - ((count - 1) * stride + window) > 1e-6)


def window_starts(duration: float, window: float, stride: float) -> list[float]:
    """Starts of windows every `stride` s; a last one ends at the end of the video."""
    if duration <= window:
        return [0.0]
    count = int((duration - window) / stride + 1e-9) + 1
    starts = [round(k * stride, 6) for k in range(count)]
    if duration - (starts[-1] + window) > 1e-6:
        starts.append(round(duration - window, 6))
    return starts


def window_cuts(spans: list[tuple[float, float]], duration: float) -> list[float]:
    """Each window stands for the time nearest its centre: cuts halfway between centres,
    from 0 to the end (n + 1 values for n windows)."""
    centres = [(a + b) / 2 for a, b in spans]
    middle = [(centres[i] + centres[i + 1]) / 2 for i in range(len(centres) - 1)]
    return [0.0, *middle, duration]


def window_times(clf: VideoClassifier, start: float, end: float) -> np.ndarray:
    """Timestamps of one window's frames, as the model samples a clip."""
    spec = clf.spec
    if spec.fps:
        count = max(1, round((end - start) * spec.fps))
        return np.round(start + np.arange(count) / spec.fps, 6)
    return np.round(spread_clip(start, end, spec.num_frames), 6)


@dataclass
class _Plan:
    """Which frames each window needs, as indices into the sorted timestamps to decode,
    and after which window each frame can be dropped. Arrays, so a day-long video at
    a short stride plans in bounded memory."""

    spans: list[tuple[float, float]]
    wanted: np.ndarray  # sorted unique timestamps
    needs: list[np.ndarray]  # per window, indices into `wanted`
    last_use: np.ndarray  # per timestamp, the last window that needs it


def _plan(clf: VideoClassifier, path, info, window: float, stride: float) -> _Plan:
    count = window_count(info.duration, window, stride)
    if count > max_windows():
        raise VidclassError(
            f"{path}: {count} windows of {window:g} s every {stride:g} s are over the limit "
            f"of {max_windows()} (use a longer stride; VIDCLASS_MAX_WINDOWS raises it)"
        )
    starts = window_starts(info.duration, window, stride)
    spans = [(s, round(min(s + window, info.duration), 6)) for s in starts]
    times = [window_times(clf, a, b) for a, b in spans]
    # The frames of about one window are held at once.
    width, height = Resize(clf.spec.short_side, clf.spec.size).target(
        info.width, info.height, False
    )
    check_frame_memory(max(len(t) for t in times), width, height, str(path))
    wanted, inverse = np.unique(np.concatenate(times), return_inverse=True)
    bounds = np.cumsum([0] + [len(t) for t in times])
    needs = [inverse[bounds[w] : bounds[w + 1]] for w in range(len(times))]
    last_use = np.zeros(len(wanted), dtype=np.int64)
    np.maximum.at(last_use, inverse, np.repeat(np.arange(len(times)), np.diff(bounds)))
    return _Plan(spans, wanted, needs, last_use)


def compute(
    clf: VideoClassifier,
    path: str | os.PathLike,
    window: float | None = None,
    stride: float | None = None,
    top_k: int = 3,
    smooth: int = 3,
    min_segment: float | None = None,
) -> Timeline:
    if window is None:
        window = clf.spec.clip_seconds or DEFAULT_WINDOW
    if stride is None:
        stride = DEFAULT_STRIDE
    if not (math.isfinite(window) and math.isfinite(stride)) or window <= 0 or stride <= 0:
        raise VidclassError(
            f"window and stride must be positive numbers, got {window} and {stride}"
        )
    if top_k < 1:
        raise VidclassError(f"top_k must be at least 1, got {top_k}")
    info = probe(path)
    if not info.duration:
        raise VidclassError(f"{path}: its duration cannot be found, so it has no timeline")
    plan = _plan(clf, path, info, window, stride)
    needs, last_use = plan.needs, plan.last_use
    stream = FrameStream(
        path,
        plan.wanted,
        clf.spec.short_side,
        size=clf.spec.size,
        interpolation=clf.spec.interpolation,
    )
    frames: dict[int, np.ndarray] = {}  # index into plan.wanted -> frame
    scores: list[np.ndarray] = []
    kept: list[int] = []  # windows that had frames

    def score_window(w: int) -> None:
        check_time()
        have = [frames[i] for i in needs[w].tolist() if i in frames]
        if have:
            clip = frames_to_tensor(have, clf.spec)[None]
            scores.append(clf.activate(clf.logits(clip))[0].numpy())
            kept.append(w)
        for i in needs[w].tolist():
            if last_use[i] == w:
                frames.pop(i, None)

    w = 0
    for index, _, frame in stream:
        frames[index] = frame
        while w < len(needs) and needs[w][-1] <= index:
            score_window(w)
            w += 1
    while w < len(needs):  # the file ended early: score what decoded
        score_window(w)
        w += 1
    for message in stream.warnings:
        log.warning(message)
    if not kept:
        raise no_frames_error(path, stream.damage)
    spans = plan.spans
    if len(kept) < len(spans):
        log.warning(f"{path}: {len(spans) - len(kept)} windows past the decodable end skipped")

    probs = np.stack(scores)
    spans = [spans[i] for i in kept]
    end = spans[-1][1]
    windows = [Window(a, b, clf.top_k(p, top_k)) for (a, b), p in zip(spans, probs, strict=True)]
    min_segment = 2 * stride if min_segment is None else min_segment
    segs = segment(probs, spans, end, clf.labels, smooth=smooth, min_length=min_segment)
    return Timeline(str(path), end, window, stride, windows, segs)


def segment(
    probs: np.ndarray,
    spans: list[tuple[float, float]],
    duration: float,
    labels: tuple[str, ...],
    smooth: int = 3,
    min_length: float = 2.0,
) -> list[Segment]:
    """Merge windows into segments of one top label.

    Scores are averaged over `smooth` neighbouring windows before the top label is
    taken, so one noisy window does not split a segment; a segment shorter than
    `min_length` seconds joins the neighbour whose label scores higher over it.
    """
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
