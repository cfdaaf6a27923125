"""The classifier a trained model puts on top of backbone features."""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """Standardise features, then linear (hidden=0) or one hidden layer (an MLP).

    The standardisation statistics are buffers, so they are saved with the weights.
    """

    def __init__(self, in_dim: int, classes: int, hidden: int = 0, dropout: float = 0.2):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        if hidden:
            self.net = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, classes),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, classes))

    def standardise_on(self, features: torch.Tensor) -> Head:
        """Take the mean and spread per feature from training features."""
        self.mean.copy_(features.mean(dim=0))
        self.std.copy_(features.std(dim=0).clamp(min=1e-6))
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features.float() - self.mean) / self.std)
