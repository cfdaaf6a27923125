"""Reading video: probe, choose timestamps, decode the chosen frames, prepare them."""

from .decode import DecodedFrames, read_frames
from .probe import VideoInfo, probe
from .sampling import middle_clip, uniform_clips

__all__ = ["DecodedFrames", "VideoInfo", "middle_clip", "probe", "read_frames", "uniform_clips"]
