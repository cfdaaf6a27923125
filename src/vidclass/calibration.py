"""Calibrated scores: a temperature that divides a single-label model's logits so that a
score of 0.8 is right about 80 % of the time, and the expected calibration error (ECE)
that says how far off the scores are. Numpy only: exported models use it."""

from __future__ import annotations

import numpy as np

from .errors import VidclassError

BINS = 15  # ECE's equal-width confidence bins, as most papers report it
LOWEST, HIGHEST = 0.05, 20.0  # temperatures searched
# The prior on log T (a normal of this spread around 0): a few held-out clips, all right
# by a wide margin, would otherwise drive T to its lowest (every score 1.0), which no
# new video bears out; many clips outweigh it.
PRIOR_SPREAD = 0.5


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """The mean negative log-likelihood of the `targets` under softmax(logits / T)."""
    return float(-_log_softmax(logits / temperature)[np.arange(len(targets)), targets].mean())


def _objective(logits: np.ndarray, targets: np.ndarray, log_t: float) -> float:
    """The negative log posterior of log T: the rows' summed NLL and the prior."""
    total = nll(logits, targets, float(np.exp(log_t))) * len(targets)
    return total + log_t**2 / (2 * PRIOR_SPREAD**2)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature (in [LOWEST, HIGHEST]) that best explains held-out rows
    (`targets`: class indices) under softmax(logits / T), with a prior that keeps T near
    1 when the rows are few (PRIOR_SPREAD): a grid over log T, then golden-section
    search around its best point."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(targets) or not len(targets):
        raise VidclassError("a temperature needs held-out rows of logits and their labels")
    grid = np.linspace(np.log(LOWEST), np.log(HIGHEST), 61)
    losses = [_objective(logits, targets, g) for g in grid]
    best = int(np.argmin(losses))
    lo, hi = grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):  # golden-section on log T, within the grid's best interval
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if _objective(logits, targets, a) < _objective(logits, targets, b):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = BINS) -> float:
    """Top-label ECE: the mean gap between confidence and accuracy over equal-width
    confidence bins, weighted by how many rows fall in each."""
    table = reliability(probs, targets, bins)
    n = sum(row["count"] for row in table)
    return float(sum(row["count"] * abs(row["accuracy"] - row["confidence"]) for row in table) / n)


def reliability(probs: np.ndarray, targets: np.ndarray, bins: int = BINS) -> list[dict]:
    """The non-empty bins of a reliability diagram: each bin's `low`, `high`, `count`,
    mean `confidence` (the top score) and `accuracy` (how often the top label is right)."""
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets)
    if probs.ndim != 2 or len(probs) != len(targets) or not len(targets):
        raise VidclassError("a calibration error needs rows of scores and their labels")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "count": int((which == b).sum()),
            "confidence": float(confidence[which == b].mean()),
            "accuracy": float(correct[which == b].mean()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def at_temperature(scores: np.ndarray, temperature: float, to: float = 1.0) -> np.ndarray:
    """Softmax scores made at `temperature` as they would be at `to`: p ** (T / to),
    renormalised (the logits are log p times T, up to a constant each row drops)."""
    log_p = np.log(np.clip(np.asarray(scores, dtype=np.float64), 1e-45, None))
    return np.exp(_log_softmax(log_p * (temperature / to)))
