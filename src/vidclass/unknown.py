"""Unknown answers: how far a clip lies outside what a model knows (`ood_score`, higher:
further), and whether that passes the model's threshold (`unknown`).

Two scores, chosen by measurement (benchmarks/unknown.py):
- "msp", one minus the top score, needs no data: every model has it. On the pretrained
  default it tells scenes outside Kinetics well (AUROC 0.99), but a head trained on a
  few labels is surer outside them than inside (AUROC 0.19), as heads are.
- "knn", the distance of the clip to the nearest clip the model was trained on (a bank
  kept with the model, at most MAX_BANK_ROWS rows), for trained heads. A clip is seen
  as the backbone's own class probabilities (its pretrained head over the features,
  kept with the bank), compared by the Bhattacharyya coefficient: AUROC 0.99 against
  0.89 for the cosine of the features themselves, which a backbone without a linear
  head falls back to. The features come from the same forward pass as the scores.

A threshold is set on clips of the model's own labels held out from the bank, as the
score that calls `false_unknown` of them unknown. Numpy only: exported models use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .errors import VidclassError

METHODS = ("msp", "knn")
BANK = "unknown.safetensors"  # the knn bank, in a trained or exported model's folder
MAX_BANK_ROWS = 4096  # clips kept: 8 MiB in float16 for 1024 features
MAX_BANK_BYTES = 64 << 20
DEFAULT_FALSE_UNKNOWN = 0.05
FEW_CLIPS = 20  # a threshold set on fewer held-out clips than this holds its rate roughly


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True, eq=False)
class Detector:
    """A model's unknown score and, where it has one, its threshold."""

    method: str = "msp"
    threshold: float | None = None
    false_unknown: float | None = None  # the share of known clips the threshold calls unknown
    set_on: int = 0  # held-out clips the threshold was set on
    bank: np.ndarray | None = None  # knn: unit rows of the training clips (`view`)
    head: tuple[np.ndarray, np.ndarray] | None = None  # knn: the backbone's (weight, bias)

    def __post_init__(self):
        if self.method not in METHODS:
            raise VidclassError(f"unknown detector {self.method!r}; one of {METHODS}")
        bank = self.bank
        if self.method == "knn" and (bank is None or bank.ndim != 2 or not len(bank)):
            raise VidclassError("a knn detector needs a bank of feature rows")
        if bank is not None:  # float32 once: a clip's score is one product with it
            object.__setattr__(self, "_rows", np.ascontiguousarray(bank.T, dtype=np.float32))

    @property
    def needs_features(self) -> bool:
        return self.method == "knn"

    def score(self, scores: np.ndarray | None, features: np.ndarray | None) -> np.ndarray:
        """Each row's ood_score (N,), from what one forward pass gave."""
        if self.method == "knn":
            width = self.bank.shape[1] if self.head is None else self.head[0].shape[1]
            if features is None or features.shape[1] != width:
                raise VidclassError("the unknown bank does not fit this model's features")
            rows = view(features, self.head)
            if rows.shape[1] != self.bank.shape[1]:
                raise VidclassError("the unknown bank does not fit this model's features")
            nearest = (rows @ self._rows).max(axis=1)
            return np.clip(1.0 - nearest, 0.0, 2.0)
        return 1.0 - np.asarray(scores, dtype=np.float32).max(axis=1)

    def is_unknown(self, ood: float) -> bool | None:
        """Past the threshold (None: the model has none)."""
        return None if self.threshold is None else bool(ood > self.threshold)

    def describe(self) -> dict:
        """What a model's config and `models info` record."""
        return {
            "method": self.method,
            "space": None
            if self.method != "knn"
            else "features"
            if self.head is None
            else "backbone classes",
            "threshold": self.threshold,
            "false_unknown": self.false_unknown,
            "set_on": self.set_on,
            "bank_rows": 0 if self.bank is None else len(self.bank),
        }


