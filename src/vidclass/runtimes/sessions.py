"""Run a graph (a backbone or a head; ONNX, or OpenVINO's IR) in OpenVINO or ONNX
Runtime: numpy arrays in and out. Both release the GIL while they compute and may
be called from threads. A session serves clips of one shape (C, T, H, W), any batch.

A graph is given as a path (a graph of the cache, read back checked: runtimes.cached),
as ONNX bytes (one just exported, being checked, or an ONNX Runtime export's), or as
OpenVINO IR bytes (an export's: xml, weights).

OpenVINO's compiled models are kept by vidclass itself, not by OpenVINO's CACHE_DIR
(whose blobs it imports unchecked: 1 MB of random bytes in one moved a top-1 score from
0.9986 to 0.4955, 64 KB in the head's made every score NaN):
exported once compiled, written with their sha256 beside them, and imported only as
written; a damaged one is compiled again, with a one-line warning.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import stat
import threading
from pathlib import Path

import numpy as np

from ..files import DIGEST_SUFFIX, Damaged, Unrecorded, discard, read_checked, store
from ..models.weights import cache_dir
from . import cached, graph_shape

# What OpenVINO computes the graph's floating-point ops in. An int8 graph carries its
# own quantized ops; what it leaves in floating point stays in fp32.
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
# OpenVINO's folder in the cache (compiled models) is kept under this many bytes, the
# least recently used files going first: every new clip shape or model adds a compiled
# model of about the model's size, and nothing else ever removes them.
OPENVINO_CACHE_BYTES = 2 << 30
log = logging.getLogger("vidclass")

# A graph: a file's path, ONNX bytes, or an OpenVINO IR as (xml bytes, weights bytes).
GraphSource = Path | bytes | tuple[bytes, bytes]


@functools.lru_cache(maxsize=1)
def _openvino_core():
    import openvino as ov

    return ov.Core()


def compiled_dir() -> Path:
    return cache_dir() / "openvino" / "compiled"


def prune(folder: Path, budget: int, keep: frozenset[Path] = frozenset()) -> int:
    """Remove the least recently used files under `folder` (by access or modification
    time, whichever is later), each with its digest, until the rest take at most
    `budget` bytes; `keep` stays. Returns the bytes removed. A file another process
    still reads stays readable to it (POSIX); a later start compiles it again. A folder
    that cannot be changed (read-only) is left as it is."""
    files, total = [], 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            file = Path(root, name)
            try:
                st = os.lstat(file)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            total += st.st_size
            if name.endswith(DIGEST_SUFFIX) or file in keep:
                continue  # a digest goes with its file
            files.append((max(st.st_atime, st.st_mtime), st.st_size, file))
    removed = 0
    for _, size, file in sorted(files):
        if total - removed <= budget:
            break
        try:
            file.unlink(missing_ok=True)
        except OSError:
            break  # read-only: nothing more will go either
        discard(file)  # its digest
        removed += size
    return removed


_pruned = threading.Lock()
_prune_done = False


def _prune_once(keep: Path) -> None:
    """The cache's bound, applied once a process (after its first compile)."""
    global _prune_done
    with _pruned:
        if _prune_done:
            return
        _prune_done = True
    removed = prune(cache_dir() / "openvino", OPENVINO_CACHE_BYTES, frozenset({keep}))
    if removed:
        log.info(f"removed {removed / 2**20:.0f} MB of OpenVINO's least recently used cache")


def _blob_path(what: str, stem: str, config: dict, shape, any_frames: bool) -> Path:
    import openvino as ov

    from ..info import cpu_fingerprint

    dims = list(graph_shape(shape, False)) if any_frames else None
    key = hashlib.blake2b(
        f"{what}|{dims}|{sorted((k, str(v)) for k, v in config.items())}|"
        f"openvino {ov.__version__}|{cpu_fingerprint()}".encode(),
        digest_size=16,
    ).hexdigest()
    return compiled_dir() / f"{stem}-{key}.blob"


def compiled_path(
    source: Path, config: dict, shape: tuple[int, ...], any_frames: bool, kept: str = ""
) -> Path:
    """Where the compiled model of `source`, a graph of the cache, for `config` (and
    `shape`, where the graph's clip length is free) is kept. Keyed by what the graph is
    (its recorded sha256, read from beside it), the settings, OpenVINO's version and the
    CPU, for which it is compiled. Unrecorded or Damaged where it has no digest to read."""
    return _blob_path(cached.digest(source) + kept, source.stem, config, shape, any_frames)


