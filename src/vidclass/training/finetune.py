"""`--finetune last-blocks`: train the backbone's last blocks together with the head.

The frozen trunk runs once per video and its output (the input of the last blocks) is
cached like pooled features, so training runs only the last blocks, forward and
backward, over cached maps: minutes on a CPU rather than hours.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..errors import VidclassError
from ..models.head import Head
from ..models.protocol import FineTunable
from .head import TrainedHead, class_count, fit


class TailAndHead(nn.Module):
    """Trunk maps -> the last blocks -> pooled features -> head."""

    def __init__(self, tail: nn.Module, pool, head: Head):
        super().__init__()
        self.tail = tail
        self.head = head
        self._pool = pool

    def embed(self, maps: torch.Tensor) -> torch.Tensor:
        return self._pool(self.tail(maps)).mean(dim=(2, 3, 4))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(maps))

    def train(self, mode: bool = True):
        super().train(mode)
        self.tail.eval()  # BatchNorm statistics stay as pretrained: too few clips to re-estimate
        return self


def check_supported(module: nn.Module) -> None:
    if not isinstance(module, FineTunable):
        raise VidclassError(
            f"{type(module).__name__} backbones do not support --finetune last-blocks "
            "(the built-in I3D does); train a head on frozen features instead"
        )


def finetune_last_blocks(
    backbone: nn.Module,
    x_train: list[np.ndarray],
    y_train: np.ndarray,
    x_val: list[np.ndarray],
    y_val: np.ndarray,
    val_groups: np.ndarray,
    multi_label: bool,
    hidden: int = 0,
    epochs: int = 30,
    lr: float = 1e-3,
    patience: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, torch.Tensor], TrainedHead, TailAndHead]:
    """Train copies of `backbone`'s last blocks and a head on cached trunk maps (one
    array per row). Returns the blocks' new weights (keys as in the backbone's state
    dict), the head, and the trained network on trunk maps. The blocks learn at a tenth
    of the head's rate; their BatchNorm statistics stay as pretrained."""
    check_supported(backbone)
    torch.manual_seed(seed)
    tail = copy.deepcopy(backbone.tail())
    for p in tail.parameters():
        p.requires_grad_(True)
    rows_train = [torch.from_numpy(x).float() for x in x_train]
    rows_val = [torch.from_numpy(x).float() for x in x_val]
    with torch.no_grad():  # standardise on the pretrained blocks' features
        tail.eval()
        feats = torch.cat([backbone.pool(tail(r[None])).mean(dim=(2, 3, 4)) for r in rows_train])
    head = Head(feats.shape[1], class_count(y_train, y_val, multi_label), hidden)
    net = TailAndHead(tail, backbone.pool, head.standardise_on(feats))
    groups = [
        {"params": head.parameters(), "lr": lr, "weight_decay": 1e-3},
        {"params": tail.parameters(), "lr": lr / 10, "weight_decay": 1e-4},
    ]
    run, best_epoch, best_loss, history = fit(
        net,
        groups,
        rows_train,
        y_train,
        rows_val,
        y_val,
        val_groups,
        multi_label,
        epochs,
        patience,
        batch=8,
        progress=progress,
        desc="last blocks",
    )
    names = backbone.finetune_blocks
    state = {
        f"features.{name}.{key}": value.detach().clone().contiguous()
        for name, block in zip(names, tail, strict=True)
        for key, value in block.state_dict().items()
    }
    return state, TrainedHead(head, run, best_epoch, best_loss, history), net
