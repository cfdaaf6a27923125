"""The models a user can run: the built-in ones, transformers classifiers in the local
Hugging Face cache, any named; and fetching their weights ahead of time."""

from __future__ import annotations

import logging

from ..errors import VidclassError
from . import hf
from .registry import list_entries
from .resolve import describe, parse_model_name
from .weights import pull, weights_path

log = logging.getLogger("vidclass")


def catalog(names: list[str] | None = None) -> list[dict]:
    """A row per model (`ModelEntry.summary()` and whether its weights are here): the
    built-in ones, then each of `names`, or without names the transformers video
    classifiers in the Hugging Face cache."""
    rows = [{**e.summary(), "cached": weights_path(e).is_file()} for e in list_entries()]
    for name in names or []:
        row = describe(name).summary()
        if all(r["name"] != row["name"] for r in rows):  # a built-in one is listed already
            rows.append({**row, "cached": True})
    if not names:
        for name in hf.cached_hub_models():
            try:
                rows.append({**hf.read_entry(name, download=False).summary(), "cached": True})
            except VidclassError as exc:  # one broken cache entry must not hide the rest
                log.warning(str(exc))
    return rows


def fetch(name: str, source: str | None = None, force: bool = False) -> str:
    """Get a model's weights into its cache; says where they are."""
    ref = parse_model_name(name)
    if ref.kind == "transformers":
        hf.load_module(hf.read_entry(ref.name))  # fills the Hugging Face cache
        return f"{name}: ready (Hugging Face cache)"
    if ref.kind in ("trained", "quantized"):
        raise VidclassError(f"{name} is a {ref.kind} model folder: its weights are in it")
    entry = describe(name)
    path = weights_path(entry)
    if path.is_file() and not force and not source:
        return f"{entry.name}: already in {path}"
    return f"{entry.name}: {pull(entry, source)}"
