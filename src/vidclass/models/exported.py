"""Exported model folders (`vidclass models export`): graphs, preprocessing, labels and
how the folder was made, with a sha256 for each file. Read without torch: a run of an
exported folder never imports it.

    DIR/vidclass-export.json   the manifest (this module reads and writes it)
    DIR/embed.onnx             the backbone (embed.int8.xml and .bin for int8)
    DIR/head.onnx              clip features -> logits
    DIR/training_videos.sha256 a trained model's training videos (evaluate reads it)

Every file the manifest lists is read back whole and checked against its sha256 before
a runtime sees it; a folder that fails the check is refused with the file named, never
repaired (it is the user's).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..errors import VidclassError
from ..files import open_regular, read_json_file, sha256_hex
from ..unknown import BANK
from ..video.decode import INTERPOLATIONS
from .folder_config import spec_from_dict, temperature_of
from .spec import InputSpec, ModelEntry, typical_clip

MANIFEST = "vidclass-export.json"
FORMAT = "vidclass-export"
VERSION = 2  # 2: OpenVINO exports hold IR, not ONNX
RUNTIMES = ("openvino", "onnxruntime")
PRECISIONS = ("fp32", "bf16", "int8")
ACTIVATIONS = ("softmax", "sigmoid")
MAX_MANIFEST_BYTES = 4 << 20  # labels and provenance: far below this
MAX_FILE_BYTES = 4 << 30  # a graph: the largest video transformers are ~1.2 GB in fp32
# What each runtime's graphs are: OpenVINO's IR (NAME.xml and its weights, NAME.bin),
# which names no other file; ONNX (which may name external data) only for ONNX Runtime,
# which reads it from memory and so refuses external data.
GRAPH_FILES = {"openvino": (".xml", ".bin"), "onnxruntime": (".onnx",)}
MAX_CLIP = (3, 4096, 4096, 4096)  # channels, frames, height, width: far past any model
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_exported_dir(name: str | os.PathLike) -> bool:
    return Path(name, MANIFEST).is_file()


class ExportDamaged(VidclassError):
    """An exported folder that is not as an export writes it (torn, changed, forged)."""


def _fail(folder: str | os.PathLike, why: str) -> ExportDamaged:
    return ExportDamaged(f"{Path(folder, MANIFEST)}: {why}")


def read_manifest(folder: str | os.PathLike) -> dict:
    """The folder's manifest, checked for what a run relies on (types, file names inside
    the folder, digests); a VidclassError naming what is wrong otherwise."""
    try:
        manifest = read_json_file(Path(folder, MANIFEST), "export manifest", MAX_MANIFEST_BYTES)
    except VidclassError as exc:
        raise ExportDamaged(str(exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _fail(folder, "not a vidclass export manifest")
    if manifest.get("version") != VERSION:
        raise _fail(folder, f"export version {manifest.get('version')!r} is not {VERSION}")
    files = manifest.get("files")
    graphs = manifest.get("graphs")
    ok = (
        isinstance(files, dict)
        and all(isinstance(k, str) and _FILE_NAME.fullmatch(k) for k in files)
        and all(isinstance(v, str) and _SHA256.fullmatch(v) for v in files.values())
        and isinstance(graphs, dict)
        and set(graphs) in ({"embed", "head"}, {"embed", "head", "stream"})
        and all(isinstance(g, list) and g and all(n in files for n in g) for g in graphs.values())
    )
    if not ok:
        raise _fail(folder, "its 'files' or 'graphs' are not as an export writes them")
    labels, clip = manifest.get("labels"), manifest.get("clip")
    checks = {
        "runtime": manifest.get("runtime") in RUNTIMES,
        "precision": manifest.get("precision") in PRECISIONS,
        "activation": manifest.get("activation") in ACTIVATIONS,
        "labels": isinstance(labels, list)
        and labels
        and all(isinstance(x, str) and x for x in labels),
        "clip": isinstance(clip, list)
        and len(clip) == 4
        and all(type(d) is int and 0 < d <= most for d, most in zip(clip, MAX_CLIP, strict=True)),
        "any_frames": isinstance(manifest.get("any_frames"), bool),
        "features": type(manifest.get("features")) is int and manifest["features"] > 0,
        "input": isinstance(manifest.get("input"), dict),
    }
    bad = [key for key, good in checks.items() if not good]
    if bad:
        raise _fail(folder, f"{', '.join(bad)} not as an export writes them")
    if manifest["precision"] == "int8" and manifest["runtime"] != "openvino":
        raise _fail(folder, "an int8 export runs in OpenVINO")
    kinds = GRAPH_FILES[manifest["runtime"]]
    for part, names in graphs.items():
        stems, suffixes = zip(*(os.path.splitext(n) for n in names), strict=True)
        if list(suffixes) != list(kinds) or len(set(stems)) != 1:
            raise _fail(folder, f"its {part} graph is not {'+'.join(kinds)} files")
    spec = _input(folder, manifest)
    if typical_clip(spec) != tuple(clip):
        raise _fail(folder, "its clip shape is not what its input makes")
    if ("stream" in graphs) != isinstance(manifest.get("stream"), dict) or not _stream_ok(
        manifest.get("stream"), clip
    ):
        raise _fail(folder, "its map stream is not as an export writes it")
    return manifest


MAX_CACHE_VALUES = 64 << 20  # a stream's caches: I3D's are about 3 M numbers


def _stream_ok(stream, clip: list[int]) -> bool:
    """A manifest's map stream (runtimes.stream_graph.describe), where it has one: whole
    numbers in bounds, steps of the clip's picture, caches of bounded size."""
    if stream is None:
        return True
    if not isinstance(stream, dict):
        return False
    small = {"stride": 64, "pool": 16, "lag": 256}
    if not all(type(stream.get(k)) is int and 0 < stream[k] <= most for k, most in small.items()):
        return False
    if 8 % stream["stride"]:  # stretches are multiples of 8 frames (engine.stretch.ALIGN)
        return False
    step, caches = stream.get("step_frames"), stream.get("caches")
    if type(step) is not int or not 0 < step <= 1024 or step % stream["stride"]:
        return False
    if not isinstance(caches, list) or not caches or len(caches) > 256:
        return False
    # each (1, channels, positions, height, width), within a step and the clip's picture
    bounds = (1, 4096, step, clip[2], clip[3])
    if not all(_numbers(c, 5, 0, 4096, whole=True) for c in caches):
        return False
    if not all(all(d <= most for d, most in zip(c, bounds, strict=True)) for c in caches):
        return False
    return sum(int(np.prod(c)) for c in caches) <= MAX_CACHE_VALUES


