"""GET /v1/gallery/...: the gallery as a person browses it: pages of videos, tags with
counts, one video with its stored timeline, and pictures (needs --gallery). Pictures are
of videos the gallery holds only: the stored one, or a frame at a moment decoded now.
SQLite is read in threads, never on the event loop, on a connection of its own."""

from __future__ import annotations

import asyncio
import hashlib
import os

from fastapi import APIRouter, HTTPException, Query, Response

from ...errors import StorageError, VidclassError
from ...limits import TimeLimitExceeded, time_limit
from ..inputs import MAX_PATH_CHARS
from ..params import query
from ..state import Server, ServerState
from ..statuses import NO_GALLERY, answers
from .media import media_name

router = APIRouter()  # read with the API key as a header
pictures = APIRouter()  # read by <img>: the key as the page's cookie too
PICTURE_CACHE = "private, max-age=86400"
INDEXED = "an indexed video, by its path as the gallery stores it"


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
        return await asyncio.wait_for(asyncio.to_thread(run), timeout)
    except (asyncio.TimeoutError, TimeLimitExceeded):
        raise HTTPException(504, f"{what} took over {timeout:g} s") from None
    except StorageError as exc:
        raise HTTPException(503, str(exc)) from None
    except VidclassError as exc:
        raise HTTPException(422, str(exc)) from None


def _with_media(state: ServerState, video: dict) -> dict:
    """`video` with `media`: its path under --media, where the player can fetch it."""
    return {**video, "media": media_name(state.config.media, video["video"])}


@router.get(
    "/gallery",
    responses=answers(
        '{"videos", "model", "text_model", "moment_seconds", "searches"}: how many videos '
        "the gallery holds, its classifier (tags) and vision-language model (moments), and "
        "the search kinds that find something",
        404,
        503,
        504,
        s404=NO_GALLERY,
    ),
)
async def about(state: Server):
    """What the gallery holds and how it can be searched."""
    return await _read(state, lambda gallery: gallery.about(), "the gallery")


@router.get(
    "/gallery/videos",
    responses=answers(
        '{"total", "offset", "limit", "tag", "videos": [{"video", "media", "duration", '
        '"width", "height", "tags", "tag_score", "unknown", "error", "thumbnail"}]}: a page '
        "of the gallery; `media` is the path under --media to play it from (null where it "
        "is not there)",
        404,
        422,
        503,
        504,
        s404=NO_GALLERY,
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
    responses=answers(
        '[{"label", "videos", "best_score"}], most common first: what vidclass tags '
        "--format json prints",
        404,
        503,
        504,
        s404=NO_GALLERY,
    ),
)
async def tags(state: Server):
    """Every tag of the gallery with how many videos have it."""
    return await _read(state, lambda gallery: gallery.tags(), "the gallery's tags")


@router.get(
    "/gallery/video",
    responses=answers(
        "the video as vidclass export --format json gives it (tags, stored timeline "
        "segments, unknown, ...), with `thumbnail` and `media`",
        404,
        422,
        503,
        504,
        s404=f"{NO_GALLERY}, or the gallery does not hold that video",
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


def _jpeg(picture) -> Response:
    tag = hashlib.sha256(picture.jpeg).hexdigest()[:32]
    headers = {"Cache-Control": PICTURE_CACHE, "ETag": f'"{tag}"'}
    headers["X-Content-Type-Options"] = "nosniff"
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
            s503="busy (too many pictures asked for at once; see Retry-After), or the "
            "gallery cannot be read",
        ),
        200: {"content": {"image/jpeg": {}}, "description": "the picture"},
    },
)
async def thumbnail(
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
        return _jpeg(picture)
    held = await _read(state, lambda g: g.held(video), "a thumbnail")
    if held is None:
        raise HTTPException(404, f"{video}: not in the gallery")
    at = round(t, 1)  # a tenth of a second: one picture for nearby asks

    def make():
        from ...gallery.thumbnails import frame_at

        if not os.path.isfile(video):
            raise VidclassError(f"{video}: no longer on disk")
        return frame_at(video, at, *held)

    try:
        picture = await state.pictures.get((video, at), make, state.config.timeout)
    except (asyncio.TimeoutError, TimeLimitExceeded):
        raise HTTPException(504, "the picture took too long") from None
    except VidclassError as exc:
        raise HTTPException(422, str(exc)) from None
    return _jpeg(picture)
