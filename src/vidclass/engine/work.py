"""A description of the work on each video: what to sample, and what the model returns.

The same description runs in this process, in local decoding processes or on a cluster;
the executors and the driver read it, and nothing else decides how a video is cut into
clips or what comes back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import VidclassError
from ..label_choice import LabelChoice
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..models.spec import InputSpec

OUTPUTS = ("scores", "features", "both", "trunk")


@dataclass(frozen=True)
class Clips:
    """`count` clips spread over the whole video (1: the middle clip); `flip` adds a
    mirrored copy of each (training augmentation). With `every`, one clip per `every`
    seconds of the video and at most `count`: a long video is summarised by all of it
    while a short one costs one clip."""

    count: int = 1
    flip: bool = False
    every: float | None = None

    def __post_init__(self):
        if self.count < 1:
            raise VidclassError(f"clips must be at least 1, got {self.count}")
        if self.every is not None and not (self.every > 0 and math.isfinite(self.every)):
            raise VidclassError(f"clips every must be a positive number, got {self.every}")


@dataclass(frozen=True)
class Windows:
    """Sliding windows of `window` seconds every `stride` seconds, across the video.
    `shared`: scored from one map of the whole video (engine.stretch), for a model that
    declares one (its `temporal_map`); else each window on its own."""

    window: float
    stride: float
    shared: bool = False

    def __post_init__(self):
        finite = math.isfinite(self.window) and math.isfinite(self.stride)
        if not finite or self.window <= 0 or self.stride <= 0:
            raise VidclassError(
                f"window and stride must be positive numbers, got {self.window} and {self.stride}"
            )


@dataclass(frozen=True)
class Work:
    """What to do with each video.

    outputs: "scores" (each clip's class scores), "features" (the backbone features a
    head sees), "both" (from one forward pass, what a gallery stores) or "trunk" (the
    frozen part's maps, for fine-tuning). top_k: predictions per video (clips).
    video_timeout: seconds a video's decoding may take (None: no limit). unknown: each
    clip's ood_score with its scores, and the model's unknown answer (vidclass.unknown).
    """

    sampling: Clips | Windows = Clips()
    outputs: str = "scores"
    top_k: int = 5
    video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT
    unknown: bool = True

    def __post_init__(self):
        if self.outputs not in OUTPUTS:
            raise VidclassError(f"unknown outputs {self.outputs!r}; choose one of {OUTPUTS}")
        if self.top_k < 1:
            raise VidclassError(f"top_k must be at least 1, got {self.top_k}")
        if self.video_timeout is not None and not self.video_timeout > 0:
            raise VidclassError(f"video_timeout must be more than 0, got {self.video_timeout}")

    @property
    def shared_windows(self) -> bool:
        """Windows scored from one map of each video (engine.stretch)."""
        return isinstance(self.sampling, Windows) and self.sampling.shared


@dataclass(frozen=True)
class ModelRecipe:
    """How a model is loaded again elsewhere (a cluster's workers): the function that
    loaded it and what it was given."""

    loader: Callable  # (name, precision, threads, device=, runtime=) -> a loaded model
    name: str
    precision: str = "auto"
    threads: int | None = None
    labels: LabelChoice | None = None  # what with_labels was given, if anything
    runtime: str = "auto"

    def load(self, device: str):
        model = self.loader(
            self.name, self.precision, self.threads, device=device, runtime=self.runtime
        )
        return model.with_labels(self.labels) if self.labels is not None else model


class ClipModel(Protocol):
    """What the driver needs of a loaded model (a VideoClassifier is one)."""

    @property
    def spec(self) -> InputSpec: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def batch_size_hint(self) -> int: ...

    @property
    def min_score(self) -> float | None: ...  # predictions keep labels from this score

    def batch(self, clips: list[np.ndarray]) -> Any:
        """The model's input for uint8 clips of one shape (see video.transforms)."""
        ...

    # Batches, logits, scores and features: numpy arrays, whatever runs the model.
    def logits(self, clips: np.ndarray) -> np.ndarray: ...

    def activate(self, logits: np.ndarray) -> np.ndarray: ...

    def embed(self, clips: np.ndarray) -> np.ndarray: ...

    def scores_and_features(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def trunk(self, clips: np.ndarray) -> np.ndarray: ...

    def logits_from_features(self, features: np.ndarray) -> np.ndarray: ...

    # Shared windows (engine.stretch): the map clips are read from, None where the
    # model has none, and a stream of it for steps of `step_frames`.
    @property
    def temporal_map(self): ...

    def map_stream(self, step_frames: int): ...


def forward(model: ClipModel, outputs: str, x: np.ndarray, detector=None):
    """(scores, features, ood scores) of a batch of prepared clips, each None where not
    asked for: ood scores with scores where a `detector` (vidclass.unknown) is given,
    from the same pass (one whose detector needs features gets them too)."""
    if detector is not None and outputs in ("scores", "both"):
        if detector.needs_features or outputs == "both":
            scores, features = model.scores_and_features(x)
        else:
            scores, features = model.activate(model.logits(x)), None
        ood = detector.score(scores, features)
        return scores, features if outputs == "both" else None, ood
    return (*_forward(model, outputs, x), None)


def from_features(model: ClipModel, outputs: str, features: np.ndarray, detector=None):
    """What `forward` gives, for clips whose features are known (engine.stretch)."""
    scores = ood = None
    if outputs in ("scores", "both"):
        scores = model.activate(model.logits_from_features(features))
        if detector is not None:
            ood = detector.score(scores, features)
    return scores, features if outputs != "scores" else None, ood


def _forward(model: ClipModel, outputs: str, x: np.ndarray):
    if outputs == "scores":
        return model.activate(model.logits(x)), None
    if outputs == "both":
        return model.scores_and_features(x)
    if outputs == "trunk":
        return None, model.trunk(x)
    return None, model.embed(x)


def stack(rows: list) -> np.ndarray | None:
    """Rows (1-D tensors or arrays on the CPU) as one array."""
    return np.stack([np.asarray(row) for row in rows]) if rows else None
