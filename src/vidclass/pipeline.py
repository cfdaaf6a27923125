"""VideoClassifier: a loaded model with its preprocessing, and the verbs that run it
(classify, timeline, classify_many) through the engine's one driver."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from .devices import place
from .engine import Clips, Driver, InProcess, ModelRecipe, Work, executor_for
from .errors import VidclassError
from .label_choice import LabelChoice, as_choice, match_labels
from .limits import DEFAULT_VIDEO_TIMEOUT
from .models import DEFAULT_MODEL, resolve
from .models.spec import ModelEntry
from .models.vision_language import (
    NEEDS_LABELS,
    LabelledModule,
    TextVideoModel,
    check_prompt,
    fill_prompt,
)
from .results import Prediction, VideoResult, top_k
from .runtime import configure_threads, tune_allocator
from .runtimes import pick_runtime, quantized_runtime, runtime_precision
from .runtimes.module import RuntimeModule
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
        device: str | torch.device | None = "auto",
    ):
        """`optimize=False` keeps the plain port (BatchNorm unfolded, contiguous tensors).
        `device`: auto (a GPU where torch sees one), cpu, cuda, cuda:N or mps; `precision`:
        auto (what the device does well), fp32, bf16 or fp16 (GPUs)."""
        self.entry = entry
        self.recipe: ModelRecipe | None = None  # set where it was loaded by name
        self.chosen: tuple[int, ...] | None = None  # with_labels: the labels kept
        self.choice: LabelChoice | None = None  # with_labels: what was asked for
        self.min_score: float | None = None  # multi-label: predictions from this score
        self.runtime = module.runtime if isinstance(module, RuntimeModule) else "torch"
        self._base: VideoClassifier | None = None  # with_labels: the model it views
        self._views: dict[LabelChoice, VideoClassifier] = {}
        self._text_model = module if isinstance(module, TextVideoModel) else None
        self.placement = place(device, precision)
        self.device = self.placement.device
        self.precision = self.placement.precision
        self.module = module.eval()
        # channels_last_3d is faster for 3D convs in every precision; a module that is
        # not conv-bound (a transformer) says so with `channels_last = False`.
        channels_last = optimize and module.channels_last
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        if optimize:
            self.module.fold_batchnorm()
        self.module = self.module.to(self.device, memory_format=self.memory_format)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @property
    def batch_size_hint(self) -> int:
        """Clips per forward pass when none is asked for: what suits the device."""
        return self.placement.default_batch_size

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
        return isinstance(self.module, TextVideoModel) or self._text_model is not None

    def with_labels(self, labels) -> VideoClassifier:
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

    def _zero_shot_view(self, choice: LabelChoice) -> VideoClassifier:
        cached = self._views.get(choice)
        if cached is not None:
            return cached
        meta = self.entry.meta
        prompt = check_prompt(choice.prompt if choice.prompt is not None else meta["prompt"])
        texts = [fill_prompt(prompt, name) for name in choice.names]
        cosine = choice.multi_label and not self._text_model.family.bias
        view = copy.copy(self)
        view.module = LabelledModule(self._text_model, texts, cosine=cosine).to(self.device)
        threshold = choice.threshold if choice.threshold is not None else meta["threshold"]
        view.entry = dataclasses.replace(
            self.entry,
            labels=choice.names,
            activation=("identity" if cosine else "sigmoid") if choice.multi_label else "softmax",
            meta={**meta, "prompt": prompt, "threshold": threshold},
        )
        view.choice, view._base, view._views = choice, self, {}
        view.min_score = threshold if choice.multi_label else None
        if self.recipe is not None:
            view.recipe = dataclasses.replace(self.recipe, labels=choice)
        if len(self._views) >= 16:  # a server sees many label sets: keep the 16 made last
            self._views.pop(next(iter(self._views)))
        self._views[choice] = view
        return view

    def _keep(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.chosen is None else logits[:, list(self.chosen)]

    @property
    def spec(self):
        return self.entry.input

    # -- model -------------------------------------------------------------------------
    def _inputs(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips on the model's device in its memory format (through pinned memory to
        a GPU, so the copy overlaps)."""
        if self.device.type == "cuda":
            clips = clips.pin_memory()
        x = clips.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format)

    def _autocast(self):
        dtype = self.placement.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    @torch.inference_mode()
    def logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) in fp32 on the CPU for a batch of prepared clips
        (N, C, T, H, W)."""
        with self._autocast():
            return self._keep(self.module(self._inputs(clips)).float()).cpu()

    @torch.inference_mode()
    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """Backbone features (N, D) in fp32: what a classification head sees."""
        with self._autocast():
            return self.module.embed(self._inputs(clips)).float().cpu()

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Vision-language models: texts (each put into the prompt template) in the
        space of `embed`'s video embeddings, (N, D) float32."""
        if self._text_model is None:
            raise VidclassError(f"{self.name} is not a vision-language model: it has no text")
        template = self.entry.meta["prompt"]
        texts = [fill_prompt(template, text) for text in texts]
        return self._text_model.encode_text(texts).float().cpu().numpy()

    @torch.inference_mode()
    def scores_and_features(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (N, classes), features (N, D)) from one forward pass: what a gallery
        stores for each video."""
        with self._autocast():
            features = self.module.embed(self._inputs(clips)).float()
        scores = self.activate(self._keep(self.module.head_logits(features).float()))
        return scores.cpu(), features.cpu()

    @torch.inference_mode()
    def trunk(self, clips: torch.Tensor) -> torch.Tensor:
        """The frozen part's output for `--finetune last-blocks` (fp32, contiguous)."""
        return self.module.trunk(self._inputs(clips)).float().contiguous().cpu()

    @property
    def threshold(self) -> float | None:
        """Multi-label models: the score from which a label counts as a tag."""
        return self.entry.meta.get("threshold")

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.entry.activation == "sigmoid":
            return torch.sigmoid(logits)
        if self.entry.activation == "identity":  # already scores (cosine similarities)
            return logits
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
        return top_k(self.labels, scores, k, self.min_score)

    def classify(
        self,
        path: str | os.PathLike,
        top_k: int = 5,
        clips: int = 1,
        labels: list[str] | LabelChoice | None = None,
    ) -> list[dict]:
        """Top-k `[{"label", "score"}, ...]`, best first, like transformers' pipeline;
        `labels`: only these (see `with_labels`)."""
        model = self.with_labels(labels)
        return model.run(path, Work(Clips(clips), top_k=top_k)).predictions

    def timeline(
        self,
        path: str | os.PathLike,
        window: float | None = None,
        stride: float | None = None,
        top_k: int = 3,
        smooth: int = 3,
        min_segment: float | None = None,
        labels: list[str] | LabelChoice | None = None,
    ):
        """Labels over time: top-k for sliding windows, and segments of one label.

        window/stride in seconds (default: the model's clip length, else 2 s / 1 s);
        smooth: windows averaged before segmenting; min_segment: seconds (2 strides);
        labels: only these (see `with_labels`).
        """
        from .timeline import compute

        model = self.with_labels(labels)
        return compute(model, path, window, stride, top_k, smooth, min_segment)

    def classify_many(
        self,
        paths: Iterable[str | os.PathLike],
        top_k: int = 5,
        clips: int = 1,
        workers: int = 0,
        batch_size: int | None = None,
        video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
        labels: list[str] | LabelChoice | None = None,
    ) -> Iterator[VideoResult]:
        """Classify each video; a bad file gives a result with its error, not an exception.

        workers: decoding processes running ahead of the model (0: decode in this one);
        batch_size: clips of different videos scored in one forward pass; labels: only
        these (see `with_labels`). Results come in the order given.
        """
        model = self.with_labels(labels)
        work = Work(Clips(clips), top_k=top_k, video_timeout=video_timeout)
        paths = [str(p) for p in paths]
        executor = executor_for(workers, len(paths))
        return Driver(model, work, executor, batch_size, ordered=True).run(paths)


