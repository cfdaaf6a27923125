"""Labelled videos for training and evaluation: a folder per label, or a CSV/JSONL list."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..batch.sources import is_video_name
from ..errors import VidclassError

log = logging.getLogger("vidclass")

SPLITS = ("train", "val")
LABEL_SEPARATORS = ("|", ";")  # several labels in one CSV cell: "running|outdoor"


@dataclass(frozen=True)
class Sample:
    path: str
    labels: tuple[str, ...]
    split: str | None = None  # "train" or "val" where the data file says so


@dataclass
class Dataset:
    samples: list[Sample]
    labels: tuple[str, ...]  # sorted, every label that occurs
    multi_label: bool  # some video has more than one label
    source: str

    def counts(self) -> Counter:
        return Counter(label for s in self.samples for label in s.labels)


def is_labelled(data: str | os.PathLike) -> bool:
    """Whether `data` names labelled videos (a .csv or .jsonl list, or a folder of label
    subfolders and no videos of its own) rather than videos alone."""
    path = Path(data)
    if path.is_file():
        return path.suffix.lower() in (".csv", ".jsonl", ".ndjson")
    if path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        if any(p.is_file() and is_video_name(p) for p in entries):
            return False  # videos of its own: a folder of videos, subfolders or not
        return any(p.is_dir() for p in entries)
    return False


def load_dataset(data: str | os.PathLike) -> Dataset:
    """Read DATA: a folder with one subfolder of videos per label, or a .csv/.jsonl file
    of `path,label` (a path may repeat, or a cell hold `a|b`, for several labels; an
    optional `split` column of train/val fixes the validation set)."""
    path = Path(data)
    if path.is_dir():
        samples = _from_folder(path)
    elif path.suffix.lower() == ".csv" and path.is_file():
        samples = _from_csv(path)
    elif path.suffix.lower() in (".jsonl", ".ndjson") and path.is_file():
        samples = _from_jsonl(path)
    elif not path.exists():
        raise VidclassError(f"{path}: no such folder or file")
    else:
        raise VidclassError(f"{path}: give a folder of label subfolders, or a .csv/.jsonl file")
    if not samples:
        raise VidclassError(f"{path}: no labelled videos found")
    samples = _merge_repeats(samples)
    labels = tuple(sorted({label for s in samples for label in s.labels}))
    multi = any(len(s.labels) > 1 for s in samples)
    return Dataset(samples, labels, multi, str(path))


def _from_folder(root: Path) -> list[Sample]:
    samples = []
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        raise VidclassError(f"{root}: no label subfolders (expected {root}/LABEL/video.mp4)")
    for folder in subfolders:
        found = []
        for dirpath, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(dirpath, f) for f in sorted(files) if is_video_name(f)]
        if not found:
            log.warning(f"{folder}: no videos; label {folder.name!r} left out")
        samples += [Sample(p, (folder.name,)) for p in found]
    loose = [p.name for p in root.iterdir() if p.is_file() and is_video_name(p)]
    if loose:
        log.warning(f"{root}: {len(loose)} videos outside a label subfolder are left out")
    return samples


def _resolve(base: Path, value: str) -> str:
    return value if os.path.isabs(value) else os.path.normpath(base / value)


def _split_of(value, where: str) -> str | None:
    if value in (None, ""):
        return None
    value = str(value).strip().lower()
    aliases = {"validation": "val", "valid": "val", "dev": "val"}
    value = aliases.get(value, value)
    if value not in SPLITS:
        raise VidclassError(f"{where}: split must be train or val, got {value!r}")
    return value


def _labels_of(value) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    text = str(value or "")
    for sep in LABEL_SEPARATORS:
        if sep in text:
            return tuple(p.strip() for p in text.split(sep) if p.strip())
    return (text.strip(),) if text.strip() else ()


def _from_csv(path: Path) -> list[Sample]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        column = fields.get("path") or fields.get("video")
        label_col = fields.get("label") or fields.get("labels")
        if column is None or label_col is None:
            raise VidclassError(f"{path}: needs a header with path and label columns")
        split_col = fields.get("split")
        samples = []
        for n, row in enumerate(reader, 2):
            where = f"{path}:{n}"
            labels = _labels_of(row.get(label_col))
            if not row.get(column) or not labels:
                raise VidclassError(f"{where}: a row needs a path and a label")
            split = _split_of(row.get(split_col), where) if split_col else None
            samples.append(Sample(_resolve(path.parent, row[column].strip()), labels, split))
    return samples


def _from_jsonl(path: Path) -> list[Sample]:
    samples = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
            video = row.get("path") or row.get("video")
            labels = _labels_of(row.get("labels", row.get("label")))
        except (ValueError, AttributeError):
            raise VidclassError(f"{where}: not a JSON object") from None
        if not video or not labels:
            raise VidclassError(f'{where}: needs "path" and "label" (or "labels")')
        split = _split_of(row.get("split"), where)
        samples.append(Sample(_resolve(path.parent, video), labels, split))
    return samples


def _merge_repeats(samples: list[Sample]) -> list[Sample]:
    """One sample per video; a video listed on several rows has all their labels."""
    merged: dict[str, Sample] = {}
    for s in samples:
        old = merged.get(s.path)
        if old is None:
            merged[s.path] = s
        else:
            labels = tuple(dict.fromkeys(old.labels + s.labels))
            merged[s.path] = Sample(s.path, labels, old.split or s.split)
    return list(merged.values())


def split_dataset(
    dataset: Dataset, val_fraction: float = 0.2, seed: int = 0, min_per_label: int = 2
) -> tuple[list[Sample], list[Sample]]:
    """(train, val): the data file's own split where it gives one, else a stratified,
    seeded split with every label in both parts."""
    counts = dataset.counts()
    few = {label: n for label, n in counts.items() if n < min_per_label}
    if few:
        listed = ", ".join(f"{label!r} ({n})" for label, n in sorted(few.items()))
        raise VidclassError(
            f"too few videos for: {listed}; each label needs at least {min_per_label} "
            "(one to train on, one to validate)"
        )
    if any(s.split for s in dataset.samples):
        train = [s for s in dataset.samples if s.split != "val"]
        val = [s for s in dataset.samples if s.split == "val"]
        if not val:
            raise VidclassError(f"{dataset.source}: the split column names no val videos")
        return train, val
    from sklearn.model_selection import train_test_split

    # Stratify on each video's rarest label, so rare labels reach both parts.
    key = [min(s.labels, key=lambda label: (counts[label], label)) for s in dataset.samples]
    n_val = max(len(dataset.labels), round(val_fraction * len(dataset.samples)))
    if n_val >= len(dataset.samples):
        raise VidclassError(
            f"{len(dataset.samples)} videos are too few to hold back one per label for "
            f"validation ({len(dataset.labels)} labels)"
        )
    train, val = train_test_split(dataset.samples, test_size=n_val, random_state=seed, stratify=key)
    return list(train), list(val)
