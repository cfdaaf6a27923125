"""Decode the frames shown at given timestamps, in one forward pass.

Frames are decoded in order and only the chosen ones are converted to RGB, resized by
FFmpeg's scaler in the same step. The decoder seeks only across long gaps, where
skipping to a keyframe is cheaper than decoding everything in between.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from ..errors import VidclassError
from ..limits import check_frame_memory, check_frame_size, check_time
from .container import error_reason, open_video

# Seek when the next wanted frame is this many seconds ahead (keyframes are usually
# 2-10 s apart; below this, decoding through is as cheap as a seek's re-decode).
SEEK_GAP = 10.0
# Once keyframes have been seen, seek over any gap of two keyframe intervals (a seek
# re-decodes at most one), but never over less than this.
MIN_SEEK_GAP = 1.0
# Timestamps closer than this are one moment (a frame at a target time is on screen).
SAME_TIME = 1e-4
# Give up on a stream after this many undecodable packets in a row.
MAX_BAD_PACKETS = 100
# Resize filters, named as PyAV's reformat knows them (lower case); the last three are
# what processor configs call nearest, lanczos and box.
INTERPOLATIONS = ("bilinear", "bicubic", "point", "lanczos", "area")


@dataclass
class DecodedFrames:
    frames: list[np.ndarray]  # RGB uint8 (H, W, 3), upright, one per served timestamp
    times: list[float]  # the presentation time of each frame, seconds from the first frame
    requested: int  # how many timestamps were asked for
    end_time: float | None  # time of the last frame decoded (None if none)
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.frames) == self.requested


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) with the short side set to `short_side`, aspect kept; a size
    that is not known yet (0, as a damaged header may say) stays as it is."""
    if not short_side or width <= 0 or height <= 0:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


@dataclass(frozen=True)
class Resize:
    """How the decoder resizes frames: short side to a length, or to an exact size."""

    short_side: int | None = None
    size: tuple[int, int] | None = None  # (height, width) of the upright frame
    interpolation: str = "bilinear"

    def target(self, width: int, height: int, turned: bool) -> tuple[int, int]:
        """(width, height) to scale a stored frame to; `turned`: shown rotated by 90."""
        if self.size is not None:
            h, w = self.size
            return (h, w) if turned else (w, h)
        return scaled_size(width, height, self.short_side)


