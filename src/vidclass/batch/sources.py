"""Turn what a user names (videos, folders, globs, list files) into video paths."""

from __future__ import annotations

import glob
import logging
import os
import stat
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
    """Video files in `folder` (and below, with `recursive`), sorted; links to folders
    are not followed, so a link loop cannot repeat or hang the walk."""

    def unreadable(exc: OSError) -> None:
        log.warning(f"{exc.filename or folder}: cannot read the folder ({_reason(exc)})")

    if not recursive:
        try:
            found = [p for p in folder.iterdir() if p.is_file() and is_video_name(p)]
        except OSError as exc:
            unreadable(exc)
            return []
        return [str(p) for p in sorted(found)]
    found = []
    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if is_video_name(f)]
    return found


# Names looked at, at most, to count the videos below a folder that has none directly in
# it (for the hint to add --recursive): a hint is not worth a walk of a whole disk.
_COUNT_BELOW_LIMIT = 100_000


def _videos_below(folder: Path) -> tuple[int, bool]:
    """(video files in `folder`'s subfolders, whether counting stopped early), walked as
    `recursive` would walk them; unreadable subfolders are passed over in silence."""
    count = seen = 0
    for _root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        count += sum(1 for f in files if is_video_name(f))
        seen += len(dirs) + len(files)
        if seen >= _COUNT_BELOW_LIMIT:
            return count, True
    return count, False


def _nothing_found(
    item: str, path: Path, kind: str, recursive: bool, deeper: str
) -> tuple[str, bool]:
    """What to say of a named item that gave no videos, and whether adding --recursive
    would find some: a folder whose videos are all in its subfolders says so."""
    if kind == "dir" and not recursive:
        below, more = _videos_below(path)
        if below:
            count = f"at least {below}" if more else str(below)
            videos = "video" if below == 1 and not more else "videos"
            return (
                f"{item}: no videos directly in it; its subfolders hold {count} {videos}: "
                + deeper,
                True,
            )
    return f"{item}: no videos found", False


def _glob(pattern: str, recursive: bool) -> list[str]:
    """Video files matching `pattern`, as glob.glob would give them, except that `**`
    does not follow links to folders (a link loop would repeat files or never end)."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:first]) if first else Path()
    rest = str(Path(*parts[first:]))
    if not recursive:
        rest = rest.replace("**", "*")  # as glob.glob treats it without recursive
    elif parts[-1] == "**":
        rest += "/*"  # pathlib's trailing ** gives only folders; glob's gives files too
    try:
        matches = [
            p
            for p in base.glob(rest)
            if not any(x.startswith(".") for x in p.relative_to(base).parts)
        ]
        return sorted(str(p) for p in matches if p.is_file() and is_video_name(p))
    except ValueError as exc:  # a pattern pathlib cannot take, such as a**b
        raise VidclassError(f"{pattern}: not a usable pattern ({exc})") from None
    except OSError as exc:
        log.warning(f"{pattern}: cannot search ({_reason(exc)})")
        return []


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _stat_kind(item: str) -> str:
    """'dir', 'file', or 'other' (missing, unreadable, a name the OS refuses: then it
    is taken as a video, whose error says why)."""
    try:
        mode = os.stat(item).st_mode
    except (OSError, ValueError):
        return "other"
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


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


def expand_inputs(
    items: list[str], recursive: bool = False, deeper: str = "add --recursive"
) -> list[str]:
    """Video paths, in the order named, each once.

    A folder gives its video files (with `recursive`, those of its subfolders too); a
    glob gives the video files it matches (`**` crosses folders with `recursive`); a
    .txt/.list/.lst file gives the paths it lists; anything else is taken as a video,
    so a missing file is reported as that video's error rather than dropped. An item
    that gives nothing is warned of; a folder whose videos are all in subfolders says
    to add --recursive, or what `deeper` says the command's way is (and so does the error
    when nothing at all is found).
    """
    found: list[str] = []
    only_below = False  # some folder named holds videos in its subfolders only
    for item in items:
        path = Path(item)
        kind = _stat_kind(item)
        if kind == "dir":
            videos = _walk(path, recursive)
        elif kind == "file" and path.suffix.lower() in LIST_EXTENSIONS:
            videos = _read_list(path)
        elif kind == "other" and _GLOB_CHARS & set(item) and "\0" not in item:
            videos = _glob(item, recursive)
        else:
            videos = [item]
        if not videos:
            note, below = _nothing_found(item, path, kind, recursive, deeper)
            only_below |= below
            log.warning(note)
        found += videos
    if not found:
        hint = f" ({deeper} to look in subfolders)" if only_below else ""
        raise VidclassError("no videos to classify in " + ", ".join(items) + hint)
    return list(dict.fromkeys(found))
