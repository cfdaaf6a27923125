"""What the server holds while it runs, typed: its configuration, the request slots and
the one model thread, the served model, the batcher, the shared gallery and the live
sessions; and the dependencies that hand them to a route."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import VidclassError
from ..limits import check_time, remaining_time, time_limit
from .live import LiveSessions
from .pictures import MomentPictures

if TYPE_CHECKING:
    from ..classifier import Classifier
    from ..gallery import Gallery
    from .batching import Batcher


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

    def __post_init__(self):
        from ..options import check

        check("serve", self.__dict__)

    @property
    def upload_limit(self) -> int:
        return int(self.max_upload_mb * (1 << 20))


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


class ModelThread:
    """The one thread that runs model work (`model`: only forward passes, the
    batcher's), beside a request thread per slot (`requests`); at most `limit` requests
    hold a slot (waiting or running). Requests' work runs in the request threads."""

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

    async def run(self, fn: Callable, deadline: float, what: str):
        """`fn()` in a request thread, under a time limit ending at `deadline`
        (monotonic); the slot is freed when the work has really stopped."""
        self._take()

        def limited():
            with time_limit(deadline - time.monotonic(), what):
                check_time()  # it may have waited past its deadline
                return fn()

        try:
            future: Future = self.requests.submit(limited)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _f: self._release())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self.model.shutdown(wait=False, cancel_futures=True)
        self.requests.shutdown(wait=False, cancel_futures=True)


class SharedGallery:
    """The gallery that similar and text search use, opened once (its vectors and moment
    index stay loaded) and used by one request thread at a time."""

    def __init__(self, path: str):
        self.path = path
        self._gallery: Gallery | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def use(self) -> Iterator[Gallery]:
        """The gallery, held by this thread; waiting for it counts against the time
        limit in effect."""
        from ..limits import TimeLimitExceeded

        left = remaining_time()
        if not self._lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
            raise TimeLimitExceeded("waited past the deadline for the gallery")
        try:
            if self._gallery is None:
                from ..gallery import Gallery, SqliteGalleryStore

                store = SqliteGalleryStore(self.path, any_thread=True)
                self._gallery = Gallery(self.path, store)
            yield self._gallery
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._gallery is not None:
                self._gallery.close()


@dataclass
class ServerState:
    config: ServeConfig
    model_thread: ModelThread
    live_sessions: LiveSessions
    model: Classifier | None = None  # loaded before the port opens (app's lifespan)
    batcher: Batcher | None = None
    shared_gallery: SharedGallery | None = field(default=None)
    # A second connection for pages and thumbnails: browsing never waits behind a
    # similar or a text search, which hold the shared one while they compare.
    browsing: SharedGallery | None = field(default=None)
    pictures: MomentPictures = field(default_factory=MomentPictures)

    def __post_init__(self):
        if self.config.gallery and self.shared_gallery is None:  # made once, here
            self.shared_gallery = SharedGallery(self.config.gallery)
            self.browsing = SharedGallery(self.config.gallery)

    def gallery_path(self) -> str:
        if not self.config.gallery:
            raise HTTPException(404, "no gallery: start the server with --gallery DB")
        return self.config.gallery

    def gallery(self) -> SharedGallery:
        self.gallery_path()
        return self.shared_gallery

    def close(self) -> None:
        self.live_sessions.close()
        self.model_thread.close()
        if self.batcher is not None:
            self.batcher.close()
        for shared in (self.shared_gallery, self.browsing):
            if shared is not None:
                shared.close()


def server(request: Request) -> ServerState:
    """The server's state (a route's dependency)."""
    return request.app.state.server


Server = Annotated[ServerState, Depends(server)]
# The Authorization header, if any; checked against --api-key on every /v1/ route.
BearerToken = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="the server's --api-key")),
]


def picture_cookie(request: Request, key: str) -> tuple[str, str]:
    """(name, value) of the cookie that lets the page's <img> and <video> read pictures
    and media (they cannot send a header): named by the server's port (browsers share
    cookies between ports), its value a MAC of the key, never the key itself."""
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    value = hmac.new(key.encode(), b"vidclass pictures and media", hashlib.sha256).hexdigest()
    return f"vidclass_pictures_{port}", value


def _refused() -> HTTPException:
    return HTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})


def require_key(state: Server, credentials: BearerToken) -> None:
    key = state.config.api_key
    if key is None:
        return
    # Header values arrive decoded as Latin-1: that gives back the bytes sent.
    given = credentials.credentials.encode("latin-1") if credentials is not None else b""
    if not hmac.compare_digest(given, key.encode()):
        raise _refused()


def require_key_or_cookie(request: Request, state: Server, credentials: BearerToken) -> None:
    """The key as a Bearer header, or the page's picture cookie (picture_cookie, set by
    POST /v1/session): an <img> or a <video> cannot send headers. Only for the GETs
    that read pictures and media."""
    key = state.config.api_key
    if key is None or credentials is not None:
        require_key(state, credentials)
        return
    name, value = picture_cookie(request, key)
    given = request.cookies.get(name, "")
    if not (given.isascii() and hmac.compare_digest(given.encode(), value.encode())):
        raise _refused()
