"""`WebSocket /v1/live`: labels of a browser's camera, or any live recording, as it plays.

The client sends one continuous recording in pieces (MediaRecorder's WebM chunks) as
binary messages; they go into a ChunkFeed that a LiveSession decodes in a thread of its
own, while its forward passes take their turn in the server's one model thread through
the batcher, beside the classify requests. Its events go back as JSON text messages.
What a client could grow is bounded: a message's size, the bytes held ahead of the
decoder, the sessions at once, the silence allowed. A stream that cannot be read is one
error message and a close, and a socket that closes stops its session and frees its
slot (once the session's thread has really ended).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import VidclassError
from ..label_choice import LabelChoice, fields_choice
from ..live import ChunkFeed, LiveSession, parse_source
from ..options import parse_query
from .batching import BatchedModel, Batcher

log = logging.getLogger("vidclass")

MAX_MESSAGE = 2 << 20  # bytes in one message; a chunk of a few hundred ms is far less
MAX_AHEAD = 16 << 20  # bytes a client may be ahead of the decoder
IDLE_S = 10.0  # seconds without a message before the session is ended
FINISH_S = 30.0  # longest wait for the last events once the client said stop
OUTBOX = 256  # events waiting for a slow client; windows beyond it are dropped
# The watch options a client may set in the query string.
QUERY = (
    "stride",
    "window",
    "top_k",
    "smooth",
    "unknown",
    "per_window",
    "labels",
    "prompt",
    "multi_label",
    "threshold",
)
SUBPROTOCOL = "vidclass"
KEY_PROTOCOL = "vidclass.key."  # + the API key in base64url: what a browser can send


class Close(IntEnum):
    """The close codes a client sees (after an error message, except for NORMAL)."""

    NORMAL = 1000  # the session ended: the summary was the last message
    BAD_DATA = 1003  # not a recording FFmpeg reads, or a text message other than stop
    BAD_REQUEST = 1008  # a query parameter out of bounds, labels the model lacks
    TOO_BIG = 1009  # a message over MAX_MESSAGE, or MAX_AHEAD bytes ahead of decoding
    INTERNAL = 1011
    STOPPING = 1012  # the server is shutting down
    BUSY = 1013  # every live slot taken: try again later
    UNAUTHORIZED = 4401  # missing or wrong API key
    IDLE = 4408  # no message for IDLE_S seconds


class Refused(VidclassError):
    """A user error that ends the socket with `code`."""

    def __init__(self, message: str, code: Close):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LiveParams:
    """The query parameters of /v1/live."""

    stride: float  # each as the watch verb declares it: LiveParams.parse
    window: float | None
    top_k: int
    smooth: int
    unknown: str
    per_window: bool
    labels: LabelChoice | None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> LiveParams:
        """The parameters from the socket's query string, as the watch verb declares
        them (vidclass.options); a bad one ends the socket with BAD_REQUEST."""
        try:
            given = parse_query("watch", query, QUERY)
            labels = given.pop("labels")
            chosen = fields_choice(
                labels, given.pop("prompt"), given.pop("multi_label"), given.pop("threshold")
            )
        except VidclassError as exc:
            raise Refused(str(exc), Close.BAD_REQUEST) from None
        return cls(**given, labels=chosen)


def given_key(websocket: WebSocket) -> bytes:
    """The API key a client sent: `Authorization: Bearer KEY`, or (browsers cannot set
    headers on a WebSocket) the subprotocol vidclass.key.BASE64URL(KEY); b"" if none."""
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip().encode("latin-1")  # the bytes sent (headers are Latin-1)
    for protocol in websocket.scope.get("subprotocols") or []:
        if protocol.startswith(KEY_PROTOCOL):
            text = protocol[len(KEY_PROTOCOL) :]
            try:
                return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            except ValueError:
                return b""
    return b""


def batched_session(served, batcher: Batcher, params: LiveParams, feed: ChunkFeed) -> LiveSession:
    """A session over `feed` of `served` with the labels asked for, its forward passes
    through the batcher (the model thread); a one-line error for labels the model
    lacks."""
    view = batcher.with_labels(served, params.labels)
    return LiveSession(
        view,
        parse_source(feed),
        window=params.window,
        stride=params.stride,
        top_k=params.top_k,
        smooth=params.smooth,
        unknown=params.unknown,
        per_window=params.per_window,
        segments=True,
        timeout=IDLE_S,
        runner=BatchedModel(view, served, batcher),
        warm_up=False,  # the served model is warm; a client that sends no stream costs nothing
    )


class LiveSessions:
    """The live sessions a server runs: at most `limit` at once, each in a thread of its
    own; a slot is freed when that thread has ended, not merely when its socket closed."""

    def __init__(self, limit: int):
        self.limit = limit
        self._runs: set[LiveRun] = set()
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(max(1, limit), thread_name_prefix="vidclass-live")
        self._closed = False

    def as_dict(self) -> dict:
        return {"running": len(self._runs), "limit": self.limit}

    def start(self, run: LiveRun) -> None:
        with self._lock:
            if self._closed:
                raise Refused("the server is stopping", Close.STOPPING)
            if self.limit == 0:
                raise Refused("this server takes no live sessions (--live 0)", Close.BUSY)
            if len(self._runs) >= self.limit:
                raise Refused(
                    f"busy: {self.limit} live sessions already run; try again later", Close.BUSY
                )
            self._runs.add(run)
        try:
            future = self._threads.submit(run.work)
        except RuntimeError:  # shut down in between
            self._forget(run)
            raise Refused("the server is stopping", Close.STOPPING) from None
        future.add_done_callback(lambda _f: self._forget(run))

    def _forget(self, run: LiveRun) -> None:
        with self._lock:
            self._runs.discard(run)

    def close(self) -> None:
        """Stop every session (the server is stopping); their threads end within a
        window's forward pass."""
        with self._lock:
            self._closed = True
            runs = list(self._runs)
        for run in runs:
            run.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)


