"""The HTTP service: the Python API behind FastAPI, with limits that keep it standing.

One model serves every request, behind a bounded number of requests: when they are all
taken a request gets 503 with Retry-After at once, so memory stays bounded under any
load. Each request's work (probing, decoding, the gallery's SQLite) runs in a request
thread of its own; only forward passes run in the one model thread, where concurrent
requests' passes join (batching.py), so a long timeline never holds up a classify.
Every request has a deadline (--timeout): past it the answer is 504, and the work
itself stops at its next check (between packets, clips and windows). A timeline asked
for with progress=true answers NDJSON, its progress as it goes (streaming.py). Routes
live in routes/, one module per resource; what the server holds is state.py's
ServerState.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..cpu import tune_allocator
from ..version import __version__
from .batching import BATCH_CLIPS, Batcher
from .live import LiveSessions, batched_session, live_socket
from .routes import browse, gallery, media, system, videos
from .state import (
    ModelThread,
    ServeConfig,
    ServerState,
    check_api_key,
    require_key,
    require_key_or_cookie,
)
from .statuses import answers, errors

__all__ = ["ServeConfig", "check_api_key", "create_app"]

log = logging.getLogger("vidclass")
STATIC = Path(__file__).parent / "static"


def create_app(config: ServeConfig, model=None) -> FastAPI:
    """The app; `model` (a loaded model) or config.model loaded at startup."""
    tune_allocator()  # before the model thread's first allocation (see tune_allocator)
    if config.api_key is not None:
        check_api_key(config.api_key)
    state = ServerState(config, ModelThread(config.queue), LiveSessions(config.live), model)

    def load() -> None:  # in the model thread, before the port opens
        if state.model is None:
            from ..loading import load_model

            state.model = load_model(
                config.model, precision=config.precision, device=config.device,
                runtime=config.runtime,
            )  # fmt: skip

    @asynccontextmanager
    async def lifespan(_app):
        await asyncio.get_running_loop().run_in_executor(state.model_thread.model, load)
        clips = max(state.model.batch_size_hint, BATCH_CLIPS)
        state.batcher = Batcher(
            state.model_thread.model, clips, lambda: state.model_thread.inflight
        )
        yield
        state.close()

    app = FastAPI(
        lifespan=lifespan,
        title="vidclass",
        version=__version__,
        description="Video classification: top-k labels, timelines, a searchable gallery.",
    )
    app.state.server = state
    limit = config.upload_limit

    @app.middleware("http")
    async def size_limit(request: Request, call_next):
        if request.method == "POST":
            length = request.headers.get("content-length")
            kind = request.headers.get("content-type", "")
            if length is None and "multipart" in kind:  # its parser has no size limit
                return JSONResponse({"detail": "Content-Length required"}, status_code=411)
            if length is not None:
                if not length.isdigit() or len(length) > 20:
                    return JSONResponse({"detail": "bad Content-Length"}, status_code=400)
                if int(length) > limit + (1 << 20):
                    return JSONResponse(
                        {"detail": f"upload over {config.max_upload_mb:g} MB"}, status_code=413
                    )
        return await call_next(request)

    api = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=errors(401))
    for routes in (videos, gallery, browse, media, system):
        api.include_router(routes.router)
    app.include_router(api)
    # What <img> and <video> fetch: they cannot send the key as a header.
    shown = APIRouter(
        prefix="/v1", dependencies=[Depends(require_key_or_cookie)], responses=errors(401)
    )
    shown.include_router(browse.pictures)
    shown.include_router(media.files)
    app.include_router(shown)

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket):
        """Labels of a live recording sent in pieces (see serve/live.py); the API key,
        where there is one, as a Bearer header or the subprotocol vidclass.key.KEY."""

        def make_session(params, feed):
            return batched_session(state.model, state.batcher, params, feed)

        await live_socket(websocket, state.live_sessions, config.api_key, make_session)

    @app.get(
        "/healthz",
        responses=answers(
            '{"status": "ok" or "loading", "model", "gallery", "api_key", "queue": '
            '{"inflight", "limit"}, "batching", "live"}'
        ),
    )
    def healthz():
        model = state.model
        return {
            "status": "ok" if model is not None else "loading",
            "model": model.name if model is not None else config.model,
            "gallery": bool(config.gallery),
            "api_key": config.api_key is not None,
            "queue": {"inflight": state.model_thread.inflight, "limit": state.model_thread.limit},
            "batching": state.batcher.stats.as_dict() if state.batcher else None,
            "live": state.live_sessions.as_dict(),
        }

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception):
        log.error(f"unexpected {type(exc).__name__}: {exc}", exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
