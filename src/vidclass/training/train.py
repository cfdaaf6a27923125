"""`vidclass train`: labelled videos to a self-describing model folder."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VidclassError
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..models import DEFAULT_MODEL, folder_config, trained
from ..models.resolve import parse_model_name
from ..options import check, option
from ..results import activate
from ..unknown import (
    DEFAULT_FALSE_UNKNOWN,
    FEW_CLIPS,
    Detector,
    bank_bytes,
    bank_of,
    held_out_scores,
    thinned,
)
from ..unknown import fit as set_threshold
from ..version import __version__
from .dataset import Sample, load_dataset, split_dataset
from .features import extract_features
from .finetune import check_supported, finetune_last_blocks
from .head import train_head
from .prior import backbone_rows, linear_head

log = logging.getLogger("vidclass")


@dataclass
class TrainResult:
    out: Path
    config: dict
    skipped: dict[str, str]  # unreadable videos and why
    extract_seconds: float
    head_seconds: float


def _targets(samples: list[Sample], labels: tuple[str, ...], multi: bool) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    if not multi:
        return np.array([index[s.labels[0]] for s in samples])
    y = np.zeros((len(samples), len(labels)), dtype=np.float32)
    for row, s in enumerate(samples):
        y[row, [index[label] for label in s.labels]] = 1.0
    return y


def _rows(samples: list[Sample], features: dict[str, np.ndarray]):
    """Each video's views as rows (a list: trunk maps of short clips differ in shape),
    and which video each row is."""
    rows = [view for s in samples for view in features[s.path]]
    groups = np.array([i for i, s in enumerate(samples) for _ in features[s.path]])
    return rows, groups


def writable_model_folder(out: str | os.PathLike, force: bool) -> Path:
    """`out` as a folder a model may be written to: new, empty, or with `force` a model
    folder vidclass wrote (nothing else of a user's is replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VidclassError(f"{out} is a file; --out needs a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise VidclassError(f"{out} exists and is not empty; give --force to replace it")
        if not folder_config.is_trained_dir(out):  # --force replaces only a model of ours
            raise VidclassError(
                f"{out} holds files but no vidclass model ({folder_config.CONFIG}); --force "
                "replaces only a folder vidclass wrote: name a new or empty folder"
            )
    return out


def validation_metrics(y_true: np.ndarray, scores: np.ndarray, multi: bool, threshold: float):
    from sklearn import metrics

    if multi:
        pred = (scores >= threshold).astype(int)
        present = y_true.sum(axis=0) > 0  # mAP is undefined for a label with no positives
        return {
            "videos": len(y_true),
            "f1_micro": float(metrics.f1_score(y_true, pred, average="micro", zero_division=0)),
            "f1_macro": float(metrics.f1_score(y_true, pred, average="macro", zero_division=0)),
            "mAP": float(metrics.average_precision_score(y_true[:, present], scores[:, present])),
        }
    pred = scores.argmax(axis=1)
    return {
        "videos": len(y_true),
        "accuracy": float(metrics.accuracy_score(y_true, pred)),
        "f1_macro": float(
            metrics.f1_score(
                y_true, pred, labels=range(scores.shape[1]), average="macro", zero_division=0
            )
        ),
    }


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    backbone: str = DEFAULT_MODEL,
    val: str | os.PathLike | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    clips: int = 1,
    flip: bool = False,
    head: str = "linear",
    hidden: int = 256,
    epochs: int | None = None,
    lr: float = 1e-3,
    patience: int | None = None,
    threshold: float = 0.5,
    false_unknown: float = DEFAULT_FALSE_UNKNOWN,
    workers: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    threads: int | None = None,
    progress: bool = False,
    force: bool = False,
    finetune: str | None = None,
    video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
    device: str = "auto",
    engine: str = "local",
    ray_address: str | None = None,
    prior: str = "auto",
    runtime: str = "auto",
) -> TrainResult:
    """Train a head on a frozen backbone's features and write MODEL_DIR (`out`).

    engine="ray" extracts the features on a Ray cluster (`ray_address`, else
    $RAY_ADDRESS, else a local Ray); the head trains here.

    finetune="last-blocks" also trains the backbone's last blocks (on cached maps of the
    frozen trunk); epochs/patience then default to 30/5 instead of 300/30.

    head "linear", or "mlp" (one hidden layer `hidden` wide).

    false_unknown: the unknown threshold is set to call this share of the validation
    clips unknown (vidclass.unknown: distance to the nearest training clip's features).

    prior="auto": where some of the data's labels are the backbone's own (single-label
    data, frozen backbone), the head starts from the backbone's head for them and
    learns a correction, so what the backbone knows carries over to other videos;
    "off" trains from scratch.
    """
    check("train", locals())  # before torch is imported: a bad value is said at once
    from ..loading import load_torch
    from ..torch_classifier import load_backbone_module

    backbone = os.fspath(backbone or DEFAULT_MODEL)
    if head == "linear":
        if hidden not in (0, option("train", "hidden").default):  # once, hidden > 0 was an MLP
            raise VidclassError(f"hidden={hidden} is an MLP's width: give head='mlp' too")
        hidden = 0  # a linear head has no hidden layer

    out = writable_model_folder(out, force)
    dataset = load_dataset(data)
    if val is not None:
        held = load_dataset(val)
        unseen = sorted(set(held.labels) - set(dataset.labels))
        if unseen:
            raise VidclassError(f"{val}: labels not in the training data: {unseen}")
        train_set, val_set = dataset.samples, held.samples
        multi = dataset.multi_label or held.multi_label
    else:
        multi = dataset.multi_label
        train_set, val_set = split_dataset(dataset, val_fraction, seed)
    labels = dataset.labels
    if Path(backbone).is_dir():  # the model folder must find it from anywhere
        backbone = str(Path(backbone).resolve())
    kind = parse_model_name(backbone).kind
    if kind in ("trained", "exported"):
        raise VidclassError(f"{backbone} is a {kind} model; train on its backbone instead")
    if prior not in ("auto", "off"):
        raise VidclassError(f"unknown --prior {prior!r}; the choice is auto or off")
    if finetune not in (None, "last-blocks"):
        raise VidclassError(f"unknown --finetune {finetune!r}; the choice is last-blocks")
    # Fine-tuning trains torch blocks on the torch trunk's maps: the trunk runs in torch.
    model = load_torch(  # its module: the head starts from the backbone's own
        backbone,
        precision=precision,
        threads=threads,
        device=device,
        runtime="torch" if finetune else runtime,
    )
    if finetune:
        check_supported(model.module)
    epochs = epochs or (30 if finetune else 300)
    patience = patience or (5 if finetune else 30)

    start = time.perf_counter()
    paths = [s.path for s in train_set + val_set]
    digests: dict[str, str] = {}
    features, errors, from_cache = extract_features(
        model,
        paths,
        clips=clips,
        flip=flip,
        workers=workers,
        batch_size=batch_size,
        progress=progress,
        stage="trunk" if finetune else "pooled",
        video_timeout=video_timeout,
        engine=engine,
        ray_address=ray_address,
        digests=digests,
    )
    extract_seconds = time.perf_counter() - start
    for error in errors.values():
        log.warning(f"skipped: {error}")
    train_set = [s for s in train_set if s.path in features]
    val_set = [s for s in val_set if s.path in features]
    missing = sorted(set(labels) - {label for s in train_set for label in s.labels})
    if missing:
        raise VidclassError(f"no readable training videos left for: {missing}")
    if not val_set:
        raise VidclassError("no readable validation videos left")

    start = time.perf_counter()
    x_train, train_groups = _rows(train_set, features)
    y_train = _targets(train_set, labels, multi)[train_groups]
    x_val, val_groups = _rows(val_set, features)
    y_val = _targets(val_set, labels, multi)
    options = dict(hidden=hidden, epochs=epochs, lr=lr, patience=patience, seed=seed)
    backbone_state = None
    prior_labels: list[str] = []
    if finetune:
        fresh = load_backbone_module(backbone)  # BatchNorm unfolded, as saved and reloaded
        backbone_state, fit, net = finetune_last_blocks(
            fresh,
            list(x_train),
            y_train,
            list(x_val),
            y_val,
            val_groups,
            multi,
            progress=progress,
            **options,
        )
        in_dim = fit.head.mean.shape[0]
    else:
        x_train, x_val = np.stack(x_train), np.stack(x_val)
        start_rows = None
        if prior == "auto" and not multi:
            start_rows = backbone_rows(model.module, model.labels, labels, x_train.shape[1])
        if start_rows is not None:
            prior_labels = start_rows[2]
            log.info(f"starting from the backbone's own head for {', '.join(prior_labels)}")
        fit = train_head(
            x_train,
            y_train,
            x_val,
            y_val,
            val_groups,
            multi,
            progress=progress,
            prior=start_rows[:2] if start_rows is not None else None,
            **options,
        )
        net, in_dim = fit.head, x_train.shape[1]
    head_seconds = time.perf_counter() - start

    import torch

    with torch.no_grad():
        logits = torch.cat([net(torch.from_numpy(x[None]).float()) for x in x_val]).numpy()
    calibration = None if multi else fit_calibration(logits, y_val, val_groups)
    temperature = 1.0 if calibration is None else calibration["temperature"]
    # as the model will score: at its temperature, each video the mean of its clips
    probs = activate(logits / temperature, "sigmoid" if multi else "softmax")
    per_video = np.stack([probs[val_groups == i].mean(axis=0) for i in range(len(val_set))])
    metrics = validation_metrics(y_val, per_video, multi, threshold)
    embed = net.embed if finetune else None
    every = [*x_train, *x_val]  # each video once: train_groups, then the validation videos
    owners = np.concatenate([train_groups, val_groups + len(train_set)])
    detector, unknown = fit_detector(model.module, embed, every, owners, false_unknown)
    config = {
        "backbone": backbone,
        "labels": list(labels),
        "multi_label": multi,
        "threshold": threshold if multi else None,
        "temperature": None if multi else temperature,
        "calibration": calibration,
        "unknown": unknown,
        "input": folder_config.spec_to_dict(model.spec),
        "head": {
            "in_dim": int(in_dim),
            "hidden": hidden,
            "dropout": 0.2,
            "prior": bool(getattr(fit.head, "prior", False)),
        },
        "training": {
            "method": (
                f"last blocks ({', '.join(model.module.finetune_blocks)}) fine-tuned with the "
                "head, on cached maps of the frozen trunk"
                if finetune
                else "frozen backbone, head on pooled features"
            ),
            "data": str(data),
            "validation": (
                str(val)
                if val is not None
                else "the data's split column"
                if any(s.split for s in train_set + val_set)
                else f"{val_fraction:g} split, seed {seed}"
            ),
            "videos": len(train_set) + len(val_set),
            "train_videos": len(train_set),
            "val_videos": len(val_set),
            "skipped": sorted(errors),
            "clips": clips,
            "flip": flip,
            "prior_labels": prior_labels,
            "epochs_run": fit.epochs,
            "best_epoch": fit.best_epoch,
            "lr": lr,
            "seed": seed,
            "label_counts": {label: int(n) for label, n in sorted(dataset.counts().items())},
            "features_from_cache": from_cache,
            "vidclass": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "metrics": {"validation": metrics},
    }
    # What it learnt from (and was stopped on): evaluate warns of these among its videos.
    trained_on = [digests[s.path] for s in train_set + val_set]
    bank = bank_bytes(detector)
    trained.save(out, config, fit.head, backbone_state, trained_on=trained_on, bank=bank)
    return TrainResult(out, config, errors, extract_seconds, head_seconds)


def fit_calibration(logits: np.ndarray, y_val: np.ndarray, val_groups: np.ndarray) -> dict:
    """The temperature that calibrates a single-label head, fit on its validation clips,
    and their negative log-likelihood without and with it (`evaluate` gives the
    calibration error on other videos: a few validation videos cannot say it)."""
    from ..calibration import fit_temperature, nll

    targets = y_val[val_groups]
    temperature = fit_temperature(logits, targets)
    return {
        "temperature": temperature,
        "set_on": len(logits),
        "nll_before": nll(logits, targets),
        "nll_after": nll(logits, targets, temperature),
    }


def fit_detector(backbone, embed, rows, groups, false_unknown: float):
    """The knn unknown detector over every training and validation clip (`rows`, of the
    videos `groups` numbers): each clip seen through the `backbone` module's own head
    where it is linear. Its threshold is set on each video's clips scored without that
    video in the bank (leave one video out), so it says how a new video of these labels
    fares. `embed`: features from rows (a fine-tuned backbone's tail over trunk maps;
    None: the rows are features). Returns (detector, its `unknown` block of the model's
    config: the detector, the videos it was set on and the share of them, each scored
    without itself, that it answers unknown)."""
    import torch

    if embed is None:
        features = np.asarray(rows, dtype=np.float32)
    else:
        with torch.no_grad():
            # trunk maps are kept as float16: the tail computes in float32
            features = torch.cat([embed(torch.as_tensor(r)[None].float()) for r in rows]).numpy()
    head = linear_head(backbone, features.shape[1])
    head = None if head is None else (head[0].numpy(), head[1].numpy())
    kept = thinned(len(features))
    detector = Detector("knn", bank=bank_of(features[kept], head), head=head)
    ood = held_out_scores(detector, features, groups, groups[kept])
    if len(ood) < FEW_CLIPS:
        log.warning(
            f"the unknown threshold is set on {len(ood)} clips: its false-unknown rate "
            f"({false_unknown:g}) holds roughly; more videos (or --clips) set it better"
        )
    per_video = np.array([ood[groups == g].mean() for g in np.unique(groups)])
    detector = set_threshold(detector, ood, false_unknown)
    described = {
        **detector.describe(),
        "videos": len(per_video),
        "unknown_rate": float((per_video > detector.threshold).mean()),
    }
    return detector, described
