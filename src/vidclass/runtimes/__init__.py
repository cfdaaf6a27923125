"""Where a model's forward pass runs: torch (the reference), OpenVINO or ONNX Runtime.

Through torch, the other runtimes run the backbone (`embed`, nearly all of the work)
from an ONNX graph exported once per weights and clip shape and cached; the small head
stays in torch. An export (runtimes.export) holds the head as a graph too.
"""

from __future__ import annotations

from importlib.util import find_spec

from ..errors import VidclassError

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
# The module that runs each runtime's graphs (the extra of the same name installs it);
# converting a model for it also needs torch's exporter and onnx (the export extra).
PACKAGES = {"openvino": "openvino", "onnxruntime": "onnxruntime"}
CONVERTS = ("torch", "onnx")
# What each runtime computes in, on a CPU (int8: only a quantized model's own graph).
PRECISIONS = {
    "torch": ("fp32", "bf16"),
    "openvino": ("fp32", "bf16"),
    "onnxruntime": ("fp32",),
}
# Bumped when what the modules export changes within a vidclass version (2: I3D's
# clip length free, its max-pools padded with 0; 3: exports hold the map stream; 4: the
# first conv's frames stacked as channels).
EXPORT_VERSION = 4
INT8 = "int8"
# Calibration clips are kept decoded (uint8, a quarter of their float size: 9.6 MB for
# one I3D clip) while NNCF passes over them: this bounds that memory.
DEFAULT_MAX_CLIPS = 64
INT8_HINT = "vidclass models export MODEL --precision int8 --calibrate VIDEOS --out DIR"


def graph_shape(shape: tuple[int, ...], any_frames: bool) -> tuple[int | str, ...]:
    """The clip shape (C, T, H, W) a graph is made for: T free ("T") where it may be."""
    return (shape[0], "T", *shape[2:]) if any_frames else tuple(shape)


def installed(runtime: str, convert: bool = False) -> bool:
    """Whether `runtime` can run graphs here (with `convert`, also make them from a
    torch model)."""
    modules = ["torch"] if runtime == "torch" else [PACKAGES[runtime]]
    modules += list(CONVERTS) if convert else []
    return all(find_spec(module) is not None for module in modules)


def require(runtime: str, convert: bool = False) -> None:
    if not installed(runtime):
        raise VidclassError(
            f"--runtime {runtime} needs {PACKAGES[runtime]}: pip install 'vidclass[{runtime}]'"
        )
    if convert and not installed(runtime, convert=True):
        raise VidclassError(
            f"converting a model for {runtime} needs torch and onnx: pip install 'vidclass[export]'"
        )


def pick_runtime(
    requested: str,
    device_type: str,
    convertible: bool,
) -> str:
    """The runtime to run `module` in. `auto` takes OpenVINO on a CPU where it is
    installed, as it is faster there for the convolutional and the attention models
    alike (benchmarks/runtimes.py: I3D 1.5x torch in fp32, 1.25x in bf16; VideoMAE-B
    1.3x and 1.4x); else torch. `convertible`:
    whether the model's forward is a fixed graph of the clips (not a vision-language
    model, whose texts change)."""
    if requested not in RUNTIMES:
        raise VidclassError(f"unknown runtime {requested!r}; choose one of {', '.join(RUNTIMES)}")
    if requested == "auto":
        if device_type == "cpu" and convertible:
            return "openvino" if installed("openvino", convert=True) else "torch"
        return "torch"
    if requested == "torch":
        return requested
    if device_type != "cpu":
        raise VidclassError(f"--runtime {requested} runs on the CPU; use --device cpu")
    if not convertible:
        raise VidclassError(
            f"--runtime {requested} runs classifiers; vision-language models run in torch"
        )
    require(requested, convert=True)
    return requested


def runtime_precision(runtime: str, precision: str, requested: str) -> str:
    """The precision `runtime` computes in: `precision` as the device picked it, checked
    against what the runtime offers. `requested`: what the user asked for (auto or not)."""
    if precision == INT8:
        raise VidclassError(f"int8 runs an int8 export; make one with: {INT8_HINT}")
    offered = PRECISIONS[runtime]
    if precision in offered:
        return precision
    if requested == "auto":
        return offered[0]
    raise VidclassError(f"--runtime {runtime} computes in {', '.join(offered)}, not {precision}")
