"""A live session: the model loop over the newest ready window, and what it reports.

The capture thread fills windows as the source plays; this loop takes the newest one
each time the model is free, so it keeps up with the stream by skipping windows when it
must. Latency is from the arrival of a window's last frame to its labels.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from ..engine import ClipModel, Driver, Handed, Windows, Work
from ..engine.driver import finite_rows, non_finite
from ..engine.stretch import STEP_FRAMES, reads_map
from ..engine.work import from_features
from ..errors import VidclassError
from ..results import UNKNOWN, with_unknown
from ..video.transforms import cropped, stack_clip
from .capture import Capture, Gap
from .sources import DEFAULT_TIMEOUT, Source
from .stretch import LiveStretch
from .windows import Grid, LiveWindows, Ready

log = logging.getLogger("vidclass")

WAIT_STEP = 0.1  # seconds between checks of the deadline and the capture's end
STEPS_KEPT = 4  # ready steps of a map stream held for the model, oldest taken first


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class LiveWindow:
    """One window's labels, `latency` seconds after its last frame arrived."""

    start: float  # live seconds from the first frame
    end: float
    predictions: list[dict]
    latency: float
    captured: float  # unix time its last frame arrived
    scores: np.ndarray = field(repr=False)
    ood_score: float | None = None
    unknown: bool | None = None  # past the model's threshold (None: it has none)
    kind: str = "window"

    def as_dict(self) -> dict:
        return {
            "type": "window",
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "captured": _iso(self.captured),
            "latency": round(self.latency, 3),
            "ood_score": self.ood_score,
            "unknown": self.unknown,
            "predictions": self.predictions,
        }


@dataclass
class LiveSegment:
    """A stretch of one leading label, reported when it ends; `next` is the label that
    leads now (None at the end of the run or at a gap)."""

    start: float
    end: float
    label: str
    score: float  # the label's mean score over the stretch's windows
    next: str | None
    kind: str = "segment"

    def as_dict(self) -> dict:
        return {
            "type": "segment",
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "label": self.label,
            "score": self.score,
            "next": self.next,
        }


class Histogram:
    """Seconds counted in 1 ms bins up to `top` (beyond it, in the last): quantiles of a
    run of any length in fixed memory."""

    def __init__(self, top: float = 120.0, step: float = 0.001):
        self.step = step
        self.counts = np.zeros(int(top / step) + 1, dtype=np.int64)
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.counts[min(len(self.counts) - 1, max(0, int(seconds / self.step)))] += 1
        self.count += 1
        self.max = max(self.max, seconds)

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = int(np.ceil(q * self.count))
        index = int(np.searchsorted(np.cumsum(self.counts), max(1, rank)))
        return (index + 0.5) * self.step


@dataclass
class LiveSummary:
    """How a live run went: what was scored and skipped, how late, and why it ended."""

    source: str
    model: str
    window: float
    stride: float
    windows: int = 0  # scored
    skipped: int = 0  # made ready but passed over for a newer one
    frames: int = 0
    stream_seconds: float = 0.0
    wall_seconds: float = 0.0
    latency_median: float | None = None
    latency_p95: float | None = None
    latency_max: float | None = None
    model_seconds: float | None = None  # median per window (shared: per step), the model's
    load: float | None = None  # model time per second of stream: over 1, it must skip
    step_seconds: float | None = None  # shared windows: the stream's seconds in one step
    gaps: int = 0
    reconnects: int = 0
    unknown_windows: int | None = None  # answered unknown (None: the model has no threshold)
    ended: str = ""

    @property
    def unknown_share(self) -> float | None:
        """The share of windows answered unknown: a source drifting away from what the
        model knows shows here first."""
        if self.unknown_windows is None or not self.windows:
            return None
        return self.unknown_windows / self.windows

    def as_dict(self) -> dict:
        out = {"type": "summary", **self.__dict__, "unknown_share": self.unknown_share}
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}

    def describe(self) -> str:
        def s(v):
            return "-" if v is None else f"{v:.2f} s"

        return (
            f"{self.source}: {self.windows} windows labelled, {self.skipped} skipped, over "
            f"{self.stream_seconds:.1f} s of stream in {self.wall_seconds:.1f} s; latency "
            f"median {s(self.latency_median)}, p95 {s(self.latency_p95)}; model "
            f"{s(self.model_seconds)} a "
            + ("window" if self.step_seconds is None else f"step of {self.step_seconds:g} s")
            + f" (load {self.load or 0:.2f}); "
            f"{self.gaps} gaps; "
            + ("" if self.unknown_share is None else f"{self.unknown_share:.0%} unknown; ")
            + f"ended: {self.ended}"
        )


