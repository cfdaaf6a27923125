"""Runs that never import torch: a model an earlier run converted for OpenVINO runs
from its cached graphs, with preprocessing and scores in numpy.

Importing torch takes about a second, more than decoding and scoring one video in
OpenVINO's start. Whenever a model runs in OpenVINO through torch (any run where
`--runtime auto` picks it, `--runtime openvino`, `vidclass models pull`), it leaves a
record in the cache (runtimes.remember): which graphs run it, in which precision, and
the identity of every file its weights come from. A later CPU run of the same model,
asked for in the same precision on this CPU, finds the record and starts without
torch. The model's entry (labels, preprocessing) is read from its own files, as a run
through torch reads it; the record only names graphs, and those must be regular files
in the cache (an int8 graph: the model folder's own). A record whose files changed is
passed over: the run goes through torch, which writes it again. A record carries its own
sha256 (of the rest, as canonical JSON): one that does not read back as written (torn,
changed, not a regular file, a link out of its folder) is passed over the same way, with
a one-line warning. The graphs it names are read back checked (runtimes.cached); a
damaged one is removed and the run goes through torch, which converts it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import sys
import threading
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ..classifier import Classifier
from ..devices import DEFAULT_BATCH
from ..errors import VidclassError
from ..files import Damaged, Unrecorded, read_own, sha256_hex
from ..info import cpu_fingerprint
from ..models import quantized
from ..models.resolve import describe, parse_model_name, source_files
from ..models.spec import InputSpec, ModelEntry
from ..models.weights import cache_dir
from ..runtime import available_cores
from ..version import __version__
from ..video.transforms import clip_to_array
from . import graph_shape

log = logging.getLogger("vidclass")
RECORD_FORMAT = 3  # 3: the record's own sha256
MAX_RECORD_BYTES = 1 << 20  # a record names a few dozen files: far below this
# Models whose entries are read without torch (a transformers folder needs transformers).
KINDS = ("builtin", "trained", "quantized")
PRECISIONS = ("fp32", "bf16", "int8")
# What `--device auto` could pick besides the CPU: NVIDIA's and AMD's device files, and
# WSL2's GPU bridge (there is no way to ask torch without importing it).
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def record_path(name: str, precision: str) -> Path | None:
    """Where the record of `name` asked for in `precision` (as given: auto too) lives on
    this CPU; None where OpenVINO is not installed. Records are for CPU runs alone:
    `--device auto` takes one only where no GPU is seen (gpu_present)."""
    try:
        openvino = metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return None
    model = str(Path(name).resolve()) if os.path.isdir(name) else name
    key = hashlib.blake2b(
        f"{RECORD_FORMAT}|{model}|{precision}|vidclass {__version__}|"
        f"openvino {openvino}|{cpu_fingerprint()}".encode(),
        digest_size=16,
    ).hexdigest()
    return cache_dir() / "light" / f"{key}.json"


def file_identity(path: str | os.PathLike) -> list:
    """[absolute path, size, modification time, inode, change time (ns)]: a rewrite
    changes the change time, which copying with times kept cannot set back."""
    path = os.path.abspath(path)
    st = os.stat(path)
    return [path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def typical_clip(spec: InputSpec) -> tuple[int, int, int, int] | None:
    """The (C, T, H, W) of this model's clips of a long enough video, where its spec
    fixes the frame size (resized, then cropped within the resize, or resized to a
    size); None where the frame size follows the video."""
    if spec.size is not None:
        height, width = spec.crop_hw or spec.size
        if spec.crop_hw and (height > spec.size[0] or width > spec.size[1]):
            return None
    elif spec.short_side is not None and spec.crop_hw is not None:
        height, width = spec.crop_hw
        if max(height, width) > spec.short_side:
            return None
    else:
        return None
    frames = spec.num_frames if spec.fps else spec.pad_to
    return (3, frames, height, width)


def runs_from_record(spec: InputSpec, any_frames: bool) -> bool:
    """Every clip of the model has one graph: a fixed frame size, and a clip length that
    is fixed (spread over the video) or free in the graph."""
    return typical_clip(spec) is not None and (any_frames or spec.fps is None)


def _cached_graph(identity, allowed: tuple[Path, ...]) -> bool:
    """`identity` (file_identity) is as recorded and names a regular file in one of
    the `allowed` folders, or is one of the allowed files."""
    try:
        path = Path(identity[0])
        real = path.resolve()
        st = os.stat(real)
        return (
            stat.S_ISREG(st.st_mode)
            and any(real == a or a in real.parents for a in allowed)
            and file_identity(path) == identity
        )
    except (OSError, TypeError, ValueError, IndexError):
        return False


def record_digest(record: dict) -> str:
    """The sha256 a record carries: of the rest of it, as canonical JSON."""
    rest = {k: v for k, v in record.items() if k != "sha256"}
    return sha256_hex(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())


def record_bytes(record: dict) -> bytes:
    """A record as written: with its own sha256."""
    return (json.dumps({**record, "sha256": record_digest(record)}, indent=1) + "\n").encode()


def _as_written(path: Path) -> dict | None:
    """The record at `path` where it reads back as it was written (a regular file in
    its folder, JSON whose sha256 is as it says); None where there is none; Damaged
    where it is not as written."""
    try:
        raw = read_own(path, "record", path.parent, MAX_RECORD_BYTES)
    except FileNotFoundError:
        return None
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        raise Damaged(path, "not a record (torn or changed)") from None
    if not isinstance(record, dict) or record.get("sha256") != record_digest(record):
        raise Damaged(path, "not as written (its sha256 differs)")
    return record


def read_record(
    path: Path, entry: ModelEntry, files: list[list], asked: str = "auto", warn: bool = True
) -> dict | None:
    """The record at `path` where it reads back as written and fits what the model is
    now: `files` (file_identity of each file its weights come from, as listed now),
    graphs that are regular files in the cache (or the model's own int8 graph) as
    recorded, the graph shape its `entry` gives, and the precision `asked` (int8 exactly
    for a quantized model). Else None; with `warn`, a record not as written is said."""
    try:
        record = _as_written(path)
    except Damaged as exc:
        if warn:
            log.warning(f"{exc}; passed over (this run writes it again)")
        return None
    except Exception:  # anything else a forged file can raise: passed over
        return None
    if record is None:
        return None
    try:
        if record.get("format") != RECORD_FORMAT:
            return None
        any_frames = record["any_frames"]
        clip = typical_clip(entry.input)
        graphs = (cache_dir().resolve() / "graphs",)
        own = entry.meta.get("graph")  # a quantized model's int8 graph, in its folder
        if own is not None:
            own_graphs = tuple(Path(p).resolve() for p in quantized.graph_files(Path(own).parent))
            graphs = (*graphs, *own_graphs)
        precision = record["precision"]
        ok = (
            precision in PRECISIONS
            and asked in ("auto", precision)
            and (precision == "int8") == (own is not None)
            and isinstance(any_frames, bool)
            and runs_from_record(entry.input, any_frames)
            and record["shape"] == list(graph_shape(clip, any_frames))
            and record["clip"] == list(clip)
            and record["files"] == files
            and all(_cached_graph(g, graphs) for g in [record["embed"], *record["embed_extra"]])
            and _cached_graph(record["head"], graphs[:1])
        )
    except Exception:  # anything a damaged or forged file can raise: it is passed over
        return None
    return record if ok else None


def gpu_present() -> bool:
    """Whether `--device auto` could mean a GPU here, judged without torch."""
    return sys.platform == "darwin" or any(os.path.exists(p) for p in GPU_DEVICE_FILES)


def _model(name: str) -> tuple[ModelEntry, list[list]] | None:
    """The model's entry and its files' identities, read as a run through torch reads
    them; None for kinds whose entries need torch or transformers, or a name that is
    not a model (the run through torch says why)."""
    try:
        if parse_model_name(name).kind not in KINDS:
            return None
        entry = describe(name, download=False)
        files = source_files(name)
        return (entry, [file_identity(p) for p in files]) if files is not None else None
    except (VidclassError, OSError, ValueError):
        return None


def load_light(
    name: str | os.PathLike,
    precision: str = "auto",
    device: str | None = "auto",
    runtime: str = "auto",
    threads: int | None = None,
) -> LightClassifier | None:
    """The model `name` run from its record, without torch, where one applies: a CPU
    run in OpenVINO (`runtime` auto or openvino) of a model whose record is current and
    whose graphs open. None otherwise: load it with vidclass.load_model."""
    name = os.fspath(name)
    device = str(device or "auto").strip().lower()
    if runtime not in ("auto", "openvino") or device not in ("auto", "cpu"):
        return None
    if (device == "auto" and gpu_present()) or find_spec("openvino") is None:
        return None
    if not isinstance(name, str) or not name:
        return None
    model = _model(name)
    path = record_path(name, precision)
    ready = model is not None and path is not None
    record = read_record(path, *model, precision) if ready else None
    if record is None:
        return None
    try:
        return LightClassifier(model[0], record, threads)
    except Damaged as exc:  # a graph not as written: removed, and made again through torch
        if not isinstance(exc, Unrecorded):
            log.warning(f"{exc}; running through torch, which makes it again")
        from . import cached

        if cached.is_cached_graph(exc.path):
            cached.discard(exc.path)
        return None
    except Exception as exc:  # the graphs do not open as recorded: through torch
        log.debug(f"{name}: its record does not run ({exc}); loading it through torch")
        return None


def _activate(logits: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":  # in tanh's form, which never overflows
        return 0.5 * (1.0 + np.tanh(0.5 * logits))
    if activation == "identity":  # already scores (cosine similarities)
        return logits
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class LightClassifier(Classifier):
    """A Classifier whose backbone and head run in OpenVINO from a record's graphs,
    with numpy arrays where VideoClassifier has torch tensors. Its graphs open when it
    is made (the head, and the backbone for the recorded clip shape): one that does not
    open means the record is not used."""

    runtime = "openvino"
    device = "cpu"

    def __init__(self, entry: ModelEntry, record: dict, threads: int | None = None):
        from .sessions import OpenVINOSession

        super().__init__(entry)
        self.precision = record["precision"]
        self.record = record
        self.runtime_threads = threads or available_cores()
        self._sessions: dict[tuple[int, ...], object] = {}
        self._lock = threading.Lock()
        head = Path(record["head"][0])
        self._head = OpenVINOSession(head, "fp32", self.runtime_threads, (0,), False)
        embed = self._session(tuple(record["clip"]))
        widths = (embed.features(), self._head.features())
        if widths != (record["features"], len(entry.labels)):
            raise VidclassError(f"graph widths {widths} do not fit the model")

    @property
    def batch_size_hint(self) -> int:
        return DEFAULT_BATCH["cpu"]

    def _session(self, shape: tuple[int, ...]):
        from .sessions import OpenVINOSession

        with self._lock:
            if shape not in self._sessions:
                any_frames = self.record["any_frames"]
                if list(graph_shape(shape, any_frames)) != self.record["shape"]:
                    raise VidclassError(
                        f"{self.name}: clips of {'x'.join(map(str, shape))} were never "
                        "converted; run it with --runtime torch"
                    )
                graph = Path(self.record["embed"][0])
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
