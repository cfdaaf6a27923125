"""The one model factory: `load_model(name)` decides once which backend runs a model,
by one rule (`plan`), and loads it.

1. An exported folder (`vidclass models export`) runs in the runtime it was exported
   for, without torch.
2. A registered model or a trained folder, on a CPU, with `--runtime auto` or
   `openvino`, where OpenVINO is installed, runs in OpenVINO from its export in the
   cache (CACHE/exports), without torch. `vidclass models pull` makes that export; the
   first run of a model that has none makes it (through torch, once).
3. Anything else runs through torch: on a GPU, `--runtime torch`, vision-language and
   transformers models (whose backbone still runs in OpenVINO on a CPU with `auto`,
   where it converts), and `--runtime onnxruntime` for a model not exported for it.

The backend depends on the options, the model and the machine (gpu_present), never on
what the cache holds (the cache only saves the start); except that with torch but
without onnx, which exporting needs, a model without an export runs through torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from .classifier import Classifier
from .cpu import tune_allocator
from .devices import gpu_present
from .engine import ModelRecipe
from .errors import VidclassError
from .files import cannot_write
from .models import DEFAULT_MODEL, exported
from .models.exported import ExportDamaged
from .models.resolve import describe, parse_model_name, source_files
from .models.weights import cache_dir
from .options import check
from .runtimes import EXPORT_VERSION, RUNTIMES, installed
from .version import __version__

log = logging.getLogger("vidclass")
CACHED_KINDS = ("builtin", "trained")  # models whose entries and files are read without torch
MAX_CACHED_EXPORTS = 8  # exports kept in the cache; the least recently used go first


@dataclass(frozen=True)
class Plan:
    """What will run a model and why (`vidclass models list MODEL` prints it)."""

    backend: str  # "export" (no torch) or "torch"
    runtime: str  # what computes the backbone: openvino, onnxruntime, torch, auto
    why: str
    folder: Path | None = None  # the exported folder that runs it

    def describe(self) -> str:
        where = f" from {self.folder}" if self.folder is not None else ""
        return f"{self.runtime} ({self.backend}{where}): {self.why}"


def _file_identity(path: Path) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def cached_export(name: str) -> Path | None:
    """Where the cache keeps the export of model `name` (a registered model or trained
    folder), keyed by the identity of every file it comes from (a retrained head is
    another model) and vidclass's version; None where its files cannot be listed."""
    files = source_files(name)
    if files is None:
        return None
    model = str(Path(name).resolve()) if os.path.isdir(name) else name
    key = hashlib.blake2b(
        f"{model}|{'|'.join(_file_identity(p) for p in files)}|vidclass {__version__}|"
        f"{EXPORT_VERSION}|{exported.VERSION}".encode(),
        digest_size=16,
    ).hexdigest()
    return cache_dir() / "exports" / key


def plan(
    name: str, device: str | None = "auto", precision: str = "auto", runtime: str = "auto"
) -> Plan:
    """The backend that runs model `name` with these options (see the module's rule)."""
    name = os.fspath(name)
    if runtime not in RUNTIMES:
        raise VidclassError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    device = str(device or "auto").strip().lower()
    if exported.is_exported_dir(name):
        if device not in ("auto", "cpu"):
            raise VidclassError(f"{name} is an exported model: it runs on the CPU")
        manifest = exported.read_manifest(name)
        return Plan("export", manifest["runtime"], "an exported folder", Path(name))
    cpu = device == "cpu" or (device == "auto" and not gpu_present())
    kind = parse_model_name(name).kind
    if not cpu:
        return Plan("torch", "torch", "a GPU runs it")
    if runtime in ("torch", "onnxruntime"):
        return Plan("torch", runtime, f"--runtime {runtime}")
    if precision in ("fp16", "int8"):
        return Plan("torch", "torch", f"{precision} is not a precision of a CPU export")
    if kind not in CACHED_KINDS:
        return Plan("torch", runtime, "a transformers model runs through torch")
    if describe(name, download=False).zero_shot:
        return Plan("torch", runtime, "a vision-language model's graph changes with its labels")
    if not installed("openvino"):
        if runtime == "openvino":
            return Plan("torch", "openvino", "--runtime openvino")  # says what to install
        why = "OpenVINO is not installed (pip install 'vidclass[openvino]')"
        return Plan("torch", "torch", why)
    folder = cached_export(name)
    if folder is None and kind != "builtin":  # a folder whose files cannot be listed
        return Plan("torch", runtime, "its files cannot be listed to key an export")
    exists = folder is not None and folder.is_dir()
    if not exists and not installed("openvino", convert=True) and find_spec("torch"):
        why = "exporting it for OpenVINO needs onnx (pip install 'vidclass[export]')"
        return Plan("torch", "torch", why)
    why = "a CPU runs it in OpenVINO from its export in the cache (made once, on first use)"
    return Plan("export", "openvino", why, folder)


