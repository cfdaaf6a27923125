"""I3D's temporal feature map as a stream: frames go in, in steps of a fixed length, each
through the network once, and the map's positions come out as one forward pass over
the whole stretch would give them, whatever the step.

Every temporal conv and pool keeps the last inputs its next outputs need (its cache) and
runs 'valid' in time over [cache | new inputs]; at each one's input, positions outside
the stretch are zeroed, which is what TF 'SAME' padding adds at the stretch's two ends
(I3D's pools pad with 0 too: their inputs follow a ReLU). Each op's cache length is chosen
so that its outputs fall on the positions 'SAME' gives; the price is a fixed lag, which
the caller drops (engine.stretch.MapStream). Shapes are fixed: one step is one graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .i3d_layers import (
    InceptionBlock,
    MaxPool3dSame,
    Unit3D,
    _even,
    _flat_pad,
    conv3d,
    same_padding,
)
from .spec import UNKNOWN_LENGTH


class _Temporal(nn.Module):
    """One conv or pool with a temporal kernel, run on a stream: its input at layer
    factor `factor` (frames per position) lags the stretch by `lag` positions."""

    def __init__(self, layer: Unit3D | MaxPool3dSame, factor: int, lag: int):
        super().__init__()
        self.layer = layer
        k, s = layer.kernel[0], layer.stride[0]
        # 'SAME' on an input of even length (every stretch is a multiple of 8 frames).
        lo = same_padding((2 * s,), (k,), (s,))[0][0]
        # The cache: from k - s (each step gives n / s outputs) to k - 1, the one whose
        # outputs start on 'SAME''s grid.
        self.cache = next(c for c in range(k - s, k) if (c + lag - lo) % s == 0)
        self.factor, self.lag = factor, lag
        self.lag_out = (self.cache + lag - lo) // s
        self.factor_out = factor * s

    def _valid(self, x: torch.Tensor) -> torch.Tensor:
        """The layer, 'SAME' in space and 'valid' in time."""
        layer = self.layer
        pads = [(0, 0), *same_padding(x.shape[3:], layer.kernel[1:], layer.stride[1:])]
        if isinstance(layer, Unit3D):
            x = conv3d(x, layer.conv.weight, layer.conv.bias, layer.stride, pads)
            return F.relu(layer.bn(x))
        # Even pads go to the pool itself, as conv3d does: no padded copy of the input
        # (a max-pool's own pads are -inf, the same as 0 after a ReLU).
        even = _even(pads)
        padding = tuple(lo for lo, _ in pads) if even else 0
        x = x if even else F.pad(x, _flat_pad(pads), value=layer.floor)
        return F.max_pool3d(x, layer.kernel, layer.stride, padding)

    def forward(self, x, cache, first, total):
        """(outputs, the next cache); an op that needs none (its kernel is its stride)
        takes and gives None, as a graph holds no empty tensor."""
        x = x * inside(x, self.factor, self.lag, first, total)
        if not self.cache:
            return self._valid(x), None
        if cache is None:
            cache = x.new_zeros((*x.shape[:2], self.cache, *x.shape[3:]))
        full = _channels_last(torch.cat([cache, x], 2))
        return self._valid(full), full[:, :, full.shape[2] - self.cache :]


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """What torch's 3D convolutions run fastest on (a cat makes plain tensors); the ONNX
    exporter has no memory formats: each runtime lays out its own memory."""
    if torch.onnx.is_in_onnx_export():
        return x
    return x.contiguous(memory_format=torch.channels_last_3d)


def inside(x: torch.Tensor, factor: int, lag: int, first, total) -> torch.Tensor:
    """(1, 1, t, 1, 1): 1 where x's positions (the stream's, from frame `first` of the
    stretch, lagging it by `lag`) lie in a stretch of `total` frames, else 0."""
    at = torch.arange(x.shape[2], device=x.device) + first // factor - lag
    keep = (at >= 0) & (at < total // factor)
    return keep.to(x.dtype).view(1, 1, -1, 1, 1)


class _Delay(nn.Module):
    """A 1x1 branch held back one position, to meet the block's 3-frame branches."""

    def forward(self, x, cache):
        if cache is None:
            cache = x.new_zeros((*x.shape[:2], 1, *x.shape[3:]))
        full = torch.cat([cache, x], 2)
        return full[:, :, :-1], full[:, :, -1:]


class _Block(nn.Module):
    def __init__(self, block: InceptionBlock, factor: int, lag: int):
        super().__init__()
        self.block = block
        self.conv1 = _Temporal(block.branch1b, factor, lag)
        self.conv2 = _Temporal(block.branch2b, factor, lag)
        self.pool = _Temporal(block.branch3_pool, factor, lag)
        self.delay = _Delay()
        assert self.conv1.lag_out == self.pool.lag_out == lag + 1
        self.lag_out, self.factor_out = lag + 1, factor

    def forward(self, x, caches, first, total):
        b = self.block
        b0, c0 = self.delay(b.branch0(x), caches[0])
        b1, c1 = self.conv1(b.branch1a(x), caches[1], first, total)
        b2, c2 = self.conv2(b.branch2a(x), caches[2], first, total)
        b3, c3 = self.pool(x, caches[3], first, total)
        return _channels_last(torch.cat([b0, b1, b2, b.branch3(b3)], 1)), [c0, c1, c2, c3]


class StreamingI3D(nn.Module):
    """One step of I3D's stream: `frames` (N, 3, n, H, W) (n a multiple of 8), the frame
    of the stretch they start at, the stretch's length in frames (a multiple of 8; a
    huge number until it is known) and the caches; gives the map's positions, spatially
    averaged, (N, n / 8, 1024) fp32, lagging the stretch by `lag` positions, and the
    new caches. The weights are the model's, shared."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.stages = nn.ModuleList()
        factor, lag = 1, 0
        for layer in model.features:
            if isinstance(layer, InceptionBlock):
                stage = _Block(layer, factor, lag)
            elif layer.kernel[0] > 1 or layer.stride[0] > 1:
                stage = _Temporal(layer, factor, lag)
            else:
                self.stages.append(layer)  # no extent in time: runs on the step as it is
                continue
            self.stages.append(stage)
            factor, lag = stage.factor_out, stage.lag_out
        self.stride, self.lag = factor, lag
        self.cache_count = sum(
            4 if isinstance(s, _Block) else int(s.cache > 0)
            for s in self.stages
            if isinstance(s, _Block | _Temporal)
        )

    def forward(self, frames, first, total, caches: list[torch.Tensor] | None):
        """None for `caches`: the stretch's first step, caches of zeros."""
        caches = caches if caches is not None else [None] * self.cache_count
        x, out, i = frames, [], 0
        for stage in self.stages:
            if isinstance(stage, _Block):
                x, made = stage(x, caches[i : i + 4], first, total)
                out += made
                i += 4
            elif isinstance(stage, _Temporal) and stage.cache:
                x, made = stage(x, caches[i], first, total)
                out.append(made)
                i += 1
            elif isinstance(stage, _Temporal):
                x, _ = stage(x, None, first, total)
            else:
                x = stage(x)
        return x.float().mean(dim=(3, 4)).transpose(1, 2), out

    @torch.no_grad()
    def empty_caches(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Zero caches for steps shaped as `frames`: those one step of zeros makes."""
        _, caches = self(frames.new_zeros(frames.shape), 0, UNKNOWN_LENGTH, None)
        return [torch.zeros_like(c) for c in caches]
