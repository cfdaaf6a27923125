"""A backbone's `embed` as an ONNX graph: exported once per weights and clip shape (once
for every clip length where the module allows it), checked against torch, and cached
where the converted weights live, with its sha256 beside it (runtimes.cached: read back
only as written). A model's head (`head_logits`) exports the same way, for runs without
torch (an export's head.onnx, runtimes.export)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import VidclassError
from ..models.weights import cache_dir
from ..version import __version__
from . import EXPORT_VERSION, cached, graph_shape

log = logging.getLogger("vidclass")
OPSET = 17
# fp32 conversions must agree with torch this closely (relative to the features' size):
# what reordered float sums move, far below what changes a label.
FP32_TOLERANCE = 1e-3


# What each exported part of a VideoModule takes and gives (ONNX input, output names).
PARTS = {"embed": ("clips", "features"), "head_logits": ("features", "logits")}


class _Part(nn.Module):
    """A module's `embed` or `head_logits` as a forward, which is what exporters trace."""

    def __init__(self, module: nn.Module, part: str):
        super().__init__()
        self.module = module
        self.part = part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.module, self.part)(x)


def state_digest(module: nn.Module) -> str:
    """A digest of the module's weights (names, shapes, dtypes, bytes): a retrained head
    or fine-tuned backbone is a different graph."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def graph_path(digest: str, shape: tuple[int | str, ...], part: str = "embed") -> Path:
    """Where the graph of these weights for inputs of `shape` (clips: from graph_shape)
    is cached. The key holds the exporter's version and vidclass's (the graph is made
    from its code); models that share weights (heads trained on one backbone) share the
    file."""
    key = hashlib.blake2b(
        f"{digest}|{shape}|torch {torch.__version__}|vidclass {__version__}|{OPSET}|"
        f"{EXPORT_VERSION}".encode(),
        digest_size=12,
    ).hexdigest()
    dims = "x".join(str(d) for d in shape)
    prefix = {"embed": "embed", "stream": "stream"}.get(part, "head")
    return cache_dir() / "graphs" / f"{prefix}-{dims}-{key}.onnx"


def _say(message: str) -> None:
    print(f"vidclass: {message}", file=sys.stderr, flush=True)


def preparing(name: str, runtime: str) -> str:
    """The one line a user sees while a first run converts a model: what is happening
    and that it is once; the conversion's details are debug logging (--debug)."""
    shown = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}.get(runtime, runtime)
    return f"preparing {name} for {shown} (once; later runs reuse it) ..."


@contextlib.contextmanager
def exporting():
    """What torch's exporter runs under: fp32 whatever autocast the caller set (the graph
    is the reference), no gradients, and quiet: it warns of every Python value it fixes
    (the 'SAME' pads of a module without any_frames), which the graph's key holds."""
    with (
        warnings.catch_warnings(),
        torch.inference_mode(False),
        torch.no_grad(),
        torch.autocast("cpu", enabled=False),
    ):
        warnings.simplefilter("ignore")
        yield


def _random_clip(shape: tuple[int, ...]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.empty((1, *shape)).uniform_(-1.0, 1.0, generator=generator)


def ensure(
    module: nn.Module,
    shape: tuple[int, ...],
    path: Path,
    label: str,
    session,
    any_frames: bool,
    part: str = "embed",
    announce: str | None = None,
) -> Path:
    """`path`, exported where it is missing (see export), each candidate checked by
    running it with `session(candidate ONNX bytes, input shape) -> callable` in fp32.
    What is there is checked when a session reads it (runtimes.cached)."""
    if not cached.present(path):

        def check(candidate: bytes, x: np.ndarray) -> np.ndarray:
            # The candidate as it is (any clip length run as such): nothing is saved
            # for it until it passes.
            return session(candidate, x.shape[1:])(x)

        export(module, shape, path, label, check, any_frames, part, announce)
    return path


def export(
    module: nn.Module,
    shape: tuple[int, ...],
    path: Path,
    label: str,
    check,
    any_frames: bool,
    part: str = "embed",
    announce: str | None = None,
) -> Path:
    """Export `module.embed` (or `part`, one of PARTS) for inputs of `shape` to `path`
    (batch size free, and the clip length too where `any_frames`), then run
    `check(graph bytes, x) -> output` on random inputs and compare with torch: of
    `shape`, and with any_frames of one frame more (the other parity of the strided
    pads). The graph is made in memory and the file appears only once it passed, with
    its digest (a crash or a mismatch leaves nothing behind); where the cache cannot
    take it, it stays in memory for the run (cached.keep). `announce`: the line to tell
    the user (see `preparing`); how it goes is logged at debug level only."""
    dims = "x".join(str(d) for d in graph_shape(shape, any_frames))
    names = PARTS[part]
    if announce is not None:
        _say(announce)
    log.debug(f"converting {label} for {dims} {names[0]} (cached in {path.parent})")
    started = time.perf_counter()
    wrapper = _Part(module, part).eval()
    clip = _random_clip(shape)
    free = {0: "batch", 2: "frames"} if any_frames else {0: "batch"}
    checks = [clip]
    if any_frames:
        checks.append(_random_clip((shape[0], shape[1] + 1, *shape[2:])))
    buffer = io.BytesIO()
    try:
        with exporting():
            torch.onnx.export(
                wrapper,
                (clip,),
                buffer,
                dynamo=False,
                input_names=[names[0]],
                output_names=[names[1]],
                dynamic_axes={names[0]: free, names[1]: {0: "batch"}},
                opset_version=OPSET,
            )
            expected = [wrapper(x).float().numpy() for x in checks]
        log.debug(
            f"{label}: exported in {time.perf_counter() - started:.1f} s; checking against torch"
        )
        data = buffer.getvalue()
        worst = 0.0
        for x, want in zip(checks, expected, strict=True):
            got = check(data, x.numpy())
            worst = max(worst, float(np.abs(got - want).max()))
            scale = float(np.abs(want).max()) + 1.0
            if not np.isfinite(worst) or worst > FP32_TOLERANCE * scale:
                raise VidclassError(
                    f"{label}: the converted graph differs from torch by {worst:.3g} on "
                    f"{'x'.join(str(d) for d in x.shape[1:])} clips; use --runtime torch "
                    "(and report this)"
                )
    except VidclassError:
        raise
    except Exception as exc:
        raise VidclassError(
            f"{label}: cannot convert it ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "use --runtime torch"
        ) from exc
    cached.keep(path, data)
    log.debug(
        f"{label}: converted in {time.perf_counter() - started:.1f} s (largest difference "
        f"from torch {worst:.2g})"
    )
    return path
