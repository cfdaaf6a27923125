"""Live windows read from one map of the stream (engine.stretch, shared mode): the stream's
frames go through the model once, in steps, and each window is scored as soon as the
map's positions it reads are exact, whatever the stride. A window's features reach a
little past its end (the network sees that far), so a window is labelled once that
much more of the stream has arrived and been through the model."""

from __future__ import annotations

import numpy as np

from ..engine.stretch import STEP_FRAMES, MapStream, padded_last, window_features


class LiveStretch:
    """One unbroken run of steps (a break, a reconnect or a step the model could not
    keep up with starts another). `push` a step's frames (uint8 (STEP_FRAMES, H, W, 3))
    with the time its last frame arrived; it returns the windows now exact, as (span
    in live seconds, features, arrival of the step holding the window's last frame)."""

    def __init__(self, model, origin: float, window: float, stride: float):
        self.model = model
        self.tmap = model.temporal_map
        self.stream: MapStream = model.map_stream(STEP_FRAMES)
        self.origin, self.window, self.stride = origin, window, stride
        self.fps = model.spec.fps
        self.clip_frames = round(window * self.fps)
        self.positions = np.zeros((0, 0), np.float32)  # from global position `offset`
        self.offset = 0
        self.next = 0  # the next window to score
        self.frames = 0  # pushed, padding aside
        self.stepped = 0  # steps pushed
        self.arrivals: list[float] = []  # of each step's last frame, from step arrivals_from
        self.arrivals_from = 0

    def follows(self, start: float) -> bool:
        """Whether a step starting at `start` live seconds goes on from this run's last
        (a restart of the capture or a lost step breaks the run)."""
        return abs(start - (self.origin + self.frames / self.fps)) < 1e-4

    def push(self, frames: np.ndarray, arrival: float) -> list:
        self.arrivals.append(arrival)
        self.stepped += 1
        self.frames += len(frames)
        self.stream.push(self.model.batch([frames]))
        return self._windows(final=False)

    def push_last(self, frames: np.ndarray, arrival: float) -> None:
        """The run's last frames, fewer than a step: padded as a file's last step is."""
        padded = padded_last(frames, self.frames)
        self.arrivals.append(arrival)
        self.stepped += 1
        self.frames += len(frames)
        self.stream.push(self.model.batch([padded]), last=True)

    def finish(self) -> list:
        """The run ends with the frames pushed: the windows that fit in it."""
        if not self.stepped:
            return []
        self.stream.finish()
        return self._windows(final=True)

    def _windows(self, final: bool) -> list:
        if self.stream.rows:
            new = self.stream.take()
            self.positions = np.concatenate([self.positions, new]) if self.positions.size else new
        count = self.offset + len(self.positions)  # exact positions so far
        span = -(-self.clip_frames // self.tmap.stride)
        starts = []
        while True:
            start = self.next * self.stride
            at = start * self.fps
            if final:
                if at + self.clip_frames > self.frames + 1e-6:  # only whole windows
                    break
            elif int(at / self.tmap.stride) + 1 + span > count:  # its blend's neighbour too
                break
            starts.append(start)
            self.next += 1
        if not starts:
            return []
        local = np.asarray(starts) - self.offset * self.tmap.stride / self.fps
        features = window_features(self.positions, local, self.clip_frames, self.fps, self.tmap)
        out = []
        for start, row in zip(starts, features, strict=True):
            end = start + self.window
            # the step that holds the window's last frame: its arrival starts the latency
            step = -(-int(np.ceil(end * self.fps - 1e-6)) // STEP_FRAMES)
            arrival = self.arrivals[min(step, self.stepped) - 1 - self.arrivals_from]
            # live seconds, rounded as live.windows.Grid rounds a window's span
            span = (round(self.origin + start, 6), round(self.origin + end, 6))
            out.append((span, row, arrival))
        # Positions and arrivals before the next window's start are read no more.
        at = self.next * self.stride * self.fps
        drop = int(at / self.tmap.stride) - self.offset
        if drop > 0:
            self.positions = self.positions[drop:]
            self.offset += drop
        done = min(int(at // STEP_FRAMES), self.stepped - 1) - self.arrivals_from
        if done > 0:
            del self.arrivals[:done]
            self.arrivals_from += done
        return out