class LiveRun:
    """One socket's session: the feed its bytes go into, the session's thread (`work`),
    and the events on their way back to the event loop (`serve`)."""

    def __init__(self, make_session: Callable[[ChunkFeed], LiveSession], loop):
        self.make_session = make_session
        self.loop = loop
        self.feed = ChunkFeed(MAX_AHEAD, idle=IDLE_S + 5)  # the socket's own idle check is first
        self.events: asyncio.Queue = asyncio.Queue()
        self.code = Close.NORMAL  # set with the error event, before it is queued
        self.reason = ""
        self.received = 0
        self.dropped = 0
        self._session: LiveSession | None = None
        self._stopped = False
        self._ended = False
        self._lock = threading.Lock()

    def stop(self) -> None:
        """End the session soon (any thread): after the window being labelled."""
        with self._lock:
            self._stopped = True
            session = self._session
        if session is not None:
            session.stop()
        self.feed.close()

    # -- the session's thread ---------------------------------------------------------------
    def work(self) -> None:
        session = None
        try:
            session = self._made()
            if session is not None:
                self._label(session)
        except Exception as exc:  # a bug: logged whole here, one line to the client
            log.error(f"live: unexpected {type(exc).__name__}: {exc}", exc_info=exc)
            self._error("internal error", Close.INTERNAL)
        finally:
            self._ended = True
            self.feed.close()
            if session is not None:
                for event in session.close():
                    self._put(event.as_dict())
                # windows a slow client did not read in time were dropped: say how many
                self._put({**session.summary.as_dict(), "dropped": self.dropped})
            self._put(None)

    def _made(self) -> LiveSession | None:
        try:
            session = self.make_session(self.feed)
        except VidclassError as exc:
            self._error(str(exc), Close.BAD_REQUEST)
            return None
        with self._lock:
            self._session = session
            if self._stopped:
                session.stop()
        return session

    def _label(self, session: LiveSession) -> None:
        try:
            session.open()
            s = session.summary
            self._put({"type": "ready", "model": s.model, "window": s.window, "stride": s.stride})
            for event in session:
                self._put(event.as_dict())
        except VidclassError as exc:
            session.summary.ended = session.summary.ended or str(exc)
            if not (self._stopped and self.received == 0):  # stopped before any video
                self._error(str(exc), Close.BAD_DATA)

    def _error(self, text: str, code: Close) -> None:
        self.code, self.reason = code, text
        self._put({"type": "error", "error": text})

    def _put(self, event: dict | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: no one is left to tell
            self.loop.call_soon_threadsafe(self._offer, event)

    def _offer(self, event: dict | None) -> None:
        if event is not None and event["type"] == "window" and self.events.qsize() >= OUTBOX:
            self.dropped += 1  # a client that does not read loses windows, nothing else
            return
        self.events.put_nowait(event)

    # -- the event loop ---------------------------------------------------------------------
    async def serve(self, websocket: WebSocket) -> None:
        """Bytes in, events out, until the session ends, the client says stop (the last
        events and the summary follow), breaks a rule, or goes."""
        receiving = asyncio.create_task(self._receive(websocket))
        sending = asyncio.create_task(self._send(websocket))
        try:
            await asyncio.wait({receiving, sending}, return_when=asyncio.FIRST_COMPLETED)
            if not sending.done():
                ended = receiving.result()
                if ended == "stop" and self.received:
                    self.feed.close()  # what was sent is still labelled, then the end
                else:
                    self.stop()
                if ended == "gone":
                    return
                if isinstance(ended, Refused):
                    await fail(websocket, ended)
                    return
                try:  # stop, or the session ended as a message came
                    await asyncio.wait_for(asyncio.shield(sending), FINISH_S)
                except asyncio.TimeoutError:
                    self.stop()
                    self.code, self.reason = Close.INTERNAL, "the session did not end"
            await close(websocket, self.code, self.reason)
        finally:
            self.stop()
            receiving.cancel()
            sending.cancel()

    async def _receive(self, websocket: WebSocket) -> str | Refused:
        """Messages into the feed: "stop", "gone", "ended" (the session ended first), or
        the rule a client broke. An empty binary message is ignored: it is no video (to
        the decoder it would be the end of the stream), and keeps no session alive."""
        loop = asyncio.get_running_loop()
        fed = loop.time()  # when the last video came
        while True:
            try:
                wait = fed + IDLE_S - loop.time()
                message = await asyncio.wait_for(websocket.receive(), max(wait, 0.0))
            except asyncio.TimeoutError:
                return Refused(f"no video for {IDLE_S:g} s", Close.IDLE)
            if message["type"] == "websocket.disconnect":
                return "gone"
            data = message.get("bytes")
            if data is not None:
                if not data:
                    continue
                fed = loop.time()
                if len(data) > MAX_MESSAGE:
                    return Refused(
                        f"a message of {len(data)} bytes; at most {MAX_MESSAGE >> 20} MB",
                        Close.TOO_BIG,
                    )
                try:
                    self.feed.write(data)
                except VidclassError as exc:
                    return "ended" if self._ended else Refused(str(exc), Close.TOO_BIG)
                self.received += len(data)
            elif (message.get("text") or "").strip() == "stop":
                return "stop"
            else:
                return Refused(
                    'send the recording as binary messages, then the text "stop"', Close.BAD_DATA
                )

    async def _send(self, websocket: WebSocket) -> None:
        while True:
            event = await self.events.get()
            if event is None or not await send(websocket, event):
                return


async def live_socket(
    websocket: WebSocket,
    sessions: LiveSessions,
    api_key: str | None,
    make_session: Callable[[LiveParams, ChunkFeed], LiveSession],
) -> None:
    """One connection to /v1/live, from the handshake to the close."""
    offered = websocket.scope.get("subprotocols") or []
    try:
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        if api_key is not None and not hmac.compare_digest(given_key(websocket), api_key.encode()):
            raise Refused("missing or wrong API key", Close.UNAUTHORIZED)
        params = LiveParams.parse(websocket.query_params)
        run = LiveRun(lambda feed: make_session(params, feed), asyncio.get_running_loop())
        sessions.start(run)
    except Refused as exc:
        await fail(websocket, exc)
        return
    except WebSocketDisconnect:
        return
    try:
        await run.serve(websocket)
    except WebSocketDisconnect:
        pass
    except Exception as exc:
        log.error(f"live: unexpected {type(exc).__name__}: {exc}", exc_info=exc)
        await close(websocket, Close.INTERNAL)


async def send(websocket: WebSocket, event: dict) -> bool:
    """Whether `event` went out (False: the client has gone)."""
    try:
        await websocket.send_text(json.dumps(event, ensure_ascii=False))
        return True
    except (WebSocketDisconnect, RuntimeError):
        return False


async def fail(websocket: WebSocket, exc: Refused) -> None:
    """The error as a message, then the close with its code."""
    await send(websocket, {"type": "error", "error": str(exc)})
    await close(websocket, exc.code, str(exc))


async def close(websocket: WebSocket, code: int, reason: str = "") -> None:
    reason = reason.encode()[:120].decode(errors="ignore")  # the protocol allows 123 bytes
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(code, reason)
