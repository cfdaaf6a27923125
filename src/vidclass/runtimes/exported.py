"""ExportedClassifier: an exported model folder (models.exported) run in OpenVINO or ONNX
Runtime, with preprocessing and scores in numpy: it never imports torch."""

from __future__ import annotations

import os
import threading

import numpy as np

from ..classifier import Classifier
from ..cpu import available_cores, native_bf16
from ..devices import DEFAULT_BATCH, pick_precision
from ..errors import VidclassError
from ..models import exported
from ..models.spec import ModelEntry
from . import INT8_HINT, graph_shape, require


def export_precision(manifest: dict, asked: str) -> str:
    """What an export computes in when `asked` (auto: bf16 on a CPU with native bf16 for
    an fp32 or bf16 export in OpenVINO; else as exported)."""
    made = manifest["precision"]
    if made == "int8":
        if asked not in ("auto", "int8"):
            raise VidclassError(f"an int8 export computes in int8, not {asked}")
        return "int8"
    if asked == "int8":
        raise VidclassError(f"this export is not int8; make one with: {INT8_HINT}")
    if asked not in ("auto", "fp32", "bf16"):
        raise VidclassError(f"an export computes in fp32 or bf16 on a CPU, not {asked}")
    if manifest["runtime"] == "onnxruntime":
        if asked not in ("auto", "fp32"):
            raise VidclassError(f"an ONNX Runtime export computes in fp32, not {asked}")
        return "fp32"
    return pick_precision(asked, "cpu", native_bf16()) if asked == "auto" else asked


