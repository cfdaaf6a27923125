"""The frames of a model's clips for one video, decoded in one pass over the file."""

from __future__ import annotations

import math
import os

import numpy as np

from ..limits import check_frame_memory
from ..models.spec import InputSpec
from .decode import FrameStream, Resize, no_frames_error
from .probe import VideoInfo, probe
from .sampling import uniform_clips


def read_clip_frames(
    path: str | os.PathLike, spec: InputSpec, clips: int = 1, every: float | None = None
) -> tuple[list[list[np.ndarray]], list[str]]:
    """Frames of `clips` clips spread over the video, as RGB uint8 (H, W, 3), upright and
    resized as `spec` asks (not yet cropped), and the decoder's warnings. With `every`:
    one clip per `every` seconds of the video, at most `clips`.

    A file that ends early (truncated, damaged) is sampled again within the part that
    decodes. Needs no model, so decoding processes can run it.
    """
    info = probe(path)
    if every is not None:
        clips = min(clips, max(1, math.ceil((info.duration or 0) / every)))
    groups, served, warnings, decoded_to, damage = _decode(path, spec, info, info.duration, clips)
    if any(t not in served for g in groups for t in g):
        last = max(served, default=decoded_to)  # frames decoded, though none was wanted
        if last is None:
            raise no_frames_error(path, damage)
        end = last + 1.0 / (info.fps or spec.fps or 25.0)
        warnings.append(
            f"{path}: only {end:.2f} s of {info.duration or 0:.2f} s decode; classifying that part"
        )
        groups, served, more, _, damage = _decode(path, spec, info, end, clips)
        warnings += more
    frames = [[served[t] for t in g if t in served] for g in groups]
    frames = [f for f in frames if f]
    if not frames:
        raise no_frames_error(path, damage)
    return frames, list(dict.fromkeys(warnings))  # each once, though both passes saw it


def _decode(path, spec: InputSpec, info: VideoInfo, duration: float | None, clips: int):
    """(clips' timestamps, {timestamp: frame} for those that decoded, warnings, the time
    of the last frame decoded, the first damage met)."""
    # At most this many frames are held: checked before any list of them is made.
    width, height = Resize(spec.short_side, spec.size).target(info.width, info.height, False)
    check_frame_memory(clips * spec.num_frames, width, height, str(path))
    groups = uniform_clips(duration, spec.num_frames, spec.fps, clips)
    wanted = sorted({t for g in groups for t in g})
    stream = FrameStream(
        path, wanted, spec.short_side, size=spec.size, interpolation=spec.interpolation
    )
    served = {wanted[i]: frame for i, _, frame in stream}  # frames may run out early
    return groups, served, stream.warnings, stream.end_time, stream.damage
