"""VideoClassifier: sampler + decoder + transform + model + postprocess."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import VidclassError
from .limits import DEFAULT_VIDEO_TIMEOUT, check_time
from .models import DEFAULT_MODEL, get_entry, hf, trained
from .models.registry import is_registered
from .models.spec import ModelEntry
from .models.weights import load_state_dict
from .runtime import configure_threads, resolve_precision, tune_allocator
from .video.clips import read_clip_frames
from .video.transforms import frames_to_tensor

log = logging.getLogger("vidclass")


@dataclass
class Prediction:
    label: str
    score: float

    def as_dict(self) -> dict:
        return {"label": self.label, "score": self.score}


@dataclass
class VideoResult:
    """The outcome for one video in a run over many: predictions or an error.

    `scores` holds every label's score; `features` the backbone features per clip
    (views, D) where those were asked for instead.
    """

    video: str
    predictions: list[dict] | None = None
    error: str | None = None
    scores: np.ndarray | None = field(default=None, repr=False)
    features: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        if self.error is not None:
            return {"video": self.video, "error": self.error}
        return {"video": self.video, "predictions": self.predictions}


class VideoClassifier:
    """A loaded model with its preprocessing; reuse it for many videos."""

    def __init__(
        self,
        entry: ModelEntry,
        module: torch.nn.Module,
        precision: str = "auto",
        optimize: bool = True,
    ):
        """`optimize=False` keeps the plain port (BatchNorm unfolded, contiguous tensors)."""
        self.entry = entry
        self.precision = resolve_precision(precision)
        self.module = module.eval()
        # channels_last_3d is faster for 3D convs on CPU in both precisions; a module
        # that is not conv-bound (a transformer) says so with `channels_last = False`.
        channels_last = optimize and getattr(module, "channels_last", True)
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        if optimize and hasattr(self.module, "fold_batchnorm"):
            self.module.fold_batchnorm()
        self.module = self.module.to(memory_format=self.memory_format)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.entry.labels

    @property
    def spec(self):
        return self.entry.input

    # -- model -------------------------------------------------------------------------
    @torch.inference_mode()
    def logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) in fp32 for a batch of prepared clips (N, C, T, H, W)."""
        x = clips.contiguous(memory_format=self.memory_format)
        if self.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.module(x).float()
        return self.module(x).float()

    @torch.inference_mode()
    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """Backbone features (N, D) in fp32: what a classification head sees."""
        if not hasattr(self.module, "embed"):
            raise VidclassError(f"{self.name} cannot give features (no embed method)")
        x = clips.contiguous(memory_format=self.memory_format)
        if self.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.module.embed(x).float()
        return self.module.embed(x).float()

    @torch.inference_mode()
    def scores_and_features(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (N, classes), features (N, D)) from one forward pass: what a gallery
        stores for each video."""
        features = self.embed(clips)
        return self.activate(self.module.head_logits(features).float()), features

    @torch.inference_mode()
    def trunk(self, clips: torch.Tensor) -> torch.Tensor:
        """The frozen part's output for `--finetune last-blocks` (fp32, contiguous)."""
        x = clips.contiguous(memory_format=self.memory_format)
        return self.module.trunk(x).float().contiguous()

    @property
    def threshold(self) -> float | None:
        """Multi-label models: the score from which a label counts as a tag."""
        return self.entry.meta.get("threshold")

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.entry.activation == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)

    # -- video -------------------------------------------------------------------------
    def clip_frames(self, path: str | os.PathLike, clips: int = 1) -> list[list[np.ndarray]]:
        """The decoded frames of `clips` clips spread over the video: RGB uint8 (H, W, 3),
        upright and resized as the model asks, before cropping and scaling."""
        frames, warnings = read_clip_frames(path, self.spec, clips)
        for message in warnings:
            log.warning(message)
        return frames

    def iter_clips(self, path: str | os.PathLike, clips: int = 1) -> Iterator[torch.Tensor]:
        """`clips` clips spread over the video, each a prepared (C, T, H, W) tensor made
        when it is asked for (one float clip in memory at a time); the time limit in
        effect is checked before each."""
        groups = self.clip_frames(path, clips)
        if len(groups[0]) < self.spec.pad_to:
            log.info(f"{path}: short video, frames repeated up to {self.spec.pad_to}")
        for frames in groups:
            check_time()
            yield frames_to_tensor(frames, self.spec)

    def read_clips(self, path: str | os.PathLike, clips: int = 1) -> list[torch.Tensor]:
        """`clips` clips spread over the video, each a prepared (C, T, H, W) tensor."""
        return list(self.iter_clips(path, clips))

    def scores(self, path: str | os.PathLike, clips: int = 1) -> np.ndarray:
        """Class scores (probabilities) for a video, averaged over `clips` clips."""
        probs = [self.activate(self.logits(c[None]))[0] for c in self.iter_clips(path, clips)]
        return torch.stack(probs).mean(dim=0).numpy()

    def top_k(self, scores: np.ndarray, k: int) -> list[dict]:
        k = max(1, min(k, len(self.labels)))
        order = np.argsort(-scores, kind="stable")[:k]
        return [Prediction(self.labels[i], float(scores[i])).as_dict() for i in order]

    def classify(self, path: str | os.PathLike, top_k: int = 5, clips: int = 1) -> list[dict]:
        """Top-k `[{"label", "score"}, ...]`, best first, like transformers' pipeline."""
        if top_k < 1:
            raise VidclassError(f"top_k must be at least 1, got {top_k}")
        if clips < 1:
            raise VidclassError(f"clips must be at least 1, got {clips}")
        return self.top_k(self.scores(path, clips), top_k)

    def timeline(
        self,
        path: str | os.PathLike,
        window: float | None = None,
        stride: float | None = None,
        top_k: int = 3,
        smooth: int = 3,
        min_segment: float | None = None,
    ):
        """Labels over time: top-k for sliding windows, and segments of one label.

        window/stride in seconds (default: the model's clip length, else 2 s / 1 s);
        smooth: windows averaged before segmenting; min_segment: seconds (2 strides).
        """
        from .timeline import compute

        return compute(self, path, window, stride, top_k, smooth, min_segment)

    def classify_many(
        self,
        paths: Iterable[str | os.PathLike],
        top_k: int = 5,
        clips: int = 1,
        workers: int = 0,
        batch_size: int = 1,
        video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
    ) -> Iterator[VideoResult]:
        """Classify each video; a bad file gives a result with its error, not an exception.

        workers: decoding processes running ahead of the model (0: decode in this one);
        batch_size: clips of different videos scored in one forward pass. With either,
        results come as videos finish, not always in the order given.
        """
        from .batch import BatchRunner

        runner = BatchRunner(
            self,
            top_k,
            clips,
            workers=workers,
            batch_size=batch_size,
            video_timeout=video_timeout,
        )
        return runner.run(paths)