def to_rgb(frame: av.VideoFrame, resize: Resize) -> np.ndarray:
    # Display matrix rotation (degrees counter-clockwise), as FFmpeg's autorotate.
    turns = round((frame.rotation or 0) / 90) % 4
    width, height = resize.target(frame.width, frame.height, turns % 2 == 1)
    if (width, height) != (frame.width, frame.height):
        frame = frame.reformat(width, height, "rgb24", interpolation=resize.interpolation.upper())
    rgb = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class Reader:
    """One pass over a video stream yielding (frame, time) in presentation order."""

    def __init__(self, path, container, stream):
        self.path = path
        self.container = container
        self.stream = stream
        tb = stream.time_base
        self.tb = tb
        self.t0 = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        rate = stream.average_rate or stream.guessed_rate
        self.frame_dt = 1.0 / float(rate) if rate else 0.04
        self.warnings: list[str] = []
        self.damage: str | None = None  # the first decode error, if any
        self.timed_out = False  # a read outlasted the container's timeout (live sources)
        self.last_time: float | None = None
        self.keyframe_interval: float | None = None  # longest seen between two in a row
        self._last_keyframe: float | None = None

    def seek_gap(self) -> float:
        """How far ahead the next wanted frame must be to make seeking cheaper."""
        if self.keyframe_interval is None:
            return SEEK_GAP
        return min(SEEK_GAP, max(MIN_SEEK_GAP, 2 * self.keyframe_interval))

    def _note_keyframe(self, packet) -> None:
        if not packet.is_keyframe or packet.pts is None or not self.tb:
            return
        t = float(packet.pts * self.tb) - self.t0
        if self._last_keyframe is not None and t > self._last_keyframe:
            gap = t - self._last_keyframe
            self.keyframe_interval = max(self.keyframe_interval or 0.0, gap)
        self._last_keyframe = t

    def seek(self, t: float) -> None:
        """Jump to the keyframe at or before `t` (seconds from the first frame)."""
        self._last_keyframe = None  # the next keyframe is not the one after the last
        if not self.tb:  # no time base to seek by
            raise _SeekMissed
        try:
            self.container.seek(int((t + self.t0) / self.tb), stream=self.stream, backward=True)
        except (av.error.FFmpegError, OverflowError, ValueError) as exc:
            raise _SeekMissed from exc

    def frames(self, resilient: bool = False, stall: float | None = None):
        """(frame, time) as they decode; checks the time limit at every packet and the
        size of every frame (a stream may change size after its header).

        `resilient` (live streams, joined midway or over a lossy link): reading goes on
        through undecodable packets (the next keyframe mends the picture) and after the
        container reports bad data, until MAX_BAD_PACKETS of those in a row; a file
        ends at its container's first error or that many bad packets in a row.
        `stall`: end (as timed out) when no frame has decoded for that many seconds,
        however many bytes still come. A stream that times out still gives the frames
        its decoder holds."""
        bad_run = broken = 0
        self._framed_at = time.monotonic()
        self._checked_size = None
        while True:
            try:
                for packet in self.container.demux(self.stream):
                    check_time()
                    self._note_keyframe(packet)
                    try:
                        decoded = packet.decode()
                        bad_run = broken = 0
                    except av.error.FFmpegError as exc:
                        bad_run += 1
                        self._note_damage(exc)
                        if bad_run >= MAX_BAD_PACKETS and not resilient:
                            return
                        decoded = []
                    yield from self._timed(decoded)
                    if stall is not None and time.monotonic() - self._framed_at > stall:
                        self.timed_out = True  # bytes come, but no picture
                        yield from self._timed(self._drain())
                        return
                return
            except av.error.ExitError:  # the open's timeout interrupted a read: no data
                self.timed_out = True
                yield from self._timed(self._drain())
                return
            except av.error.FFmpegError as exc:  # the container itself breaks off
                self._note_damage(exc)
                broken += 1
                if not resilient or broken >= MAX_BAD_PACKETS:
                    return

    def _timed(self, decoded):
        for frame in decoded:
            if (frame.width, frame.height) != self._checked_size:
                check_frame_size(frame.width, frame.height, str(self.path))
                self._checked_size = (frame.width, frame.height)
            known = frame.pts is not None and frame.time is not None
            t = float(frame.time) - self.t0 if known else None
            if t is None or not math.isfinite(t):  # no timestamp, or one past reason
                last = self.last_time
                t = (last + self.frame_dt) if last is not None else 0.0
            self.last_time = t
            self._framed_at = time.monotonic()
            yield frame, t

    def _drain(self) -> list:
        """The frames the decoder still holds (its delay), as at the end of a file."""
        try:
            return self.stream.codec_context.decode(None)
        except av.error.FFmpegError:
            return []

    def _note_damage(self, exc: Exception) -> None:
        if self.damage is None:
            self.damage = error_reason(exc)
            self.warnings.append(
                f"{self.path}: damaged data after {self.last_time or 0.0:.2f} s "
                f"({self.damage}); using the frames that decode"
            )


class _SeekMissed(Exception):
    """A seek landed after the wanted time (a broken index): decode from the start."""


def read_frames(
    path: str | os.PathLike,
    timestamps: list[float] | None,
    short_side: int | None = None,
    *,
    size: tuple[int, int] | None = None,
    interpolation: str = "bilinear",
) -> DecodedFrames:
    """The frame on screen at each timestamp (sorted ascending), or every frame if None.

    Frames are resized so their short side is `short_side`, or to `size` (height,
    width), with `interpolation` (one of INTERPOLATIONS); neither keeps them as stored.

    Timestamps are seconds from the first frame. A frame is shown from its own
    timestamp until the next one's, so the frame for time t is the last one at or
    before t. Timestamps past the end of what decodes are left unserved.
    """
    if timestamps is None:
        resize = _resize(short_side, size, interpolation)
        container, stream = open_video(path)
        with container:
            reader = Reader(path, container, stream)
            result = _read_all(reader, resize)
        if not result.frames:
            raise no_frames_error(path, reader.damage)
        return result
    frames = FrameStream(path, timestamps, short_side, size=size, interpolation=interpolation)
    served = list(frames)
    if not served:
        raise no_frames_error(path, frames.damage)
    return DecodedFrames(
        [f for _, _, f in served],
        [t for _, t, _ in served],
        len(frames.targets),
        frames.end_time,
        frames.warnings,
    )


def no_frames_error(path: str | os.PathLike, damage: str | None = None) -> VidclassError:
    why = f" ({damage})" if damage else ""
    return VidclassError(f"{path}: no video frame could be decoded{why}")


