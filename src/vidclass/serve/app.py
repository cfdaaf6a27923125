"""The HTTP service: the Python API behind FastAPI, with limits that keep it standing.

One model serves every request. Inference runs in one worker thread (the model already
uses every core), behind a bounded queue: when it is full a request gets 503 with
Retry-After at once, so memory stays bounded under any load.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..errors import VidclassError

log = logging.getLogger("vidclass")
STATIC = Path(__file__).parent / "static"
CHUNK = 1 << 20


@dataclass
class ServeConfig:
    model: str
    precision: str = "auto"
    gallery: str | None = None
    media: str | None = None  # a folder whose videos may be named by path
    max_upload_mb: float = 200.0
    queue: int = 4  # requests waiting or running before 503
    timeout: float = 120.0  # seconds per request


class Busy(Exception):
    pass


class Runner:
    """One inference thread with a bounded number of requests in it."""

    def __init__(self, limit: int):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="vidclass-model")
        self.limit = limit
        self.inflight = 0
        self.lock = threading.Lock()

    async def run(self, fn, timeout: float):
        with self.lock:
            if self.inflight >= self.limit:
                raise Busy
            self.inflight += 1
        future = self.pool.submit(fn)
        future.add_done_callback(lambda _f: self._release())  # freed when really done
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    def _release(self) -> None:
        with self.lock:
            self.inflight -= 1


def _inside(root: str, path: str) -> str:
    """The real path of `path` under `root`, or 403: no way out, links included."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, path))
    if os.path.commonpath([real_root, real]) != real_root:
        raise HTTPException(403, f"{path}: outside the media folder")
    if not os.path.isfile(real):
        raise HTTPException(404, f"{path}: no such video in the media folder")
    return real


def create_app(config: ServeConfig, model=None) -> FastAPI:
    """The app; `model` (a loaded VideoClassifier) or config.model loaded at startup."""
    from .. import __version__

    runner = Runner(config.queue)
    state: dict = {"model": model}

    @asynccontextmanager
    async def lifespan(_app):
        await asyncio.get_running_loop().run_in_executor(runner.pool, classifier)
        yield
        runner.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        lifespan=lifespan,
        title="vidclass",
        version=__version__,
        description="Video classification: top-k labels, timelines, a searchable gallery.",
    )
    limit = int(config.max_upload_mb * (1 << 20))

    def classifier():
        if state["model"] is None:
            from ..pipeline import load_model

            state["model"] = load_model(config.model, precision=config.precision)
        return state["model"]

    def gallery():
        if not config.gallery:
            raise HTTPException(404, "no gallery: start the server with --gallery DB")
        from ..gallery import Gallery

        return Gallery(config.gallery)  # one connection per request: sqlite3 is per thread

    async def video_from(request: Request, file: UploadFile | None, path: str | None):
        """(local path, name to report, temp path to remove or None)."""
        if path is not None:
            if not isinstance(path, str) or not path:
                raise HTTPException(422, "'path' must be a file name under the media folder")
            if not config.media:
                raise HTTPException(403, "paths are only allowed with --media DIR")
            return _inside(config.media, path), path, None
        if file is None:
            raise HTTPException(422, "send a video as the multipart field 'file'")
        fd, tmp = tempfile.mkstemp(
            prefix="vidclass-upload-", suffix=Path(file.filename or "").suffix
        )
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := await file.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, f"upload over {config.max_upload_mb:g} MB")
                    out.write(chunk)
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp, file.filename or "upload", tmp

    async def run_on_video(request: Request, work, kind: str):
        form = (
            await request.form() if "multipart" in request.headers.get("content-type", "") else None
        )
        file = form.get("file") if form is not None else None
        path = form.get("path") if form is not None else None
        if form is None:
            try:
                body = await request.json()
            except ValueError:
                raise HTTPException(
                    422, "send multipart with a 'file', or JSON with a 'path'"
                ) from None
            path = body.get("path") if isinstance(body, dict) else None
        if file is not None and not hasattr(file, "read"):
            raise HTTPException(422, "'file' must be a file upload")
        local, name, tmp = await video_from(request, file, path)
        try:
            from ..video import probe

            try:
                probe(local)
            except VidclassError as exc:
                raise HTTPException(415, f"{name}: {str(exc).split(': ', 1)[-1]}") from None
            try:
                return await runner.run(lambda: work(classifier(), local, name), config.timeout)
            except Busy:
                raise HTTPException(
                    503, "busy: too many requests in the queue", headers={"Retry-After": "5"}
                ) from None
            except TimeoutError:
                raise HTTPException(504, f"{kind} took over {config.timeout:g} s") from None
            except VidclassError as exc:
                raise HTTPException(422, str(exc).replace(local, name)) from None
        finally:
            if tmp is not None:
                os.unlink(tmp)

    @app.middleware("http")
    async def size_limit(request: Request, call_next):
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None and "multipart" in request.headers.get("content-type", ""):
                return JSONResponse({"detail": "Content-Length required"}, status_code=411)
            if length is not None and int(length) > limit + CHUNK:
                return JSONResponse(
                    {"detail": f"upload over {config.max_upload_mb:g} MB"}, status_code=413
                )
        return await call_next(request)

    @app.post("/v1/classify")
    async def classify(request: Request, top_k: int = 5, clips: int = 1):
        """Top-k labels: multipart `file`, or `path` (form or JSON) under --media."""

        def work(model, local, name):
            return {"video": name, "predictions": model.classify(local, top_k=top_k, clips=clips)}

        return await run_on_video(request, work, "classify")

    @app.post("/v1/timeline")
    async def timeline(
        request: Request, window: float | None = None, stride: float | None = None, top_k: int = 3
    ):
        """Windows and segments over time, as `vidclass timeline --format json`."""

        def work(model, local, name):
            result = model.timeline(local, window=window, stride=stride, top_k=top_k).as_dict()
            result["video"] = name
            return result

        return await run_on_video(request, work, "timeline")

    @app.get("/v1/models")
    def models():
        model = state["model"]
        return [{**model.entry.summary(), "serving": True}] if model is not None else []

    @app.get("/v1/search")
    def search(q: str, min_score: float = 0.0, label: str | None = None, limit: int = 20):
        with gallery() as g:
            try:
                return [
                    h.as_dict() for h in g.search(q, min_score=min_score, label=label, limit=limit)
                ]
            except VidclassError as exc:
                raise HTTPException(422, str(exc)) from None

    @app.get("/v1/similar")
    def similar(video: str, limit: int = 10):
        with gallery() as g:
            try:
                return g.similar(video, k=limit)
            except VidclassError as exc:
                raise HTTPException(422, str(exc)) from None

    @app.get("/healthz")
    def healthz():
        model = state["model"]
        return {
            "status": "ok" if model is not None else "loading",
            "model": model.name if model is not None else config.model,
            "gallery": bool(config.gallery),
            "queue": {"inflight": runner.inflight, "limit": runner.limit},
        }

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
