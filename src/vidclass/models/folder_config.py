"""A trained model folder's description, vidclass.json: what `vidclass train` writes.
Read without torch, so that a run from an export can still tell what a folder holds."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import VidclassError
from ..files import open_regular, read_json_file, read_user_file, written_whole
from ..unknown import BANK, MAX_BANK_BYTES
from .spec import InputSpec, ModelEntry

CONFIG = "vidclass.json"
HEAD_WEIGHTS = "head.safetensors"
BACKBONE_WEIGHTS = "backbone.safetensors"  # only when the backbone was fine-tuned
# sha256 of the videos a model was trained and validated on, one a line: how evaluate
# tells them among its videos, by content (names change). Its own file, not the config:
# it grows with the data, and the config is read on every load.
TRAINED_ON = "training_videos.sha256"
FORMAT = 1
MAX_CONFIG_BYTES = 1 << 20  # a config holds labels and metrics: far below this
MAX_TRAINED_ON_BYTES = 64 << 20  # a million videos' digests
_TRAINED_ON_HEADER = "# sha256 of the videos this model was trained and validated on\n"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_trained_dir(name: str) -> bool:
    return Path(name, CONFIG).is_file()


def spec_to_dict(spec: InputSpec) -> dict:
    return dataclasses.asdict(spec)


def spec_from_dict(data: dict) -> InputSpec:
    names = {f.name for f in dataclasses.fields(InputSpec)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return InputSpec(**values)


def load_config(folder: str | Path) -> dict:
    """The folder's vidclass.json as a dict, read as the user's file it is: a regular
    file of at most MAX_CONFIG_BYTES holding a JSON object; else a VidclassError."""
    config = read_json_file(Path(folder, CONFIG), "vidclass model config", MAX_CONFIG_BYTES)
    if not isinstance(config, dict):
        raise VidclassError(
            f"{Path(folder, CONFIG)}: not a readable vidclass model config (not a JSON object)"
        )
    return config


def read_config(folder: str | Path) -> dict:
    """A trained model's config (load_config, of this format)."""
    path = Path(folder, CONFIG)
    config = load_config(folder)
    if config.get("kind") == "quantized":  # an earlier vidclass's int8 folder
        raise VidclassError(
            f"{folder} was made by `vidclass models quantize` of an earlier vidclass; make "
            "it again with: vidclass models export MODEL --precision int8 --calibrate "
            "VIDEOS --out DIR"
        )
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
        meta={
            "threshold": config.get("threshold"),
            "temperature": temperature_of(config, folder),
            "config": config,
            "unknown": config.get("unknown"),
            "unknown_bank": functools.partial(_bank, folder),
        },
    )


def _bank(folder) -> bytes:
    """The folder's unknown bank (BANK), which its config says it has."""
    path = Path(folder, BANK)
    try:
        return read_user_file(path, "unknown bank", MAX_BANK_BYTES)
    except VidclassError as exc:
        raise VidclassError(
            f"{exc}; the model's unknown answers need it: copy the whole model folder"
        ) from None


def temperature_of(config: dict, where) -> float | None:
    """A model's temperature from its config (None: none), checked: a positive number."""
    t = config.get("temperature")
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < 1e6:
        raise VidclassError(f"{where}: its temperature {t!r} is not a positive number")
    return float(t)


def write_trained_on(folder: str | Path, digests: Iterable[str]) -> None:
    """TRAINED_ON in `folder`: the digests, sorted, each once."""
    text = "".join(f"{d}\n" for d in sorted(set(digests)))
    with written_whole(Path(folder, TRAINED_ON)) as partial:
        partial.write_text(_TRAINED_ON_HEADER + text, encoding="ascii")


def read_trained_on(folder: str | Path) -> frozenset[str] | None:
    """The digests of the videos the model in `folder` was trained and validated on;
    None where the folder does not record them (made before it did, or by hand) or the
    record cannot be read."""
    path = Path(folder, TRAINED_ON)
    if not path.is_file():
        return None
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY, "list of digests"), "rb") as f:
            raw = f.read(MAX_TRAINED_ON_BYTES + 1)
        if len(raw) > MAX_TRAINED_ON_BYTES:
            return None
        lines = raw.decode("ascii").splitlines()
    except (OSError, VidclassError, UnicodeDecodeError):
        return None
    return frozenset(ln.strip() for ln in lines if _SHA256.fullmatch(ln.strip()))
