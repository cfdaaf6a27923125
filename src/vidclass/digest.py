"""Content hashes of files: what caches and the gallery recognise a video by."""

from __future__ import annotations

import hashlib
import os

from .files import open_regular


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes, read in 1 MiB pieces. Only a regular file is read
    (VidclassError otherwise): a FIFO or a device would block or never end."""
    h = hashlib.sha256()
    with os.fdopen(open_regular(path, os.O_RDONLY, "video file"), "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