def _import(core, blob: Path, config: dict):
    """The compiled model kept at `blob`, where it reads back as written and OpenVINO
    takes it; else None (a damaged one is said, and removed)."""
    try:
        data = read_checked(blob, "compiled model", compiled_dir())
    except FileNotFoundError:
        return None
    except Damaged as exc:
        if not isinstance(exc, Unrecorded):
            log.warning(f"{exc}; compiling it again")
        discard(blob)
        return None
    try:
        return core.import_model(data, "CPU", config)
    except Exception as exc:  # as written, yet refused (an OpenVINO built otherwise)
        log.warning(f"{blob}: OpenVINO cannot import it ({_first_line(exc)}); compiling it again")
        discard(blob)
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _onnx(source: GraphSource) -> bytes:
    """The ONNX bytes a runtime reads: given, or a graph of the cache read back checked
    (never a path: a runtime reading a file itself would not check it)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    return cached.load(source)


class OpenVINOSession:
    def __init__(
        self,
        source: GraphSource,
        precision: str,
        threads: int,
        shape: tuple[int, ...],
        any_frames: bool,
        key: tuple[str, str] | None = None,
        carried: int = 0,
    ):
        """`any_frames`: the graph's clip length is free; it runs static for `shape`.
        Damaged where `source` is a cached graph that is not as written. `key`: (part,
        what the graph given as bytes is: its sha256), so that its compiled model is
        kept under the part's name. `carried`: the graph's last inputs and outputs are
        that many caches a step hands the next (a map's stream): OpenVINO keeps them
        itself, in what it computes in (`stream_step`)."""
        import openvino.properties.hint as hints

        config = {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": hints.PerformanceMode.LATENCY,
        }
        self.carried = carried
        self.compiled = self._compile(source, config, shape, any_frames, key, carried)

    @staticmethod
    def _compile(
        source: GraphSource,
        config: dict,
        shape: tuple[int, ...],
        any_frames: bool,
        key=None,
        carried: int = 0,
    ):
        import openvino as ov

        core = _openvino_core()
        blob = None
        # A graph whose caches are states compiles to another model than the same graph's.
        kept = f"|carried {carried}" if carried else ""
        if key is not None:
            blob = _blob_path(key[1] + kept, key[0], config, shape, any_frames)
        elif not isinstance(source, tuple | bytes | bytearray | memoryview):
            blob = compiled_path(Path(source), config, shape, any_frames, kept)
        if blob is not None:
            compiled = _import(core, blob, config)
            if compiled is not None:
                return compiled
        if isinstance(source, tuple):  # an IR: its weights as a tensor over the bytes
            xml, weights = source
            model = core.read_model(xml, ov.Tensor(np.frombuffer(weights, np.uint8)))
        else:
            model = core.read_model(_onnx(source))
        if any_frames:  # static for `shape` (batch stays free): its pads become constants
            model.reshape({0: ov.PartialShape([-1, *shape])})
        if carried:
            _keep_caches(model, carried)
        compiled = core.compile_model(model, "CPU", config)
        if blob is not None:
            try:
                exported = compiled.export_model()
            except Exception as exc:  # a device that cannot export: compiled each start
                log.debug(f"{source}: OpenVINO cannot export its compiled model ({exc})")
                return compiled
            data = exported.getvalue() if hasattr(exported, "getvalue") else exported
            if store(blob, data):
                _prune_once(blob)
        return compiled

    def features(self) -> int | None:
        """The width of the graph's output rows, where the graph fixes it."""
        dim = self.compiled.output(0).get_partial_shape()[-1]
        return dim.get_length() if dim.is_static else None

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        # A request per call: one request is not safe to share between threads.
        request = self.compiled.create_infer_request()
        return np.array(request.infer({0: clips}, share_inputs=True)[0], dtype=np.float32)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """A graph of several inputs and outputs (a map's stream step), in order."""
        request = self.compiled.create_infer_request()
        result = request.infer(dict(enumerate(inputs)))
        return [np.array(result[out]) for out in self.compiled.outputs]

    def stream_step(self, empty: list[np.ndarray]):
        """`step(inputs, caches) -> (first output, caches)` for one stream, of a session
        opened with `carried`: the caches live in a request of the stream's own (None
        to start: zeros, as `empty`), never copied out."""
        if not self.carried:
            return _explicit_step(self.run, empty)
        request = self.compiled.create_infer_request()

        def step(inputs: list[np.ndarray], caches):
            if caches is None:
                request.reset_state()  # every state back to zeros
            # The step's frames (38 MB in fp32) read where they lie, not copied in.
            result = request.infer(dict(enumerate(inputs)), share_inputs=True)
            return np.array(result[self.compiled.outputs[0]]), request

        return step


def _keep_caches(model, count: int) -> None:
    """The last `count` inputs and outputs of `model` made states (OpenVINO's ReadValue
    and Assign, zeros at a reset), paired in order."""
    from openvino.passes import MakeStateful, Manager

    inputs, outputs = model.get_parameters(), model.get_results()
    if count >= min(len(inputs), len(outputs)):
        raise ValueError(f"a graph of {len(inputs)} inputs cannot carry {count} caches")
    pairs = list(zip(inputs[-count:], outputs[-count:], strict=True))
    for parameter, result in pairs:
        if parameter.get_partial_shape() != result.get_output_partial_shape(0):
            raise ValueError(f"{parameter.get_friendly_name()} is not shaped as its next value")
    manager = Manager()
    manager.register_pass(MakeStateful(pairs))
    manager.run_passes(model)


def _explicit_step(run, empty: list[np.ndarray]):
    """A stream's step over a graph that takes its caches as inputs and gives the next
    ones as outputs."""

    def step(inputs: list[np.ndarray], caches):
        out = run([*inputs, *(caches if caches is not None else empty)])
        return np.asarray(out[0]), out[1:]

    return step


class OnnxRuntimeSession:
    def __init__(
        self,
        source: GraphSource,
        precision: str,
        threads: int,
        shape: tuple[int, ...],
        any_frames: bool,
        key: tuple[str, str] | None = None,
        carried: int = 0,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings are about graph rewrites, not the user
        self.session = ort.InferenceSession(
            _onnx(source), options, providers=["CPUExecutionProvider"]
        )
        self._input = self.session.get_inputs()[0].name

    def features(self) -> int | None:
        dim = self.session.get_outputs()[0].shape[-1]
        return dim if isinstance(dim, int) else None

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self._input: clips})[0], dtype=np.float32)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        names = [i.name for i in self.session.get_inputs()]
        return self.session.run(None, dict(zip(names, inputs, strict=True)))

    def stream_step(self, empty: list[np.ndarray]):
        """As OpenVINOSession's; here the caches go in and out as arrays."""
        return _explicit_step(self.run, empty)


SESSIONS = {"openvino": OpenVINOSession, "onnxruntime": OnnxRuntimeSession}
