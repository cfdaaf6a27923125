"""A model's map stream (models.i3d_stream) as one graph, for exports: a step's frames,
the frame of the stretch it starts at, the stretch's length and the caches in; the map's
positions and the next caches out. Exported once per weights and step shape, checked
against torch over several steps (the caches carried), and cached as the other graphs
are (runtimes.graph)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import VidclassError
from ..models.spec import UNKNOWN_LENGTH
from . import cached, graph

log = logging.getLogger("vidclass")
CHECK_STEPS = 2  # steps compared with torch: caches carried, and an end within the last


class _Step(nn.Module):
    """The stream's step with its caches as separate inputs and outputs."""

    def __init__(self, step: nn.Module):
        super().__init__()
        self.step = step

    def forward(self, frames, first, total, *caches):
        positions, made = self.step(frames, first, total, list(caches))
        return (positions, *made)


def describe(step: nn.Module, frames: tuple[int, ...]) -> dict:
    """What an export's manifest says of its stream: the step's frames, the map's stride
    and pool, the lag, and the caches' shapes."""
    caches = step.empty_caches(torch.zeros((1, *frames)))
    return {
        "step_frames": frames[1],
        "stride": step.stride,
        "pool": step.model.temporal_map.pool,
        "lag": step.lag,
        "caches": [list(c.shape) for c in caches],
    }


def stream_graph(module: nn.Module, frames: tuple[int, ...], label: str, session) -> Path:
    """The cached fp32 graph of `module`'s stream for steps of `frames` (C, T, H, W),
    made where it is missing and checked with `session(onnx bytes) -> runner` (whose
    `run(inputs)` gives the outputs)."""
    digest = graph.state_digest(module)
    path = graph.graph_path(digest, ("stream", *frames), part="stream")
    if not cached.present(path):
        cached.keep(path, _export(module.stream_step().eval(), frames, label, session))
    return path


def _inputs(step, frames: tuple[int, ...], seed: int, at: int, caches) -> list:
    generator = torch.Generator().manual_seed(seed)
    x = torch.empty((1, *frames)).uniform_(-1.0, 1.0, generator=generator)
    total = UNKNOWN_LENGTH if at < CHECK_STEPS - 1 else (at + 1) * frames[1] - 8
    return [x, torch.tensor(at * frames[1]), torch.tensor(total), *caches]


def _export(step: nn.Module, frames: tuple[int, ...], label: str, session) -> bytes:
    wrapper = _Step(step).eval()
    with graph.exporting():
        caches = step.empty_caches(torch.zeros((1, *frames)))
        names = [f"cache{i}" for i in range(len(caches))]
        buffer = io.BytesIO()
        try:
            torch.onnx.export(
                wrapper,
                tuple(_inputs(step, frames, 0, 0, caches)),
                buffer,
                dynamo=False,
                input_names=["frames", "first", "total", *names],
                output_names=["positions", *[f"next_{n}" for n in names]],
                opset_version=graph.OPSET,
            )
        except Exception as exc:
            raise VidclassError(
                f"{label}: cannot convert its map stream ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}); its windows are scored one at a time"
            ) from exc
        data = buffer.getvalue()
        runner = session(data)
        theirs = [c.numpy() for c in caches]
        worst = scale = 0.0
        for at in range(CHECK_STEPS):  # the stretch ends within the last step
            inputs = _inputs(step, frames, at, at, caches)
            want = wrapper(*inputs)
            got = runner.run([np.asarray(v.numpy()) for v in inputs[:3]] + theirs)
            caches, theirs = list(want[1:]), list(got[1:])
            worst = max(worst, float(np.abs(got[0] - want[0].numpy()).max()))
            scale = max(scale, float(np.abs(want[0].numpy()).max()))
    if not np.isfinite(worst) or worst > graph.FP32_TOLERANCE * (scale + 1.0):
        raise VidclassError(
            f"{label}: its converted map stream differs from torch by {worst:.3g}; "
            "its windows are scored one at a time (report this)"
        )
    log.debug(f"{label}: map stream converted (largest difference from torch {worst:.2g})")
    return data