def load_model(
    name: str = DEFAULT_MODEL,
    precision: str = "auto",
    threads: int | None = None,
    download: bool = True,
    device: str | None = "auto",
    runtime: str = "auto",
    expected_clips: int | None = None,
) -> VideoClassifier:
    """Load a model for reuse: a registered name (weights from the cache, fetched on
    first use), a folder written by `vidclass train` or `vidclass models quantize`, or a
    transformers video classifier as a local folder or hub id.

    device: "auto" (a GPU where torch sees one, else the CPU), "cpu", "cuda", "cuda:N" or
    "mps"; precision: "auto" (what the device does well: bf16 on a CPU with native bf16
    and on GPUs that have it, else fp32 on a CPU and fp16 on a GPU), "fp32", "bf16",
    "fp16", "int8" (a model made by `vidclass models quantize`, which runs in it by
    default); runtime: "auto" (OpenVINO for convolutional models on a CPU where it is
    installed, else torch), "torch", "openvino" or "onnxruntime" (see vidclass.runtimes);
    expected_clips: how many clips the caller will score, where it knows (auto keeps
    torch for a few, whose start is quicker).
    """
    placement = place(device, precision)  # a bad name fails before the weights load
    configure_threads(threads)
    tune_allocator()
    entry, module = resolve.load(name, download)
    int8_graph = entry.meta.get("graph")  # a quantized model: its backbone's int8 graph
    if int8_graph is not None:
        base = entry.meta["quantized"]["base"]
        chosen, computes_in = quantized_runtime(runtime, precision, base)
        module = RuntimeModule(
            module.fold_batchnorm(), chosen, computes_in, entry.name, graph=Path(int8_graph)
        )
    else:
        convertible = not isinstance(module, TextVideoModel)
        chosen = pick_runtime(
            runtime,
            placement.device.type,
            convertible,
            placement.precision,
            expected_clips,
        )
        computes_in = runtime_precision(chosen, placement.precision, precision)
        if chosen != "torch":
            module = RuntimeModule(
                module.fold_batchnorm(),
                chosen,
                computes_in,
                entry.name,
                fallback=runtime == "auto",  # what cannot be converted runs in torch
            )
    model = VideoClassifier(entry, module, computes_in, device=placement.device)
    model.recipe = ModelRecipe(load_model, str(name), precision, threads, runtime=runtime)
    return model


def load_backbone_module(name: str, download: bool = True) -> torch.nn.Module:
    """A pretrained model's plain module (BatchNorm unfolded), for training its blocks."""
    return resolve.load_pretrained(name, download)[1].eval()
