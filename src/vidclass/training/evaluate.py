"""`vidclass evaluate`: a model's scores on labelled videos, with scikit-learn's metrics."""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np

from ..errors import VidclassError
from ..label_choice import find_labels
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..options import check
from ..progress import tracked
from .dataset import load_dataset

log = logging.getLogger("vidclass")
OTHER = "(other)"  # a prediction outside the labels the data has


def _single_label(model, samples, scores, index, top_k: int) -> dict:
    from sklearn import metrics

    names = model.labels
    y_true = np.array([index[s.labels[0]] for s in samples])
    y_pred = scores.argmax(axis=1)
    present = sorted(set(y_true.tolist()))
    report = {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "top_k": {},
    }
    # Top-k with k at or above the number of labels is always 1: leave it out.
    for k in sorted({1, min(top_k, len(names) - 1)} - {0}):
        report["top_k"][f"top_{k}"] = float(
            metrics.top_k_accuracy_score(y_true, scores, k=k, labels=range(len(names)))
            if k > 1
            else metrics.accuracy_score(y_true, y_pred)
        )
    for average in ("macro", "weighted", "micro"):
        p, r, f, _ = metrics.precision_recall_fscore_support(
            y_true, y_pred, labels=present, average=average, zero_division=0
        )
        report[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    p, r, f, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=present, average=None, zero_division=0
    )
    report["per_class"] = [
        {
            "label": names[c],
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(present)
    ]
    true_names = [names[c] for c in y_true]
    pred_names = [names[c] if c in present else OTHER for c in y_pred]
    axis = [names[c] for c in present] + ([OTHER] if OTHER in pred_names else [])
    matrix = metrics.confusion_matrix(true_names, pred_names, labels=axis)
    report["confusion_matrix"] = {"labels": axis, "matrix": matrix.tolist()}
    report["videos"] = [
        {"video": s.path, "true": names[t], "predicted": names[p], "score": float(scores[i, p])}
        for i, (s, t, p) in enumerate(zip(samples, y_true, y_pred, strict=True))
    ]
    return report


def _multi_label(model, samples, scores, index, threshold: float) -> dict:
    from sklearn import metrics

    names = model.labels
    used = sorted(set(index.values()))
    y_true = np.zeros((len(samples), len(used)), dtype=int)
    column = {c: j for j, c in enumerate(used)}
    for i, s in enumerate(samples):
        for label in s.labels:
            if label in index:
                y_true[i, column[index[label]]] = 1
    s_used = scores[:, used]
    y_pred = (s_used >= threshold).astype(int)
    report = {"threshold": threshold}
    for average in ("micro", "macro", "weighted", "samples"):
        p, r, f, _ = metrics.precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        report[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    p, r, f, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    ap = [
        float(metrics.average_precision_score(y_true[:, j], s_used[:, j]))
        if y_true[:, j].any()
        else None
        for j in range(len(used))
    ]
    known = [a for a in ap if a is not None]
    report["mAP"] = float(np.mean(known)) if known else None
    report["per_class"] = [
        {
            "label": names[c],
            "precision": float(p[j]),
            "recall": float(r[j]),
            "f1": float(f[j]),
            "average_precision": ap[j],
            "support": int(support[j]),
        }
        for j, c in enumerate(used)
    ]
    report["videos"] = [
        {
            "video": s.path,
            "true": list(s.labels),
            "predicted": [names[c] for j, c in enumerate(used) if y_pred[i, j]],
            "scores": {names[c]: round(float(s_used[i, j]), 6) for j, c in enumerate(used)},
        }
        for i, s in enumerate(samples)
    ]
    return report


def _unknown_report(model, answers: list[bool | None]) -> dict:
    """How the model says unknown, and the share of these videos (all of its labels)
    it answered unknown: its false-unknown rate here (None: it has no threshold)."""
    detector = model.detector
    rate = None if detector.threshold is None else float(np.mean([bool(a) for a in answers]))
    return {**detector.describe(), "false_unknown_here": rate}


def _trained_on(name: str) -> frozenset[str] | None:
    """Digests of the videos model `name` was trained and validated on, where its folder
    records them (a trained model's, or an export of one); else None."""
    from ..models import folder_config
    from ..models.resolve import parse_model_name

    try:
        ref = parse_model_name(name)
    except VidclassError:
        return None
    known = ref.kind in ("trained", "exported")
    return folder_config.read_trained_on(ref.name) if known else None


def used_in_training(model, paths: list[str]) -> int | None:
    """How many of `paths` (by content, whatever their names) the model was trained or
    validated on; None where its folder does not record its videos."""
    from ..digest import file_digest

    seen = _trained_on(model.name)
    if seen is None:
        return None
    used = 0
    for path in paths:
        # Read a moment ago; a file gone since is not counted.
        with contextlib.suppress(VidclassError, OSError):
            used += file_digest(path) in seen
    return used


def evaluate(
    model,
    data: str | os.PathLike,
    *,
    top_k: int = 5,
    clips: int = 1,
    threshold: float | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
    precision: str = "auto",
    device: str = "auto",
    runtime: str = "auto",
    threads: int | None = None,
) -> dict:
    """Score every video of DATA with `model` (a loaded model, or a name or folder to
    load with `precision`, `device`, `runtime`, `threads`) and compare with its labels.
    Data labels are matched to the model's by name; videos with no known label are left
    out and their labels reported. Videos the model was trained or validated on (by
    content, where its folder records them) are counted in the report and warned of.
    Returns the report (JSON-ready)."""
    from ..classifier import Classifier
    from ..engine import Clips, Driver, Work, executor_for
    from ..loading import load_model

    check("evaluate", {k: v for k, v in locals().items() if k != "model"})
    dataset = load_dataset(data)
    if not isinstance(model, Classifier):
        model = load_model(
            model, precision=precision, threads=threads, device=device, runtime=runtime
        )
    index, unknown = find_labels(model.labels, dataset.labels)
    if unknown:
        log.warning(f"labels the model does not have (left out): {', '.join(unknown)}")
    multi = model.entry.activation == "sigmoid" or dataset.multi_label
    samples = [s for s in dataset.samples if any(label in index for label in s.labels)]
    if not multi:
        samples = [s for s in samples if s.labels[0] in index]
    if not samples:
        raise VidclassError(f"{data}: none of its labels is one of the model's labels")
    scores: dict[str, np.ndarray] = {}
    clip_scores: dict[str, np.ndarray] = {}
    answered_unknown: dict[str, bool | None] = {}
    failed: dict[str, str] = {}
    work = Work(Clips(clips), video_timeout=video_timeout)
    runner = Driver(model, work, executor_for(workers, len(samples)), batch_size)
    results = runner.run([s.path for s in samples])
    for result in tracked(results, len(samples), "evaluate", enabled=progress):
        if result.error is not None:
            failed[result.video] = result.error
            log.warning(f"skipped: {result.error}")
        else:
            scores[result.video] = result.scores
            clip_scores[result.video] = result.clip_scores
            answered_unknown[result.video] = result.unknown
    samples = [s for s in samples if s.path in scores]
    if not samples:
        raise VidclassError(f"{data}: no video could be read")
    matrix = np.stack([scores[s.path] for s in samples])
    used = used_in_training(model, [s.path for s in samples])
    if used:
        log.warning(
            f"evaluate: {used} of {len(samples)} videos were used to train {model.name}; "
            "its figures on them are not a fair test"
        )
    report = {
        "model": model.name,
        "data": str(data),
        "multi_label": multi,
        "evaluated": len(samples),
        "used_in_training": used,  # None: the model does not record its videos
        "failed": failed,
        "unknown_labels": unknown,
        "unknown_answers": _unknown_report(model, [answered_unknown[s.path] for s in samples]),
    }
    if multi:
        threshold = threshold if threshold is not None else model.entry.meta.get("threshold")
        report.update(_multi_label(model, samples, matrix, index, threshold or 0.5))
    else:
        report.update(_single_label(model, samples, matrix, index, top_k))
        clips = [clip_scores[s.path] for s in samples]
        report["calibration"] = _calibration(model, clips, matrix, report["videos"])
    return report


def _calibration(model, clips: list[np.ndarray], scores: np.ndarray, videos: list) -> dict:
    """The calibration error (ECE) of the videos' scores as the model gives them (at its
    temperature), and as they would be without it (temperature 1): each clip's scores
    taken back to temperature 1, then averaged per video as classify does."""
    from ..calibration import BINS, at_temperature, expected_calibration_error, reliability

    index = {name: i for i, name in enumerate(model.labels)}
    y = np.array([index[v["true"]] for v in videos])
    temperature = model.temperature if model.entry.activation == "softmax" else 1.0
    raw = np.stack([at_temperature(c, temperature).mean(axis=0) for c in clips])
    return {
        "temperature": temperature,
        "bins": BINS,
        "ece": expected_calibration_error(scores, y),
        "ece_at_temperature_1": expected_calibration_error(raw, y),
        "reliability": reliability(scores, y),
    }
