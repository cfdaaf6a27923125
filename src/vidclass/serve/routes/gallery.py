"""GET /v1/search and /v1/similar: a gallery's videos by tag or text, and videos like one
(needs --gallery). SQLite is read in request threads, never on the event loop."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request

from ...limits import time_limit
from ..answers import answer, nothing
from ..inputs import MAX_PATH_CHARS, VIDEO_BODY, media_video
from ..params import query
from ..state import Server, ServerState
from ..statuses import GALLERY_BUSY, NO_GALLERY, VIDEO, answers
from .videos import posted

router = APIRouter()
MAX_TEXT = 500  # search words


def _similar(state: ServerState, limit: int, indexed: str | None = None):
    """The work of a similar request: for the video fetched, or for `indexed`, a path
    the gallery holds (its stored vector, where it has one, is the query)."""

    def work(model, local, name):  # in a request thread; its forward passes batched
        from ...gallery import Gallery

        local = indexed or local
        # The shared gallery is held to choose the vectors and the model (its own, loaded
        # once and kept, where the served one is not it) and to compare; the query video
        # is decoded on this request's own connection, holding nothing.
        with state.gallery().use() as gallery:
            using, query_model = gallery.similar_model(state.batcher.plain(model))
        with Gallery(state.gallery_path()) as own:
            query = own.similar_query(local, model=query_model, using=using)
        with state.gallery().use() as gallery:
            return gallery.similar(local, limit=limit, model=query_model, using=using, query=query)

    return work


SIMILAR = (
    "the indexed videos nearest to it, nearest first: what vidclass similar --format json prints"
)
SIMILAR_404 = f"{NO_GALLERY}, or no such video under --media or in the gallery"


@router.get(
    "/similar",
    responses=answers(SIMILAR, 403, 404, 422, 503, 504, s404=SIMILAR_404, s503=GALLERY_BUSY),
)
async def similar(
    state: Server,
    video: str = Query(
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="a video under --media, or an indexed one by its stored path",
    ),
    limit: int = query("similar", "limit"),
):
    """Indexed videos nearest to a video under --media, or to one the gallery holds
    (by its stored path; needs --gallery)."""
    state.gallery_path()

    def held():  # the page's cards name videos by their stored paths
        with time_limit(state.config.timeout, "similar"), state.browsing.use() as gallery:
            return gallery.held(video)

    if await asyncio.to_thread(held) is not None:
        return await answer(state, nothing, _similar(state, limit, video), "similar")
    media = state.config.media
    return await answer(state, lambda: media_video(media, video), _similar(state, limit), "similar")


@router.post(
    "/similar",
    openapi_extra={"requestBody": VIDEO_BODY},
    responses=answers(SIMILAR, *VIDEO, s404=SIMILAR_404, s503=GALLERY_BUSY),
)
async def similar_upload(request: Request, state: Server, limit: int = query("similar", "limit")):
    """Indexed videos nearest to an uploaded video, or one under --media."""
    state.gallery_path()
    return await answer(state, posted(request, state), _similar(state, limit), "similar")


@router.get(
    "/search",
    responses=answers(
        "the matching videos, best first, with the tags or moments that matched: what "
        "vidclass search --format json prints",
        404,
        422,
        503,
        504,
        s404=NO_GALLERY,
        s503=GALLERY_BUSY,
    ),
)
async def search(
    state: Server,
    q: str = Query(min_length=1, max_length=MAX_TEXT, description="what to look for"),
    by: str = query("search", "by"),
    min_score: float | None = query("search", "min_score"),
    label: str | None = query("search", "label"),
    limit: int = query("search", "limit"),
    known_only: bool = query("search", "known_only"),
):
    """Gallery videos matching the text, by tags or by moments (needs --gallery)."""
    state.gallery_path()
    options = {"min_score": min_score, "label": label, "limit": limit, "known_only": known_only}

    def work(model, _local, _name):  # in a request thread
        from ...gallery import Gallery

        with Gallery(state.gallery_path()) as own:  # tags: this request's own connection
            chosen = by
            if chosen == "auto":
                chosen = "text" if own.text_model_name and label is None else "tags"
            if chosen == "tags":
                return [h.as_dict() for h in own.search(q, by="tags", **options)]
        with state.gallery().use() as gallery:  # text: the moment index stays loaded
            text_model = None
            if model.name == gallery.text_model_name:
                text_model = state.batcher.plain(model)  # its text through the model thread
            hits = gallery.search(q, by="text", model=text_model, **options)
            return [h.as_dict() for h in hits]

    return await answer(state, nothing, work, "search")
