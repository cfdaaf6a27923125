"""Reading video: probe, choose timestamps, decode the chosen frames, prepare them."""

from .decode import DecodedFrames, FrameStream, read_frames
from .probe import VideoInfo, probe
from .sampling import clip_at, middle_clip, spread_clip, uniform_clips

__all__ = [
    "DecodedFrames",
    "FrameStream",
    "VideoInfo",
    "clip_at",
    "middle_clip",
    "probe",
    "read_frames",
    "spread_clip",
    "uniform_clips",
]
