"""Named pretrained models (``arch.tag``), looked up by one factory.

Model files register themselves when imported (the package imports the built-in ones), so
the registry never imports its entries.
"""

from __future__ import annotations

from importlib import resources

from ..errors import VidclassError
from .spec import ModelEntry

_REGISTRY: dict[str, ModelEntry] = {}
DEFAULT_MODEL = "i3d.kinetics400"


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise VidclassError(
            f"unknown model {name!r}; known models: {known} (or a transformers "
            "video classifier: a local folder or a Hugging Face hub id)"
        ) from None


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def list_entries() -> list[ModelEntry]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def read_labels(resource: str) -> tuple[str, ...]:
    text = resources.files("vidclass.models").joinpath(resource).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())
