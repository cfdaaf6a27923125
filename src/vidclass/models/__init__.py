"""Model registry, architectures and weights handling."""

from . import builtin  # noqa: F401  (the built-in models register themselves)
from .registry import DEFAULT_MODEL, get_entry, list_entries, register
from .spec import InputSpec, ModelEntry, PipWeights

__all__ = [
    "DEFAULT_MODEL",
    "InputSpec",
    "ModelEntry",
    "PipWeights",
    "get_entry",
    "list_entries",
    "register",
]
