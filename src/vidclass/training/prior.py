"""What a backbone already knows of the data's labels: its own head's rows for them, to
start a new head from (see models.head.Head's prior)."""

from __future__ import annotations

import logging

import torch

from ..label_choice import find_labels

log = logging.getLogger("vidclass")


@torch.no_grad()
def linear_head(module, in_dim: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(weight (own classes, in_dim), bias) of the backbone's head, read by probing it;
    None where it is not a linear map of the features."""
    device = next(module.parameters()).device
    try:
        probe = torch.cat([torch.zeros(1, in_dim), torch.eye(in_dim)]).to(device)
        out = module.head_logits(probe).float().cpu()
        bias, weight = out[0], (out[1:] - out[0]).T  # (own classes, in_dim)
        x = torch.randn(8, in_dim)
        again = module.head_logits(x.to(device)).float().cpu()
        linear = torch.allclose(again, x @ weight.T + bias, atol=1e-3)
    except (AttributeError, RuntimeError, ValueError) as exc:
        log.info(f"the backbone's head cannot be read as a linear map ({exc})")
        return None
    if not linear:
        log.info("the backbone's head is not a linear map of its features")
        return None
    return weight, bias


def backbone_rows(module, own: tuple[str, ...], labels: tuple[str, ...], in_dim: int):
    """(weight (classes, in_dim), bias (classes), the labels found) of the backbone's head
    for `labels`, zero for those it lacks; None where it has none of them or its head
    is not a linear map of the features (then there is nothing to start from)."""
    found, _ = find_labels(own, labels)
    shared = {labels.index(name): i for name, i in found.items()}
    if not shared:
        return None
    head = linear_head(module, in_dim)
    if head is None:
        return None
    weight, bias = head
    rows, biases = torch.zeros(len(labels), in_dim), torch.zeros(len(labels))
    for j, i in shared.items():
        rows[j], biases[j] = weight[i], bias[i]
    return rows, biases, [labels[j] for j in sorted(shared)]
