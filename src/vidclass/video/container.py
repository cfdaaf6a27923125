"""Opening files with PyAV, turning its failures into one-line user errors."""

from __future__ import annotations

import os

import av

from ..errors import VidclassError
from ..files import path_error, regular_file_size
from ..limits import check_frame_size


def open_video(path: str | os.PathLike):
    """Open `path` and return (container, its first video stream), which has a decoder
    and claims a frame size within the pixel limit."""
    if regular_file_size(path, "video file") == 0:
        raise VidclassError(f"{path}: empty file (0 bytes)")
    try:
        # Some files carry non-UTF-8 metadata; it must not stop decoding.
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except OSError as exc:  # PyAV's errors for errno (permission denied) are OSErrors too
        raise path_error(path, exc) from None
    except av.error.FFmpegError as exc:
        raise VidclassError(f"{path}: not a readable video ({error_reason(exc)})") from exc
    except ValueError as exc:
        raise VidclassError(f"{path}: cannot open ({exc})") from exc
    try:
        if not container.streams.video:
            raise VidclassError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context
        if codec is None:
            raise VidclassError(f"{path}: no decoder for its video codec")
        check_frame_size(codec.width, codec.height, str(path))
    except BaseException:
        container.close()
        raise
    return container, stream


def error_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.rstrip(":. ") or type(exc).__name__
