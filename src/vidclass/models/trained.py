"""Models trained with `vidclass train`: a folder holding vidclass.json and safetensors.

The folder describes itself (backbone, labels, preprocessing, how it was trained, its
validation metrics), so classify/timeline/evaluate load it like any other model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import VidclassError
from .head import Head
from .spec import InputSpec, ModelEntry

CONFIG = "vidclass.json"
HEAD_WEIGHTS = "head.safetensors"
BACKBONE_WEIGHTS = "backbone.safetensors"  # only when the backbone was fine-tuned
FORMAT = 1


def is_trained_dir(name: str) -> bool:
    return Path(name, CONFIG).is_file()


class TrainedModule(nn.Module):
    """Backbone features into a trained head; `embed` is the backbone's."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels_last = backbone.channels_last
        self.any_frames = backbone.any_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(x)

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def embed_source(self) -> nn.Module:
        return self.backbone  # heads trained on one backbone share its graph

    def fold_batchnorm(self) -> TrainedModule:
        self.backbone.fold_batchnorm()
        return self


def spec_to_dict(spec: InputSpec) -> dict:
    return dataclasses.asdict(spec)


def spec_from_dict(data: dict) -> InputSpec:
    names = {f.name for f in dataclasses.fields(InputSpec)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return InputSpec(**values)


def save(
    folder: str | Path,
    config: dict,
    head: nn.Module,
    backbone_state: dict[str, torch.Tensor] | None = None,
):
    """Write the folder: weights first, the config last (its presence marks it complete).
    `backbone_state`: the fine-tuned part of the backbone, keys as in its state dict."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, folder / HEAD_WEIGHTS)
    if backbone_state is not None:
        save_file(backbone_state, folder / BACKBONE_WEIGHTS)
    else:  # left by an earlier fine-tuned model in this folder (--force)
        (folder / BACKBONE_WEIGHTS).unlink(missing_ok=True)
    tmp = folder / (CONFIG + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT, **config}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / CONFIG)


def read_config(folder: str | Path) -> dict:
    path = Path(folder, CONFIG)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VidclassError(f"{path}: not a readable vidclass model config ({exc})") from None
    if config.get("format") != FORMAT:
        raise VidclassError(f"{path}: model format {config.get('format')!r} is not {FORMAT}")
    return config


def read_entry(folder: str | Path) -> ModelEntry:
    config = read_config(folder)
    multi = config["multi_label"]
    return ModelEntry(
        name=str(folder),
        description=f"trained on {config['training']['videos']} videos, "
        f"backbone {config['backbone']}",
        labels=tuple(config["labels"]),
        input=spec_from_dict(config["input"]),
        weights=None,
        build=None,
        activation="sigmoid" if multi else "softmax",
        source=f"{Path(folder) / HEAD_WEIGHTS} on {config['backbone']}",
        meta={"threshold": config.get("threshold"), "config": config},
    )


def load_module(
    folder: str | Path, config: dict, load_backbone: Callable[[str], nn.Module]
) -> TrainedModule:
    """The backbone (by its name, through `load_backbone`) with the saved head on top."""
    folder = Path(folder)
    backbone = load_backbone(config["backbone"])
    if (folder / BACKBONE_WEIGHTS).is_file():  # fine-tuned blocks over the pretrained ones
        result = backbone.load_state_dict(load_file(folder / BACKBONE_WEIGHTS), strict=False)
        if result.unexpected_keys:
            raise VidclassError(
                f"{folder / BACKBONE_WEIGHTS} does not fit {config['backbone']}: "
                f"{result.unexpected_keys[:3]}"
            )
    h = config["head"]
    head = Head(
        h["in_dim"],
        len(config["labels"]),
        h.get("hidden", 0),
        h.get("dropout", 0.0),
        prior=bool(h.get("prior", False)),
    )
    try:
        head.load_state_dict(load_file(folder / HEAD_WEIGHTS))
    except (OSError, RuntimeError) as exc:
        raise VidclassError(f"{folder / HEAD_WEIGHTS}: cannot load the head ({exc})") from None
    return TrainedModule(backbone, head.eval())
