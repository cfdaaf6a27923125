"""Segments as SRT or WebVTT subtitles, so a player shows the label over the video."""

from __future__ import annotations

from .timelines import Segment


def _clock(seconds: float, decimal: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def _text(seg: Segment) -> str:
    return f"{seg.label} ({seg.score:.2f})"


def to_srt(segments: list[Segment]) -> str:
    cues = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{_text(s)}\n"
        for i, s in enumerate(segments, 1)
    ]
    return "\n".join(cues)


def to_vtt(segments: list[Segment]) -> str:
    cues = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{_text(s)}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(cues)
