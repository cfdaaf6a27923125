"""What a video file holds: size, frame rate, duration, rotation."""

from __future__ import annotations

import os
from dataclasses import dataclass

import av

from ..limits import check_time
from .container import open_video


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int  # as coded, before rotation
    height: int
    fps: float | None  # average rate from the container, if it says
    duration: float | None  # seconds from the video stream's first frame; None if unknown
    start_time: float  # presentation time of the first frame, in seconds
    codec: str
    has_audio: bool
    duration_from_header: bool  # False when it had to be measured by scanning packets


def _stream_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _scan_duration(container, stream, start: float) -> float | None:
    """Last packet end time, by demuxing without decoding (cheap: no pixels)."""
    end = None
    try:
        for packet in container.demux(stream):
            check_time()
            if packet.pts is None or packet.time_base is None:
                continue
            t = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = t if end is None else max(end, t)
    except av.error.FFmpegError:
        pass  # a damaged tail: keep what was read
    return None if end is None else end - start


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the header (and, when it has no duration, the packet timestamps)."""
    container, stream = open_video(path)
    with container:
        tb = stream.time_base
        start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        duration = _stream_duration(container, stream)
        from_header = duration is not None and duration > 0
        if not from_header:
            duration = _scan_duration(container, stream, start)
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            path=str(path),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if rate else None,
            duration=duration,
            start_time=start,
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
            duration_from_header=from_header,
        )
