"""Models written by `vidclass models quantize`: a folder holding vidclass.json (kind
"quantized"), the backbone's int8 graph in OpenVINO's format, and its base model.

The base (a model name, or a trained model copied into `base/`) gives the labels, the
preprocessing and the small head, which runs in torch; the int8 graph replaces the
backbone. The config records how the graph was calibrated.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import VidclassError
from . import folder_config
from .spec import ModelEntry

KIND = "quantized"
GRAPH = "embed.int8.xml"  # with its weights beside it, embed.int8.bin
BASE_DIR = "base"  # a trained base model, copied whole


def graph_files(folder: str | Path) -> tuple[Path, Path]:
    xml = Path(folder, GRAPH)
    return xml, xml.with_suffix(".bin")


def _config(folder: str | Path) -> dict | None:
    try:
        return folder_config.load_config(folder)
    except VidclassError:
        return None


def is_quantized_dir(name: str) -> bool:
    config = _config(name) if folder_config.is_trained_dir(name) else None
    return config is not None and config.get("kind") == KIND


def read_config(folder: str | Path) -> dict:
    config = _config(folder)
    if config is None or config.get("kind") != KIND:
        raise VidclassError(f"{Path(folder, folder_config.CONFIG)}: not a quantized vidclass model")
    if config.get("format") != folder_config.FORMAT:
        raise VidclassError(
            f"{folder}: model format {config.get('format')!r} is not {folder_config.FORMAT}"
        )
    for key in ("base", "calibration", "precision"):
        if key not in config:
            raise VidclassError(f"{Path(folder, folder_config.CONFIG)}: no {key!r}")
    if not isinstance(config["base"], str) or not config["base"]:
        raise VidclassError(f"{Path(folder, folder_config.CONFIG)}: 'base' is not a model name")
    if is_quantized_dir(base_name(folder, config)):
        raise VidclassError(f"{folder}: its base is itself quantized")
    for path in graph_files(folder):
        if not path.is_file():
            raise VidclassError(f"{folder}: {path.name} is missing; quantize the model again")
    return config


def base_name(folder: str | Path, config: dict) -> str:
    """The base model's name: a trained model kept inside the folder, else as recorded."""
    if config.get("base_copied"):
        return str(Path(folder, BASE_DIR))
    return config["base"]


def read_entry(folder: str | Path, base: ModelEntry, config: dict) -> ModelEntry:
    """The base model's entry, named and described as this folder (`config`: its
    read_config)."""
    calibration = config["calibration"]
    return ModelEntry(
        name=str(folder),
        description=f"int8 of {base.name}, calibrated on {calibration.get('clips', '?')} "
        f"clips of {calibration.get('videos_used', '?')} videos",
        labels=base.labels,
        input=base.input,
        weights=None,
        build=None,
        activation=base.activation,
        source=f"{graph_files(folder)[0]} with the head of {base.name}",
        meta={**base.meta, "quantized": config, "graph": str(graph_files(folder)[0])},
    )