def _numbers(value, count: int, low: float, high: float, whole: bool = False) -> bool:
    """`value` is a list of `count` numbers in (low, high] (ints where `whole`)."""
    kinds = (int,) if whole else (int, float)
    return (
        isinstance(value, list)
        and len(value) == count
        and all(type(v) in kinds and low < v <= high for v in value)
    )


def _input(folder, manifest: dict) -> InputSpec:
    """The manifest's input, checked as a run relies on it (types and bounds: a forged
    size must not reach the decoder)."""
    data = manifest["input"]

    def given(key, count, low, high, whole=False, optional=True):
        value = data.get(key)
        if value is None:
            return optional
        return _numbers(value if count > 1 else [value], count, low, high, whole)

    crop = data.get("crop_size")
    ok = (
        given("num_frames", 1, 0, 4096, whole=True, optional=False)
        and given("fps", 1, 0, 1000)
        and given("short_side", 1, 0, 4096, whole=True)
        and given("size", 2, 0, 4096, whole=True)
        and (
            given("crop_size", 1, 0, 4096, whole=True)
            if type(crop) is int
            else given("crop_size", 2, 0, 4096, whole=True)
        )
        and given("min_frames", 1, 0, 4096, whole=True)
        and given("value_range", 2, -1e6, 1e6)
        and given("mean", 3, -1e6, 1e6)
        and given("std", 3, 0, 1e6)
        and data.get("interpolation", "bilinear") in INTERPOLATIONS
    )
    if not ok:
        raise _fail(folder, "its input is not a model input")
    try:
        return spec_from_dict(data)
    except (TypeError, ValueError) as exc:
        raise _fail(folder, f"its input is not a model input ({exc})") from None


