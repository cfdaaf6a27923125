"""What a run gives back: predictions, per-video results, timelines. Plain data, shared
by the classifiers, the engine, the CLI and the server (imports nothing of vidclass)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

UNKNOWN = "unknown"  # the answer shown first, and a timeline's segment label, where unknown


@dataclass
class Prediction:
    label: str
    score: float

    def as_dict(self) -> dict:
        return {"label": self.label, "score": self.score}


@dataclass
class VideoResult:
    """The outcome for one video: predictions or an error.

    `scores` holds every label's score averaged over the clips; `clip_scores` each
    clip's (clips, labels); `features` the backbone features per clip (clips, D), where
    they were asked for; `spans` the (start, end) seconds of each clip for sliding
    windows; `duration` how much of the video decoded (windows). `ood_score`: how far
    outside what the model knows (the mean of its clips', `clip_ood`), `unknown`: past
    the model's threshold (None: it has none; both None where not asked for).
    """

    video: str
    predictions: list[dict] | None = None
    error: str | None = None
    scores: np.ndarray | None = field(default=None, repr=False)
    features: np.ndarray | None = field(default=None, repr=False)
    clip_scores: np.ndarray | None = field(default=None, repr=False)
    spans: list[tuple[float, float]] | None = field(default=None, repr=False)
    ood_score: float | None = None
    unknown: bool | None = None
    clip_ood: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        if self.error is not None:
            return {"video": self.video, "error": self.error}
        return {
            "video": self.video,
            "predictions": self.predictions,
            "ood_score": self.ood_score,
            "unknown": self.unknown,
        }


@dataclass
class Window:
    start: float
    end: float
    predictions: list[dict]  # top-k [{"label", "score"}], best first
    ood_score: float | None = None
    unknown: bool | None = None


@dataclass
class Segment:
    start: float
    end: float
    label: str  # "unknown" for a run of unknown windows
    score: float  # mean probability of the label over its windows (unknown: their share)


@dataclass
class Timeline:
    """Windows and segments of one video. `predictions`: its top labels as a whole, the
    mean of every window's scores (not one clip's), so a long video is summarised by
    all of it."""

    video: str
    duration: float
    window: float
    stride: float
    windows: list[Window] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    predictions: list[dict] = field(default_factory=list)
    ood_score: float | None = None  # the mean of its windows'
    unknown: bool | None = None  # the whole video, as classify would say

    def as_dict(self) -> dict:
        return asdict(self)


def with_unknown(scores: np.ndarray, unknown) -> np.ndarray:
    """Scores (labels last axis) with one more label, UNKNOWN: 1 where `unknown` (a bool
    per row), whose other labels then score 0; so a run of unknown windows becomes an
    UNKNOWN segment like any label's."""
    column = np.asarray(unknown, dtype=np.float32)[..., None]
    return np.concatenate([scores * (1 - column), column], axis=-1)


def activate(logits: np.ndarray, activation: str) -> np.ndarray:
    """Scores from logits (N, labels), in float32, as the model's entry says: softmax
    over the labels, sigmoid each on its own (in tanh's form, which never overflows), or
    identity (already scores: cosine similarities). Every backend's logits end here."""
    logits = np.asarray(logits, dtype=np.float32)
    if activation == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * logits))
    if activation == "identity":
        return logits
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_k(
    labels: tuple[str, ...], scores: np.ndarray, k: int, min_score: float | None = None
) -> list[dict]:
    """The `k` best `[{"label", "score"}]`, best first (ties keep label order); with
    `min_score` (multi-label tags) only those scoring at least that, maybe none."""
    k = max(1, min(k, len(labels)))
    order = np.argsort(-scores, kind="stable")[:k]
    if min_score is not None:
        order = [i for i in order if scores[i] >= min_score]
    return [Prediction(labels[i], float(scores[i])).as_dict() for i in order]
