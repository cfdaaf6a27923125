"""vidclass: label whole videos and moments in them, offline on a CPU."""

from __future__ import annotations

import os
from functools import lru_cache

from .errors import VidclassError
from .models import DEFAULT_MODEL, list_entries
from .pipeline import VideoClassifier, VideoResult, load_model

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "VidclassError",
    "VideoClassifier",
    "VideoResult",
    "__version__",
    "classify",
    "list_models",
    "load_model",
    "timeline",
]


@lru_cache(maxsize=2)
def _cached_model(name: str, precision: str) -> VideoClassifier:
    return load_model(name, precision=precision)


def classify(
    path: str | os.PathLike,
    top_k: int = 5,
    model: str = DEFAULT_MODEL,
    clips: int = 1,
    precision: str = "auto",
) -> list[dict]:
    """Top-k labels of a video: `[{"label": str, "score": float}, ...]`, best first.

    The model is loaded once and kept for later calls; use `load_model` to hold it
    yourself.
    """
    return _cached_model(model, precision).classify(path, top_k=top_k, clips=clips)


def timeline(
    path: str | os.PathLike,
    window: float | None = None,
    stride: float | None = None,
    top_k: int = 3,
    model: str = DEFAULT_MODEL,
    precision: str = "auto",
    **options,
):
    """Labels over time: a `Timeline` of sliding windows (start, end, top-k) and segments
    (start, end, label, score). See `VideoClassifier.timeline` for the options."""
    return _cached_model(model, precision).timeline(
        path, window=window, stride=stride, top_k=top_k, **options
    )


def list_models():
    """The registered pretrained models (name, labels, input spec, weights source)."""
    return list_entries()