def load_model(
    name: str = DEFAULT_MODEL,
    precision: str = "auto",
    threads: int | None = None,
    device: str | None = "auto",
    runtime: str = "auto",
    download: bool = True,
) -> Classifier:
    """Load model `name` for reuse: a registered name, a folder written by `vidclass
    train` or `vidclass models export`, or a transformers video classifier (a local
    folder or hub id). See the module's rule for what runs it.

    device: auto, cpu, cuda, cuda:N or mps; precision: auto (what the device does well),
    fp32, bf16, fp16 (GPUs) or int8 (an int8 export); runtime: auto, torch, openvino or
    onnxruntime.
    """
    name = os.fspath(name)
    values = {"model": name, "precision": precision, "threads": threads, "runtime": runtime}
    check("classify", {**values, "device": device or "auto"})
    chosen = plan(name, device, precision, runtime)
    tune_allocator()  # whatever runs it: its activations stay in the heap between passes
    model = None
    if chosen.backend == "export":
        model = _from_export(name, chosen.folder, precision, threads, runtime, download)
    if model is None:
        model = load_torch(name, precision, threads, device, runtime, download)
    model.recipe = ModelRecipe(load_model, name, precision, threads, runtime=runtime)
    _ = model.detector  # read now: a damaged unknown detector fails the load, not a run
    return model


def _from_export(name, folder, precision, threads, runtime, download) -> Classifier | None:
    """The model run from `folder`, an exported folder: the user's as it is; the cache's
    made where missing or damaged. None where the cache cannot take one (it then runs
    through torch)."""
    from .runtimes.exported import ExportedClassifier

    if folder == Path(name):  # the user's exported folder: as it is, or a clear error
        return ExportedClassifier(folder, precision, threads, runtime)
    if not installed("openvino", convert=True) and not (folder and folder.is_dir()):
        raise VidclassError(
            f"{name} has no export in this cache, and making one needs torch and onnx: pip "
            "install 'vidclass[export]'; or give a folder made by `vidclass models export` "
            "as --model"
        )
    for attempt in (0, 1):
        if folder is not None and os.path.lexists(folder):
            try:
                model = ExportedClassifier(folder, precision, threads, entry=describe(name))
                with contextlib.suppress(OSError):
                    os.utime(folder)  # recently used: kept when the cache is pruned
                return model
            except ExportDamaged as exc:  # ours, not as written: made again, once
                if attempt:
                    raise
                log.warning(f"{exc}; exporting it again")
                _remove(folder)
        if attempt == 0:
            folder = export_into_cache(name, download)
            if folder is None:
                return None
    return None


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def export_into_cache(name: str, download: bool = True) -> Path | None:
    """Export `name` into the cache (the export later CPU runs start from) and return its
    folder; None where that cannot be done (said once). Made in a folder of its own and
    renamed into place, so a run reading the cache never sees half of one; where another
    run put one there first, that one stays."""
    from .runtimes.export import export

    exports = cache_dir() / "exports"
    new = exports / f".new-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        exports.mkdir(parents=True, exist_ok=True)
        export(name, new, download=download)
        folder = cached_export(name)  # keyed now: the export fetched its weights if needed
        if folder is None:
            return None
        try:
            os.rename(new, folder)
        except OSError:  # another run's is there: theirs stays
            if not exported.is_exported_dir(folder):
                raise
        _prune(exports, keep=folder)
        return folder
    except OSError as exc:  # the cache cannot take it: said once a run, as for the rest
        cannot_write(new, exc)
        return None
    except VidclassError as exc:
        log.warning(f"{name}: not exported into the cache ({exc}); it runs through torch")
        return None
    finally:
        shutil.rmtree(new, ignore_errors=True)


def _prune(folder: Path, keep: Path) -> None:
    """The cache's exports past MAX_CACHED_EXPORTS, least recently used first; one being
    written (a dot name) only when a killed run left it an hour ago."""
    try:
        found = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and p != keep]
    except OSError:
        return
    now, ages = time.time(), {}
    for p in found:
        with contextlib.suppress(OSError):  # gone meanwhile (another run's prune)
            ages[p] = p.stat().st_mtime
    for p, mtime in ages.items():
        if p.name.startswith(".") and now - mtime > 3600:
            shutil.rmtree(p, ignore_errors=True)
    done = sorted((p for p in ages if not p.name.startswith(".")), key=ages.get, reverse=True)
    for old in done[MAX_CACHED_EXPORTS - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def load_torch(
    name: str = DEFAULT_MODEL,
    precision: str = "auto",
    threads: int | None = None,
    device: str | None = "auto",
    runtime: str = "auto",
    download: bool = True,
):
    """The model through torch (a VideoClassifier), whatever the rule says: for what
    needs its module (export, training, fine-tuning)."""
    if find_spec("torch") is None:
        raise VidclassError(
            f"{name} runs through torch, which is not installed: pip install "
            "'vidclass[torch]'; or give a folder made by `vidclass models export` as --model"
        )
    from .torch_classifier import load_torch_model

    model = load_torch_model(name, precision, threads, download, device, runtime)
    model.recipe = ModelRecipe(load_torch, name, precision, threads, runtime=runtime)
    return model
