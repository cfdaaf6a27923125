"""Where a model's forward pass runs: torch (the reference), OpenVINO or ONNX Runtime.

The other runtimes run the backbone (`embed`, nearly all of the work) from an ONNX graph
exported once per weights and clip shape and cached; the small head stays in torch, so
trained heads, closed-set label choices and galleries work unchanged.
"""

from __future__ import annotations

from importlib.util import find_spec

from ..errors import VidclassError

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
# The modules each runtime needs (torch's exporter writes the graph with onnx); the extra
# of the same name installs them.
PACKAGES = {"openvino": ("openvino", "onnx"), "onnxruntime": ("onnxruntime", "onnx")}
# What each runtime computes in, on a CPU (int8: only a quantized model's own graph).
PRECISIONS = {
    "torch": ("fp32", "bf16"),
    "openvino": ("fp32", "bf16"),
    "onnxruntime": ("fp32",),
}
# Below this many clips in a run, `auto` keeps torch: OpenVINO's start beside torch's
# (importing it, reading its compiled blob, warming up: ~0.55 s for I3D) outweighs what
# it saves per clip (0.15 s in bf16, 0.53 s in fp32; benchmarks/runtimes.py on an
# AVX-512 EPYC). A model with a record (runtimes.light) skips torch's start instead and
# runs in OpenVINO however few its clips: that is decided before this (loading.py).
OPENVINO_MIN_CLIPS = {"bf16": 4, "fp32": 2}
INT8 = "int8"
QUANTIZE_HINT = "vidclass models quantize MODEL --calibrate DIR --out DIR"


def graph_shape(shape: tuple[int, ...], any_frames: bool) -> tuple[int | str, ...]:
    """The clip shape (C, T, H, W) a graph is made for: T free ("T") where it may be."""
    return (shape[0], "T", *shape[2:]) if any_frames else tuple(shape)


def installed(runtime: str) -> bool:
    if runtime == "torch":
        return True
    return all(find_spec(module) is not None for module in PACKAGES[runtime])


def require(runtime: str) -> None:
    if not installed(runtime):
        needs = " and ".join(PACKAGES[runtime])
        raise VidclassError(f"--runtime {runtime} needs {needs}: pip install 'vidclass[{runtime}]'")


def pick_runtime(
    requested: str,
    device_type: str,
    convertible: bool,
    precision: str = "fp32",
    expected_clips: int | None = None,
) -> str:
    """The runtime to run `module` in. `auto` takes OpenVINO on a CPU where it is
    installed, as it is faster there for the convolutional and the attention models
    alike (benchmarks/runtimes.py: I3D 1.5x torch in fp32, 1.25x in bf16; VideoMAE-B
    1.3x and 1.4x), unless the run scores fewer clips than pay for its start
    (`expected_clips`, where known; see OPENVINO_MIN_CLIPS); else torch. `convertible`:
    whether the model's forward is a fixed graph of the clips (not a vision-language
    model, whose texts change)."""
    if requested not in RUNTIMES:
        raise VidclassError(f"unknown runtime {requested!r}; choose one of {', '.join(RUNTIMES)}")
    if requested == "auto":
        few = expected_clips is not None and expected_clips < OPENVINO_MIN_CLIPS.get(precision, 1)
        if device_type == "cpu" and convertible and not few:
            return "openvino" if installed("openvino") else "torch"
        return "torch"
    if requested == "torch":
        return requested
    if device_type != "cpu":
        raise VidclassError(f"--runtime {requested} runs on the CPU; use --device cpu")
    if not convertible:
        raise VidclassError(
            f"--runtime {requested} runs classifiers; vision-language models run in torch"
        )
    require(requested)
    return requested


def quantized_runtime(requested: str, precision: str, base: str) -> tuple[str, str]:
    """(runtime, precision) of a quantized model: its int8 graph in OpenVINO. `base`:
    the model it was made from, which runs in the other precisions."""
    if requested not in ("auto", "openvino"):
        raise VidclassError(f"an int8 model runs in OpenVINO, not --runtime {requested}")
    if precision not in ("auto", INT8):
        raise VidclassError(f"an int8 model computes in int8; for {precision} use {base}")
    require("openvino")
    return "openvino", INT8


def runtime_precision(runtime: str, precision: str, requested: str) -> str:
    """The precision `runtime` computes in: `precision` as the device picked it, checked
    against what the runtime offers. `requested`: what the user asked for (auto or not)."""
    if precision == INT8:
        raise VidclassError(f"int8 runs a quantized model; make one with: {QUANTIZE_HINT}")
    offered = PRECISIONS[runtime]
    if precision in offered:
        return precision
    if requested == "auto":
        return offered[0]
    raise VidclassError(f"--runtime {runtime} computes in {', '.join(offered)}, not {precision}")