class ExportedClassifier(Classifier):
    """A Classifier over an exported folder. Every file is checked against its sha256
    when the model loads; the head and the backbone for the exported clip shape open
    then too, so that a folder that does not run fails at load, not mid-run."""

    device = "cpu"

    def __init__(
        self,
        folder: str | os.PathLike,
        precision: str = "auto",
        threads: int | None = None,
        runtime: str = "auto",
        entry: ModelEntry | None = None,
    ):
        """`entry`: the model's own entry, for an export in the cache (its name and
        description, not the folder's)."""
        manifest = exported.read_manifest(folder)
        if entry is not None and list(entry.labels) != manifest["labels"]:
            # an export in the cache that is not the model's own: made again (loading)
            raise exported.ExportDamaged(f"{folder}: its labels are not {entry.name}'s")
        super().__init__(entry if entry is not None else exported.read_entry(folder, manifest))
        if runtime not in ("auto", manifest["runtime"]):
            raise VidclassError(
                f"{folder} is exported for {manifest['runtime']}; it runs in that, not "
                f"--runtime {runtime}"
            )
        self.runtime = manifest["runtime"]
        require(self.runtime)
        self.manifest = manifest
        self.precision = export_precision(manifest, precision)
        self.runtime_threads = threads or available_cores()
        self._lock = threading.Lock()
        self._sessions: dict[tuple[int, ...] | str, object] = {}
        # The backbone's bytes stay held, for other clip shapes (a short video): the folder
        # may be gone by then (another run's cache pruning, a user's move).
        self._embed = self._graph(folder, "embed")
        # The map stream's until a timeline first asks for it and it is opened; held
        # in a dict that label views (copies of this) share, so that none keeps them.
        self._unopened = {}
        if "stream" in manifest["graphs"]:
            self._unopened["stream"] = self._graph(folder, "stream")
        self._head = self._open(self._graph(folder, "head"), "fp32", (0,), False)
        embed = self._session(tuple(manifest["clip"]))
        widths = (embed.features(), self._head.features())
        if widths != (manifest["features"], len(self.entry.labels)):
            raise VidclassError(f"{folder}: graph widths {widths} do not fit its manifest")

    def _graph(self, folder, part: str):
        names = self.manifest["graphs"][part]
        data = [exported.read_file(folder, name, self.manifest) for name in names]
        key = (f"export-{part}", "|".join(self.manifest["files"][name] for name in names))
        if names[0].endswith(".xml"):
            if len(data) != 2:
                raise VidclassError(f"{folder}: an IR graph is an .xml and a .bin")
            return (data[0], data[1]), key
        return data[0], key

    def _open(
        self, graph, precision: str, shape: tuple[int, ...], any_frames: bool, carried: int = 0
    ):
        from .sessions import SESSIONS

        source, key = graph
        try:
            return SESSIONS[self.runtime](
                source, precision, self.runtime_threads, shape, any_frames, key, carried
            )
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise VidclassError(f"{self.name}: {self.runtime} cannot run it ({first})") from None

    @property
    def batch_size_hint(self) -> int:
        return DEFAULT_BATCH["cpu"]

    def _session(self, shape: tuple[int, ...]):
        with self._lock:
            if shape not in self._sessions:
                any_frames = self.manifest["any_frames"]
                clip = tuple(self.manifest["clip"])
                if graph_shape(shape, any_frames) != graph_shape(clip, any_frames):
                    raise VidclassError(
                        f"{self.name}: exported for clips of {'x'.join(map(str, clip))}, "
                        f"not {'x'.join(map(str, shape))}"
                    )
                self._sessions[shape] = self._open(self._embed, self.precision, shape, any_frames)
            return self._sessions[shape]

    # -- the engine's ClipModel, in numpy ------------------------------------------------
    def embed(self, clips: np.ndarray) -> np.ndarray:
        return self._session(tuple(clips.shape[1:]))(np.ascontiguousarray(clips))

    def _head_logits(self, features: np.ndarray) -> np.ndarray:
        return self._head(np.ascontiguousarray(features, dtype=np.float32))

    def logits(self, clips: np.ndarray) -> np.ndarray:
        return self._keep(self._head_logits(self.embed(clips)))

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        return self._keep(self._head_logits(features))

    @property
    def temporal_map(self):
        """The export's map stream (runtimes.stream_graph), where it has one for the
        engine's steps; else None (windows scored one at a time)."""
        from ..engine.stretch import STEP_FRAMES
        from ..models.spec import TemporalMap

        stream = self.manifest.get("stream")
        if stream is None or stream["step_frames"] != STEP_FRAMES:
            return None
        return TemporalMap(stream["stride"], stream["pool"])

    def map_stream(self, step_frames: int):
        from ..engine.stretch import MapStream

        stream = self.manifest.get("stream")
        if self.temporal_map is None or step_frames != stream["step_frames"]:
            return super().map_stream(step_frames)
        # Kept with the clip shapes' sessions, which label views share (copies of this).
        with self._lock:
            if "stream" not in self._sessions:
                # int8 folders hold the stream in fp32: bf16 where the CPU has it
                precision = self.precision
                if precision == "int8":
                    precision = "bf16" if native_bf16() and self.runtime == "openvino" else "fp32"
                carried = len(stream["caches"])
                graph = self._unopened["stream"]
                self._sessions["stream"] = self._open(graph, precision, (0,), False, carried)
                del self._unopened["stream"]  # one shape: its bytes are done with
            runner = self._sessions["stream"]
        stepper = runner.stream_step([np.zeros(shape, np.float32) for shape in stream["caches"]])

        def step(frames, first, total, caches):
            x = np.ascontiguousarray(frames, np.float32)
            inputs = [x, np.array(first, np.int64), np.array(total, np.int64)]
            positions, caches = stepper(inputs, caches)
            return np.asarray(positions, np.float32), caches

        return MapStream(step, step_frames, stream["stride"], stream["lag"])

    def logits_and_features(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = self.embed(clips)
        return self._keep(self._head_logits(features)), features

    def trunk(self, clips: np.ndarray) -> np.ndarray:
        raise VidclassError(
            f"{self.name} is an exported model: fine-tune the model it was exported from "
            f"({self.manifest.get('made', {}).get('from', '?')})"
        )