def read_entry(folder: str | os.PathLike, manifest: dict | None = None) -> ModelEntry:
    """The folder's model entry: labels, preprocessing, activation, as exported."""
    manifest = manifest if manifest is not None else read_manifest(folder)
    spec = _input(folder, manifest)
    made = manifest.get("made") if isinstance(manifest.get("made"), dict) else {}
    threshold = manifest.get("threshold")
    return ModelEntry(
        name=str(folder),
        description=f"{manifest['precision']} export of {made.get('from', '?')} "
        f"for {manifest['runtime']}",
        labels=tuple(manifest["labels"]),
        input=spec,
        weights=None,
        build=None,
        activation=manifest["activation"],
        source=f"{Path(folder)} (exported)",
        meta={
            "threshold": threshold if isinstance(threshold, int | float) else None,
            "temperature": temperature_of(manifest, folder),
            "export": manifest,
            "unknown": manifest.get("unknown")
            if isinstance(manifest.get("unknown"), dict)
            else None,
            "unknown_bank": functools.partial(_bank, folder, manifest),
        },
    )


def _bank(folder: str | os.PathLike, manifest: dict) -> bytes | None:
    """The unknown detector's bank, where the export holds one (checked as every file)."""
    return read_file(folder, BANK, manifest) if BANK in manifest["files"] else None


def read_file(folder: str | os.PathLike, name: str, manifest: dict) -> bytes:
    """File `name` of the folder, read whole as a regular file and checked against the
    manifest's sha256."""
    path = Path(folder, name)
    try:
        if path.is_symlink():  # a link could name any file: an export holds its own
            raise ExportDamaged(f"{path}: a link, not a file of the export")
        with os.fdopen(open_regular(path, os.O_RDONLY, "exported file"), "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_FILE_BYTES:  # before reading any of it
                raise ExportDamaged(f"{path}: larger than {MAX_FILE_BYTES >> 30} GB")
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ExportDamaged(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except VidclassError as exc:  # not a regular file
        raise ExportDamaged(str(exc)) from None
    if len(data) > MAX_FILE_BYTES or sha256_hex(data) != manifest["files"][name]:
        raise ExportDamaged(
            f"{path}: not as exported (its sha256 differs from {MANIFEST}); export the model again"
        )
    return data


def writable_out(out: Path, force: bool) -> None:
    """`out` may be written: absent, an empty folder, or with `force` an exported folder
    (ours). Anything else is the user's and is left alone."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise VidclassError(f"{out} is not a folder; --out needs a new or empty folder")
    if not any(out.iterdir()):
        return
    if not force:
        raise VidclassError(f"{out} exists and is not empty; give --force to replace it")
    if not is_exported_dir(out):
        raise VidclassError(f"{out} is not an exported model; --force replaces only one")


def write(out: Path, files: dict[str, bytes], manifest: dict, force: bool, check=None) -> None:
    """Write the folder whole: into a partial folder beside `out`, then moved into place
    (a crash leaves `out` as it was). `check(partial folder) -> dict`: run on the
    written folder before it moves; what it gives joins the manifest's "made"."""
    out = Path(out)
    manifest = {**manifest, "files": {name: sha256_hex(data) for name, data in files.items()}}
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for name, data in files.items():
            (partial / name).write_bytes(data)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if check is not None:
            manifest["made"] = {**manifest.get("made", {}), **check(partial)}
            (partial / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        writable_out(out, force)  # again: minutes may have passed
        if out.exists():  # empty, or ours with --force
            shutil.rmtree(out)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