class Segments:
    """The leading label, smoothed over the last `smooth` windows (causal: a live run
    cannot look ahead); a stretch is reported when another label takes the lead."""

    def __init__(self, labels: tuple[str, ...], smooth: int):
        self.labels = labels
        self.recent: deque[np.ndarray] = deque(maxlen=max(1, smooth))
        self._open: list | None = None  # [label index, start, score sum, windows, centre]

    def add(self, scores: np.ndarray, span: tuple[float, float]) -> LiveSegment | None:
        self.recent.append(scores)
        top = int(np.mean(self.recent, axis=0).argmax())
        centre = (span[0] + span[1]) / 2
        closed = None
        if self._open is not None and self._open[0] != top:
            cut = (self._open[4] + centre) / 2  # halfway between the windows' centres
            closed = self._close(cut, self.labels[top])
            self._open = [top, cut, 0.0, 0, centre]
        elif self._open is None:
            self._open = [top, span[0], 0.0, 0, centre]
        self._open[2] += float(scores[top])
        self._open[3] += 1
        self._open[4] = centre
        self._end = span[1]
        return closed

    def _close(self, end: float, next_label: str | None) -> LiveSegment:
        k, start, total, n, _ = self._open
        self._open = None
        return LiveSegment(start, end, self.labels[k], total / max(1, n), next_label)

    def close(self, end: float | None = None) -> LiveSegment | None:
        """End the open stretch (at a gap, or the end of the run)."""
        if self._open is None:
            return None
        self.recent.clear()
        return self._close(self._end if end is None else min(end, self._end), None)


