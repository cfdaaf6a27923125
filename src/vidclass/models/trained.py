"""Models trained with `vidclass train`: a folder holding vidclass.json and safetensors.

The folder describes itself (backbone, labels, preprocessing, how it was trained, its
validation metrics), so classify/timeline/evaluate load it like any other model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import VidclassError
from ..files import written_whole
from ..unknown import BANK
from .folder_config import (
    BACKBONE_WEIGHTS,
    CONFIG,
    FORMAT,
    HEAD_WEIGHTS,
    TRAINED_ON,
    write_trained_on,
)
from .head import Head


class TrainedModule(nn.Module):
    """Backbone features into a trained head; `embed` is the backbone's."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels_last = backbone.channels_last
        self.any_frames = backbone.any_frames
        self.temporal_map = backbone.temporal_map  # the head reads the same features

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


def save(
    folder: str | Path,
    config: dict,
    head: nn.Module,
    backbone_state: dict[str, torch.Tensor] | None = None,
    trained_on: Iterable[str] | None = None,
    bank: bytes | None = None,
):
    """Write the folder: weights first, the config last (its presence marks it complete).
    `backbone_state`: the fine-tuned part of the backbone, keys as in its state dict.
    `trained_on`: sha256 digests of the videos it was trained and validated on (kept in
    TRAINED_ON, by which evaluate tells them in its data). `bank`: the unknown
    detector's (BANK)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with written_whole(folder / HEAD_WEIGHTS) as partial:
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, partial)
    if backbone_state is not None:
        with written_whole(folder / BACKBONE_WEIGHTS) as partial:
            save_file(backbone_state, partial)
    else:  # left by an earlier fine-tuned model in this folder (--force)
        (folder / BACKBONE_WEIGHTS).unlink(missing_ok=True)
    if bank is not None:
        with written_whole(folder / BANK) as partial:
            partial.write_bytes(bank)
    else:  # left by an earlier model in this folder (--force)
        (folder / BANK).unlink(missing_ok=True)
    if trained_on is not None:
        write_trained_on(folder, trained_on)
    else:  # left by an earlier model in this folder (--force): not this one's videos
        (folder / TRAINED_ON).unlink(missing_ok=True)
    with written_whole(folder / CONFIG) as partial:
        partial.write_text(json.dumps({"format": FORMAT, **config}, indent=2) + "\n", "utf-8")


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
