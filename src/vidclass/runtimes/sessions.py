"""Run a graph of a backbone (ONNX, or OpenVINO's IR for int8) in OpenVINO or ONNX
Runtime: numpy clips in, features out. Both release the GIL while they compute and may
be called from threads. A session serves clips of one shape (C, T, H, W), any batch."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..models.weights import cache_dir

# What OpenVINO computes the graph's floating-point ops in. An int8 graph carries its
# own quantized ops; what it leaves in floating point stays in fp32.
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


@functools.lru_cache(maxsize=1)
def _openvino_core():
    import openvino as ov

    core = ov.Core()
    # Compiled models are cached by OpenVINO itself (keyed by graph, device, settings and
    # its own version): the next start reads a blob instead of compiling again.
    core.set_property({"CACHE_DIR": str(cache_dir() / "openvino")})
    return core


class OpenVINOSession:
    def __init__(self, path: Path, precision: str, threads: int, shape: tuple[int, ...]):
        import openvino as ov
        import openvino.properties.hint as hints

        core = _openvino_core()
        model = core.read_model(str(path))
        if model.input(0).partial_shape[1:] != ov.PartialShape(list(shape)):
            # A graph for any clip length, made static for this one (batch stays free):
            # its pads become constants and the convolutions take the static kernels.
            model.reshape({0: ov.PartialShape([-1, *shape])})
        self.compiled = core.compile_model(
            model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": hints.PerformanceMode.LATENCY,
            },
        )

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        # A request per call: one request is not safe to share between threads.
        request = self.compiled.create_infer_request()
        return np.array(request.infer({0: clips})[0], dtype=np.float32)


class OnnxRuntimeSession:
    def __init__(self, path: Path, precision: str, threads: int, shape: tuple[int, ...]):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings are about graph rewrites, not the user
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {"clips": clips})[0], dtype=np.float32)


SESSIONS = {"openvino": OpenVINOSession, "onnxruntime": OnnxRuntimeSession}
