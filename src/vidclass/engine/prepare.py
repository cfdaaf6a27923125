"""The decoding stage: one video's clips, ready for the model but for scaling.

A clip leaves here as uint8 (T, H, W, 3), cropped and padded in time: a quarter of its
float size, so this is what decoding processes and cluster tasks hand over. Sliding
windows come from one pass over the file, each frame dropped once the last window using
it is made, so a long video's timeline runs in bounded memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import VidclassError
from ..limits import check_frame_memory, check_time, max_windows, time_limit
from ..models.spec import InputSpec
from ..video import FrameStream, probe
from ..video.clips import read_clip_frames
from ..video.decode import Resize, no_frames_error
from ..video.sampling import window_count, window_starts, window_times
from ..video.transforms import cropped, stack_clip
from .work import Clips, Windows

log = logging.getLogger("vidclass")


class Preparation:
    """One video's clips as (index, clip), made as they are asked for. Afterwards
    `warnings` holds what the decoder met and, for windows, `spans` the (start, end) of
    each clip made (windows past the end of what decodes are left out)."""

    def __init__(self, path: str | os.PathLike, spec: InputSpec, sampling: Clips | Windows):
        self.path = path
        self.spec = spec
        self.sampling = sampling
        self.warnings: list[str] = []
        self.spans: dict[int, tuple[float, float]] = {}

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if isinstance(self.sampling, Windows):
            if self.sampling.shared:
                return self._stretch(self.sampling)
            return self._windows(self.sampling)
        return self._clips(self.sampling)

    def _clips(self, sampling: Clips) -> Iterator[tuple[int, np.ndarray]]:
        groups, warnings = read_clip_frames(self.path, self.spec, sampling.count, sampling.every)
        self.warnings += warnings
        if len(groups[0]) < self.spec.pad_to:
            log.info(f"{self.path}: short video, frames repeated up to {self.spec.pad_to}")
        clips = [stack_clip(g, self.spec) for g in groups]
        if sampling.flip:  # mirrored left-right
            clips += [np.ascontiguousarray(c[:, :, ::-1]) for c in clips]
        for i, clip in enumerate(clips):
            check_time()
            yield i, clip

    def _stretch(self, sampling: Windows) -> Iterator[tuple[int, np.ndarray]]:
        """Shared mode: every frame at the model's rate once, in steps of STEP_FRAMES
        (uint8, cropped); the last step shorter, padded to a multiple of ALIGN by repeating
        its last frame. The windows' spans are known once the frames that decode are."""
        from .stretch import STEP_FRAMES, padded_last, video_frames

        spec = self.spec
        info, spans = window_spans(self.path, spec, sampling)
        times = np.arange(video_frames(info.duration, spec.fps)) / spec.fps
        width, height = Resize(spec.short_side, spec.size).target(info.width, info.height, False)
        check_frame_memory(STEP_FRAMES, width, height, str(self.path))
        stream = FrameStream(
            self.path, times, spec.short_side, size=spec.size, interpolation=spec.interpolation
        )
        step: list[np.ndarray] = []
        made = steps = 0
        for _, _, frame in stream:
            check_time()
            step.append(frame)
            if len(step) == STEP_FRAMES:
                yield steps, np.stack(cropped(step, spec))
                made, steps, step = made + len(step), steps + 1, []
        self.warnings += stream.warnings
        if not made and not step:
            raise no_frames_error(self.path, stream.damage)
        if step:
            yield steps, padded_last(np.stack(cropped(step, spec)), made)
            made += len(step)
        decoded = made / spec.fps  # windows starting past what decoded are left out
        kept = [(a, b) for a, b in spans if a < decoded or a == 0]
        self.spans = {w: (a, min(b, round(decoded, 6))) for w, (a, b) in enumerate(kept)}
        if len(kept) < len(spans):
            skipped = len(spans) - len(kept)
            self.warnings.append(f"{self.path}: {skipped} windows past the decodable end skipped")

    def _windows(self, sampling: Windows) -> Iterator[tuple[int, np.ndarray]]:
        plan = WindowPlan.make(self.path, self.spec, sampling)
        stream = FrameStream(
            self.path,
            plan.wanted,
            self.spec.short_side,
            size=self.spec.size,
            interpolation=self.spec.interpolation,
        )
        frames: dict[int, np.ndarray] = {}  # index into plan.wanted -> frame

        def window(w: int):
            check_time()
            have = [frames[i] for i in plan.needs[w].tolist() if i in frames]
            for i in plan.needs[w].tolist():
                if plan.last_use[i] == w:
                    frames.pop(i, None)
            if have:
                self.spans[w] = plan.spans[w]
                return w, stack_clip(have, self.spec)
            return None

        w = 0
        for index, _, frame in stream:
            frames[index] = frame
            while w < len(plan.needs) and plan.needs[w][-1] <= index:
                if (made := window(w)) is not None:
                    yield made
                w += 1
        while w < len(plan.needs):  # the file ended early: what decoded
            if (made := window(w)) is not None:
                yield made
            w += 1
        self.warnings += stream.warnings
        if not self.spans:
            raise no_frames_error(self.path, stream.damage)
        if len(self.spans) < len(plan.spans):
            skipped = len(plan.spans) - len(self.spans)
            self.warnings.append(f"{self.path}: {skipped} windows past the decodable end skipped")


