"""The capture thread: reads a live source as fast as it comes, reopening a dropped
network stream with backoff, and hands frames to LiveWindows. It never waits for the
model, so a slow model costs skipped windows, not a growing queue or a stalled sender."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ..errors import VidclassError
from ..video.decode import Reader, Resize, to_rgb
from .sources import DEFAULT_TIMEOUT, Source, open_source
from .windows import LiveWindows

log = logging.getLogger("vidclass")

BACKOFF_FIRST = 0.5  # seconds before the first reopening; doubles each try
BACKOFF_MAX = 8.0
# Stream timestamps that jump back by more than this, or ahead by more than this or two
# windows, start a new run of windows (an MPEG-TS clock wraps every 26.5 hours).
JUMP_BACK = 1.0
JUMP_AHEAD = 5.0


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
        self.stopping = threading.Event()
        self.error: VidclassError | None = None
        self.ended = False
        self.gaps: list[Gap] = []  # not yet taken by the session (under windows.cond)
        self.reconnects = 0
        self.live_end = 0.0  # live time of the last frame
        self._last_arrival: float | None = None
        self._pending = None  # (container, stream) opened by the caller's thread
        self._thread: threading.Thread | None = None

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
        dropped = time.monotonic()
        delay = BACKOFF_FIRST
        while not self.stopping.is_set():
            if self.give_up is not None and time.monotonic() - dropped > self.give_up:
                raise VidclassError(
                    f"{self.source.name}: lost for over {self.give_up:g} s; gave up"
                )
            try:
                return open_source(self.source, self.timeout, self.stopping)
            except VidclassError as exc:
                log.info(f"reconnecting failed ({exc}); next try in {delay:g} s")
            self.stopping.wait(delay)
            delay = min(2 * delay, BACKOFF_MAX)
        return None

    def _read(self, container, stream, dropped_because: str | None) -> str:
        """Frames of one connection until it ends; why it ended. `dropped_because`:
        this connection follows a drop (its first frame reports the gap)."""
        reader = Reader(self.source.name, container, stream)
        windows = self.windows
        first = None  # stream time of this run's first frame
        last = None  # stream time of the last frame taken
        offset = 0.0  # live time of this run's first frame

        def convert(frame):
            return to_rgb(frame, self.resize)

        try:
            for frame, t in reader.frames(resilient=True):
                if self.stopping.is_set():
                    return "stopped"
                arrival = time.monotonic()
                if first is not None and t <= last and last - t < JUMP_BACK:
                    continue  # a late or repeated timestamp
                ahead = max(JUMP_AHEAD, 2 * windows.window)
                if first is None or t < last or t - last > ahead:
                    if self._last_arrival is None:
                        offset = 0.0
                    else:
                        # Live time runs on over the break by the wall clock.
                        wall = arrival - self._last_arrival
                        offset = round(self.live_end + max(wall, reader.frame_dt), 6)
                        if first is not None:
                            log.info(f"{self.source.name}: timestamps jumped; new windows")
                        elif dropped_because is not None:
                            gap = Gap(self.live_end, offset, wall, dropped_because)
                            with windows.cond:
                                self.gaps.append(gap)
                        windows.flush(1.5 * reader.frame_dt, convert)
                        windows.restart(offset)
                    first = t
                last = t
                self.live_end = offset + (t - first)
                self._last_arrival = arrival
                windows.add(frame, self.live_end, arrival, convert)
        except VidclassError:
            raise
        except Exception as exc:  # a socket error mid-read: a drop like any other
            return f"read failed ({type(exc).__name__}: {exc})"
        finally:
            for message in dict.fromkeys(reader.warnings):
                log.warning(message)
        windows.flush(1.5 * reader.frame_dt, convert)
        if reader.timed_out:
            return f"no data for {self.timeout:g} s"
        if reader.damage is not None:
            return f"stream broke off ({reader.damage})"
        return "stream ended"
