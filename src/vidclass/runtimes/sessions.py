"""Run an ONNX graph of a backbone in OpenVINO or ONNX Runtime: numpy clips in,
features out. Both release the GIL while they compute and may be called from threads."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..models.weights import cache_dir

OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}


@functools.lru_cache(maxsize=1)
def _openvino_core():
    import openvino as ov

    core = ov.Core()
    # Compiled models are cached by OpenVINO itself (keyed by graph, device, settings and
    # its own version): the next start reads a blob instead of compiling again.
    core.set_property({"CACHE_DIR": str(cache_dir() / "openvino")})
    return core


class OpenVINOSession:
    def __init__(self, path: Path, precision: str, threads: int):
        import openvino.properties.hint as hints

        self.compiled = _openvino_core().compile_model(
            str(path),
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
    def __init__(self, path: Path, precision: str, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings are about graph rewrites, not the user
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {"clips": clips})[0], dtype=np.float32)


SESSIONS = {"openvino": OpenVINOSession, "onnxruntime": OnnxRuntimeSession}
