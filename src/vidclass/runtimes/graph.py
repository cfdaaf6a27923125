"""A backbone's `embed` as an ONNX graph: exported once per weights and clip shape,
checked against torch, and cached where the converted weights live."""

from __future__ import annotations

import hashlib
import logging
import os
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

log = logging.getLogger("vidclass")
OPSET = 17
# fp32 conversions must agree with torch this closely (relative to the features' size):
# what reordered float sums move, far below what changes a label.
FP32_TOLERANCE = 1e-3


class _Embed(nn.Module):
    """`embed` as a module's forward, which is what exporters trace."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.module.embed(clips)


def state_digest(module: nn.Module) -> str:
    """A digest of the module's weights (names, shapes, dtypes, bytes): a retrained head
    or fine-tuned backbone is a different graph."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def graph_path(digest: str, shape: tuple[int, ...]) -> Path:
    """Where the graph of these weights for clips of `shape` (C, T, H, W) is cached. The
    key holds the exporter's version and vidclass's (the graph is made from its code);
    models that share weights (heads trained on one backbone) share the file."""
    key = hashlib.blake2b(
        f"{digest}|{shape}|torch {torch.__version__}|vidclass {__version__}|{OPSET}".encode(),
        digest_size=12,
    ).hexdigest()
    dims = "x".join(str(d) for d in shape)
    return cache_dir() / "graphs" / f"embed-{dims}-{key}.onnx"


def _say(message: str) -> None:
    print(f"vidclass: {message}", file=sys.stderr, flush=True)


def export(module: nn.Module, shape: tuple[int, ...], path: Path, label: str, check) -> Path:
    """Export `module.embed` for clips of `shape` to `path` (batch size free), then run
    `check(path, clip) -> features` on a random clip and compare with torch. The file
    appears only once it passed: a crash or a mismatch leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.onnx")
    dims = "x".join(str(d) for d in shape)
    _say(f"converting {label} for {dims} clips (once; cached in {path.parent}) ...")
    started = time.perf_counter()
    wrapper = _Embed(module).eval()
    clip = torch.empty((1, *shape)).uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(0))
    try:
        # In fp32 whatever autocast the caller runs under: the graph is the reference.
        with (
            warnings.catch_warnings(),
            torch.inference_mode(False),
            torch.no_grad(),
            torch.autocast("cpu", enabled=False),
        ):
            # The exporter warns of every Python value it fixes (the 'SAME' pads): those
            # are per clip shape, which the cache key holds.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (clip,),
                str(partial),
                dynamo=False,
                input_names=["clips"],
                output_names=["features"],
                dynamic_axes={"clips": {0: "batch"}, "features": {0: "batch"}},
                opset_version=OPSET,
            )
            expected = wrapper(clip).float().numpy()
        _say(f"  exported in {time.perf_counter() - started:.1f} s; checking against torch ...")
        got = check(partial, clip.numpy())
        worst = float(np.abs(got - expected).max())
        scale = float(np.abs(expected).max()) + 1.0
        if not np.isfinite(worst) or worst > FP32_TOLERANCE * scale:
            raise VidclassError(
                f"{label}: the converted graph differs from torch by {worst:.3g}; "
                "use --runtime torch (and report this)"
            )
    except VidclassError:
        partial.unlink(missing_ok=True)
        raise
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise VidclassError(
            f"{label}: cannot convert it ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "use --runtime torch"
        ) from exc
    os.replace(partial, path)
    _say(f"  converted in {time.perf_counter() - started:.1f} s (largest difference {worst:.2g})")
    return path
