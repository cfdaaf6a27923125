"""What a backbone module offers the pipeline, said once (every model implements it:
I3D, the transformers adapter, a trained model), so nothing probes with hasattr."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from .spec import TemporalMap


@runtime_checkable
class VideoModule(Protocol):
    """(N, C, T, H, W) clips in, class logits out; and the two halves of that."""

    # Whether channels_last_3d memory helps it (3D convolutions: yes; attention: no).
    channels_last: bool
    # Whether `embed` exports to one graph for every clip length (T free), or to one per
    # clip shape (a transformer's position embeddings fix T).
    any_frames: bool
    # Where set, its clip features are a weighted mean of a map over time, which
    # overlapping windows can share (engine.stretch), and embed_source() offers
    # `stream_step()`, the module that makes that map in steps (models.i3d_stream).
    temporal_map: TemporalMap | None

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Class logits (N, classes)."""
        ...

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """The features its classification head sees (N, D)."""
        ...

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from `embed`'s features: the head alone."""
        ...

    def embed_source(self) -> nn.Module:
        """The module whose weights `embed` computes from (a trained model: its
        backbone), so that models sharing a backbone share its converted graph."""
        ...

    def fold_batchnorm(self) -> VideoModule:
        """Fold inference-mode BatchNorm into the convolutions (a no-op where there is
        none); returns the module."""
        ...


@runtime_checkable
class FineTunable(Protocol):
    """A module whose last blocks can be trained on cached maps of the frozen rest."""

    def trunk(self, clips: torch.Tensor) -> torch.Tensor:
        """The frozen part's output maps."""
        ...

    def tail(self) -> nn.Module:
        """The last blocks, trained on `trunk`'s maps."""
        ...

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """The tail's maps pooled into features."""
        ...
