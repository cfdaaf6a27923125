"""Training a head on backbone features: seconds, with early stopping."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..models.head import Head
from ..results import activate

log = logging.getLogger("vidclass")


@dataclass
class TrainedHead:
    head: Head
    epochs: int  # run before stopping
    best_epoch: int
    val_loss: float
    history: list[dict]


def _video_scores(logits: torch.Tensor, groups: torch.Tensor, n: int, multi: bool):
    """Per-video probabilities: each video's views averaged, as classify --clips does
    (scores from logits as every model gives them: results.activate)."""
    probs = torch.from_numpy(activate(logits.numpy(), "sigmoid" if multi else "softmax"))
    out = torch.zeros(n, probs.shape[1]).index_add_(0, groups, probs)
    return out / torch.bincount(groups, minlength=n).clamp(min=1)[:, None].float()


def _batches(rows: list[torch.Tensor], order: torch.Tensor, size: int):
    """Index batches of `order` whose rows share a shape (clips of short videos differ)."""
    by_shape: dict[tuple, list[int]] = {}
    for i in order.tolist():
        by_shape.setdefault(tuple(rows[i].shape), []).append(i)
    for idx in by_shape.values():
        for k in range(0, len(idx), size):
            yield idx[k : k + size]


def _logits(net: nn.Module, rows: list[torch.Tensor], size: int) -> torch.Tensor:
    parts = {}
    for idx in _batches(rows, torch.arange(len(rows)), size):
        for i, row in zip(idx, net(torch.stack([rows[i] for i in idx])), strict=True):
            parts[i] = row
    return torch.stack([parts[i] for i in range(len(rows))])


def fit(
    net: nn.Module,
    param_groups: list[dict],
    x_train: list[torch.Tensor],
    y_train: np.ndarray,
    x_val: list[torch.Tensor],
    y_val: np.ndarray,
    val_groups: np.ndarray,
    multi_label: bool,
    epochs: int,
    patience: int,
    batch: int = 256,
    progress: bool = False,
    desc: str = "head",
) -> tuple[int, int, float, list[dict]]:
    """Train `net` (rows -> logits) with AdamW and early stopping on the per-video
    validation loss; the best epoch's weights are put back. Returns (epochs run, best
    epoch, best validation loss, history)."""
    if multi_label:
        yt, yv = torch.from_numpy(y_train).float(), torch.from_numpy(y_val).float()
        loss_fn = nn.BCEWithLogitsLoss()
    else:
        yt, yv = torch.from_numpy(y_train).long(), torch.from_numpy(y_val).long()
        loss_fn = nn.CrossEntropyLoss()
    groups = torch.from_numpy(val_groups).long()
    opt = torch.optim.AdamW(param_groups)
    best, best_loss, best_epoch, history = None, float("inf"), 0, []
    bar = tqdm(total=epochs, unit="epoch", desc=desc, leave=False, disable=not progress)
    # epoch 0 is the head as it starts (where it starts from a prior, maybe the best)
    for epoch in range(0, epochs + 1):
        net.train()
        for idx in _batches(x_train, torch.randperm(len(x_train)), batch) if epoch else ():
            opt.zero_grad()
            loss_fn(net(torch.stack([x_train[i] for i in idx])), yt[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            scores = _video_scores(_logits(net, x_val, batch), groups, len(yv), multi_label)
            scores = scores.clamp(1e-7, 1 - 1e-7)
            if multi_label:
                val_loss = nn.functional.binary_cross_entropy(scores, yv).item()
                accuracy = ((scores >= 0.5).float() == yv).all(dim=1).float().mean().item()
            else:
                val_loss = nn.functional.nll_loss(scores.log(), yv).item()
                accuracy = (scores.argmax(dim=1) == yv).float().mean().item()
        history.append({"epoch": epoch, "val_loss": val_loss, "val_accuracy": accuracy})
        bar.update(1 if epoch else 0)
        bar.set_postfix(val_loss=f"{val_loss:.3f}", val_acc=f"{accuracy:.2f}")
        if val_loss < best_loss - 1e-5:
            best, best_loss, best_epoch = copy.deepcopy(net.state_dict()), val_loss, epoch
        elif epoch - best_epoch >= patience:
            break
    bar.close()
    net.load_state_dict(best)
    net.eval()
    return epoch, best_epoch, best_loss, history


def class_count(y_train: np.ndarray, y_val: np.ndarray, multi_label: bool) -> int:
    """Outputs of the head: label columns (multi-label) or the largest class index + 1."""
    return y_train.shape[1] if multi_label else int(max(y_train.max(), y_val.max())) + 1


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
    prior: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> TrainedHead:
    """Fit a head on (views, D) feature rows; y is class indices, or a 0/1 matrix when
    multi-label. `prior`: (weight, bias) of the backbone's own head for these classes,
    which the head starts from and learns a correction to."""
    torch.manual_seed(seed)
    xt = torch.from_numpy(x_train).float()
    classes = class_count(y_train, y_val, multi_label)
    head = Head(xt.shape[1], classes, hidden, prior=prior is not None).standardise_on(xt)
    if prior is not None:
        head.start_from(*prior)
    groups = [{"params": head.parameters(), "lr": lr, "weight_decay": weight_decay}]
    rows_val = list(torch.from_numpy(x_val).float())
    run, best_epoch, best_loss, history = fit(
        head,
        groups,
        list(xt),
        y_train,
        rows_val,
        y_val,
        val_groups,
        multi_label,
        epochs,
        patience,
        progress=progress,
    )
    return TrainedHead(head, run, best_epoch, best_loss, history)
