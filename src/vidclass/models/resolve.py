"""What a model name means, decided once for every command: a registered name
(`i3d.kinetics400`), a folder written by `vidclass train` or `vidclass models export`,
a transformers folder, or a Hugging Face hub id (`org/name`; `hf-hub:org/name` says so
explicitly)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import VidclassError
from . import exported, folder_config
from .registry import get_entry, is_registered
from .spec import ModelEntry
from .weights import load_folded_state, load_state_dict, save_folded_state, weights_path

if TYPE_CHECKING:  # torch, transformers and the modules: where a model loads, not here
    import torch

HUB_SCHEME = "hf-hub:"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
MAX_FOLDER_FILES = 64  # a model folder's files, listed as what its weights come from
KINDS = ("builtin", "trained", "exported", "transformers")


@dataclass(frozen=True)
class ModelRef:
    kind: str  # one of KINDS
    name: str  # the registered name, the folder, or the hub id


def parse_model_name(name: str) -> ModelRef:
    """The kind of model `name` names; an unknown name is a VidclassError listing the
    ones there are."""
    if not isinstance(name, str) or not name:
        raise VidclassError("give a model name")
    if name.startswith(HUB_SCHEME):
        return ModelRef("transformers", name[len(HUB_SCHEME) :])
    if exported.is_exported_dir(name):
        return ModelRef("exported", name)
    if folder_config.is_trained_dir(name):
        return ModelRef("trained", name)
    if is_registered(name):
        return ModelRef("builtin", name)
    if is_hf_reference(name):
        return ModelRef("transformers", name)
    get_entry(name)  # raises with the list of known models
    raise AssertionError  # not reached


def is_hf_reference(name: str) -> bool:
    """A local folder, or a name shaped like a hub id (`org/model`)."""
    path = Path(name)
    return path.is_dir() or (not path.exists() and _HUB_ID.fullmatch(name) is not None)


def describe(name: str, download: bool = True) -> ModelEntry:
    """The model's entry (labels, input spec, source) without loading its weights."""
    ref = parse_model_name(name)
    if ref.kind == "exported":
        return exported.read_entry(ref.name)
    if ref.kind == "trained":
        return folder_config.read_entry(ref.name)
    if ref.kind == "transformers":
        from . import hf

        return hf.read_entry(ref.name, download=download)
    return get_entry(ref.name)


def source_files(name: str) -> list[Path] | None:
    """The files a model's weights and description come from (a folder's files, and its
    base model's; a registered model's converted weights), so that a change to any of
    them is seen; None where they cannot be listed (a hub model in transformers' cache)."""
    ref = parse_model_name(name)
    if ref.kind == "builtin":
        path = weights_path(get_entry(ref.name))
        return [path] if path.is_file() else None
    if not Path(ref.name).is_dir():
        return None
    files = sorted(p for p in Path(ref.name).iterdir() if p.is_file())
    if len(files) > MAX_FOLDER_FILES:
        return None
    base = None
    if ref.kind == "trained":
        base = folder_config.read_config(ref.name)["backbone"]
    more = source_files(base) if base is not None else []
    return None if more is None else files + more


def load(name: str, download: bool = True) -> tuple[ModelEntry, torch.nn.Module]:
    """The model's entry and its torch module with weights (not an exported model:
    that has graphs, not a module)."""
    ref = parse_model_name(name)
    if ref.kind == "exported":
        raise VidclassError(
            f"{name} is an exported model: it has no torch module (export, training and "
            "--runtime torch take the model it was exported from)"
        )
    if ref.kind == "trained":
        from . import trained

        entry = folder_config.read_entry(ref.name)
        module = trained.load_module(
            ref.name, entry.meta["config"], lambda b: load_pretrained(b, download)[1]
        )
        return entry, module
    return load_pretrained(name, download, folded=True)


def load_pretrained(
    name: str, download: bool = True, folded: bool = False
) -> tuple[ModelEntry, torch.nn.Module]:
    """A pretrained model (registered or transformers), not a trained folder: what a
    trained model's backbone is. `folded`: BatchNorm folded in, as inference runs it
    (registered models keep their folded weights cached, so that is done once)."""
    ref = parse_model_name(name)
    if ref.kind in ("trained", "exported"):
        raise VidclassError(f"{name} is a {ref.kind} model; use its backbone instead")
    if ref.kind == "transformers":
        from . import hf

        entry = hf.read_entry(ref.name, download=download)
        return entry, hf.load_module(entry, download=download)
    import torch

    entry = get_entry(ref.name)
    # Built without memory and without random initialisation (the weights replace it
    # whole: loading is strict), then given the loaded tensors themselves.
    state = load_folded_state(entry) if folded else None
    if state is not None:
        with torch.device("meta"):
            module = entry.build()
        module.fold_batchnorm().load_state_dict(state, assign=True)
        return entry, module
    state = load_state_dict(entry, download=download)
    with torch.device("meta"):
        module = entry.build()
    module.load_state_dict(state, assign=True)
    if folded:
        save_folded_state(entry, module.eval().fold_batchnorm().state_dict())
    return entry, module
