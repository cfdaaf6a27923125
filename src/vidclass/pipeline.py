"""VideoClassifier: a loaded model with its preprocessing, and the verbs that run it
(classify, timeline, classify_many) through the engine's one driver."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from .engine import Clips, Driver, InProcess, Work, executor_for
from .errors import VidclassError
from .limits import DEFAULT_VIDEO_TIMEOUT
from .models import DEFAULT_MODEL, get_entry, hf, trained
from .models.registry import is_registered
from .models.spec import ModelEntry
from .models.weights import load_state_dict
from .results import Prediction, VideoResult, top_k
from .runtime import configure_threads, resolve_precision, tune_allocator
from .video.clips import read_clip_frames
from .video.transforms import frames_to_tensor

__all__ = ["Prediction", "VideoClassifier", "VideoResult", "load_model"]

log = logging.getLogger("vidclass")


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
        when it is asked for (one float clip in memory at a time)."""
        for frames in self.clip_frames(path, clips):
            yield frames_to_tensor(frames, self.spec)

    def read_clips(self, path: str | os.PathLike, clips: int = 1) -> list[torch.Tensor]:
        """`clips` clips spread over the video, each a prepared (C, T, H, W) tensor."""
        return list(self.iter_clips(path, clips))

    def run(self, path: str | os.PathLike, work: Work) -> VideoResult:
        """One video through the engine, in this process: its VideoResult, or its error
        raised as VidclassError."""
        return next(Driver(self, work, InProcess(raise_errors=True)).run([path]))

    def scores(self, path: str | os.PathLike, clips: int = 1) -> np.ndarray:
        """Class scores (probabilities) for a video, averaged over `clips` clips."""
        return self.run(path, Work(Clips(clips))).scores

    def top_k(self, scores: np.ndarray, k: int) -> list[dict]:
        return top_k(self.labels, scores, k)

    def classify(self, path: str | os.PathLike, top_k: int = 5, clips: int = 1) -> list[dict]:
        """Top-k `[{"label", "score"}, ...]`, best first, like transformers' pipeline."""
        return self.run(path, Work(Clips(clips), top_k=top_k)).predictions

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
        work = Work(Clips(clips), top_k=top_k, video_timeout=video_timeout)
        paths = [str(p) for p in paths]
        return Driver(self, work, executor_for(workers, len(paths)), batch_size).run(paths)


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
