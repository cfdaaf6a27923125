"""Bounds on the work one video or one request may cause: pixels, memory, windows, time.

A broken or hostile file can claim any size, duration or frame count. The size and
memory bounds are checked from what a file claims before decoding starts; the time
limit stops work that goes on anyway (checked between packets, clips and windows).
Each bound can be raised with an environment variable for unusual but honest inputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import VidclassError


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        raise VidclassError(f"${name} must be a number") from None
    return value if value > 0 else default


def max_frame_pixels() -> int:
    """Pixels of one frame as stored: 8K video passes, a 16000x16000 GIF does not."""
    return int(_env_number("VIDCLASS_MAX_FRAME_PIXELS", 8192 * 8192))


def max_frame_bytes() -> int:
    """RGB bytes of the decoded frames one video may hold at once (its clips, or one
    timeline window), so memory stays bounded whatever --clips or --window asks."""
    return int(_env_number("VIDCLASS_MAX_FRAME_MB", 2048) * (1 << 20))


def max_windows() -> int:
    """Timeline windows in one video: a day at the default 1 s stride."""
    return int(_env_number("VIDCLASS_MAX_WINDOWS", 100_000))


# Seconds one video may take in batch, index and train before it is stopped.
DEFAULT_VIDEO_TIMEOUT = 600.0


def check_frame_size(width: int, height: int, what: str) -> None:
    limit = max_frame_pixels()
    if width * height > limit:
        raise VidclassError(
            f"{what}: frames of {width}x{height} are over the limit of {limit / 1e6:g} "
            "megapixels (VIDCLASS_MAX_FRAME_PIXELS raises it)"
        )


def check_frame_memory(frames: int, width: int, height: int, what: str) -> None:
    """`frames` decoded RGB frames of width x height, held at once, must fit the budget."""
    need = frames * width * height * 3
    limit = max_frame_bytes()
    if need > limit:
        raise VidclassError(
            f"{what}: {frames} frames of {width}x{height} would need {need >> 20} MB, over "
            f"the limit of {limit >> 20} MB (fewer clips or a shorter window; "
            "VIDCLASS_MAX_FRAME_MB raises it)"
        )


class TimeLimitExceeded(VidclassError):
    """Work stopped at its deadline."""


# (monotonic deadline, message) of the innermost time limit in effect, if any.
_deadline: ContextVar[tuple[float, str] | None] = ContextVar("vidclass_deadline", default=None)


@contextmanager
def time_limit(seconds: float | None, what: str, limit: float | None = None) -> Iterator[None]:
    """Work inside must finish within `seconds` (None: no limit): `check_time` raises
    TimeLimitExceeded after that. Nested limits keep the earlier deadline. `limit`: the
    limit to name in the message where `seconds` is what is left of it."""
    if seconds is None:
        yield
        return
    end = time.monotonic() + seconds
    outer = _deadline.get()
    if outer is not None and outer[0] <= end:
        yield
        return
    said = seconds if limit is None else limit
    token = _deadline.set((end, f"{what} took over {said:g} s; stopped"))
    try:
        yield
    finally:
        _deadline.reset(token)


def check_time() -> None:
    """Raise TimeLimitExceeded if the time limit in effect has passed; cheap enough to
    call for every packet."""
    limit = _deadline.get()
    if limit is not None and time.monotonic() > limit[0]:
        raise TimeLimitExceeded(limit[1])


def remaining_time() -> float | None:
    limit = _deadline.get()
    return None if limit is None else limit[0] - time.monotonic()