def _resize(short_side, size, interpolation) -> Resize:
    if interpolation not in INTERPOLATIONS:
        raise VidclassError(f"unknown interpolation {interpolation!r}; use one of {INTERPOLATIONS}")
    return Resize(short_side, size, interpolation)


class FrameStream:
    """The frames on screen at sorted timestamps, yielded as one pass decodes them.

    Iterating gives (index into `targets`, frame time, RGB array), in order, so a caller
    can use and drop frames as they come (long videos in bounded memory). After the
    iteration, `warnings`, `damage` and `end_time` describe what the pass met.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        timestamps: list[float] | np.ndarray,
        short_side: int | None = None,
        *,
        size: tuple[int, int] | None = None,
        interpolation: str = "bilinear",
    ):
        self.path = path
        self.targets = np.sort(np.asarray(timestamps, dtype=np.float64)).tolist()
        self.resize = _resize(short_side, size, interpolation)
        self.warnings: list[str] = []
        self.damage: str | None = None
        self.end_time: float | None = None

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        start = 0
        for seeking in (True, False):
            container, stream = open_video(self.path)
            with container:
                reader = Reader(self.path, container, stream)
                try:
                    for item in _serve(reader, self.targets, start, self.resize, seeking):
                        start = item[0] + 1
                        yield item
                    missed = False
                except _SeekMissed:  # a broken index: go on from the start, no seeking
                    missed = True
                finally:
                    self.warnings = list(dict.fromkeys(self.warnings + reader.warnings))
                    self.damage = self.damage or reader.damage
                    self.end_time = reader.last_time
            if not missed:
                return


def _read_all(reader: Reader, resize: Resize) -> DecodedFrames:
    frames, times = [], []
    for frame, t in reader.frames():
        rgb = to_rgb(frame, resize)
        check_frame_memory(len(frames) + 1, rgb.shape[1], rgb.shape[0], str(reader.path))
        frames.append(rgb)
        times.append(t)
    end = times[-1] if times else None
    return DecodedFrames(frames, times, len(frames), end, reader.warnings)


def _serve(
    reader: Reader, targets: list[float], i: int, resize: Resize, seeking: bool
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time, RGB) for targets[i:], in order; a frame is converted only once.

    A seek must land past every frame this pass has decoded: one that lands back (a
    stream without an index, broken timestamps) turns seeking off for the rest of the
    pass, which then decodes straight through. So no target is sought twice, and the
    number of seeks is bounded by the file's keyframes.
    """
    eps = SAME_TIME
    prev = None  # (frame, time) of the last frame decoded
    converted = (None, None)  # (frame, array) of the last frame turned into RGB
    longest_dt = 0.0
    position = 0.0
    furthest = float("-inf")  # the latest frame time decoded in this pass

    def take(frame, t):
        nonlocal converted
        if converted[0] is not frame:
            converted = (frame, to_rgb(frame, resize))
        return converted[1]

    while i < len(targets):
        # Before the pass has decoded anything a seek can only land nearer the target
        # than the start is (at the keyframe before it): worth it over any real gap.
        gap = reader.seek_gap() if furthest > float("-inf") else MIN_SEEK_GAP
        jumped = seeking and targets[i] - position > gap
        if jumped:
            reader.seek(targets[i])
            prev = None
        gap_ahead = False
        for frame, t in reader.frames():
            if jumped:
                jumped = False
                if t > targets[i] + eps:
                    raise _SeekMissed
                if t <= furthest + eps:  # landed back, not ahead: no more seeking
                    seeking = False
            furthest = max(furthest, t)
            if prev is not None and t > prev[1]:
                longest_dt = max(longest_dt, t - prev[1])
            while i < len(targets) and targets[i] < t - eps:
                # This frame comes after target i: the one before it was on screen.
                # (A target before the first frame gets the first frame.)
                shown = prev if prev is not None else (frame, t)
                yield i, shown[1], take(*shown)
                i += 1
            prev = (frame, t)
            position = t
            if i == len(targets):
                break
            if seeking and targets[i] - t > reader.seek_gap():
                gap_ahead = True
                break
        if not gap_ahead:
            break  # end of stream (or all served)
    if prev is not None and i < len(targets):
        # Past the last frame: it stays on screen for about one frame interval.
        hold = max(longest_dt, reader.frame_dt) * 1.5
        while i < len(targets) and targets[i] <= prev[1] + hold:
            yield i, prev[1], take(*prev)
            i += 1
