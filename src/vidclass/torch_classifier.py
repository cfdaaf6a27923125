"""VideoClassifier: a Classifier whose forward passes run in torch (or, for the backbone,
in a runtime of vidclass.runtimes), and load_torch_model, which makes one."""

from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np
import torch

from .classifier import Classifier
from .cpu import configure_threads, tune_allocator
from .devices import place
from .errors import VidclassError
from .label_choice import LabelChoice
from .models import DEFAULT_MODEL, resolve
from .models.spec import ModelEntry
from .models.vision_language import LabelledModule, TextVideoModel, check_prompt, fill_prompt
from .results import Prediction, VideoResult
from .runtimes import pick_runtime, runtime_precision
from .runtimes.module import RuntimeModule

__all__ = ["Prediction", "VideoClassifier", "VideoResult", "load_torch_model"]

log = logging.getLogger("vidclass")


class VideoClassifier(Classifier):
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
        super().__init__(entry)
        self.runtime = module.runtime if isinstance(module, RuntimeModule) else "torch"
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
        self._stream_step = None  # map_stream's module, made when first asked for

    @property
    def batch_size_hint(self) -> int:
        """Clips per forward pass when none is asked for: what suits the device."""
        return self.placement.default_batch_size

    @property
    def zero_shot(self) -> bool:
        """A vision-language model: it scores whatever labels it is given."""
        return isinstance(self.module, TextVideoModel) or self._text_model is not None

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

    def _inputs(self, clips) -> torch.Tensor:
        """Clips (an array or tensor) on the model's device in its memory format
        (through pinned memory to a GPU, so the copy overlaps)."""
        clips = torch.as_tensor(clips)
        if self.device.type == "cuda":
            clips = clips.pin_memory()
        x = clips.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format)

    def _autocast(self):
        dtype = self.placement.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    @torch.inference_mode()
    def logits(self, clips) -> np.ndarray:
        """Logits (N, classes) in fp32 for a batch of prepared clips (N, C, T, H, W)."""
        with self._autocast():
            return self._keep(self.module(self._inputs(clips)).float().cpu().numpy())

    @torch.inference_mode()
    def embed(self, clips) -> np.ndarray:
        """Backbone features (N, D) in fp32: what a classification head sees."""
        with self._autocast():
            return self.module.embed(self._inputs(clips)).float().cpu().numpy()

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Vision-language models: texts (each put into the prompt template) in the
        space of `embed`'s video embeddings, (N, D) float32."""
        if self._text_model is None:
            raise VidclassError(f"{self.name} is not a vision-language model: it has no text")
        template = self.entry.meta["prompt"]
        texts = [fill_prompt(template, text) for text in texts]
        return self._text_model.encode_text(texts).float().cpu().numpy()

    @torch.inference_mode()
    def logits_and_features(self, clips) -> tuple[np.ndarray, np.ndarray]:
        with self._autocast():
            features = self.module.embed(self._inputs(clips)).float()
        logits = self.module.head_logits(features).float().cpu().numpy()
        return self._keep(logits), features.cpu().numpy()

    @torch.inference_mode()
    def logits_from_features(self, features) -> np.ndarray:
        features = torch.as_tensor(np.asarray(features, np.float32), device=self.device)
        return self._keep(self.module.head_logits(features).float().cpu().numpy())

    @property
    def temporal_map(self):
        return self.module.temporal_map

    def map_stream(self, step_frames: int):
        """The map's stream in torch, at the model's precision, whatever runtime runs
        its clips (the stream's steps are a module of the same weights)."""
        from .engine.stretch import MapStream

        if self.module.temporal_map is None:
            return super().map_stream(step_frames)
        if self._stream_step is None:  # a module over the model's own weights: no copy
            self._stream_step = self.module.embed_source().stream_step()
        module = self._stream_step

        @torch.inference_mode()
        def step(frames, first, total, caches):
            x = self._inputs(frames)
            with self._autocast():
                positions, caches = module(x, first, total, caches)
            return positions.float().cpu().numpy(), caches

        return MapStream(step, step_frames, module.stride, module.lag)

    @torch.inference_mode()
    def trunk(self, clips) -> np.ndarray:
        """The frozen part's output for `--finetune last-blocks` (fp32, contiguous)."""
        return self.module.trunk(self._inputs(clips)).float().contiguous().cpu().numpy()


def load_torch_model(
    name: str = DEFAULT_MODEL,
    precision: str = "auto",
    threads: int | None = None,
    download: bool = True,
    device: str | None = "auto",
    runtime: str = "auto",
) -> VideoClassifier:
    """Model `name` through torch (vidclass.load_model decides when): its backbone in
    torch, or with `runtime` auto on a CPU, openvino or onnxruntime from a cached graph
    (vidclass.runtimes.pick_runtime), its head in torch."""
    placement = place(device, precision)  # a bad name fails before the weights load
    configure_threads(threads)
    tune_allocator()
    entry, module = resolve.load(name, download)
    convertible = not isinstance(module, TextVideoModel)
    chosen = pick_runtime(runtime, placement.device.type, convertible)
    computes_in = runtime_precision(chosen, placement.precision, precision)
    if chosen != "torch":
        module = RuntimeModule(
            module.fold_batchnorm(),
            chosen,
            computes_in,
            entry.name,
            fallback=runtime == "auto",  # what cannot be converted runs in torch
        )
    return VideoClassifier(entry, module, computes_in, device=placement.device)


def load_backbone_module(name: str, download: bool = True) -> torch.nn.Module:
    """A pretrained model's plain module (BatchNorm unfolded), for training its blocks."""
    return resolve.load_pretrained(name, download)[1].eval()
