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
    would have returned its item. `close` stops the thread and closes `items`."""

    def __init__(
        self, items: Iterator, depth: int, timeout: float | None = None, what: str = "work"
    ):
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._ended = False
        self.timeout, self.what = timeout, what
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._fill, items), name="vidclass-ahead", daemon=True
        )
        self._thread.start()

    def _fill(self, items: Iterator) -> None:
        spent = 0.0
        try:
            while not self._stop.is_set():
                left = None if self.timeout is None else self.timeout - spent
                start = time.monotonic()
                with time_limit(left, self.what, limit=self.timeout):
                    item = next(items)
                spent += time.monotonic() - start
                if not self._put((item, None)):
                    return
        except StopIteration:
            self._put((None, StopIteration()))
        except BaseException as exc:  # raised where the caller takes it
            self._put((None, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_PUT_WAIT)
                return True
            except queue.Full:
                continue
        return False

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
