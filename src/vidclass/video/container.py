"""Opening files with PyAV, turning its failures into one-line user errors."""

from __future__ import annotations

import os
from pathlib import Path

import av

from ..errors import VidclassError


def open_video(path: str | os.PathLike):
    """Open `path` and return (container, its first video stream)."""
    p = Path(path)
    if not p.exists():
        raise VidclassError(f"{path}: no such file")
    if p.is_dir():
        raise VidclassError(f"{path}: is a folder, not a video file")
    if p.stat().st_size == 0:
        raise VidclassError(f"{path}: empty file (0 bytes)")
    try:
        # Some files carry non-UTF-8 metadata; it must not stop decoding.
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VidclassError(f"{path}: not a readable video ({error_reason(exc)})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise VidclassError(f"{path}: cannot open ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VidclassError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def error_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.rstrip(":. ") or type(exc).__name__
