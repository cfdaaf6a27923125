"""The capture thread: reads a live source as fast as it comes, reopening a dropped
network stream with backoff, and hands frames to LiveWindows. It never waits for the
model, so a slow model costs skipped windows, not a growing queue or a stalled sender.

Frames are timed by the stream's own timestamps while they can be trusted. A jump in
them, or a change in the frames' size, starts a new run of windows (no window spans
the break); when either keeps happening, so that runs end before any window fills,
that is said once as a warning and the frames are timed by their arrival instead (and
scaled to the run's size), so such a stream is still labelled."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import VidclassError
from ..video.decode import Reader, Resize, to_rgb
from ..video.transforms import center_crop
from .sources import DEFAULT_TIMEOUT, Source, open_source
from .windows import LiveWindows

log = logging.getLogger("vidclass")

BACKOFF_FIRST = 0.5  # seconds before a second reopening; doubles each try
BACKOFF_MAX = 8.0
STEADY = 30.0  # seconds a connection must hold for the backoff to start afresh
# Bounds on a stream's stated frame interval (a header may claim anything).
MIN_FRAME_DT = 0.001
MAX_FRAME_DT = 1.0
STUCK_FRAMES = 30  # frames whose timestamps stand still before they are timed by rate
# Stream timestamps that jump back by more than this, or ahead by more than this or two
# windows, start a new run of windows (an MPEG-TS clock wraps every 26.5 hours).
JUMP_BACK = 1.0
JUMP_AHEAD = 5.0
# This many jumps (or size changes) within REPEAT_S wall-clock seconds: the stream's
# clock (or size) cannot be trusted, and frames are timed by arrival (scaled to one size).
REPEATS = 3
REPEAT_S = 30.0


@dataclass(frozen=True)
class Gap:
    """The source was lost between `start` and `end` (live seconds) and came back."""

    start: float
    end: float
    seconds: float  # wall-clock seconds without frames
    reason: str
    kind: str = "gap"

    def as_dict(self) -> dict:
        return {
            "type": "gap",
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
        }


class Capture:
    """Frames of `source` into `windows`, on a thread of its own."""

    def __init__(
        self,
        source: Source,
        windows: LiveWindows,
        reconnect: bool,
        timeout: float = DEFAULT_TIMEOUT,
        give_up: float | None = None,
    ):
        self.source = source
        self.windows = windows
        self.reconnect = reconnect
        self.timeout = timeout
        self.give_up = give_up
        spec = windows.spec
        self.resize = Resize(spec.short_side, spec.size, spec.interpolation)
        self.crop = spec.crop_hw  # frames are kept cropped as the model crops them
        self.stopping = threading.Event()
        self.error: VidclassError | None = None
        self.ended = False
        self.gaps: list[Gap] = []  # not yet taken by the session (under windows.cond)
        self.reconnects = 0
        self.live_end = 0.0  # live time of the last frame
        self._last_arrival: float | None = None
        self._dropped = 0.0  # when the last connection ended
        self._delay = 0.0  # seconds before the next reopening
        self._pending = None  # (container, stream) opened by the caller's thread
        self._thread: threading.Thread | None = None
        # Wall-clock times of recent jumps and size changes; once either repeats, the
        # stream's timestamps (sizes) are no longer followed, for good.
        self._jumps: deque[float] = deque()
        self._resizes: deque[float] = deque()
        self.by_arrival = False  # frames timed by arrival, not by their timestamps
        self.fixed_size: tuple[int, int] | None = None  # (height, width) frames are scaled to
        self._clock = 0.0  # by arrival: a frame's time is its arrival less this
        self._told_size = False

    def open(self) -> None:
        """Open the source in the caller's thread (once): failing here is a one-line
        error."""
        if self._pending is None and self._thread is None:
            self._pending = open_source(self.source, self.timeout, self.stopping)

    def start(self) -> None:
        self.open()
        self._thread = threading.Thread(target=self._run, name="vidclass-capture", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 2.0) -> None:
        """Ask the thread to end; a read blocked on a silent source ends at its timeout,
        and the thread (a daemon) is not waited on past `wait` seconds."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(wait)
        elif self._pending is not None:  # opened, never read
            self._pending[0].close()
            self._pending = None

    def _convert(self, frame) -> np.ndarray:
        """A frame as windows keep it: scaled, and cropped as the model crops it (an odd
        shape, such as 1024x16 scaled to a short side of 256, is not kept whole)."""
        resize = self.resize
        if self.fixed_size is not None:
            resize = Resize(size=self.fixed_size, interpolation=resize.interpolation)
        rgb = to_rgb(frame, resize)
        if self.crop is not None and (rgb.shape[0] > self.crop[0] or rgb.shape[1] > self.crop[1]):
            rgb = np.ascontiguousarray(center_crop(rgb, self.crop))
        return rgb

    def _kept_shape(self, frame) -> tuple[int, int]:
        """(height, width) of `frame` as `_convert` makes it, without converting it."""
        if self.fixed_size is not None:
            h, w = self.fixed_size
        else:
            turned = round((frame.rotation or 0) / 90) % 2 == 1
            w, h = self.resize.target(frame.width, frame.height, turned)
            if turned:
                w, h = h, w
        if self.crop is not None:
            h, w = min(h, self.crop[0]), min(w, self.crop[1])
        return h, w

    @staticmethod
    def _repeated(times: deque[float], now: float) -> bool:
        """Note one more event at `now`: whether REPEATS fell within REPEAT_S seconds."""
        times.append(now)
        while times[0] < now - REPEAT_S:
            times.popleft()
        return len(times) >= REPEATS

    def take_gaps(self) -> list[Gap]:
        with self.windows.cond:
            gaps, self.gaps = self.gaps, []
        return gaps

    def _run(self) -> None:
        try:
            container, stream = self._pending
            self._pending = None
            reason = None
            while True:
                try:
                    reason = self._read(container, stream, reason)
                finally:
                    container.close()
                if self.stopping.is_set() or not self.reconnect:
                    break
                log.warning(f"{self.source.name}: {reason}; reconnecting")
                opened = self._reopen()
                if opened is None:
                    break
                container, stream = opened
                self.reconnects += 1
        except VidclassError as exc:
            self.error = exc
        except Exception as exc:  # the session must hear of it, not a dead thread
            self.error = VidclassError(
                f"{self.source.name}: unexpected {type(exc).__name__}: {exc}"
            )
        finally:
            with self.windows.cond:
                self.ended = True
                self.windows.cond.notify_all()

    def _reopen(self):
        """The source opened again, or None when stopping. The backoff carries over from
        one drop to the next and starts afresh only after a connection that held for
        STEADY seconds, so a server that accepts and drops at once (or a finished file
        served over HTTP) is tried ever less often; `give_up` counts from the last frame,
        however many opens succeed without one."""
        while not self.stopping.is_set():
            down = time.monotonic() - (self._last_arrival or self._dropped)
            if self.give_up is not None and down > self.give_up:
                raise VidclassError(
                    f"{self.source.name}: no frames for over {self.give_up:g} s; gave up"
                )
            if self._delay:
                self.stopping.wait(self._delay)
            self._delay = min(max(2 * self._delay, BACKOFF_FIRST), BACKOFF_MAX)
            try:
                return open_source(self.source, self.timeout, self.stopping)
            except VidclassError as exc:
                log.info(f"reconnecting failed ({exc}); next try in {self._delay:g} s")
        return None

    def _read(self, container, stream, dropped_because: str | None) -> str:
        """Frames of one connection until it ends; why it ended. `dropped_because`:
        this connection follows a drop (its first frame reports the gap)."""
        reader = Reader(self.source.name, container, stream)
        windows = self.windows
        # The stream's own frame rate, kept sane: it sets how long a last frame is held.
        dt = min(max(reader.frame_dt, MIN_FRAME_DT), MAX_FRAME_DT)
        hold = min(1.5 * dt, windows.stride)
        ahead = max(JUMP_AHEAD, 2 * windows.window)
        first = None  # time of this run's first frame (the stream's, or by arrival)
        last = None  # time of the last frame taken
        shape = None  # (height, width) of this run's frames as kept
        size = None  # (width, height, rotation) of the last frame decoded
        offset = 0.0  # live time of this run's first frame
        stuck = 0  # frames in a row whose timestamps did not advance
        opened = time.monotonic()
        reason = None
        convert = self._convert

        try:
            for frame, t in reader.frames(resilient=True, stall=self.timeout):
                if self.stopping.is_set():
                    reason = "stopped"
                    break
                arrival = time.monotonic()
                if self.by_arrival:
                    t = arrival - self._clock
                elif first is not None and t <= last and last - t < JUMP_BACK:
                    stuck += 1
                    if stuck < STUCK_FRAMES:
                        continue  # a late or repeated timestamp
                    if stuck == STUCK_FRAMES:
                        log.warning(
                            f"{self.source.name}: timestamps stand still; timing "
                            "frames by the stream's rate"
                        )
                    t = last + dt
                else:
                    stuck = 0
                jumped = first is not None and (t < last or t - last > ahead)
                if jumped and not self.by_arrival and self._repeated(self._jumps, arrival):
                    # The run goes on from here, its frames timed by their arrival.
                    t = last + max(arrival - self._last_arrival, 0.0)
                    self._clock = arrival - t
                    self.by_arrival, jumped = True, False
                    log.warning(
                        f"{self.source.name}: its timestamps jumped {REPEATS} times within "
                        f"{REPEAT_S:g} s; timing frames by their arrival from now on"
                    )
                now_size = (frame.width, frame.height, frame.rotation)
                resized = size is not None and now_size != size
                size = now_size
                if resized and self._repeated(self._resizes, arrival) and not self._told_size:
                    self._told_size = True
                    log.warning(
                        f"{self.source.name}: its frame size changed {REPEATS} times within "
                        f"{REPEAT_S:g} s (now {frame.width}x{frame.height})"
                    )
                now_shape = self._kept_shape(frame)
                if first is not None and now_shape != shape and self._told_size:
                    # Runs would end before a window fills: one size from now on.
                    self.fixed_size = now_shape = shape
                    log.warning(f"{self.source.name}: frames scaled to {shape[1]}x{shape[0]}")
                if first is None or jumped or now_shape != shape:
                    if self._last_arrival is not None:
                        # Live time runs on over the break by the wall clock.
                        wall = arrival - self._last_arrival
                        offset = round(self.live_end + max(wall, dt), 6)
                        if first is not None:
                            why = "frame size changed"
                            if jumped:
                                why = "frames stopped" if self.by_arrival else "timestamps jumped"
                            log.info(f"{self.source.name}: {why}; new windows")
                        elif dropped_because is not None:
                            gap = Gap(self.live_end, offset, wall, dropped_because)
                            with windows.cond:
                                self.gaps.append(gap)
                        windows.flush(hold, convert)
                        windows.restart(offset)
                    first, shape = t, now_shape
                last = t
                self.live_end = offset + (t - first)
                self._last_arrival = arrival
                windows.add(frame, self.live_end, arrival, convert)
        except VidclassError:
            raise
        except Exception as exc:  # a socket error mid-read: a drop like any other
            reason = f"read failed ({type(exc).__name__}: {exc})"
        finally:
            for message in dict.fromkeys(reader.warnings):
                log.warning(message)
        if reason == "stopped":
            return reason
        windows.flush(hold, convert)  # the run's last windows, before any reconnect
        if time.monotonic() - opened >= STEADY:
            self._delay = 0.0  # it held: a drop now is news, not a pattern
        self._dropped = time.monotonic()
        if reason is not None:
            return reason
        if reader.timed_out:
            return f"no frames for {self.timeout:g} s"
        if reader.damage is not None:
            return f"stream broke off ({reader.damage})"
        return "stream ended"
