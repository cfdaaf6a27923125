"""Live video: labels from a camera or a stream as it plays (`vidclass watch`)."""

from __future__ import annotations

from .capture import Gap
from .session import LiveSegment, LiveSession, LiveSummary, LiveWindow
from .sources import ChunkFeed, Source, parse_source

__all__ = [
    "ChunkFeed",
    "Gap",
    "LiveSegment",
    "LiveSession",
    "LiveSummary",
    "LiveWindow",
    "Source",
    "parse_source",
]
