"""Items of an iterator made ahead in a thread of their own (a video's next steps decoded
while the model runs on the last), in the caller's context, so its time limits hold."""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Iterator

from ..limits import time_limit

_PUT_WAIT = 0.1  # seconds between looks at the stop flag while the queue is full


class Ahead:
    """Iterates `items` up to `depth` items ahead. Time spent making items (not waiting
    for the caller to take them) counts against `timeout` seconds (None: no limit),
    named `what` in the error. An exception in `items` is raised by the `next` that
    would have returned its item. `close` (or dropping it) stops the thread, which
    closes `items`."""

    def __init__(
        self, items: Iterator, depth: int, timeout: float | None = None, what: str = "work"
    ):
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._ended = False
        context = contextvars.copy_context()
        # The thread holds the queue and the flag, not this object, so dropping it stops it.
        self._thread = threading.Thread(
            target=context.run,
            args=(_fill, self._queue, self._stop, items, timeout, what),
            name="vidclass-ahead",
            daemon=True,
        )
        self._thread.start()

    def __iter__(self) -> Ahead:
        return self

    def __next__(self):
        if self._ended:
            raise StopIteration
        item, error = self._queue.get()
        if error is not None:
            self._ended = True
            raise error
        return item

    def close(self) -> None:
        """The thread stops once the item it is making is made (it closes `items`)."""
        self._stop.set()

    __del__ = close


def _fill(out: queue.Queue, stop: threading.Event, items: Iterator, timeout, what: str) -> None:
    spent = 0.0
    try:
        while not stop.is_set():
            left = None if timeout is None else timeout - spent
            start = time.monotonic()
            with time_limit(left, what, limit=timeout):
                item = next(items)
            spent += time.monotonic() - start
            if not _put(out, stop, (item, None)):
                return
    except StopIteration:
        _put(out, stop, (None, StopIteration()))
    except BaseException as exc:  # raised where the caller takes it
        _put(out, stop, (None, exc))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _put(out: queue.Queue, stop: threading.Event, entry) -> bool:
    while not stop.is_set():
        try:
            out.put(entry, timeout=_PUT_WAIT)
            return True
        except queue.Full:
            continue
    return False
