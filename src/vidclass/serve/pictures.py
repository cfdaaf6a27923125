"""Pictures of moments for the page, decoded when asked for: a few at a time (a page of
search results asks for dozens at once), the rest waiting up to a bound, and the latest
ones kept, so a page shown again costs nothing."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable

from fastapi import HTTPException

from ..limits import time_limit

AT_ONCE = 2  # decodes at a time: the CPU is the model's first
MAX_WAITING = 64  # requests waiting for a decode; past this 503
KEPT = 256  # pictures kept (about 10 KB each)


class MomentPictures:
    def __init__(self, at_once: int = AT_ONCE, waiting: int = MAX_WAITING, kept: int = KEPT):
        self.kept: OrderedDict[tuple, object] = OrderedDict()
        self.size = kept
        self.lock = threading.Lock()
        self.at_once = at_once
        self.waiting = waiting
        self.queued = 0
        self._slots: asyncio.Semaphore | None = None

    def _cached(self, key: tuple):
        with self.lock:
            found = self.kept.get(key)
            if found is not None:
                self.kept.move_to_end(key)
            return found

    def _keep(self, key: tuple, picture) -> None:
        with self.lock:
            self.kept[key] = picture
            while len(self.kept) > self.size:
                self.kept.popitem(last=False)

    async def get(self, key: tuple, make: Callable, timeout: float):
        """The picture for `key`: kept, or `make()` in a thread within `timeout`."""
        found = self._cached(key)
        if found is not None:
            return found
        if self._slots is None:  # made on the server's own loop
            self._slots = asyncio.Semaphore(self.at_once)
        if self.queued >= self.waiting:
            raise HTTPException(
                503, "busy: too many pictures asked for at once", headers={"Retry-After": "2"}
            )
        self.queued += 1
        try:
            async with self._slots:

                def limited():
                    with time_limit(timeout, "a picture"):
                        return make()

                picture = await asyncio.wait_for(asyncio.to_thread(limited), timeout)
        finally:
            self.queued -= 1
        self._keep(key, picture)
        return picture
