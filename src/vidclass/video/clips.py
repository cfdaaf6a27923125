"""The frames of a model's clips for one video, decoded in one pass over the file."""

from __future__ import annotations

import os

import numpy as np

from ..models.spec import InputSpec
from .decode import no_frames_error, read_frames
from .probe import probe
from .sampling import uniform_clips


def read_clip_frames(
    path: str | os.PathLike, spec: InputSpec, clips: int = 1
) -> tuple[list[list[np.ndarray]], list[str]]:
    """Frames of `clips` clips spread over the video, as RGB uint8 (H, W, 3), upright and
    resized as `spec` asks (not yet cropped), and the decoder's warnings.

    A file that ends early (truncated, damaged) is sampled again within the part that
    decodes. Needs no model, so decoding processes can run it.
    """
    info = probe(path)
    groups, served, warnings = _decode(path, spec, info.duration, clips)
    if any(t not in served for g in groups for t in g):
        end = max(served, default=0.0) + 1.0 / (info.fps or spec.fps or 25.0)
        warnings.append(
            f"{path}: only {end:.2f} s of {info.duration or 0:.2f} s decode; classifying that part"
        )
        groups, served, more = _decode(path, spec, end, clips)
        warnings += more
    frames = [[served[t] for t in g if t in served] for g in groups]
    frames = [f for f in frames if f]
    if not frames:
        raise no_frames_error(path)
    return frames, list(dict.fromkeys(warnings))  # each once, though both passes saw it


def _decode(path, spec: InputSpec, duration: float | None, clips: int):
    groups = uniform_clips(duration, spec.num_frames, spec.fps, clips)
    wanted = sorted({t for g in groups for t in g})
    decoded = read_frames(
        path, wanted, spec.short_side, size=spec.size, interpolation=spec.interpolation
    )
    served = dict(zip(wanted, decoded.frames, strict=False))  # frames may run out early
    return groups, served, decoded.warnings
