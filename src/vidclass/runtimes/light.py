"""Runs that never import torch: a model an earlier run converted for OpenVINO runs
from its cached graphs, with preprocessing and scores in numpy.

Importing torch takes about a second, more than decoding and scoring one video in
OpenVINO's start. Whenever a model runs in OpenVINO through torch (any run where
`--runtime auto` picks it, `--runtime openvino`, `vidclass models pull`), it leaves a
record in the cache: the model's entry, its backbone graph, a graph of its head, and
the size and time of every file its weights came from. A later run with the same model
and precision on this CPU finds the record and starts without torch. A record whose
files changed, or that does not read back whole, is passed over: the run goes through
torch, which writes it again (runtimes.remember).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import threading
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ..classifier import Classifier
from ..devices import DEFAULT_BATCH
from ..errors import VidclassError
from ..models.folder_config import spec_from_dict, spec_to_dict
from ..models.spec import InputSpec, ModelEntry
from ..models.weights import cache_dir
from ..runtime import available_cores
from ..version import __version__
from ..video.transforms import clip_to_array

log = logging.getLogger("vidclass")
RECORD_FORMAT = 1
MAX_RECORD_BYTES = 4 << 20  # a record holds a model's labels: far below this
ACTIVATIONS = ("softmax", "sigmoid", "identity")
# Device files of GPUs that torch would pick for `--device auto` (NVIDIA, AMD ROCm).
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd")


def canonical_name(name: str) -> str:
    """A folder by its absolute path (the same model from any working directory), a
    registered name as it is."""
    return str(Path(name).resolve()) if os.path.isdir(name) else name


def _cpu_fingerprint() -> str:
    """The CPU's model and flags: what `auto` precision and compiled graphs follow."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 16)
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    wanted = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(wanted[:2])


def record_path(name: str, precision: str) -> Path | None:
    """Where the record of `name` asked for in `precision` (as given: auto too) lives on
    this CPU; None where OpenVINO is not installed."""
    try:
        openvino = metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return None
    key = hashlib.blake2b(
        f"{RECORD_FORMAT}|{canonical_name(name)}|{precision}|vidclass {__version__}|"
        f"openvino {openvino}|{_cpu_fingerprint()}".encode(),
        digest_size=16,
    ).hexdigest()
    return cache_dir() / "light" / f"{key}.json"


def file_identity(path: str | os.PathLike) -> list:
    """[path, size, modification time in ns]: what a record checks its files by."""
    st = os.stat(path)
    return [str(path), st.st_size, st.st_mtime_ns]


def fixed_shape(spec: InputSpec, any_frames: bool) -> bool:
    """Whether every clip of this model has one graph shape, known from its spec: a
    fixed frame size, and a clip length that is fixed or free in the graph. Only such
    models run from a record (a clip of another shape would need a new graph)."""
    sized = spec.crop_hw is not None or spec.size is not None
    return sized and (any_frames or spec.fps is None)


def entry_to_dict(entry: ModelEntry) -> dict:
    """The entry as JSON values; TypeError where its meta holds other values."""
    data = {
        "name": entry.name,
        "description": entry.description,
        "labels": list(entry.labels),
        "input": spec_to_dict(entry.input),
        "activation": entry.activation,
        "source": entry.describe_source(),
        "meta": entry.meta,
    }
    json.dumps(data)  # raises TypeError for values JSON cannot hold
    return data


def _entry_from_dict(data: dict) -> ModelEntry:
    labels = data["labels"]
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise ValueError("labels")
    if data["activation"] not in ACTIVATIONS or not isinstance(data["meta"], dict):
        raise ValueError("activation or meta")
    return ModelEntry(
        name=str(data["name"]),
        description=str(data["description"]),
        labels=tuple(labels),
        input=spec_from_dict(data["input"]),
        weights=None,
        build=None,
        activation=data["activation"],
        source=str(data["source"]),
        meta=data["meta"],
    )


def _unchanged(identities) -> bool:
    if not isinstance(identities, list) or not identities:
        return False
    for identity in identities:
        if not (isinstance(identity, list) and len(identity) == 3):
            return False
        try:
            if file_identity(identity[0]) != identity:
                return False
        except (OSError, TypeError, ValueError):
            return False
    return True


