"""Run a graph of a backbone (ONNX, or OpenVINO's IR for int8) in OpenVINO or ONNX
Runtime: numpy clips in, features out. Both release the GIL while they compute and may
be called from threads. A session serves clips of one shape (C, T, H, W), any batch."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import stat
from pathlib import Path

import numpy as np

from ..files import written_whole
from ..models.weights import cache_dir

# What OpenVINO computes the graph's floating-point ops in. An int8 graph carries its
# own quantized ops; what it leaves in floating point stays in fp32.
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
# OpenVINO's folder in the cache (compiled blobs, static graphs) is kept under this many
# bytes, the least recently used files going first: every new clip shape or model adds
# a blob of about the model's size, and nothing else ever removes them.
OPENVINO_CACHE_BYTES = 2 << 30
log = logging.getLogger("vidclass")


@functools.lru_cache(maxsize=1)
def _openvino_core():
    import openvino as ov

    core = ov.Core()
    # Compiled models are cached by OpenVINO itself (keyed by graph, device, settings and
    # its own version): the next start reads a blob instead of compiling again.
    core.set_property({"CACHE_DIR": str(cache_dir() / "openvino")})
    return core


def prune(folder: Path, budget: int, keep: frozenset[Path] = frozenset()) -> int:
    """Remove the least recently used files under `folder` (by access or modification
    time, whichever is later) until the rest take at most `budget` bytes; `keep` stays.
    Returns the bytes removed. A file another process still reads stays readable to it
    (POSIX); a later start compiles or makes it again."""
    files = []
    for file in folder.rglob("*"):
        try:
            st = file.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and file not in keep:
            files.append((max(st.st_atime, st.st_mtime), st.st_size, file))
    total = sum(size for _, size, _ in files) + sum(f.stat().st_size for f in keep if f.is_file())
    removed = 0
    for _, size, file in sorted(files):
        if total - removed <= budget:
            break
        file.unlink(missing_ok=True)
        removed += size
    return removed


@functools.lru_cache(maxsize=1)
def _prune_once() -> None:
    """The cache's bound, applied once a process (after its first compile)."""
    removed = prune(cache_dir() / "openvino", OPENVINO_CACHE_BYTES)
    if removed:
        log.info(f"removed {removed / 2**20:.0f} MB of OpenVINO's least recently used cache")


def _static_graph(path: Path, shape: tuple[int, ...]) -> Path:
    """A graph for any clip length made static for `shape` (batch stays free: its pads
    become constants, the convolutions take static kernels), saved once in the cache.
    Later starts compile that file, which OpenVINO's blob cache answers without reading
    or reshaping the model (0.8 s for I3D)."""
    import openvino as ov

    st = path.stat()
    key = hashlib.blake2b(
        f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{shape}|{ov.__version__}".encode(),
        digest_size=12,
    ).hexdigest()
    dims = "x".join(map(str, shape))
    static = cache_dir() / "openvino" / "static" / f"{path.stem}-{dims}-{key}.xml"
    if static.is_file() and static.with_suffix(".bin").is_file():
        return static
    model = _openvino_core().read_model(str(path))
    model.reshape({0: ov.PartialShape([-1, *shape])})
    static.parent.mkdir(parents=True, exist_ok=True)
    # The weights first: the graph's file appearing marks the pair complete.
    with written_whole(static) as partial, written_whole(static.with_suffix(".bin")) as weights:
        ov.save_model(model, str(partial), compress_to_fp16=False)
        # save_model put the weights beside the graph (the same name as `weights` now;
        # renamed all the same, so nothing rests on the two names agreeing).
        os.replace(partial.with_suffix(".bin"), weights)
    return static


class OpenVINOSession:
    def __init__(
        self, path: Path, precision: str, threads: int, shape: tuple[int, ...], any_frames: bool
    ):
        """`any_frames`: the graph's clip length is free; it runs static for `shape`."""
        import openvino.properties.hint as hints

        config = {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": hints.PerformanceMode.LATENCY,
        }
        self.compiled = self._compile(path, config, shape, any_frames)
        _prune_once()

    @staticmethod
    def _compile(path: Path, config: dict, shape: tuple[int, ...], any_frames: bool):
        core = _openvino_core()
        if not any_frames:
            return core.compile_model(str(path), "CPU", config)
        static = _static_graph(path, shape)
        try:
            return core.compile_model(str(static), "CPU", config)
        except Exception as exc:  # a damaged cache file (ours): make it again
            log.warning(f"{static}: unreadable ({str(exc).splitlines()[0]}); making it again")
            static.unlink(missing_ok=True)
            return core.compile_model(str(_static_graph(path, shape)), "CPU", config)

    def features(self) -> int | None:
        """The width of the graph's output rows, where the graph fixes it."""
        dim = self.compiled.output(0).get_partial_shape()[-1]
        return dim.get_length() if dim.is_static else None

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        # A request per call: one request is not safe to share between threads.
        request = self.compiled.create_infer_request()
        return np.array(request.infer({0: clips})[0], dtype=np.float32)


class OnnxRuntimeSession:
    def __init__(
        self, path: Path, precision: str, threads: int, shape: tuple[int, ...], any_frames: bool
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings are about graph rewrites, not the user
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {"clips": clips})[0], dtype=np.float32)


SESSIONS = {"openvino": OpenVINOSession, "onnxruntime": OnnxRuntimeSession}
