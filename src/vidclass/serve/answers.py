"""A request's work and its answer: the video fetched (an upload, or a path under
--media), probed, and the work run in a request thread within --timeout; each failure
mapped onto its HTTP status. A request's forward passes go through the batcher to the
one model thread, so a long timeline never holds up a classify."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import HTTPException

from ..engine.driver import NonFiniteScores
from ..errors import StorageError, VidclassError
from ..limits import TimeLimitExceeded
from .inputs import VideoInput
from .state import Busy, ServerState
from .streaming import ProgressFeed, progress_response


class NotAVideo(VidclassError):
    """The file did not probe as a video (415, not 422)."""


async def nothing() -> None:
    """No video to fetch (`answer`'s first step for work that has none)."""
    return None


async def answer(state: ServerState, get_video, work: Callable, kind: str):
    """Get the video (`await get_video()`), probe it and run `work(model, path, name)` in
    a request thread, all within --timeout; map failures onto HTTP answers."""
    timeout = state.config.timeout
    deadline = time.monotonic() + timeout
    item: VideoInput | None = None

    def job():
        from ..video import probe

        if item is None:  # work without a video
            return work(state.model, None, None)
        try:
            probe(item.local)
        except TimeLimitExceeded:
            raise
        except VidclassError as exc:
            raise NotAVideo(str(exc)) from None
        return work(state.model, item.local, item.name)

    async def handle():
        nonlocal item
        item = await get_video()
        return await state.model_thread.run(job, deadline, kind)

    try:
        return await asyncio.wait_for(handle(), timeout)
    except Busy:
        raise HTTPException(
            503, "busy: too many requests in the queue", headers={"Retry-After": "5"}
        ) from None
    except (asyncio.TimeoutError, TimeLimitExceeded):
        raise HTTPException(504, f"{kind} took over {timeout:g} s") from None
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


async def streamed(state: ServerState, get_video, work: Callable, kind: str):
    """`answer` for work that reports progress, `work(model, path, name, report)`,
    answered with an NDJSON stream once the work has started: its progress, then its
    result as {"type": kind, ...} or {"type": "error", ...}. Failures before it starts
    raise as they do without a stream."""
    feed = ProgressFeed(asyncio.get_running_loop())

    def reporting(model, local, name):  # in a request thread
        feed.started()
        result = work(model, local, name, feed.report)
        feed.flush()
        return result

    task = asyncio.ensure_future(answer(state, get_video, reporting, kind))
    return await progress_response(task, feed, kind)


def _named(exc: Exception, item: VideoInput | None) -> str:
    """The error's text with a temporary file's path replaced by the name sent."""
    text = str(exc)
    if item is not None and item.tmp is not None:
        text = text.replace(item.tmp, item.name)
    return text