class LiveSession:
    """Labels of a live source as it plays. Iterate for LiveWindow, LiveSegment (with
    `segments`) and Gap events, in order; `summary` says how it went at any time.
    Iteration ends at the source's end, after `duration` seconds, or on `stop()`."""

    def __init__(
        self,
        classifier,
        source: Source,
        window: float | None = None,
        stride: float = 1.0,
        top_k: int = 3,
        smooth: int = 3,
        segments: bool = True,
        duration: float | None = None,
        reconnect: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        give_up: float | None = None,
        runner: ClipModel | None = None,
        warm_up: bool = True,
        unknown: str = "auto",
        per_window: bool = False,
    ):
        """Windows are scored by the engine's Driver with `runner`, where something else
        owns the model's forward passes (the server's model thread), else with the
        classifier itself. `warm_up`: one pass on a blank clip before the source opens
        (a served model is warm already, and a client that never sends a stream should
        cost no forward pass). `unknown`: "auto" (each window's ood_score and unknown
        answer; runs of unknown windows are segments) or "off". Where the model has a
        map over time, windows are read off one map of the stream (live.stretch), each
        frame through the model once whatever the stride, unless `per_window`."""
        from ..options import check, option
        from ..timelines import DEFAULT_WINDOW

        check("watch", locals())
        stride = option("watch", "stride").default if stride is None else stride
        spec = classifier.spec
        if window is None:
            window = spec.clip_seconds or DEFAULT_WINDOW
        self.model = classifier
        self.source = source
        self._handed = Handed()
        work = Work(Windows(window, stride), video_timeout=None, unknown=unknown != "off")
        self._driver = Driver(runner or classifier, work, self._handed, batch_size=1)
        detector = self._driver.detector
        self._answers = detector is not None and detector.threshold is not None
        self.top_k = top_k
        self.duration = duration
        self.report_segments = segments
        self._runner = runner or classifier
        self.shared = reads_map(self._runner, per_window)
        self._stretch: LiveStretch | None = None
        self._window, self._stride = window, stride
        # Shared: the capture makes steps of the map stream ready, not windows.
        step = STEP_FRAMES / spec.fps if self.shared else None
        # shared: a few steps kept (about 10 s of stream), so a burst loses none
        keep = STEPS_KEPT if self.shared else 1
        self.windows = LiveWindows(spec, step or window, step or stride, source.name, keep)
        reconnect = source.network if reconnect is None else reconnect
        self.capture = Capture(source, self.windows, reconnect, timeout, give_up)
        labels = (*classifier.labels, UNKNOWN) if self._answers else classifier.labels
        self.segments = Segments(labels, smooth)
        self.summary = LiveSummary(source.name, classifier.identity, window, stride)
        self.summary.step_seconds = step
        self.summary.unknown_windows = 0 if self._answers else None
        self._latency = Histogram()
        self._model_time = Histogram()
        self._started: float | None = None
        self._closed = False
        self._warm = not warm_up

    def open(self) -> LiveSession:
        """Open the source now (iterating opens it otherwise): a one-line error if it
        cannot be."""
        if self._started is None:
            if not self._warm:
                self._warm_up()
                self._warm = True
            try:
                self.capture.open()
            except VidclassError as exc:
                self.summary.ended = str(exc)  # opening may be tried again
                raise
            self.summary.ended = ""
        return self

    def _warm_up(self) -> None:
        """One pass on a blank clip before the source opens, so the first window is not
        late by the runtime's first-call work (compiling a graph for the shape)."""
        spec = self.model.spec
        size = spec.crop_hw or spec.size
        if size is None:  # the frame size is not known before the first frame
            return
        grid = Grid(0.0, self.windows.window, self.windows.stride, spec)
        blank = [np.zeros((*size, 3), dtype=np.uint8)] * len(grid.times(0))
        if self.shared:
            stretch = LiveStretch(self._runner, 0.0, self._window, self._stride)
            stretch.push(np.stack(cropped(blank, spec)), time.monotonic())
            return
        self._scores(blank, (0.0, self.windows.window))

    def stop(self) -> None:
        """End the run: iteration stops after the window being labelled."""
        self.capture.stopping.set()

    def __iter__(self):
        self.open()
        self._started = time.monotonic()
        self.capture.start()
        deadline = None if self.duration is None else self._started + self.duration
        last = 0
        try:
            while True:
                for gap in self.capture.take_gaps():
                    yield from self._gap(gap)
                if self.capture.stopping.is_set():
                    self.summary.ended = self.summary.ended or "stopped"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self.summary.ended = f"duration of {self.duration:g} s"
                    break
                step = WAIT_STEP
                if deadline is not None:
                    step = max(0.0, min(step, deadline - time.monotonic()))
                ready = self.windows.wait(last, step)
                if ready is None:
                    if self.capture.ended and self.windows.newest(last) is None:
                        for gap in self.capture.take_gaps():
                            yield from self._gap(gap)
                        if self.capture.error is not None:
                            self.summary.ended = str(self.capture.error)
                            raise self.capture.error
                        if self.windows.frames_seen == 0:
                            error = VidclassError(no_frames(self.source))
                            self.summary.ended = str(error)
                            raise error
                        self.summary.ended = "end of stream"
                        break
                    continue
                for gap in self.capture.take_gaps():  # a gap before a window after it
                    yield from self._gap(gap)
                if self.shared:
                    yield from self._step(ready, ready.seq - last - 1)
                else:
                    self.summary.skipped += ready.seq - last - 1
                    yield from self._label(ready)
                last = ready.seq
            if self.shared:  # what is left of the run: its last frames, its last windows
                yield from self._end_stretch(*self.windows.partial())
        finally:
            self.capture.stop(wait=0.5)
            self._update()
        yield from self.close()

    def _step(self, ready: Ready, skipped: int):
        """Shared windows: a step of frames into the run's map, and the windows it
        completes. Steps the model could not keep up with break the run there."""
        if self._stretch is not None and (skipped or not self._stretch.follows(ready.span[0])):
            yield from self._end_stretch()  # a lost step, or the capture started a new run
        if skipped:
            self.summary.skipped += round(skipped * self.summary.step_seconds / self._stride)
        if self._stretch is None:
            self._stretch = LiveStretch(self._runner, ready.span[0], self._window, self._stride)
        began = time.monotonic()
        made = self._stretch.push(np.stack(cropped(ready.frames, self.model.spec)), ready.captured)
        self._model_time.add(time.monotonic() - began)
        yield from self._emit(made)

    def _end_stretch(self, start: float | None = None, frames: list[np.ndarray] | None = None):
        """The run's map ends (a break, a gap, the end): its last windows; `frames`, the
        run's last frames short of a step, from `start` live seconds (kept where they go
        on from the map's last step)."""
        stretch, self._stretch = self._stretch, None
        if stretch is None:
            return
        if frames and stretch.follows(start):
            stretch.push_last(np.stack(cropped(frames, self.model.spec)), time.monotonic())
        yield from self._emit(stretch.finish())

    def _emit(self, made: list):
        """Windows read off the map: scored (the head alone), and reported as any."""
        if not made:
            return
        features = np.stack([row for _, row, _ in made])
        scores, _, ood = from_features(self._runner, "scores", features, self._driver.detector)
        finite = finite_rows(scores, len(made))
        if not all(finite):
            raise non_finite(self.summary.source)
        done = time.monotonic()
        for i, (span, _, captured) in enumerate(made):
            window_ood = None if ood is None else float(ood[i])
            yield from self._report(span, scores[i], window_ood, done - captured)

    def _report(self, span, scores, ood, latency: float):
        """One window's labels as an event, and into the segments."""
        self._latency.add(latency)
        self.summary.windows += 1
        captured = time.time() - latency
        predictions = self.model.top_k(scores, self.top_k)
        unknown = None if ood is None else self._driver.detector.is_unknown(ood)
        yield LiveWindow(*span, predictions, latency, captured, scores, ood, unknown)
        if self._answers:
            self.summary.unknown_windows += bool(unknown)
            scores = with_unknown(scores, bool(unknown))
        closed = self.segments.add(scores, span)
        if closed is not None and self.report_segments:
            yield closed
        if self.summary.windows % 16 == 0:
            self._update()

    def _label(self, ready: Ready):
        began = time.monotonic()
        scores, ood = self._scores(ready.frames, ready.span)
        done = time.monotonic()
        self._model_time.add(done - began)
        yield from self._report(ready.span, scores, ood, done - ready.captured)

    def _scores(self, frames: list[np.ndarray], span: tuple[float, float]):
        """One window's (scores, ood_score or None), through the engine's one loop (which
        refuses non-finite rows: a damaged model never labels)."""
        self._handed.hand(stack_clip(frames, self.model.spec), span)
        with contextlib.closing(self._driver.run([self.summary.source])) as results:
            result = next(results)
        ood = None if result.clip_ood is None else float(result.clip_ood[0])
        return result.clip_scores[0], ood

    def _gap(self, gap: Gap):
        yield from self._end_stretch()  # the map does not span a break
        closed = self.segments.close(gap.start)
        if closed is not None and self.report_segments:
            yield closed
        self.summary.gaps += 1
        yield gap

    def close(self) -> list:
        """End the run (if iteration did not) and return its last events: the open
        segment, closed. Call it after a Ctrl-C to finish cleanly."""
        if self._closed:
            return []
        self._closed = True
        self.capture.stop(wait=0.5)
        self.summary.ended = self.summary.ended or "stopped"
        self._update()
        closed = self.segments.close()
        return [closed] if closed is not None and self.report_segments else []

    def _update(self) -> None:
        s = self.summary
        if (self.capture.ended or self._closed) and not self.shared:
            s.skipped = max(s.skipped, self.windows.made - s.windows)  # made, never taken
        s.frames = self.windows.frames_seen
        s.stream_seconds = self.capture.live_end
        s.wall_seconds = 0.0 if self._started is None else time.monotonic() - self._started
        s.latency_median = self._latency.quantile(0.5)
        s.latency_p95 = self._latency.quantile(0.95)
        s.latency_max = self._latency.max if self._latency.count else None
        s.model_seconds = self._model_time.quantile(0.5)
        # windows.stride: a step's seconds where windows are shared, else the stride
        s.load = None if s.model_seconds is None else s.model_seconds / self.windows.stride
        s.reconnects = self.capture.reconnects


def no_frames(source) -> str:
    """Why a stream that ended gave no frame, and what to do instead."""
    text = f"{source.name}: the stream ended before a frame could be decoded"
    if source.kind in ("file", "pipe", "stdin", "feed"):
        text += (
            " (it is read as it is written, from its start: an MP4 whose index is at its end "
            "cannot be; record MPEG-TS or Matroska, or use vidclass timeline on a finished file)"
        )
    return text