def view(features: np.ndarray, head: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Unit rows knn compares: with the backbone's `head`, the square roots of its class
    probabilities (their dot product is the Bhattacharyya coefficient); else the
    features, scaled to unit length."""
    features = np.asarray(features, dtype=np.float32)
    if head is None:
        return _unit(features)
    logits = features @ head[0].T + head[1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.sqrt(p / p.sum(axis=1, keepdims=True))


def bank_of(
    features: np.ndarray,
    head: tuple[np.ndarray, np.ndarray] | None = None,
    max_rows: int = MAX_BANK_ROWS,
) -> np.ndarray:
    """The rows knn compares (`view`) of training features, evenly `thinned` to
    `max_rows`, in float16."""
    return view(features, head)[thinned(len(features), max_rows)].astype(np.float16)


def thinned(rows: int, max_rows: int = MAX_BANK_ROWS) -> np.ndarray:
    """Which of `rows` rows a bank keeps: all, or `max_rows` evenly spaced."""
    if rows <= max_rows:
        return np.arange(rows)
    return np.unique(np.linspace(0, rows - 1, max_rows).round().astype(int))


def held_out_scores(
    detector: Detector, features: np.ndarray, groups: np.ndarray, bank_groups: np.ndarray
) -> np.ndarray:
    """Each row's knn ood_score with the bank rows of its own group (video) left out: how
    a new video of the model's labels scores. `bank_groups`: the group of each bank row."""
    views = view(features, detector.head)
    scores = np.empty(len(views), dtype=np.float32)
    for at in range(0, len(views), 1024):  # bounded memory: 1024 x bank rows at a time
        part = views[at : at + 1024] @ detector._rows
        part[groups[at : at + 1024, None] == bank_groups[None, :]] = -np.inf
        scores[at : at + 1024] = 1.0 - part.max(axis=1)
    return np.clip(scores, 0.0, 2.0)


def threshold_at(known: np.ndarray, false_unknown: float) -> float:
    """The score above which `false_unknown` of `known` (held-out clips of the model's
    own labels) lie."""
    if not 0 < false_unknown < 1:
        raise VidclassError(f"the false-unknown rate must be in (0, 1), got {false_unknown}")
    if not len(known):
        raise VidclassError("no held-out clips to set the unknown threshold on")
    return float(np.quantile(np.asarray(known, dtype=np.float64), 1.0 - false_unknown))


def fit(detector: Detector, held_out: np.ndarray, false_unknown: float) -> Detector:
    """`detector` with the threshold that calls `false_unknown` of the `held_out` ood
    scores (its own, of clips of the model's labels) unknown."""
    threshold = threshold_at(held_out, false_unknown)
    return dataclasses.replace(
        detector, threshold=threshold, false_unknown=false_unknown, set_on=len(held_out)
    )


def from_config(config: dict | None, bank_bytes: bytes | None = None) -> Detector:
    """The detector a model's config describes (None or {}: msp, no threshold); the
    knn bank from `bank_bytes` (a safetensors file, checked)."""
    if not config:
        return Detector()
    try:
        method = str(config["method"])
        threshold = config.get("threshold")
        rate = config.get("false_unknown")
        threshold = None if threshold is None else float(threshold)
        rate = None if rate is None else float(rate)
        set_on = int(config.get("set_on", 0))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise VidclassError("the model's unknown detector is not readable") from None
    numbers = [v for v in (config.get("threshold"), config.get("false_unknown")) if v is not None]
    if any(isinstance(v, bool) for v in numbers) or not all(
        np.isfinite(v) for v in (threshold, rate) if v is not None
    ):
        raise VidclassError("the model's unknown threshold or rate is not a number")
    bank = head = None
    if method == "knn":
        bank, head = read_bank(bank_bytes)
    return Detector(method, threshold, rate, set_on, bank, head)


def bank_bytes(detector: Detector) -> bytes:
    """The knn bank, and the backbone's head where it has one, as a safetensors file."""
    from safetensors.numpy import save

    tensors = {"bank": np.ascontiguousarray(detector.bank, dtype=np.float16)}
    if detector.head is not None:
        tensors["weight"] = np.ascontiguousarray(detector.head[0], dtype=np.float32)
        tensors["bias"] = np.ascontiguousarray(detector.head[1], dtype=np.float32)
    return save(tensors)


def read_bank(data: bytes | None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """(bank, head or None) from `bank_bytes`'s file, checked."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    if data is None:
        raise VidclassError(f"the model's unknown bank ({BANK}) is missing")
    if len(data) > MAX_BANK_BYTES:
        raise VidclassError(f"the model's unknown bank ({BANK}) is over {MAX_BANK_BYTES} bytes")
    try:
        tensors = load(data)
        bank = tensors["bank"]
    except (SafetensorError, KeyError, ValueError) as exc:
        raise VidclassError(f"the model's unknown bank ({BANK}) is not readable ({exc})") from None
    if bank.ndim != 2 or not len(bank) or not np.isfinite(bank).all():
        raise VidclassError(f"the model's unknown bank ({BANK}) is not rows of numbers")
    if "weight" not in tensors:
        return bank, None
    weight, bias = tensors["weight"], tensors.get("bias")
    fits = bias is not None and weight.ndim == 2 and bias.shape == (len(weight),)
    if not fits or weight.shape[0] != bank.shape[1] or not np.isfinite(weight).all():
        raise VidclassError(f"the model's unknown bank ({BANK}) holds a head that does not fit")
    if not np.isfinite(bias).all():
        raise VidclassError(f"the model's unknown bank ({BANK}) holds a head that does not fit")
    return bank, (weight, bias)
