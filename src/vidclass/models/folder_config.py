"""A model folder's description, vidclass.json: what `vidclass train` writes (and
`vidclass models quantize`, with kind "quantized"). Read without torch, so that a run
that never loads a torch module (runtimes.light) can still tell what a folder holds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import VidclassError
from .spec import InputSpec, ModelEntry

CONFIG = "vidclass.json"
HEAD_WEIGHTS = "head.safetensors"
BACKBONE_WEIGHTS = "backbone.safetensors"  # only when the backbone was fine-tuned
FORMAT = 1


def is_trained_dir(name: str) -> bool:
    return Path(name, CONFIG).is_file()


def spec_to_dict(spec: InputSpec) -> dict:
    return dataclasses.asdict(spec)


def spec_from_dict(data: dict) -> InputSpec:
    names = {f.name for f in dataclasses.fields(InputSpec)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return InputSpec(**values)


def read_config(folder: str | Path) -> dict:
    path = Path(folder, CONFIG)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VidclassError(f"{path}: not a readable vidclass model config ({exc})") from None
    if config.get("format") != FORMAT:
        raise VidclassError(f"{path}: model format {config.get('format')!r} is not {FORMAT}")
    return config


def read_entry(folder: str | Path) -> ModelEntry:
    config = read_config(folder)
    multi = config["multi_label"]
    return ModelEntry(
        name=str(folder),
        description=f"trained on {config['training']['videos']} videos, "
        f"backbone {config['backbone']}",
        labels=tuple(config["labels"]),
        input=spec_from_dict(config["input"]),
        weights=None,
        build=None,
        activation="sigmoid" if multi else "softmax",
        source=f"{Path(folder) / HEAD_WEIGHTS} on {config['backbone']}",
        meta={"threshold": config.get("threshold"), "config": config},
    )