def read_record(path: Path) -> dict | None:
    """The record at `path` if it reads back whole and its files are as it says (the
    model's sources, its graphs); else None."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RECORD_BYTES + 1)
        record = json.loads(raw) if len(raw) <= MAX_RECORD_BYTES else None
    except (OSError, ValueError):
        return None
    try:
        ok = (
            isinstance(record, dict)
            and record.get("format") == RECORD_FORMAT
            and record["precision"] in ("fp32", "bf16", "int8")
            and isinstance(record["any_frames"], bool)
            and isinstance(record["features"], int)
            and record["features"] > 0
            and _unchanged(record["files"])
            and _unchanged([record["embed"], record["head"], *record["embed_extra"]])
        )
        if ok:
            record["entry"] = _entry_from_dict(record["entry"])
    except (KeyError, TypeError, ValueError):
        return None
    return record if ok else None


def _gpu_present() -> bool:
    """Whether `--device auto` could mean a GPU here, judged without torch."""
    return sys.platform == "darwin" or any(os.path.exists(p) for p in GPU_DEVICE_FILES)


def load_light(
    name: str,
    precision: str = "auto",
    device: str | None = "auto",
    runtime: str = "auto",
    threads: int | None = None,
) -> LightClassifier | None:
    """The model `name` run from its record, without torch, where one applies: a CPU
    run in OpenVINO (`runtime` auto or openvino) of a model whose record is current.
    None otherwise: load it with vidclass.load_model."""
    device = str(device or "auto").strip().lower()
    if runtime not in ("auto", "openvino") or device not in ("auto", "cpu"):
        return None
    if device == "auto" and _gpu_present():
        return None
    if not isinstance(name, str) or not name or find_spec("openvino") is None:
        return None
    path = record_path(name, precision)
    record = read_record(path) if path is not None else None
    if record is None:
        return None
    # Named as given now (a folder from another working directory is the same model):
    # results files record this name.
    record["entry"] = dataclasses.replace(record["entry"], name=name)
    return LightClassifier(record, threads)


def _activate(logits: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":  # in tanh's form, which never overflows
        return 0.5 * (1.0 + np.tanh(0.5 * logits))
    if activation == "identity":  # already scores (cosine similarities)
        return logits
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class LightClassifier(Classifier):
    """A Classifier whose backbone and head run in OpenVINO from a record's graphs,
    with numpy arrays where VideoClassifier has torch tensors."""

    runtime = "openvino"
    device = "cpu"

    def __init__(self, record: dict, threads: int | None = None):
        super().__init__(record["entry"])
        self.precision = record["precision"]
        self.record = record
        self.runtime_threads = threads or available_cores()
        self._sessions: dict[tuple[int, ...], object] = {}
        self._head = None
        self._lock = threading.Lock()

    @property
    def batch_size_hint(self) -> int:
        return DEFAULT_BATCH["cpu"]

    def _session(self, shape: tuple[int, ...]):
        from .sessions import OpenVINOSession

        with self._lock:
            if self._head is None:
                head = Path(self.record["head"][0])
                self._head = OpenVINOSession(head, "fp32", self.runtime_threads, (0,), False)
            if shape not in self._sessions:
                graph = Path(self.record["embed"][0])
                want = tuple(self.record["shape"])
                fits = len(shape) == len(want) and all(
                    w == "T" or w == s for w, s in zip(want, shape, strict=True)
                )
                if not fits:
                    raise VidclassError(
                        f"{self.name}: clips of {'x'.join(map(str, shape))} were never "
                        "converted; run it with --runtime torch"
                    )
                any_frames = self.record["any_frames"]
                self._sessions[shape] = OpenVINOSession(
                    graph, self.precision, self.runtime_threads, shape, any_frames
                )
            return self._sessions[shape]

    # -- the engine's Runner, in numpy ---------------------------------------------------
    def batch(self, clips: list[np.ndarray]) -> np.ndarray:
        return np.stack([clip_to_array(clip, self.spec) for clip in clips])

    def embed(self, clips: np.ndarray) -> np.ndarray:
        return self._session(tuple(clips.shape[1:]))(np.ascontiguousarray(clips))

    def _head_logits(self, features: np.ndarray) -> np.ndarray:
        return self._head(np.ascontiguousarray(features, dtype=np.float32))

    def logits(self, clips: np.ndarray) -> np.ndarray:
        return self._keep(self._head_logits(self.embed(clips)))

    def activate(self, logits: np.ndarray) -> np.ndarray:
        return _activate(np.asarray(logits, dtype=np.float32), self.entry.activation)

    def scores_and_features(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = self.embed(clips)
        return self.activate(self._keep(self._head_logits(features))), features

    def trunk(self, clips: np.ndarray) -> np.ndarray:
        raise VidclassError("fine-tuning runs in torch: load the model with load_model")
