"""Named pretrained models (``arch.tag``), looked up by one factory.

Model files register themselves when imported (the package imports the built-in ones), so
the registry never imports its entries.
"""

from __future__ import annotations

import difflib
import os
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
    """The registered model `name`; an unknown name is a VidclassError naming the
    closest registered names (a misspelling) and listing them all."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        close = closest_names(name)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise VidclassError(
            f"unknown model {name!r}{hint}; known models: {known} (or a transformers "
            "video classifier: a local folder or a Hugging Face hub id)"
        ) from None


def closest_names(name: str, n: int = 3) -> list[str]:
    """Registered names that `name` looks like a misspelling of, closest first (case
    ignored), else those of the architecture it names (`i3d`: i3d.*). A path (a folder
    that is not there) is no misspelt name: none."""
    if not isinstance(name, str) or "/" in name or os.sep in name:
        return []
    lower = {key.lower(): key for key in _REGISTRY}
    close = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    if not close:
        close = [key for key in sorted(lower) if key.split(".")[0] == name.lower()][:n]
    return [lower[c] for c in close]


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def list_entries() -> list[ModelEntry]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def read_labels(resource: str) -> tuple[str, ...]:
    text = resources.files("vidclass.models").joinpath(resource).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())
