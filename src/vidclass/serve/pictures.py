"""Pictures of moments for the page, decoded when asked for: a few at a time (a page of
search results asks for dozens at once), the rest waiting up to a bound, each within the
request's deadline, waiting included; one decode for any number of requests for the
same picture; the latest ones kept, so a page shown again costs nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from fastapi import HTTPException

from ..limits import time_limit

AT_ONCE = 2  # decodes at a time: the CPU is the model's first
MAX_WAITING = 64  # requests for pictures being made or waiting; past this 503
KEPT = 256  # pictures kept (about 10 KB each)


class MomentPictures:
    """Used on the server's event loop only (no locks needed)."""

    def __init__(self, at_once: int = AT_ONCE, waiting: int = MAX_WAITING, kept: int = KEPT):
        self.kept: OrderedDict[tuple, object] = OrderedDict()
        self.size = kept
        self.at_once = at_once
        self.waiting = waiting
        self.asked = 0  # requests being answered, decoding or waiting
        self.making: dict[tuple, asyncio.Future] = {}
        self.askers: dict[tuple, int] = {}  # requests waiting for each picture being made
        self._slots: asyncio.Semaphore | None = None

    async def get(
        self,
        key: tuple,
        make: Callable,
        timeout: float,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ):
        """The picture for `key`: kept, being made for another request, or `make()` in
        a thread; all within `timeout` seconds. `gone()`: whether the asker has left
        (checked once a slot is free, so abandoned asks cost no decoding)."""
        found = self.kept.get(key)
        if found is not None:
            self.kept.move_to_end(key)
            return found
        if self.asked >= self.waiting:
            raise HTTPException(
                503, "busy: too many pictures asked for at once", headers={"Retry-After": "2"}
            )
        self.asked += 1
        try:
            return await asyncio.wait_for(self._shared(key, make, timeout, gone), timeout)
        finally:
            self.asked -= 1

    async def _shared(self, key, make, timeout, gone):
        making = self.making.get(key)
        if making is None:
            making = asyncio.ensure_future(self._make(key, make, timeout, gone))
            self.making[key] = making
            making.add_done_callback(lambda f: self._done(key, f))
        self.askers[key] = self.askers.get(key, 0) + 1
        try:  # shielded: one asker timing out does not stop the others' picture
            return await asyncio.shield(making)
        finally:
            self.askers[key] -= 1
            if not self.askers[key]:
                del self.askers[key]

    def _done(self, key, making: asyncio.Future) -> None:
        if self.making.get(key) is making:
            del self.making[key]
        if not making.cancelled():
            making.exception()  # seen here, whether or not an asker was left to see it

    async def _make(self, key, make, timeout, gone):
        if self._slots is None:  # made on the server's own loop
            self._slots = asyncio.Semaphore(self.at_once)
        async with self._slots:
            if self.askers.get(key, 0) == 0 or (
                gone is not None and self.askers[key] == 1 and await gone()
            ):
                raise HTTPException(499, "nobody waits for this picture any more")

            def limited():
                with time_limit(timeout, "a picture"):
                    return make()

            picture = await asyncio.to_thread(limited)
        self.kept[key] = picture
        while len(self.kept) > self.size:
            self.kept.popitem(last=False)
        return picture

    def close(self) -> None:
        for making in self.making.values():
            with contextlib.suppress(Exception):
                making.cancel()
