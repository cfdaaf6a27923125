"""Training a head on backbone features: seconds, with early stopping."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models.head import Head

log = logging.getLogger("vidclass")


@dataclass
class TrainedHead:
    head: Head
    epochs: int  # run before stopping
    best_epoch: int
    val_loss: float
    history: list[dict]


def _video_scores(logits: torch.Tensor, groups: torch.Tensor, n: int, multi: bool):
    """Per-video probabilities: each video's views averaged, as classify --clips does."""
    probs = torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)
    out = torch.zeros(n, probs.shape[1]).index_add_(0, groups, probs)
    return out / torch.bincount(groups, minlength=n).clamp(min=1)[:, None].float()


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    val_groups: np.ndarray,
    multi_label: bool,
    hidden: int = 0,
    epochs: int = 300,
    lr: float = 1e-3,
    weight_decay: float = 1e-3,
    patience: int = 30,
    seed: int = 0,
    progress: bool = False,
) -> TrainedHead:
    """Fit a head on (views, D) features; y is class indices, or a 0/1 matrix when
    multi-label. Stops when the validation loss (per video) has not improved for
    `patience` epochs and keeps the best epoch's weights."""
    torch.manual_seed(seed)
    xt = torch.from_numpy(x_train).float()
    xv = torch.from_numpy(x_val).float()
    classes = y_train.shape[1] if multi_label else int(max(y_train.max(), y_val.max())) + 1
    head = Head(xt.shape[1], classes, hidden)
    head.mean.copy_(xt.mean(dim=0))
    head.std.copy_(xt.std(dim=0).clamp(min=1e-6))
    if multi_label:
        yt, yv = torch.from_numpy(y_train).float(), torch.from_numpy(y_val).float()
        loss_fn = nn.BCEWithLogitsLoss()
    else:
        yt, yv = torch.from_numpy(y_train).long(), torch.from_numpy(y_val).long()
        loss_fn = nn.CrossEntropyLoss()
    groups = torch.from_numpy(val_groups).long()
    n_val = len(yv)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    batch = 256
    best, best_loss, best_epoch, history = None, float("inf"), 0, []
    epoch = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs, unit="epoch", desc="head", leave=False)
    for epoch in range(1, epochs + 1):
        head.train()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            loss_fn(head(xt[idx]), yt[idx]).backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            scores = _video_scores(head(xv), groups, n_val, multi_label).clamp(1e-7, 1 - 1e-7)
            if multi_label:
                val_loss = nn.functional.binary_cross_entropy(scores, yv).item()
                accuracy = ((scores >= 0.5).float() == yv).all(dim=1).float().mean().item()
            else:
                val_loss = nn.functional.nll_loss(scores.log(), yv).item()
                accuracy = (scores.argmax(dim=1) == yv).float().mean().item()
        history.append({"epoch": epoch, "val_loss": val_loss, "val_accuracy": accuracy})
        if bar is not None:
            bar.update()
            bar.set_postfix(val_loss=f"{val_loss:.3f}", val_acc=f"{accuracy:.2f}")
        if val_loss < best_loss - 1e-5:
            best, best_loss, best_epoch = copy.deepcopy(head.state_dict()), val_loss, epoch
        elif epoch - best_epoch >= patience:
            break
    if bar is not None:
        bar.close()
    head.load_state_dict(best)
    head.eval()
    return TrainedHead(head, epoch, best_epoch, best_loss, history)
