"""Windows over a stream that has no end: which frames each needs, and the newest one
whose frames have all arrived.

Window k of a run of frames starts `k * stride` seconds after the run's first frame,
as `timeline` places them in a file, so a live run of a file gives the file's windows.
Frames are kept only at the timestamps a window samples, and only while a window not
yet made may need them: memory is bounded by about one window, however long the run.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..limits import check_frame_memory
from ..models.spec import InputSpec
from ..video.decode import SAME_TIME
from ..video.sampling import window_times


@dataclass(frozen=True)
class Grid:
    """The windows of one run of frames, from `origin` seconds of live time."""

    origin: float
    window: float
    stride: float
    spec: InputSpec

    def span(self, k: int) -> tuple[float, float]:
        start = round(self.origin + k * self.stride, 6)
        return start, round(start + self.window, 6)

    def times(self, k: int) -> list[float]:
        return window_times(*self.span(k), self.spec.num_frames, self.spec.fps)

    def targets(self) -> Iterator[float]:
        """Every window's timestamps, sorted and each once, without end. They are
        rounded to the microsecond, so equal means the same moment."""
        pending: list[float] = []
        queued: set[float] = set()  # what `pending` holds: overlapping windows share most
        k = 0
        while True:
            # A window starts no earlier than its first timestamp, so once the smallest
            # pending one is before the next window's start, nothing can come before it.
            while not pending or self.span(k)[0] <= pending[0]:
                for t in self.times(k):
                    if t not in queued:
                        queued.add(t)
                        heapq.heappush(pending, t)
                k += 1
            t = heapq.heappop(pending)
            queued.discard(t)
            yield t


@dataclass(frozen=True)
class Ready:
    """A window whose frames have all arrived."""

    seq: int  # windows made ready before it in the whole run, over reconnects
    span: tuple[float, float]  # live seconds
    captured: float  # time.monotonic() when its last frame arrived
    frames: list[np.ndarray]  # RGB uint8, one per timestamp


class LiveWindows:
    """Frames in, ready windows out. `add` runs on the capture thread, `newest` on the
    model's; whatever the model cannot keep up with is overwritten, never queued."""

    def __init__(
        self, spec: InputSpec, window: float, stride: float, name: str = "stream", keep: int = 1
    ):
        """`keep`: ready windows held for the model, oldest first (1: only the newest; the
        steps of a map stream keep a few, so a burst of the source loses none)."""
        self.spec, self.window, self.stride, self.name = spec, window, stride, name
        self.keep = keep
        self.cond = threading.Condition()
        self.made = 0  # windows made ready so far
        self.frames_seen = 0
        self.trimmed = 0  # frames dropped by the cap rather than by time (none, normally)
        # The timestamps of one ready window and the strides that follow it, while the
        # next fills; a bound that holds whatever the stream's timestamps do.
        # Counted past the first window, where the windows before overlap it too.
        self.cap = 8
        for t in Grid(0.0, window, stride, spec).targets():
            if t >= 2 * window + 2 * stride:
                break
            self.cap += t >= window
        self.cap *= keep
        # (seq, k, span, arrival) of the windows ready and not yet taken, oldest first
        self._ready: deque[tuple[int, int, tuple[float, float], float]] = deque(maxlen=keep)
        self._held: dict[float, np.ndarray] = {}
        self._checked_size: tuple[int, int] | None = None
        self.restart(0.0)

    def restart(self, origin: float) -> None:
        """A new run of frames from `origin` live seconds (after a reconnect or a jump in
        the stream's timestamps): windows do not span the break."""
        with self.cond:
            self._grid = Grid(origin, self.window, self.stride, self.spec)
            self._held.clear()
            self._ready.clear()  # those not taken yet are lost with their frames (skipped)
            self._ready_k = -1  # last window of this run made ready
        self._targets = self._grid.targets()
        self._next = next(self._targets)
        self._last_target = self._grid.times(0)[-1]
        self._prev: tuple[object, float, float] | None = None  # frame, live time, arrival
        self._converted: tuple[object, np.ndarray | None] = (None, None)

    def add(self, frame, t: float, arrival: float, convert: Callable) -> None:
        """A decoded frame at live time `t`, arrived at `arrival` (monotonic);
        `convert(frame)` makes its RGB array, called only for frames a window needs."""
        self.frames_seen += 1
        served = []
        while self._next < t - SAME_TIME:
            # The frame before this one was on screen at the target (a target before
            # the first frame gets the first frame).
            shown = self._prev if self._prev is not None else (frame, t, arrival)
            served.append((self._next, self._rgb(shown[0], convert), shown[2]))
            self._next = next(self._targets)
        self._prev = (frame, t, arrival)
        if served:
            self._store(served)

    def flush(self, hold: float, convert: Callable) -> None:
        """The run ended: its last frame stays on screen `hold` seconds, serving the
        targets that fall in that time."""
        if self._prev is None:
            return
        frame, t, arrival = self._prev
        served = []
        while self._next <= t + hold:
            served.append((self._next, self._rgb(frame, convert), arrival))
            self._next = next(self._targets)
        if served:
            self._store(served)

    def _rgb(self, frame, convert) -> np.ndarray:
        if self._converted[0] is not frame:
            rgb = convert(frame)
            size = (rgb.shape[1], rgb.shape[0])
            if size != self._checked_size:
                check_frame_memory(self.cap, *size, self.name)
                self._checked_size = size
            self._converted = (frame, rgb)
        return self._converted[1]

    def _store(self, served: list[tuple[float, np.ndarray, float]]) -> None:
        with self.cond:
            for target, rgb, _ in served:
                self._held[target] = rgb
            newest = served[-1][0]
            changed = False
            i = 0
            while self._last_target <= newest:
                self._ready_k += 1
                self.made += 1
                # Captured: when the frame on screen at its last timestamp arrived.
                while served[i][0] < self._last_target:
                    i += 1
                span = self._grid.span(self._ready_k)
                self._ready.append((self.made, self._ready_k, span, served[i][2]))
                self._last_target = self._grid.times(self._ready_k + 1)[-1]
                changed = True
            if changed:
                start = self._grid.span(self._ready[0][1])[0]  # the oldest kept
                for old in [x for x in self._held if x < start]:
                    del self._held[old]
                self.cond.notify_all()
            while len(self._held) > self.cap:  # a bound that no timestamps can break
                del self._held[min(self._held)]
                self.trimmed += 1

    def newest(self, after: int) -> Ready | None:
        """The newest ready window if it came after window `after` (a seq), else None."""
        with self.cond:
            waiting = [r for r in self._ready if r[0] > after]
            if not waiting:
                return None
            # the newest (keep 1), or the oldest not taken: kept windows are taken in order
            seq, k, span, captured = waiting[0]
            frames = [self._held.get(t) for t in self._grid.times(k)]
            if any(f is None for f in frames):  # a restart cleared it: it is gone
                return None
            return Ready(seq, span, captured, frames)

    def partial(self) -> tuple[float, list[np.ndarray]]:
        """(its start in live seconds, the frames that have arrived, in order, up to the
        first missing one) of the window being filled: at the run's end, what is left."""
        with self.cond:
            frames = []
            for t in self._grid.times(self._ready_k + 1):
                if t not in self._held:
                    break
                frames.append(self._held[t])
            return self._grid.span(self._ready_k + 1)[0], frames

    def wait(self, after: int, timeout: float) -> Ready | None:
        """`newest(after)`, waiting up to `timeout` seconds for one."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                ready = self.newest(after)
                left = end - time.monotonic()
                if ready is not None or left <= 0:
                    return ready
                self.cond.wait(left)