@dataclass
class WindowPlan:
    """Which frames each window needs, as indices into the sorted timestamps to decode,
    and after which window each frame can be dropped. Arrays, so a day-long video at a
    short stride plans in bounded memory."""

    spans: list[tuple[float, float]]
    wanted: np.ndarray  # sorted unique timestamps
    needs: list[np.ndarray]  # per window, indices into `wanted`
    last_use: np.ndarray  # per timestamp, the last window that needs it

    @classmethod
    def make(cls, path, spec: InputSpec, sampling: Windows) -> WindowPlan:
        info, spans = window_spans(path, spec, sampling)
        times = [np.asarray(window_times(a, b, spec.num_frames, spec.fps)) for a, b in spans]
        # The frames of about one window are held at once.
        width, height = Resize(spec.short_side, spec.size).target(info.width, info.height, False)
        check_frame_memory(max(len(t) for t in times), width, height, str(path))
        wanted, inverse = np.unique(np.concatenate(times), return_inverse=True)
        bounds = np.cumsum([0] + [len(t) for t in times])
        needs = [inverse[bounds[w] : bounds[w + 1]] for w in range(len(times))]
        last_use = np.zeros(len(wanted), dtype=np.int64)
        np.maximum.at(last_use, inverse, np.repeat(np.arange(len(times)), np.diff(bounds)))
        return cls(spans, wanted, needs, last_use)


def window_spans(path, spec: InputSpec, sampling: Windows):
    """(the video's VideoInfo, each window's (start, end) in seconds), within the limit
    on windows."""
    info = probe(path)
    if not info.duration:
        raise VidclassError(f"{path}: its duration cannot be found, so it has no timeline")
    window, stride = sampling.window, sampling.stride
    count = window_count(info.duration, window, stride)
    if count > max_windows():
        raise VidclassError(
            f"{path}: {count} windows of {window:g} s every {stride:g} s are over the "
            f"limit of {max_windows()} (use a longer stride; VIDCLASS_MAX_WINDOWS raises it)"
        )
    starts = window_starts(info.duration, window, stride)
    return info, [(s, round(min(s + window, info.duration), 6)) for s in starts]


@dataclass
class Prepared:
    """One video's clips made in full, or its error: what a decoding process returns."""

    clips: list[tuple[int, np.ndarray]] = field(default_factory=list)
    spans: dict[int, tuple[float, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def prepare(
    path: str, spec: InputSpec, sampling: Clips | Windows, timeout: float | None = None
) -> Prepared:
    """All of a video's clips within `timeout` seconds (None: no limit). Errors come back
    as text: any exception, not only vidclass's own, must reach the caller as this
    video's error rather than break a pool of processes."""
    preparation = Preparation(path, spec, sampling)
    try:
        with time_limit(timeout, f"{path}: decoding"):
            clips = list(preparation)
        return Prepared(clips, preparation.spans, preparation.warnings)
    except VidclassError as exc:
        return Prepared(warnings=preparation.warnings, error=str(exc))
    except Exception as exc:
        error = f"{path}: unexpected {type(exc).__name__}: {exc}"
        return Prepared(warnings=preparation.warnings, error=error)
