"""Writing the records that let later runs start without torch (runtimes.light): done
by a run that opened a model's graph in OpenVINO, through torch."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from ..models.resolve import source_files
from ..models.spec import ModelEntry
from . import graph
from .light import (
    RECORD_FORMAT,
    entry_to_dict,
    file_identity,
    fixed_shape,
    read_record,
    record_path,
)
from .sessions import OpenVINOSession

log = logging.getLogger("vidclass")


def head_graph(module, features: int, label: str) -> Path:
    """The cached graph of `module.head_logits` (fp32) for `features`-wide rows, made
    and checked against torch where it is missing."""
    path = graph.graph_path(graph.state_digest(module), (features,), part="head_logits")
    if not path.is_file():
        threads = torch.get_num_threads()

        def check(candidate, x):
            return OpenVINOSession(candidate, "fp32", threads, x.shape[1:], False)(x)

        graph.export(module, (features,), path, f"{label} head", check, False, "head_logits")
    return path


def remember(
    name: str, asked: str, entry: ModelEntry, runtime_module, shape, session, embed: Path
) -> None:
    """Record that `name` (asked for in precision `asked`) runs from `embed` in
    OpenVINO, as `runtime_module` (a RuntimeModule) just opened it for clips of `shape`
    with `session`; nothing where the model cannot run from a record, or a current
    record says so already."""
    path = record_path(name, asked)
    module = runtime_module.module
    if path is None or not fixed_shape(entry.input, runtime_module.any_frames):
        return
    current = read_record(path)
    if current is not None and current["embed"][0] == str(embed):
        return
    files = source_files(name)
    if files is None:
        return
    features = session.features()
    if features is None:
        return
    head = head_graph(module, features, runtime_module.label)
    extra = [embed.with_suffix(".bin")] if embed.suffix == ".xml" else []
    record = {
        "format": RECORD_FORMAT,
        "model": name,
        "entry": entry_to_dict(entry),
        "precision": runtime_module.precision,
        "any_frames": runtime_module.any_frames,
        "shape": list(graph.graph_shape(shape, runtime_module.any_frames)),
        "features": features,
        "embed": file_identity(embed),
        "embed_extra": [file_identity(p) for p in extra],
        "head": file_identity(head),
        "files": [file_identity(p) for p in files],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.json")
    partial.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)
    log.debug(f"{name}: recorded for runs without torch in {path}")


def prepare(name: str, precision: str = "auto") -> str:
    """Convert model `name` for OpenVINO and record it, so that its runs start without
    torch: one blank clip of its usual shape through it. Says what was done."""
    import numpy as np

    from ..pipeline import load_model

    model = load_model(name, precision=precision, runtime="openvino")
    spec = model.spec
    if not fixed_shape(spec, model.module.any_frames):
        return f"{name}: its clips change shape with the video; it runs through torch"
    height, width = spec.crop_hw or spec.size
    frames = spec.num_frames if spec.fps is None else max(spec.num_frames, spec.pad_to)
    model.logits(model.batch([np.zeros((frames, height, width, 3), np.uint8)]))
    if read_record(record_path(name, precision)) is None:
        return f"{name}: converted for OpenVINO, but runs of it still import torch"
    return f"{name}: converted for OpenVINO ({model.precision}); runs of it start without torch"
