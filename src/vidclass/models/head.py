"""The classifier a trained model puts on top of backbone features."""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """Standardise features, then linear (hidden=0) or one hidden layer (an MLP).

    With `prior`, a frozen linear map of the raw features is added: the backbone's own
    head for the labels it already has (zero rows for the others), so that the net only
    learns a correction to what the backbone knows. The standardisation statistics and
    the prior are buffers, so they are saved with the weights.
    """

    def __init__(
        self, in_dim: int, classes: int, hidden: int = 0, dropout: float = 0.2, prior=False
    ):
        super().__init__()
        self.prior = prior
        if prior:
            self.register_buffer("prior_weight", torch.zeros(classes, in_dim))
            self.register_buffer("prior_bias", torch.zeros(classes))
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

    def start_from(self, weight: torch.Tensor, bias: torch.Tensor) -> Head:
        """Set the prior (classes, in_dim) and zero the net's output: training starts
        where the backbone's own head is."""
        self.prior_weight.copy_(weight)
        self.prior_bias.copy_(bias)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        out = self.net((features - self.mean) / self.std)
        if self.prior:
            out = out + nn.functional.linear(features, self.prior_weight, self.prior_bias)
        return out
