"""Named pretrained models (``arch.tag``), looked up by one factory."""

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
    _ensure_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise VidclassError(
            f"unknown model {name!r}; known models: {known} (or a transformers "
            "video classifier: a local folder or a Hugging Face hub id)"
        ) from None


def is_registered(name: str) -> bool:
    _ensure_builtin()
    return name in _REGISTRY


def list_entries() -> list[ModelEntry]:
    _ensure_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def read_labels(resource: str) -> tuple[str, ...]:
    text = resources.files("vidclass.models").joinpath(resource).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _ensure_builtin() -> None:
    if not _REGISTRY:
        from . import builtin  # noqa: F401  (registers on import)
