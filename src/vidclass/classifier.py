"""Classifier: a loaded model's labels and preprocessing, and the verbs that run it
(classify, timeline, classify_many) through the engine's one driver, and everything
after the logits (activation, label choice, top-k), in numpy. Subclasses run only the
forward passes: VideoClassifier through torch (vidclass.torch_classifier), ExportedClassifier
from an exported folder without torch (vidclass.runtimes.exported)."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .engine import Clips, Driver, InProcess, ModelRecipe, Work, executor_for
from .errors import VidclassError
from .label_choice import NEEDS_LABELS, LabelChoice, as_choice, match_labels
from .limits import DEFAULT_VIDEO_TIMEOUT
from .models.spec import ModelEntry
from .options import check
from .results import VideoResult, activate, top_k
from .unknown import Detector, from_config
from .video.clips import read_clip_frames
from .video.transforms import clip_to_array, stack_clip

log = logging.getLogger("vidclass")


class Classifier:
    """A loaded model's labels and verbs; a subclass runs its forward passes (the
    engine's ClipModel: batch, logits, activate, embed, scores_and_features, trunk)."""

    runtime = "torch"
    precision = "fp32"
    # Threads the model computes on, where it holds its own (else the process's torch
    # setting, vidclass.cpu.configure_threads).
    runtime_threads: int | None = None

    def __init__(self, entry: ModelEntry):
        self.entry = entry
        self.recipe: ModelRecipe | None = None  # set where it was loaded by name
        self.chosen: tuple[int, ...] | None = None  # with_labels: the labels kept
        self.choice: LabelChoice | None = None  # with_labels: what was asked for
        self.min_score: float | None = None  # multi-label: predictions from this score
        self._base: Classifier | None = None  # with_labels: the model it views
        self._views: dict[LabelChoice, Classifier] = {}
        self._detector: Detector | None = None

    @property
    def batch_size_hint(self) -> int:
        """Clips per forward pass when none is asked for: what suits the device."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def identity(self) -> str:
        """What results files record as the model: its name, and the labels it keeps
        (results of other labels must not be mixed in)."""
        if self.choice is None:
            return self.name
        return f"{self.name} [{self.choice.describe()}]"

    @property
    def labels(self) -> tuple[str, ...]:
        if self.chosen is None:
            return self.entry.labels
        return tuple(self.entry.labels[i] for i in self.chosen)

    @property
    def zero_shot(self) -> bool:
        """A vision-language model: it scores whatever labels it is given."""
        return False

    def with_labels(self, labels) -> Classifier:
        """This model scoring only `labels` (names, or a LabelChoice). A closed-set model
        keeps those of its labels (matched ignoring case, `_` and `-`): softmax models
        renormalise over them, sigmoid ones keep their scores. A vision-language model
        scores the texts themselves, put into its prompt template, with a softmax over
        them or, multi-label, each on its own. The weights are shared; None gives the
        model itself."""
        choice = as_choice(labels)
        if choice is None:
            if self.zero_shot and self.choice is None:
                raise VidclassError(NEEDS_LABELS)
            return self
        base = self if self.choice is None else self._base
        if base.zero_shot:
            return base._zero_shot_view(choice)
        if choice.zero_shot_options:
            raise VidclassError(
                f"{self.name} is not a vision-language model: a prompt, multi-label and "
                "threshold apply only to one (X-CLIP, CLIP, SigLIP)"
            )
        view = copy.copy(base)
        view.chosen = match_labels(base.entry.labels, list(choice.names))
        view.choice, view._base = choice, base
        if base.recipe is not None:
            view.recipe = dataclasses.replace(base.recipe, labels=choice)
        return view

    def _zero_shot_view(self, choice: LabelChoice) -> Classifier:
        raise VidclassError(f"{self.name} is not a vision-language model")

    def _keep(self, logits: Any) -> Any:
        return logits if self.chosen is None else logits[:, list(self.chosen)]

    @property
    def spec(self):
        return self.entry.input

    @property
    def detector(self) -> Detector:
        """How far a clip lies outside what the model knows, and its threshold
        (vidclass.unknown): from the model's folder, else one minus the top score."""
        if self._base is not None:  # a label view: its model's
            return self._base.detector
        if self._detector is None:
            meta = self.entry.meta
            config = meta.get("unknown")
            bank = meta.get("unknown_bank")  # reads its bank, where it has one
            self._detector = from_config(config, bank() if callable(bank) and config else None)
        return self._detector

    @property
    def threshold(self) -> float | None:
        """Multi-label models: the score from which a label counts as a tag."""
        return self.entry.meta.get("threshold")

    # -- the forward pass (the subclass's: logits, embed, scores_and_features, trunk) -----
    def batch(self, clips: list[np.ndarray]) -> np.ndarray:
        """The model's input (N, C, T, H, W) float32 for uint8 clips of one shape
        (video.transforms.stack_clip)."""
        first = clips[0]
        x = np.empty((len(clips), first.shape[3], *first.shape[:3]), np.float32)
        for row, clip in zip(x, clips, strict=True):
            if clip.shape != first.shape:
                raise ValueError(f"clips of shapes {first.shape} and {clip.shape} in a batch")
            clip_to_array(clip, self.spec, row)
        return x

    def logits(self, clips: np.ndarray) -> np.ndarray:
        """Logits (N, labels kept) float32: the backend's forward pass."""
        raise NotImplementedError

    @property
    def temperature(self) -> float:
        """What a single-label model's logits are divided by before the softmax (1: as
        trained; vidclass train and calibrate fit one on held-out videos)."""
        return self.entry.meta.get("temperature") or 1.0

    def activate(self, logits: np.ndarray) -> np.ndarray:
        """Scores from logits, as the model's entry says (results.activate), at the
        model's temperature."""
        temperature = self.temperature
        if temperature != 1.0 and self.entry.activation == "softmax":
            logits = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
        return activate(logits, self.entry.activation)

    def logits_and_features(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits of the labels kept, backbone features) from one forward pass."""
        raise NotImplementedError

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """Logits of the labels kept from backbone features (N, D): the head alone."""
        raise NotImplementedError

    @property
    def temporal_map(self):
        """How clip features come from a map over time (models.i3d_stream.TemporalMap),
        which windows can then share (engine.stretch); None where they cannot."""
        return None

    def map_stream(self, step_frames: int):
        """A models.i3d_stream.MapStream of this model's map, in steps of `step_frames`."""
        raise VidclassError(f"{self.name} has no map over time for windows to share")

    def scores_and_features(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N, labels), features (N, D)) from one forward pass: what a gallery
        stores for each video, and what a feature-space unknown score needs."""
        logits, features = self.logits_and_features(clips)
        return self.activate(logits), features

    def joined(self, clips: np.ndarray) -> np.ndarray:
        """logits_and_features as one array (N, labels + D): what a server's batched
        forward pass hands back by rows."""
        return np.concatenate(self.logits_and_features(clips), axis=1)

    # -- video -------------------------------------------------------------------------
    def clip_frames(self, path: str | os.PathLike, clips: int = 1) -> list[list[np.ndarray]]:
        """The decoded frames of `clips` clips spread over the video: RGB uint8 (H, W, 3),
        upright and resized as the model asks, before cropping and scaling."""
        frames, warnings = read_clip_frames(path, self.spec, clips)
        for message in warnings:
            log.warning(message)
        return frames

    def read_clips(self, path: str | os.PathLike, clips: int = 1) -> list[np.ndarray]:
        """`clips` clips spread over the video, each prepared (C, T, H, W) float32: what
        `batch` makes of them, one clip at a time."""
        return [self.batch([stack_clip(f, self.spec)])[0] for f in self.clip_frames(path, clips)]

    def run(self, path: str | os.PathLike, work: Work) -> VideoResult:
        """One video through the engine, in this process: its VideoResult, or its error
        raised as VidclassError."""
        return next(Driver(self, work, InProcess(raise_errors=True)).run([path]))

    def scores(self, path: str | os.PathLike, clips: int = 1) -> np.ndarray:
        """Class scores (probabilities) for a video, averaged over `clips` clips."""
        return self.run(path, Work(Clips(clips))).scores

    def top_k(self, scores: np.ndarray, k: int) -> list[dict]:
        return top_k(self.labels, scores, k, self.min_score)

    def classify(
        self,
        path: str | os.PathLike,
        top_k: int = 5,
        clips: int = 1,
        labels: list[str] | LabelChoice | None = None,
    ) -> list[dict]:
        """Top-k `[{"label", "score"}, ...]`, best first, like transformers' pipeline;
        `labels`: only these (see `with_labels`). Whether the video lies outside what
        the model knows: `answer`."""
        check("classify", locals())
        model = self.with_labels(labels)
        return model.run(path, Work(Clips(clips), top_k=top_k, unknown=False)).predictions

    def answer(
        self,
        path: str | os.PathLike,
        top_k: int = 5,
        clips: int = 1,
        labels: list[str] | LabelChoice | None = None,
    ) -> VideoResult:
        """The video's VideoResult: `predictions` as `classify` gives them, `ood_score`
        (how far outside what the model knows) and `unknown` (past the model's
        threshold; None where it has none), in one pass."""
        check("classify", locals())
        return self.with_labels(labels).run(path, Work(Clips(clips), top_k=top_k))

    def timeline(
        self,
        path: str | os.PathLike,
        window: float | None = None,
        stride: float = 1.0,
        top_k: int = 3,
        smooth: int = 3,
        min_segment: float | None = None,
        labels: list[str] | LabelChoice | None = None,
        progress=None,
        unknown: str = "auto",
        per_window: bool = False,
    ):
        """Labels over time: top-k for sliding windows, segments of one label, and the
        top-k of the whole video (the mean of its windows).

        window/stride in seconds (default: the model's clip length, else 2 s; 1 s);
        smooth: windows averaged before segmenting; min_segment: seconds (2 strides);
        labels: only these (see `with_labels`); progress: called with (windows scored,
        windows in all or None) as they are; unknown: "auto" (each window's ood_score,
        and "unknown" segments where the model has a threshold) or "off"; per_window:
        score each window on its own, where the model would read all from one map of
        the video (its `temporal_map`).
        """
        from .timelines import compute

        check("timeline", locals())  # before the labels are encoded
        model = self.with_labels(labels)
        return compute(
            model, path, window, stride, top_k, smooth, min_segment, progress, unknown, per_window
        )

    def classify_many(
        self,
        paths: Iterable[str | os.PathLike],
        top_k: int = 5,
        clips: int = 1,
        workers: int = 0,
        batch_size: int | None = None,
        video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
        labels: list[str] | LabelChoice | None = None,
        unknown: str = "auto",
    ) -> Iterator[VideoResult]:
        """Classify each video; a bad file gives a result with its error, not an exception.

        workers: decoding processes running ahead of the model (0: decode in this one);
        batch_size: clips of different videos scored in one forward pass; labels: only
        these (see `with_labels`); unknown: "auto" (each result's ood_score and unknown)
        or "off". Results come in the order given.
        """
        check("classify", locals())
        model = self.with_labels(labels)
        work = Work(
            Clips(clips), top_k=top_k, video_timeout=video_timeout, unknown=unknown != "off"
        )
        paths = [str(p) for p in paths]
        executor = executor_for(workers, len(paths))
        return Driver(model, work, executor, batch_size, ordered=True).run(paths)
