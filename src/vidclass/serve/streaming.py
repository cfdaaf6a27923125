"""Progress of a request's work, streamed to its client as NDJSON while it runs.

The work runs in the model thread (see app.py's run_on_video) and reports (windows
done, windows in all or None) after each forward pass; `ProgressFeed.report` passes
that to the event loop with `call_soon_threadsafe`, at most one line every
PROGRESS_EVERY_S, and stops the work (ClientGone) once the client has gone. The
response starts only when the work has started, past the upload, the queue and the
probe, so every failure before that keeps its own status code; after it, a failure
can only be the stream's last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

log = logging.getLogger("vidclass")
NDJSON = "application/x-ndjson"
PROGRESS_EVERY_S = 0.25  # at most ~4 progress lines a second
STARTED = object()  # the work has started: the probe passed, the response may begin
_running: set[asyncio.Task] = set()  # requests' tasks, kept until they end

NDJSON_RESPONSE = {
    200: {
        "description": "JSON; with progress=true, NDJSON: lines of "
        '{"type": "progress", "done": D, "total": T or null} while the windows are '
        'scored, then one {"type": "timeline", ...the JSON answer} or '
        '{"type": "error", "status": S, "detail": "..."}',
        "content": {NDJSON: {"schema": {"type": "string"}}},
    }
}


class ClientGone(Exception):
    """The client of a streamed request went away: its work stops here."""


class ProgressFeed:
    """Progress events from the model thread to the event loop's `events` queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float = PROGRESS_EVERY_S):
        self.loop = loop
        self.events: asyncio.Queue = asyncio.Queue()
        self.gone = threading.Event()  # set by the event loop: stop the work
        self.every = every
        self._sent_at = float("-inf")
        self._unsent: dict | None = None

    def _put(self, event) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: the server is stopping
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    # -- in the model thread -----------------------------------------------------------
    def started(self) -> None:
        self._put(STARTED)

    def report(self, done: int, total: int | None) -> None:
        """Windows scored so far (the work's progress callback); raises ClientGone once
        nobody is listening, which ends the work at its next forward pass."""
        if self.gone.is_set():
            raise ClientGone
        event = {"type": "progress", "done": done, "total": total}
        now = time.monotonic()
        if now - self._sent_at >= self.every or (total is not None and done >= total):
            self._sent_at, self._unsent = now, None
            self._put(event)
        else:
            self._unsent = event

    def flush(self) -> None:
        """The last progress held back by the throttle, if any (the work has ended)."""
        if self._unsent is not None:
            self._put(self._unsent)
            self._unsent = None

    # -- in the event loop -------------------------------------------------------------
    async def next_or_end(self, task: asyncio.Task):
        """The next event, or None once `task` has ended and every event before its end
        has been taken."""
        while self.events.empty():
            if task.done():
                return None
            getter = asyncio.ensure_future(self.events.get())
            try:
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                getter.cancel()
                raise
            if getter.done():
                return getter.result()
            getter.cancel()
        return self.events.get_nowait()

    async def lines(self, task: asyncio.Task, kind: str):
        """The response body: progress lines, then the result or the error."""
        try:
            while (event := await self.next_or_end(task)) is not None:
                if event is not STARTED:
                    yield _line(event)
            yield _line(_final(task, kind))
        finally:
            if not task.done():  # the client went away (or the server is stopping)
                self.gone.set()


def _line(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _final(task: asyncio.Task, kind: str) -> dict:
    try:
        return {"type": kind, **task.result()}
    except HTTPException as exc:
        return {"type": "error", "status": exc.status_code, "detail": exc.detail}
    except Exception as exc:  # noqa: BLE001 - the status line went out long ago
        log.error(f"unexpected {type(exc).__name__}: {exc}", exc_info=exc)
        return {"type": "error", "status": 500, "detail": "internal error"}


def _ended(task: asyncio.Task) -> None:
    _running.discard(task)
    if not task.cancelled() and isinstance(task.exception(), ClientGone):
        log.info("a streamed request's client went away; its work was stopped")


async def progress_response(task: asyncio.Task, feed: ProgressFeed, kind: str):
    """An NDJSON StreamingResponse of `task` (a request's work, reporting to `feed`)
    once its work has started; before that, its failure raised as it is (an
    HTTPException keeps its status code)."""
    _running.add(task)
    task.add_done_callback(_ended)
    try:
        first = await feed.next_or_end(task)
    except asyncio.CancelledError:
        feed.gone.set()
        raise
    if first is None:  # it ended before its work started: its failure raised here
        task.result()
    return StreamingResponse(
        feed.lines(task, kind),
        media_type=NDJSON,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