def load_model(
    name: str = DEFAULT_MODEL,
    precision: str = "auto",
    threads: int | None = None,
    download: bool = True,
) -> VideoClassifier:
    """Load a model for reuse: a registered name (weights from the cache, fetched on
    first use), a folder written by `vidclass train`, or a transformers video
    classifier as a local folder or hub id.

    precision: "auto" (bf16 where the CPU has native bf16, else fp32), "fp32" or "bf16".
    """
    precision = resolve_precision(precision)
    configure_threads(threads)
    tune_allocator()
    if trained.is_trained_dir(name):
        entry = trained.read_entry(name)
        config = entry.meta["config"]
        module = trained.load_module(name, config, lambda b: _load(b, download)[1])
    else:
        entry, module = _load(name, download)
    return VideoClassifier(entry, module, precision)


def load_backbone_module(name: str, download: bool = True) -> torch.nn.Module:
    """A pretrained model's plain module (BatchNorm unfolded), for training its blocks."""
    return _load(name, download)[1].eval()


def _load(name: str, download: bool) -> tuple[ModelEntry, torch.nn.Module]:
    """A pretrained model's entry and module with its weights: registered or transformers."""
    if not is_registered(name) and hf.is_hf_reference(name):
        entry = hf.read_entry(name, download=download)
        return entry, hf.load_module(entry, download=download)
    entry = get_entry(name)
    module = entry.build()
    module.load_state_dict(load_state_dict(entry, download=download))
    return entry, module
