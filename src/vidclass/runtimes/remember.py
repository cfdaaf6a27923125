"""Writing the records that let later runs start without torch (runtimes.light): done
by a run that opened a model's graph in OpenVINO, through torch."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from pathlib import Path

import torch

from ..files import Damaged, Unrecorded, discard, is_partial, read_own, store
from ..models.resolve import source_files
from ..models.spec import ModelEntry
from . import cached, graph, graph_shape
from .light import (
    MAX_RECORD_BYTES,
    RECORD_FORMAT,
    file_identity,
    read_record,
    record_bytes,
    record_path,
    runs_from_record,
    typical_clip,
)
from .sessions import OpenVINOSession

log = logging.getLogger("vidclass")
MAX_RECORDS = 256  # records kept; the oldest go first
_UNREADABLE = (OSError, ValueError, RecursionError, Damaged, AttributeError, TypeError, IndexError)


def head_graph(module, features: int, label: str) -> Path:
    """The cached graph of `module.head_logits` (fp32) for `features`-wide rows, made
    and checked against torch where it is missing or not as written (it is small: read
    back whole here, so that a record never names a damaged head)."""
    path = graph.graph_path(graph.state_digest(module), (features,), part="head_logits")
    try:
        cached.load(path)
    except FileNotFoundError:
        pass
    except Damaged as exc:
        if not isinstance(exc, Unrecorded):
            log.warning(f"{exc}; converting it again")
        cached.discard(path)
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
    MAX_RECORDS, are removed; so is whatever else is there under a record's name (a
    FIFO, a link, a folder: never opened, so none can hang or stop a run). Nothing here
    fails a run: what cannot be removed (a read-only cache) stays."""
    records = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        path = folder / name
        if not name.endswith(".json"):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if is_partial(path):  # being written, or (an hour on) left by a killed run
            if time.time() - st.st_mtime > 3600:
                discard(path)
            continue
        if not stat.S_ISREG(st.st_mode):  # not something a run wrote
            discard(path)
            continue
        try:
            raw = read_own(path, "record", folder, MAX_RECORD_BYTES)
            files = json.loads(raw).get("files") or [[""]]
            gone = not all(os.path.exists(identity[0]) for identity in files)
            records.append((st.st_mtime, gone, path))
        except _UNREADABLE:  # torn, forged: removed
            records.append((0.0, True, path))
    records.sort(reverse=True)
    for i, (_, gone, path) in enumerate(records):
        if gone or i >= MAX_RECORDS:
            with contextlib.suppress(OSError):
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
    if cached.in_memory(embed):
        return  # the cache cannot take its graph: nothing to record
    current = read_record(path, entry, identities, asked, warn=False)  # said when loading
    if current is not None and current["embed"] == file_identity(embed):
        return
    head = head_graph(runtime_module.module, features, runtime_module.label)
    if cached.in_memory(head):
        return
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
    _prune(path.parent)
    if store(path, record_bytes(record), digest=False):  # it carries its own sha256
        log.debug(f"{name}: recorded for runs without torch in {path}")
