"""Content hashes of files: what caches and the gallery recognise a video by."""

from __future__ import annotations

import hashlib
import os


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
