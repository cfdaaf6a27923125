"""Which timestamps (seconds from the first frame) make up a clip.

Timestamps, not frame indices, so variable frame rates and odd containers sample the
same moments of real time.
"""

from __future__ import annotations


def clip_at(start: float, num_frames: int, fps: float, end: float | None) -> list[float]:
    """`num_frames` timestamps at `fps` from `start`, stopping before `end`."""
    times = [start + k / fps for k in range(num_frames)]
    if end is not None:
        times = [t for t in times if t < end] or [start]
    return times


def middle_clip(duration: float | None, num_frames: int, fps: float) -> list[float]:
    """One clip centred on the middle of the video (from 0 when the video is shorter)."""
    length = num_frames / fps
    if duration is None:
        return clip_at(0.0, num_frames, fps, None)
    start = max(0.0, (duration - length) / 2)
    return clip_at(start, num_frames, fps, duration)


def spread_clip(start: float, end: float, num_frames: int) -> list[float]:
    """`num_frames` timestamps at the centres of equal parts of [start, end).

    A video of exactly `num_frames` frames gives each of its frames once.
    """
    step = (end - start) / num_frames
    return [start + (k + 0.5) * step for k in range(num_frames)]


# Rate assumed for a clip spread over a video whose duration cannot be found.
FALLBACK_FPS = 25.0


def uniform_clips(
    duration: float | None, num_frames: int, fps: float | None, num_clips: int
) -> list[list[float]]:
    """`num_clips` clips with their centres spread evenly over the whole video.

    With `fps` None each clip's frames are spread over its share of the video.
    """
    if num_clips < 1:
        raise ValueError("num_clips must be at least 1")
    if fps is None:
        if not duration:
            return [clip_at(0.0, num_frames, FALLBACK_FPS, None)]
        part = duration / num_clips
        return [spread_clip(i * part, (i + 1) * part, num_frames) for i in range(num_clips)]
    length = num_frames / fps
    if duration is None or num_clips == 1 or duration <= length:
        return [middle_clip(duration, num_frames, fps)]
    # Centres at (i + 0.5) / n of the duration, clamped so each clip fits.
    clips = []
    for i in range(num_clips):
        centre = (i + 0.5) * duration / num_clips
        start = min(max(0.0, centre - length / 2), duration - length)
        clips.append(clip_at(start, num_frames, fps, duration))
    return clips


def window_count(duration: float, window: float, stride: float) -> int:
    """How many windows `window_starts` gives, without making them."""
    if duration <= window:
        return 1
    count = int((duration - window) / stride + 1e-9) + 1
    return count + (duration - ((count - 1) * stride + window) > 1e-6)


def window_starts(duration: float, window: float, stride: float) -> list[float]:
    """Starts of windows every `stride` s; a last one ends at the end of the video."""
    if duration <= window:
        return [0.0]
    count = int((duration - window) / stride + 1e-9) + 1
    starts = [round(k * stride, 6) for k in range(count)]
    if duration - (starts[-1] + window) > 1e-6:
        starts.append(round(duration - window, 6))
    return starts


def window_times(start: float, end: float, num_frames: int, fps: float | None) -> list[float]:
    """Timestamps of one window's frames, as a model samples a clip: every 1/fps from the
    start, or `num_frames` spread over the window when the model has no fixed rate."""
    if fps:
        count = max(1, round((end - start) * fps))
        return [round(start + k / fps, 6) for k in range(count)]
    return [round(t, 6) for t in spread_clip(start, end, num_frames)]
