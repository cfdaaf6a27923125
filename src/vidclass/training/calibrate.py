"""`vidclass calibrate`: a pretrained model fitted to the user's own videos, written as a
model folder like train's: the model's own head, unchanged, with an unknown detector
(its threshold set on the videos given: outside them is "unknown") and, where the videos
are labelled, a temperature that calibrates its scores."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VidclassError
from ..label_choice import find_labels
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..models import DEFAULT_MODEL, folder_config, trained
from ..models.resolve import parse_model_name
from ..options import check
from ..unknown import DEFAULT_FALSE_UNKNOWN, bank_bytes
from ..version import __version__
from .dataset import is_labelled, load_dataset
from .features import extract_features
from .train import fit_detector, writable_model_folder

log = logging.getLogger("vidclass")


@dataclass
class CalibrateResult:
    out: Path
    config: dict
    skipped: dict[str, str]  # unreadable videos and why


def calibrate(
    model: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    false_unknown: float = DEFAULT_FALSE_UNKNOWN,
    clips: int = 4,
    recursive: bool = False,
    workers: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    threads: int | None = None,
    device: str = "auto",
    runtime: str = "auto",
    progress: bool = False,
    force: bool = False,
    video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
) -> CalibrateResult:
    """Fit `model` (a registered or transformers model) to the videos of `data` and
    write the result to the folder `out`, a model like any other.

    `data`: videos of the kind the model will see, labelled (a folder of label
    subfolders, a .csv or .jsonl, as for train) or not (a folder of videos, a list
    file, globs). The unknown threshold calls `false_unknown` of their clips unknown,
    each scored without its own video. Labelled videos whose labels the model has also
    fit its temperature (single-label models)."""
    check("calibrate", locals())
    from ..loading import load_torch
    from ..training.prior import linear_head

    name = os.fspath(model or DEFAULT_MODEL)
    kind = parse_model_name(name).kind
    if kind in ("trained", "exported"):
        raise VidclassError(
            f"{name} is a {kind} model: `vidclass train` fits its unknown threshold and "
            "temperature; calibrate the model it was made from"
        )
    out = writable_model_folder(out, force)
    if Path(name).is_dir():  # the model folder must find it from anywhere
        name = str(Path(name).resolve())
    paths, targets = _videos(data, recursive)
    loaded = load_torch(name, precision=precision, threads=threads, device=device, runtime=runtime)
    if loaded.zero_shot:
        raise VidclassError(f"{name} is a vision-language model: it has no head to calibrate")
    digests: dict[str, str] = {}
    features, errors, _ = extract_features(
        loaded,
        paths,
        clips=clips,
        workers=workers,
        batch_size=batch_size,
        progress=progress,
        video_timeout=video_timeout,
        digests=digests,
    )
    for error in errors.values():
        log.warning(f"skipped: {error}")
    paths = [p for p in paths if p in features]
    if len(paths) < 2:
        raise VidclassError(
            f"{data}: {len(paths)} readable videos; the threshold needs at least 2 (each is "
            "scored against the others)"
        )
    rows = np.concatenate([features[p] for p in paths])
    groups = np.concatenate([[i] * len(features[p]) for i, p in enumerate(paths)])
    head = linear_head(loaded.module, rows.shape[1])
    if head is None:
        raise VidclassError(f"{name}: its head is not a linear map of its features")
    detector, unknown = fit_detector(loaded.module, None, rows, groups, false_unknown)
    weight, bias = (t.numpy() for t in head)
    calibration = _temperature(loaded, paths, features, targets, weight, bias)

    config = {
        "backbone": name,
        "labels": list(loaded.labels),
        "multi_label": loaded.entry.activation == "sigmoid",
        "threshold": loaded.threshold,
        "temperature": None if calibration is None else calibration["temperature"],
        "calibration": calibration,
        "unknown": unknown,
        "input": folder_config.spec_to_dict(loaded.spec),
        "head": {"in_dim": int(rows.shape[1]), "hidden": 0, "dropout": 0.2, "prior": True},
        "training": {
            "method": "calibrated: the model's own head, with an unknown threshold and a "
            "temperature fit on the videos given",
            "data": str(data),
            "videos": len(paths),
            "labelled_videos": 0 if calibration is None else calibration["videos"],
            "skipped": sorted(errors),
            "clips": clips,
            "vidclass": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "metrics": {},
    }
    trained.save(
        out,
        config,
        _own_head(weight, bias),
        trained_on=[digests[p] for p in paths],
        bank=bank_bytes(detector),
    )
    return CalibrateResult(out, config, errors)


def _videos(data, recursive: bool) -> tuple[list[str], dict[str, str]]:
    """The videos of `data` and, where it is labelled (single-label), each one's label."""
    if is_labelled(data):
        dataset = load_dataset(data)
        labels = {s.path: s.labels[0] for s in dataset.samples if len(s.labels) == 1}
        return [s.path for s in dataset.samples], labels
    from ..batch.sources import expand_inputs

    return expand_inputs([os.fspath(data)], recursive=recursive), {}


def _temperature(model, paths, features, targets, weight, bias) -> dict | None:
    """The temperature fit on the labelled clips whose labels the model has (None: no
    such clip, or a multi-label model), and the clips' NLL without and with it."""
    from ..calibration import fit_temperature, nll

    if not targets or model.entry.activation != "softmax":
        return None
    index, missing = find_labels(model.labels, sorted(set(targets.values())))
    if missing:
        log.warning(f"labels the model does not have (left out of its temperature): {missing}")
    used = [p for p in paths if targets.get(p) in index]
    if not used:
        return None
    logits = np.concatenate([features[p] @ weight.T + bias for p in used])
    y = np.concatenate([[index[targets[p]]] * len(features[p]) for p in used])
    temperature = fit_temperature(logits, y)
    return {
        "temperature": temperature,
        "set_on": len(y),
        "videos": len(used),
        "nll_before": nll(logits, y),
        "nll_after": nll(logits, y, temperature),
    }


def _own_head(weight: np.ndarray, bias: np.ndarray):
    """A Head that computes the model's own head exactly: its linear map as the frozen
    prior, the learnt part zero."""
    import torch

    from ..models.head import Head

    head = Head(weight.shape[1], weight.shape[0], prior=True)
    return head.start_from(torch.from_numpy(weight), torch.from_numpy(bias)).eval()
