"""Windows scored from one map of the video (shared mode): where a model's clip features
are a weighted mean of the positions of a map over time (models.i3d_stream.TemporalMap),
the video's frames pass through the network once, in steps, and each window's features
are read off the map. A window that starts between two of the map's positions takes the
features of the two windows that start on them, weighted by how near it is to each."""

from __future__ import annotations

import numpy as np

from ..errors import VidclassError
from ..models.spec import UNKNOWN_LENGTH, TemporalMap

# Frames per step through the network: each costs one call, and memory grows with it.
STEP_FRAMES = 64
# A stretch's length is a multiple of this: the map's stride (I3D's; a model with a map
# declares a stride that divides it).
ALIGN = 8
# A stretch shorter than this is padded to it (repeating its last frame), so that the
# map has the positions the pool needs.
MIN_FRAMES = 16


def reads_map(model, per_window: bool = False) -> bool:
    """Whether `model`'s windows are read off one map of the video: where it has a map,
    unless the caller asks for each window alone."""
    return not per_window and model.temporal_map is not None


def stretch_length(frames: int, stride: int) -> int:
    """The frames a stretch of `frames` decoded frames is padded to."""
    return max(MIN_FRAMES, -(-frames // stride) * stride)


def video_frames(duration: float, fps: float) -> int:
    """The frames a stretch of `duration` seconds has at the model's `fps`."""
    return int(np.ceil(duration * fps - 1e-6))


def most_steps(frames: int) -> int:
    """At most how many steps a map of a stretch of `frames` takes: its own, and one
    past its end for the map's lag (under a step: Stretch checks)."""
    return -(-stretch_length(frames, ALIGN) // STEP_FRAMES) + 1


def padded_last(frames: np.ndarray, before: int) -> np.ndarray:
    """A stretch's last, short step (uint8 (t, H, W, 3)) after `before` frames, its last
    frame repeated up to the stretch's length (stretch_length)."""
    length = stretch_length(before + len(frames), ALIGN) - before
    return np.concatenate([frames, np.repeat(frames[-1:], length - len(frames), 0)])


def window_features(
    positions: np.ndarray,
    starts: np.ndarray,
    clip_frames: int,
    fps: float,
    tmap: TemporalMap,
) -> np.ndarray:
    """(windows, D) features of the windows starting at `starts` (seconds) from the
    map's `positions` (P, D): each a weighted mean of the clip's positions, as the
    model pools them."""
    count = len(positions)
    span = max(1, min(-(-clip_frames // tmap.stride), count))
    weights = tmap.weights(span)
    at = np.clip(np.asarray(starts, np.float64) * fps / tmap.stride, 0, count - span)
    first = np.floor(at).astype(np.int64)
    part = (at - first).astype(np.float32)[:, None]
    out = np.zeros((len(at), positions.shape[1]), np.float32)
    after = np.minimum(first + 1, count - span)
    for k, weight in enumerate(weights):
        out += weight * ((1 - part) * positions[first + k] + part * positions[after + k])
    return out


class MapStream:
    """A stretch of frames pushed through a stream's steps, the positions of its map
    kept as they become exact. `step(frames (1, 3, n, H, W) float32, first, total,
    caches) -> (positions (1, n / stride, D) array, caches)`, trailing the stretch by
    `lag` positions; caches None to start."""

    def __init__(self, step, step_frames: int, stride: int, lag: int):
        self.step = step
        self.step_frames, self.stride, self.lag = step_frames, stride, lag
        self.caches = None
        self.frames = 0  # pushed so far
        self.total: int | None = None  # the stretch's length, once known
        self.rows: list = []  # exact positions, in order (a reader may take them)
        self.made = 0  # positions put in rows so far
        self.steps = 0  # calls of `step` so far
        self._lagging = lag  # leading positions still to drop
        self._blank = None

    def push(self, frames, last: bool = False) -> None:
        """The next `frames` (1, 3, t, H, W) of the stretch, t a multiple of the stride
        and at most a step (fewer only with `last`: the stretch ends with them). Before
        a stretch's end is known every position is taken as inside it, so the end must
        be known before the step that holds it: a short step, or `finish` after full
        ones."""
        t = frames.shape[2]
        if t % self.stride or t > self.step_frames or (t < self.step_frames and not last):
            raise ValueError(f"a step of {t} frames (steps are {self.step_frames})")
        if last:
            self.total = self.frames + t
        if t < self.step_frames:  # the rest of the step lies past the end: zeros
            pad = [(0, 0)] * frames.ndim
            pad[2] = (0, self.step_frames - t)
            frames = np.pad(frames, pad)
        self._step(frames)
        if last:
            self.finish()

    def _step(self, frames) -> None:
        self._blank = frames
        total = self.total if self.total is not None else UNKNOWN_LENGTH
        positions, self.caches = self.step(frames, self.frames, total, self.caches)
        self.steps += 1
        self.frames += frames.shape[2]
        drop = min(self._lagging, positions.shape[1])
        self._lagging -= drop
        if drop < positions.shape[1]:
            self.rows.append(positions[0, drop:])
            self.made += positions.shape[1] - drop

    def finish(self) -> None:
        """The stretch ends with the frames pushed: steps past its end (their frames
        do not matter) until its last positions are out."""
        if self.total is None:
            self.total = self.frames
        while self.frames < self.total + self.lag * self.stride:
            self._step(self._blank)
        extra = self.made - self.total // self.stride  # those past the end are cut
        if extra > 0:
            # Made after the end was known, so none of them has been taken.
            kept = self.take()
            self.rows = [kept[: len(kept) - extra]]
            self.made -= extra

    def take(self) -> np.ndarray:
        """The exact positions not taken before, (n, D) float32, in order."""
        rows = [np.asarray(r, np.float32) for r in self.rows]
        self.rows = []
        return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


class Stretch:
    """One video's map, made as its steps come: `push` each step of frames (uint8
    (t, H, W, 3), t the step's length but for the last), then `features` of its
    windows."""

    def __init__(self, model):
        self.model = model
        self.tmap: TemporalMap = model.temporal_map
        if ALIGN % self.tmap.stride or STEP_FRAMES % self.tmap.stride:
            raise VidclassError(
                f"a map's stride of {self.tmap.stride} frames does not divide {ALIGN}"
            )
        self.stream: MapStream = model.map_stream(STEP_FRAMES)
        if self.stream.lag * self.stream.stride > STEP_FRAMES:  # most_steps counts on it
            raise VidclassError(f"a map lagging {self.stream.lag * self.stream.stride} frames")

    def push(self, frames: np.ndarray) -> None:
        x = self.model.batch([frames])  # (1, C, t, H, W)
        self.stream.push(x, last=len(frames) < STEP_FRAMES)

    def features(self, spans: list[tuple[float, float]], window: float) -> np.ndarray:
        """(windows, D): those of `window` seconds starting where `spans` do."""
        self.stream.finish()
        positions = self.stream.take()
        fps = self.model.spec.fps
        starts = np.array([a for a, _ in spans])
        return window_features(positions, starts, round(window * fps), fps, self.tmap)
