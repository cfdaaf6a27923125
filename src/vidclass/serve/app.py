"""The HTTP service: the Python API behind FastAPI, with limits that keep it standing.

One model serves every request, in one model thread, behind a bounded number of
requests: when they are all taken a request gets 503 with Retry-After at once, so
memory stays bounded under any load. A classify request probes and decodes in a
request thread of its own, so its decoding overlaps others' forward passes, and its
forward passes join those of concurrent requests (see batching.py); timelines,
similar and search run wholly in the model thread. Every request has a deadline
(--timeout): past it the answer is 504, and the work itself stops at its next check
(between packets, clips and windows), so the model is free again. A timeline asked
for with progress=true answers NDJSON, its progress as it goes (see streaming.py).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from ..engine import Clips, Work
from ..engine.driver import NonFiniteScores
from ..errors import StorageError, VidclassError
from ..formats import result_json
from ..label_choice import MAX_LABELS_TEXT, MAX_PROMPT_CHARS, LabelChoice, fields_choice
from ..limits import TimeLimitExceeded, check_time, time_limit
from ..runtime import tune_allocator
from ..version import __version__
from .batching import BATCH_CLIPS, Batcher
from .inputs import MAX_PATH_CHARS, VIDEO_BODY, VideoInput, media_video, video_input
from .live import LiveSessions, batched_session, live_socket
from .streaming import NDJSON_RESPONSE, ProgressFeed, progress_response

log = logging.getLogger("vidclass")
STATIC = Path(__file__).parent / "static"
MAX_CLIPS = 16  # clips per request: each is ~50 MB of frames and tensors
MAX_TOP_K = 1000
MAX_LIMIT = 1000  # search and similar results
MAX_TEXT = 500  # search words and labels
ERRORS = {
    401: {"description": "missing or wrong API key (with --api-key)"},
    403: {"description": "a path outside --media, or paths without --media"},
    404: {"description": "no such video under --media"},
    413: {"description": "body over --max-upload-mb (JSON: over 64 KiB)"},
    415: {"description": "not a readable video, or a body of another type"},
    422: {"description": "a parameter out of bounds, or a video that decodes to nothing"},
    503: {"description": "busy (every slot taken; see Retry-After), or gallery unusable"},
    504: {"description": "over --timeout; the work was stopped"},
}

# The Authorization header, if any; checked against --api-key on every /v1/ route.
BearerToken = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="the server's --api-key")),
]


@dataclass
class ServeConfig:
    model: str
    precision: str = "auto"
    device: str = "auto"
    runtime: str = "auto"
    gallery: str | None = None
    media: str | None = None  # a folder whose videos may be named by path
    max_upload_mb: float = 200.0
    queue: int = 4  # requests waiting or running before 503
    timeout: float = 120.0  # seconds per request
    api_key: str | None = None  # required as a Bearer token on /v1/ when set
    live: int = 2  # WebSocket /v1/live sessions at once (0: none)


def check_api_key(key: str) -> None:
    """An API key must be printable ASCII (spaces only inside). HTTP header values have
    no agreed encoding: curl sends a non-ASCII key's UTF-8 bytes, Python's http.client
    Latin-1 (and nothing beyond it), and browsers refuse such headers; so a non-ASCII key
    would be right from some clients and "wrong" from others. Refused at start instead."""
    if not key or not (key.isascii() and key.isprintable()) or key != key.strip():
        raise VidclassError(
            "--api-key must be printable ASCII without leading or trailing spaces (HTTP "
            "headers carry other characters differently from client to client); make one "
            "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


class Busy(Exception):
    pass


class NotAVideo(VidclassError):
    """The file did not probe as a video (415, not 422)."""


class Runner:
    """One model thread and a request thread per slot; at most `limit` requests hold a
    slot (waiting or running)."""

    def __init__(self, limit: int):
        self.model = ThreadPoolExecutor(1, thread_name_prefix="vidclass-model")
        self.requests = ThreadPoolExecutor(limit, thread_name_prefix="vidclass-request")
        self.limit = limit
        self.inflight = 0
        self.lock = threading.Lock()

    def _take(self) -> None:
        with self.lock:
            if self.inflight >= self.limit:
                raise Busy
            self.inflight += 1

    def _release(self) -> None:
        with self.lock:
            self.inflight -= 1

    async def run(self, fn: Callable, deadline: float, what: str, pool: ThreadPoolExecutor):
        """`fn()` in `pool` (the model thread, or the request threads), under a time limit
        ending at `deadline` (monotonic); the slot is freed when the work has really
        stopped."""
        self._take()

        def limited():
            with time_limit(deadline - time.monotonic(), what):
                check_time()  # it may have waited past its deadline
                return fn()

        try:
            future: Future = pool.submit(limited)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _f: self._release())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self.model.shutdown(wait=False, cancel_futures=True)
        self.requests.shutdown(wait=False, cancel_futures=True)


LABELS = Query(
    None,
    min_length=1,
    max_length=MAX_LABELS_TEXT,
    description="comma-separated: a closed-set model keeps only these of its labels (case, "
    "_ and - ignored); a vision-language model scores these words",
)


def label_choice(
    labels: str | None = LABELS,
    prompt: str | None = Query(
        None,
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="vision-language: template, {} the label",
    ),
    multi_label: bool = Query(False, description="vision-language: each label on its own"),
    threshold: float | None = Query(
        None, ge=-1, le=1, allow_inf_nan=False, description="multi-label: tags from this score"
    ),
) -> LabelChoice | None:
    """The label fields, checked before the video is read."""
    try:
        return fields_choice(labels, prompt, multi_label, threshold)
    except VidclassError as exc:
        raise HTTPException(422, str(exc)) from None


ChosenLabels = Annotated["LabelChoice | None", Depends(label_choice)]


async def _nothing() -> None:
    """No video to fetch (run_on_video's first step for work that has none)."""
    return None


def create_app(config: ServeConfig, model=None) -> FastAPI:
    """The app; `model` (a loaded VideoClassifier) or config.model loaded at startup."""
    tune_allocator()  # before the model thread's first allocation (see tune_allocator)
    if config.api_key is not None:
        check_api_key(config.api_key)
    runner = Runner(config.queue)
    live_sessions = LiveSessions(config.live)
    state: dict = {"model": model, "gallery": None, "batcher": None}

    @asynccontextmanager
    async def lifespan(_app):
        served = await asyncio.get_running_loop().run_in_executor(runner.model, classifier)
        clips = max(served.batch_size_hint, BATCH_CLIPS)
        state["batcher"] = Batcher(runner.model, clips, lambda: runner.inflight)
        yield
        live_sessions.close()
        runner.close()
        state["batcher"].close()

    app = FastAPI(
        lifespan=lifespan,
        title="vidclass",
        version=__version__,
        description="Video classification: top-k labels, timelines, a searchable gallery.",
    )
    limit = int(config.max_upload_mb * (1 << 20))

    def require_key(credentials: BearerToken):
        if config.api_key is None:
            return
        # Header values arrive decoded as Latin-1: that gives back the bytes sent.
        given = credentials.credentials.encode("latin-1") if credentials is not None else b""
        if not hmac.compare_digest(given, config.api_key.encode()):
            raise HTTPException(
                401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"}
            )

    api = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=ERRORS)

    def classifier():
        if state["model"] is None:
            from ..loading import load_model

            state["model"] = load_model(
                config.model,
                precision=config.precision,
                device=config.device,
                runtime=config.runtime,
            )
        return state["model"]

    def gallery_path() -> str:
        if not config.gallery:
            raise HTTPException(404, "no gallery: start the server with --gallery DB")
        return config.gallery

    def model_gallery():
        """The gallery the model thread keeps open (its vectors stay loaded)."""
        if state["gallery"] is None:
            from ..gallery import Gallery

            state["gallery"] = Gallery(gallery_path())
        return state["gallery"]

    async def run_on_video(get_video, work: Callable, kind: str, batched: bool = False):
        """Get the video (`await get_video()`), probe it and run `work(model, path, name)`
        in the model thread (`batched`: in a request thread, its forward passes through
        the batcher), all within --timeout; map failures onto HTTP answers."""
        deadline = time.monotonic() + config.timeout
        item: VideoInput | None = None

        def job():
            from ..video import probe

            if item is None:  # work without a video
                return work(classifier(), None, None)
            try:
                probe(item.local)
            except TimeLimitExceeded:
                raise
            except VidclassError as exc:
                raise NotAVideo(str(exc)) from None
            return work(classifier(), item.local, item.name)

        async def handle():
            nonlocal item
            item = await get_video()
            pool = runner.requests if batched else runner.model
            return await runner.run(job, deadline, kind, pool)

        try:
            return await asyncio.wait_for(handle(), config.timeout)
        except Busy:
            raise HTTPException(
                503, "busy: too many requests in the queue", headers={"Retry-After": "5"}
            ) from None
        except (asyncio.TimeoutError, TimeLimitExceeded):
            raise HTTPException(504, f"{kind} took over {config.timeout:g} s") from None
        except NotAVideo as exc:
            raise HTTPException(415, _named(exc, item)) from None
        except StorageError as exc:
            raise HTTPException(503, str(exc)) from None
        except NonFiniteScores as exc:  # the model's fault (a damaged cache), not the video's
            raise HTTPException(500, _named(exc, item)) from None
        except VidclassError as exc:
            raise HTTPException(422, _named(exc, item)) from None
        finally:
            if item is not None:
                item.remove()

    async def streamed(get_video, work: Callable, kind: str):
        """`run_on_video` for work that reports progress, `work(model, path, name,
        report)`, answered with an NDJSON stream once the work has started: its
        progress, then its result as {"type": kind, ...} or {"type": "error", ...}.
        Failures before it starts raise as they do without a stream."""
        feed = ProgressFeed(asyncio.get_running_loop())

        def reporting(model, local, name):  # in the model thread
            feed.started()
            result = work(model, local, name, feed.report)
            feed.flush()
            return result

        task = asyncio.ensure_future(run_on_video(get_video, reporting, kind))
        return await progress_response(task, feed, kind)

    def posted(request: Request):
        return lambda: video_input(request, config.media, limit, config.max_upload_mb)

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

    @api.post("/classify", openapi_extra={"requestBody": VIDEO_BODY})
    async def classify(
        request: Request,
        chosen: ChosenLabels,
        top_k: int = Query(5, ge=1, le=MAX_TOP_K, description="labels to return"),
        clips: int = Query(1, ge=1, le=MAX_CLIPS, description="clips averaged"),
    ):
        """Top-k labels of a video (see the request body for the ways to send it)."""

        def work(model, local, name):  # in a request thread
            batcher: Batcher = state["batcher"]
            view = batcher.view(model, chosen)
            result = batcher.run(view, local, Work(Clips(clips), top_k=top_k))
            result.video = name
            return result_json(result)

        return await run_on_video(posted(request), work, "classify", batched=True)

    @api.post("/timeline", openapi_extra={"requestBody": VIDEO_BODY}, responses=NDJSON_RESPONSE)
    async def timeline(
        request: Request,
        chosen: ChosenLabels,
        window: float | None = Query(
            None, gt=0, le=600, allow_inf_nan=False, description="seconds (the model's clip)"
        ),
        stride: float | None = Query(
            None, ge=0.04, le=3600, allow_inf_nan=False, description="seconds (1)"
        ),
        top_k: int = Query(3, ge=1, le=MAX_TOP_K),
        progress: bool = Query(
            False,
            description="answer NDJSON: progress lines while the windows are scored, then "
            "the timeline (or an error) as the last line",
        ),
    ):
        """Windows and segments over time, and the whole video's top labels (the mean of
        its windows), as `vidclass timeline --format json`."""

        def work(model, local, name, report=None):
            model = state["batcher"].with_labels(model, chosen)
            tl = model.timeline(local, window=window, stride=stride, top_k=top_k, progress=report)
            result = tl.as_dict()
            result["video"] = name
            return result

        if progress:
            return await streamed(posted(request), work, "timeline")
        return await run_on_video(posted(request), work, "timeline")

    def similar_work(limit_: int):
        def work(model, local, name):
            return model_gallery().similar(local, k=limit_, model=model)

        return work

    @api.get("/similar")
    async def similar(
        video: str = Query(
            min_length=1, max_length=MAX_PATH_CHARS, description="a video under --media"
        ),
        limit: int = Query(10, ge=1, le=MAX_LIMIT),
    ):
        """Indexed videos nearest to a video under --media (needs --gallery)."""
        gallery_path()
        return await run_on_video(
            lambda: media_video(config.media, video), similar_work(limit), "similar"
        )

    @api.post("/similar", openapi_extra={"requestBody": VIDEO_BODY})
    async def similar_upload(request: Request, limit: int = Query(10, ge=1, le=MAX_LIMIT)):
        """Indexed videos nearest to an uploaded video, or one under --media."""
        gallery_path()
        return await run_on_video(posted(request), similar_work(limit), "similar")

    @api.get("/info")
    def info():
        """Versions, the device and precision the model runs in, threads, CPU features
        and GPUs: what `vidclass info` prints."""
        from ..info import system_info

        model = classifier()
        info = system_info(str(model.device), model.precision)
        return {**info, "runtime": model.runtime, "model": model.name}

    @api.get("/models")
    def models():
        model = state["model"]
        return [{**model.entry.summary(), "serving": True}] if model is not None else []

    @api.get("/search")
    async def search(
        q: str = Query(min_length=1, max_length=MAX_TEXT, description="what to look for"),
        by: str = Query(
            "auto",
            pattern="^(auto|tags|text)$",
            description="text: moments of the gallery's vision-language model nearest to "
            "the text; tags: tag words; auto: text where the gallery has moments",
        ),
        min_score: float | None = Query(None, ge=-1, le=1, allow_inf_nan=False),
        label: str | None = Query(None, min_length=1, max_length=MAX_TEXT),
        limit: int = Query(20, ge=1, le=MAX_LIMIT),
    ):
        """Gallery videos matching the text, by tags or by moments (needs --gallery)."""
        from ..gallery import Gallery

        options = {"min_score": min_score, "label": label, "limit": limit}
        try:
            with Gallery(gallery_path()) as g:
                if by == "auto":
                    by = "text" if g.text_model_name and label is None else "tags"
                if by == "tags":
                    return [h.as_dict() for h in g.search(q, by="tags", **options)]
        except StorageError as exc:
            raise HTTPException(503, str(exc)) from None
        except VidclassError as exc:
            raise HTTPException(422, str(exc)) from None

        def job():  # the text model runs in the model thread, kept loaded with the gallery
            gallery = model_gallery()
            model = state["model"]
            same = model is not None and model.name == gallery.text_model_name
            hits = gallery.search(q, by="text", model=model if same else None, **options)
            return [h.as_dict() for h in hits]

        return await run_on_video(_nothing, lambda *_: job(), "search")

    app.include_router(api)

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket):
        """Labels of a live recording sent in pieces (see serve/live.py); the API key,
        where there is one, as a Bearer header or the subprotocol vidclass.key.KEY."""

        def make_session(params, feed):
            return batched_session(classifier(), state["batcher"], params, feed)

        await live_socket(websocket, live_sessions, config.api_key, make_session)

    @app.get("/healthz")
    def healthz():
        model = state["model"]
        return {
            "status": "ok" if model is not None else "loading",
            "model": model.name if model is not None else config.model,
            "gallery": bool(config.gallery),
            "api_key": config.api_key is not None,
            "queue": {"inflight": runner.inflight, "limit": runner.limit},
            "batching": state["batcher"].stats.as_dict() if state["batcher"] else None,
            "live": live_sessions.as_dict(),
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


def _named(exc: Exception, item: VideoInput | None) -> str:
    """The error's text with a temporary file's path replaced by the name sent."""
    text = str(exc)
    if item is not None and item.tmp is not None:
        text = text.replace(item.tmp, item.name)
    return text
