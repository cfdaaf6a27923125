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
    "session",
]


def session(
    classifier,
    source,
    *,
    input_format: str | None = None,
    input_options: dict[str, str] | None = None,
    **options,
) -> LiveSession:
    """A LiveSession of a loaded model (a VideoClassifier, labels chosen) over `source`:
    a URL, a camera (/dev/videoN), a file being written, a named pipe, "-" (standard
    input) or a ChunkFeed. The source is checked now and opened when iteration starts."""
    return LiveSession(classifier, parse_source(source, input_format, input_options), **options)
