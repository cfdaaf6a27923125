"""GET /v1/gallery/...: the gallery as a person browses it: pages of videos, tags with
counts, one video with its stored timeline, and pictures (needs --gallery). Pictures are
of videos the gallery holds only: the stored one, or a frame at a moment decoded now.
SQLite is read in threads, never on the event loop, on a connection of its own."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import stat

from fastapi import APIRouter, HTTPException, Query, Request, Response

from ...errors import StorageError, VidclassError
from ...limits import TimeLimitExceeded, time_limit
from ..inputs import MAX_PATH_CHARS
from ..params import query
from ..state import Server, ServerState
from ..statuses import NO_GALLERY, answers
from .media import media_name

router = APIRouter()  # read with the API key as a header
pictures = APIRouter()  # read by <img>: the key as the page's cookie too
PICTURE_CACHE = "private, no-cache"
INDEXED = "an indexed video, by its path as the gallery stores it"
BAD_PARAMETER = "a parameter out of bounds"
UNREADABLE = "the gallery cannot be read (damaged, or locked past --timeout)"


def browsing(shape: str, parameters: bool = False, not_found: str = NO_GALLERY) -> dict:
    """The `responses` of a route that reads the gallery: what a 200 holds, then the
    errors any such route may answer (with `parameters`, 422 for one out of bounds)."""
    codes = (404, 422, 503, 504) if parameters else (404, 503, 504)
    return answers(shape, *codes, s404=not_found, s422=BAD_PARAMETER, s503=UNREADABLE)


async def _read(state: ServerState, work, what: str):
    """`work(gallery)` on the browsing connection, in a thread, within --timeout; a
    gallery that cannot be read is 503."""
    timeout = state.config.timeout
    browsing = state.browsing
    state.gallery_path()

    def run():
        with time_limit(timeout, what), browsing.use() as gallery:
            return work(gallery)

    try:
        return finite(await asyncio.wait_for(asyncio.to_thread(run), timeout))
    except (asyncio.TimeoutError, TimeLimitExceeded):
        raise HTTPException(504, f"{what} took over {timeout:g} s") from None
    except StorageError as exc:
        raise HTTPException(503, str(exc)) from None
    except VidclassError as exc:
        raise HTTPException(422, str(exc)) from None


def finite(value):
    """`value` with every float that JSON cannot carry (inf, nan: a crafted gallery's)
    as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def _with_media(state: ServerState, video: dict) -> dict:
    """`video` with `media`: its path under --media, where the player can fetch it."""
    return {**video, "media": media_name(state.config.media, video["video"])}


@router.get(
    "/gallery",
    responses=browsing(
        '{"videos", "model", "text_model", "moment_seconds", "searches"}: how many videos '
        "the gallery holds, its classifier (tags) and vision-language model (moments), and "
        "the search kinds that find something",
    ),
)
async def about(state: Server):
    """What the gallery holds and how it can be searched."""
    return await _read(state, lambda gallery: gallery.about(), "the gallery")


@router.get(
    "/gallery/videos",
    responses=browsing(
        '{"total", "offset", "limit", "tag", "videos": [{"video", "media", "duration", '
        '"width", "height", "tags", "tag_score", "unknown", "error", "thumbnail"}]}: a page '
        "of the gallery; `media` is the path under --media to play it from (null where it "
        "is not there)",
        parameters=True,
    ),
)
async def videos(
    state: Server,
    tag: str | None = query("browse", "tag"),
    known_only: bool = query("browse", "known_only"),
    offset: int = query("browse", "offset"),
    limit: int = query("browse", "limit"),
):
    """A page of the gallery's videos: all of them by path, or those with a tag, best
    score first."""
    options = {"tag": tag, "known_only": known_only, "offset": offset, "limit": limit}

    def work(gallery):
        page = gallery.browse(**options)
        return {**page, "videos": [_with_media(state, v) for v in page["videos"]]}

    return await _read(state, work, "a page of the gallery")


@router.get(
    "/gallery/tags",
    responses=browsing(
        '[{"label", "videos", "best_score"}], most common first: what vidclass tags '
        "--format json prints",
    ),
)
async def tags(state: Server):
    """Every tag of the gallery with how many videos have it."""
    return await _read(state, lambda gallery: gallery.tags(), "the gallery's tags")


@router.get(
    "/gallery/video",
    responses=browsing(
        "the video as vidclass export --format json gives it (tags, stored timeline "
        "segments, unknown, ...), with `thumbnail` and `media`",
        parameters=True,
        not_found=f"{NO_GALLERY}, or the gallery does not hold that video",
    ),
)
async def video(
    state: Server,
    video: str = Query(min_length=1, max_length=MAX_PATH_CHARS, description=INDEXED),
):
    """One indexed video with its tags and stored timeline."""

    def work(gallery):
        found = gallery.video(video)
        return None if found is None else _with_media(state, found)

    found = await _read(state, work, "a video of the gallery")
    if found is None:
        raise HTTPException(404, f"{video}: not in the gallery")
    return found


def _jpeg(request: Request, picture) -> Response:
    """The picture, or 304 where the browser has it: it asks again each time (a video
    indexed again at the same path has new pictures) and gets bytes only when changed."""
    tag = f'"{hashlib.sha256(picture.jpeg).hexdigest()[:32]}"'
    headers = {"Cache-Control": PICTURE_CACHE, "ETag": tag, "X-Content-Type-Options": "nosniff"}
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(picture.jpeg, media_type="image/jpeg", headers=headers)


@pictures.get(
    "/gallery/thumbnail",
    response_class=Response,
    responses={
        **answers(
            "image/jpeg: the picture kept for the video, or (with `t`) its frame at t "
            "seconds, its long side at most 240 pixels",
            404,
            422,
            503,
            504,
            s404=f"{NO_GALLERY}, or the gallery holds no such video (or no picture of it)",
            s422=f"{BAD_PARAMETER}, a video no longer on disk, or one whose frame does not decode",
            s503="busy (64 pictures asked for at once; see Retry-After), or the gallery "
            "cannot be read",
        ),
        200: {"content": {"image/jpeg": {}}, "description": "the picture"},
    },
)
async def thumbnail(
    request: Request,
    state: Server,
    video: str = Query(min_length=1, max_length=MAX_PATH_CHARS, description=INDEXED),
    t: float | None = Query(
        None, ge=0, le=1e7, allow_inf_nan=False, description="seconds: a moment's frame"
    ),
):
    """A small picture of an indexed video: the one kept when it was indexed, or its
    frame at `t` seconds (decoded now, a few at a time)."""
    if t is None:
        picture = await _read(state, lambda g: g.thumbnail(video), "a thumbnail")
        if picture is None:
            raise HTTPException(404, f"{video}: no thumbnail in the gallery")
        return _jpeg(request, picture)

    def look(gallery):
        size = gallery.held(video)
        if size is None:
            return None, None  # a path the gallery does not hold is not looked at
        try:  # the file as it is now: a changed file has other pictures
            st = os.stat(video)
        except OSError:
            return size, None
        return size, (st.st_mtime_ns, st.st_size) if stat.S_ISREG(st.st_mode) else None

    held, version = await _read(state, look, "a thumbnail")
    if held is None:
        raise HTTPException(404, f"{video}: not in the gallery")
    if version is None:
        raise HTTPException(422, f"{video}: no longer on disk")
    at = round(t, 1)  # a tenth of a second: one picture for nearby asks

    def make():
        from ...gallery.thumbnails import frame_at

        return frame_at(video, at, *held)

    key = (video, version, at)
    try:
        picture = await state.pictures.get(key, make, state.config.timeout, request.is_disconnected)
    except (asyncio.TimeoutError, TimeLimitExceeded):
        raise HTTPException(504, "the picture took too long") from None
    except VidclassError as exc:
        raise HTTPException(422, str(exc)) from None
    return _jpeg(request, picture)
