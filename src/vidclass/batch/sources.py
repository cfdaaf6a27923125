"""Turn what a user names (videos, folders, globs, list files) into video paths."""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

from ..errors import VidclassError

log = logging.getLogger("vidclass")

# What a folder or a glob picks up; a file named directly is taken whatever its name.
VIDEO_EXTENSIONS = frozenset(
    [
        ".3gp",
        ".avi",
        ".flv",
        ".gif",
        ".m2ts",
        ".m4v",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".ogv",
        ".ts",
        ".webm",
        ".wmv",
    ]
)
# A file with one of these names holds a list of videos, one per line.
LIST_EXTENSIONS = frozenset({".txt", ".list", ".lst"})
_GLOB_CHARS = frozenset("*?[")


def is_video_name(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _walk(folder: Path, recursive: bool) -> list[str]:
    if not recursive:
        found = [p for p in folder.iterdir() if p.is_file() and is_video_name(p)]
        return [str(p) for p in sorted(found)]
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if is_video_name(f)]
    return found


def _read_list(path: Path) -> list[str]:
    """Lines of a list file; blank lines and `#` comments skipped; relative paths are
    relative to the list file's folder, so a list travels with its videos."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VidclassError(f"{path}: cannot read the list of videos ({exc})") from None
    base = path.parent
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line if os.path.isabs(line) else os.path.normpath(base / line))
    return out


def expand_inputs(items: list[str], recursive: bool = False) -> list[str]:
    """Video paths, in the order named, each once.

    A folder gives its video files (with `recursive`, those of its subfolders too); a
    glob gives the video files it matches (`**` crosses folders with `recursive`); a
    .txt/.list/.lst file gives the paths it lists; anything else is taken as a video,
    so a missing file is reported as that video's error rather than dropped.
    """
    found: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            videos = _walk(path, recursive)
        elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            videos = _read_list(path)
        elif not path.exists() and _GLOB_CHARS & set(item):
            matches = sorted(glob.glob(item, recursive=recursive))
            videos = [m for m in matches if os.path.isfile(m) and is_video_name(m)]
        else:
            videos = [item]
        if not videos:
            log.warning(f"{item}: no videos found")
        found += videos
    if not found:
        raise VidclassError("no videos to classify in " + ", ".join(items))
    return list(dict.fromkeys(found))
