"""GET /v1/media and /v1/media/examples: the video files under --media, to play (range
requests answered, so a player can seek) and to try. Only video files, only under
--media, links followed only where they stay inside it."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from ...batch import VIDEO_EXTENSIONS
from ..inputs import MAX_PATH_CHARS, media_video
from ..state import Server
from ..statuses import answers

router = APIRouter()  # the key as a header
files = APIRouter()  # read by <video>: the key as the page's cookie too
MAX_SCANNED = 10_000  # folder entries an examples listing looks at, at most
MAX_DEPTH = 3  # subfolders deep
# The type each video file is served as (the host's MIME table says odd things: .ts as
# a translation file, .3gp as audio).
TYPES = {
    ".3gp": "video/3gpp",
    ".avi": "video/x-msvideo",
    ".flv": "video/x-flv",
    ".gif": "image/gif",
    ".m2ts": "video/mp2t",
    ".m4v": "video/mp4",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
    ".mp4": "video/mp4",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".mts": "video/mp2t",
    ".ogv": "video/ogg",
    ".ts": "video/mp2t",
    ".webm": "video/webm",
    ".wmv": "video/x-ms-wmv",
}


def _is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def media_name(media: str | None, path: str) -> str | None:
    """`path` (absolute) as a path under `media`, where it is a video file there."""
    if not media or not _is_video(path):
        return None
    root = os.path.realpath(media)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
        return None
    return os.path.relpath(real, root)


@files.get(
    "/media",
    response_class=FileResponse,
    responses={
        **answers(
            "the file's bytes as stored; a Range header is answered with 206 and those "
            "bytes (seeking in a player)",
            403,
            404,
            422,
            s404="no such video file under --media",
        ),
        200: {"content": {"video/*": {}}, "description": "the video file"},
    },
)
async def media(
    state: Server,
    video: str = Query(
        min_length=1, max_length=MAX_PATH_CHARS, description="a video file under --media"
    ),
):
    """A video file under --media, to play; ranges answered."""
    found = await media_video(state.config.media, video)
    if not _is_video(found.local):
        raise HTTPException(404, f"{video}: not a video file")
    kind = TYPES.get(os.path.splitext(found.local)[1].lower(), "application/octet-stream")
    # Revalidated at each use: a file indexed again at the same path plays its new bytes.
    headers = {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}
    return FileResponse(found.local, media_type=kind, headers=headers)


def _examples(media: str, limit: int) -> list[dict]:
    """Up to `limit` video files under `media`, by name, looking at MAX_SCANNED entries
    at most and MAX_DEPTH folders deep (a huge folder answers in bounded time)."""
    root = os.path.realpath(media)
    found: list[dict] = []
    scanned = 0
    folders = [(root, 0)]
    while folders and len(found) < limit and scanned < MAX_SCANNED:
        folder, depth = folders.pop(0)
        try:
            with os.scandir(folder) as it:
                entries = []
                for entry in it:
                    scanned += 1
                    entries.append(entry)
                    if scanned >= MAX_SCANNED:
                        break
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                if entry.is_dir(follow_symlinks=False) and depth < MAX_DEPTH:
                    folders.append((entry.path, depth + 1))
                elif _is_video(entry.name) and entry.is_file(follow_symlinks=False):
                    name = os.path.relpath(entry.path, root)
                    found.append({"video": name, "size": entry.stat().st_size})
            except OSError:
                continue
            if len(found) >= limit:
                break
    return found


@router.get(
    "/media/examples",
    responses=answers(
        '[{"video", "size"}]: video files under --media to try, by name (empty without --media)',
        422,
    ),
)
async def examples(
    state: Server,
    limit: int = Query(8, ge=1, le=100, description="files at most"),
):
    """Some video files under --media, for the page's examples."""
    media = state.config.media
    if not media:
        return []
    return await asyncio.to_thread(_examples, media, limit)
