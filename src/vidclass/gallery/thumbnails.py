"""Small pictures of a gallery's videos as JPEG: one per video, made when it is indexed
and kept in the gallery, and a frame at a moment, made when asked for. PyAV's MJPEG
encoder makes them, so no image library is needed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import VidclassError
from ..limits import time_limit

LONG_SIDE = 240  # pixels: a grid cell's width on a wide screen; about 7 KB a picture
FRAME_TIMEOUT = 20.0  # seconds to decode one frame, at most (a seek and a GOP)


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    width: int
    height: int


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """An RGB frame (H, W, 3) uint8 as a baseline JPEG."""
    import av

    height, width = rgb.shape[:2]
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    packets = [*codec.encode(frame.reformat(format="yuvj420p")), *codec.encode(None)]
    return b"".join(bytes(p) for p in packets)


def frame_at(
    path: str | os.PathLike,
    t: float,
    width: int | None,
    height: int | None,
    timeout: float | None = FRAME_TIMEOUT,
) -> Thumbnail:
    """The frame on screen at `t` seconds (the last one where `t` is past the end),
    its long side LONG_SIDE (or less for a smaller video). `width`, `height`: the
    video's upright size where known (probed otherwise)."""
    from ..video import probe, read_frames

    with time_limit(timeout, f"{path}: a thumbnail"):
        info = probe(path)
        width, height = (width, height) if width and height else (info.width, info.height)
        if not (width and height):
            raise VidclassError(f"{path}: its picture size is not known")
        if info.duration and info.fps:  # past the end: the last frame, not none
            t = min(t, max(0.0, info.duration - 1.0 / info.fps))
        short = min(width, height) * min(1.0, LONG_SIDE / max(width, height))
        try:
            decoded = read_frames(path, [max(0.0, t)], short_side=max(2, round(short)))
        except VidclassError:
            if t <= 0:
                raise  # a duration that lied: the first frame, or the error
            decoded = read_frames(path, [0.0], short_side=max(2, round(short)))
    rgb = decoded.frames[-1]
    return Thumbnail(encode_jpeg(rgb), rgb.shape[1], rgb.shape[0])


def video_thumbnail(
    path: str | os.PathLike,
    duration: float | None,
    width: int | None = None,
    height: int | None = None,
    timeout: float | None = FRAME_TIMEOUT,
) -> Thumbnail:
    """A video's own picture: its middle frame (the first seconds are often a title or
    black)."""
    return frame_at(path, (duration or 0.0) / 2, width, height, timeout)
