"""Writing the records that let later runs start without torch (runtimes.light): done
by a run that opened a model's graph in OpenVINO, through torch."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import torch

from ..files import is_partial, written_whole
from ..models.resolve import source_files
from ..models.spec import ModelEntry
from . import graph, graph_shape
from .light import (
    RECORD_FORMAT,
    file_identity,
    read_record,
    record_path,
    runs_from_record,
    typical_clip,
)
from .sessions import OpenVINOSession

log = logging.getLogger("vidclass")
MAX_RECORDS = 256  # records kept; the oldest go first


def head_graph(module, features: int, label: str) -> Path:
    """The cached graph of `module.head_logits` (fp32) for `features`-wide rows, made
    and checked against torch where it is missing."""
    path = graph.graph_path(graph.state_digest(module), (features,), part="head_logits")
    threads = torch.get_num_threads()
    return graph.ensure(
        module,
        (features,),
        path,
        f"{label} head",
        lambda candidate, dims: OpenVINOSession(candidate, "fp32", threads, dims, False),
        False,
        "head_logits",
    )


def _prune(folder: Path) -> None:
    """Records of models whose files are gone (a deleted folder), and the oldest past
    MAX_RECORDS, are removed."""
    records = []
    for path in folder.glob("*.json"):
        if is_partial(path):  # being written, or (an hour on) left by a killed run
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > 3600:
                    path.unlink()
            continue
        try:
            with open(path, "rb") as f:
                files = json.loads(f.read(1 << 20)).get("files") or [[""]]
            gone = not all(os.path.exists(identity[0]) for identity in files)
            records.append((path.stat().st_mtime, gone, path))
        except (OSError, ValueError, AttributeError, TypeError, IndexError):
            records.append((0.0, True, path))
    records.sort(reverse=True)
    for i, (_, gone, path) in enumerate(records):
        if gone or i >= MAX_RECORDS:
            path.unlink(missing_ok=True)


def remember(
    name: str,
    asked: str,
    entry: ModelEntry,
    runtime_module,
    shape: tuple[int, ...],
    session,
    embed: Path,
) -> None:
    """Record that `name` (asked for in precision `asked`) runs from `embed` in
    OpenVINO, as `runtime_module` (a RuntimeModule) just opened it for clips of `shape`
    with `session`; nothing where the model cannot run from a record, or a current
    record says so already."""
    path = record_path(name, asked)
    any_frames = runtime_module.any_frames
    clip = typical_clip(entry.input)
    if path is None or not runs_from_record(entry.input, any_frames):
        return
    if list(graph_shape(shape, any_frames)) != list(graph_shape(clip, any_frames)):
        return  # a clip of another shape (a short video, a model without a fixed size)
    files = source_files(name)
    features = session.features()
    if files is None or features is None:
        return
    identities = [file_identity(p) for p in files]
    current = read_record(path, entry, identities, asked)
    if current is not None and current["embed"] == file_identity(embed):
        return
    head = head_graph(runtime_module.module, features, runtime_module.label)
    extra = [embed.with_suffix(".bin")] if embed.suffix == ".xml" else []
    record = {
        "format": RECORD_FORMAT,
        "model": name,
        "precision": runtime_module.precision,
        "any_frames": any_frames,
        "shape": list(graph_shape(clip, any_frames)),
        "clip": list(clip),
        "features": features,
        "embed": file_identity(embed),
        "embed_extra": [file_identity(p) for p in extra],
        "head": file_identity(head),
        "files": identities,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _prune(path.parent)
    with written_whole(path) as partial:
        partial.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    log.debug(f"{name}: recorded for runs without torch in {path}")
