"""The layers of I3D (models.i3d): a conv, a max-pool and an Inception block, each padded
like TensorFlow's 'SAME' (the odd extra pixel on the high side)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3


def same_padding(size, kernel: tuple[int, ...], stride: tuple[int, ...]):
    """Per-dimension (low, high) padding of TensorFlow 'SAME' for an input of `size`.
    Sizes are ints, or tensors while an exporter traces: then the pads are computed in
    the graph, which so holds for any clip length."""
    pads = []
    for n, k, s in zip(size, kernel, stride, strict=True):
        if isinstance(n, torch.Tensor):
            total = torch.clamp(((n + s - 1) // s - 1) * s + k - n, min=0)
        else:
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def _fixed(pads) -> bool:
    # Pads known now (ints), not computed in a traced graph.
    return all(isinstance(p, int) for lo_hi in pads for p in lo_hi)


def _flat_pad(pads) -> list[int]:
    # F.pad takes the last dimension first.
    return [p for lo_hi in reversed(pads) for p in lo_hi]


# A conv over at most this many channels with a kernel deep in time (I3D's first: 3
# colours, 7 frames) runs with its kernel's frames stacked as channels (conv3d).
FOLD_CHANNELS = 4


def conv3d(x: torch.Tensor, weight, bias, stride: tuple[int, ...], pads) -> torch.Tensor:
    """F.conv3d of `x` padded with zeros by `pads` ((low, high) per dimension, as
    same_padding gives). In an exported graph, over few channels with a kernel deep in
    time, it runs as `folded_conv3d`: CPUs' matrix units (AMX, VNNI) fill their tiles
    with channels, which 3 colours leave nearly empty (I3D's first conv: 86 of 174 ms of
    a bf16 clip in OpenVINO on an AMX Xeon). torch keeps the conv as it is: its stacked
    input would be 3.5 times the clip (GPUs, training), for no gain on a CPU."""
    depth, cin = weight.shape[2], weight.shape[1]
    if depth > 1 and cin <= FOLD_CHANNELS and torch.onnx.is_in_onnx_export():
        return folded_conv3d(x, weight, bias, stride, pads)
    if _even(pads):  # the op pads, with no padded copy of the input
        return F.conv3d(x, weight, bias, stride, tuple(lo for lo, _ in pads))
    return F.conv3d(F.pad(x, _flat_pad(pads)), weight, bias, stride)


def folded_conv3d(x: torch.Tensor, weight, bias, stride: tuple[int, ...], pads):
    """conv3d as a conv of depth 1 over the kernel's frames stacked as channels: the
    same sums. 'SAME' padding leaves at least a kernel of frames."""
    depth = weight.shape[2]
    even = _even(pads[1:])  # space padded by the conv; time, and odd space, here
    padded = [pads[0], *([(0, 0)] * 2 if even else pads[1:])]
    if not _fixed(padded) or any(p for lo_hi in padded for p in lo_hi):
        x = F.pad(x, _flat_pad(padded))
    step = stride[0]
    count = (x.shape[2] - depth) // step + 1  # output frames (a tensor while exporting)
    frames = [x[:, :, k : k + step * (count - 1) + 1 : step] for k in range(depth)]
    x = torch.stack(frames, 2).flatten(1, 2)  # channel c * depth + k: frame k of colour c
    folded = weight.flatten(1, 2).unsqueeze(2)
    space = [lo for lo, _ in pads[1:]] if even else [0, 0]
    return F.conv3d(x, folded, bias, (1, *stride[1:]), (0, *space))


def _even(pads) -> bool:
    # Known now and the same on both sides: an op's own padding.
    return _fixed(pads) and all(lo == hi for lo, hi in pads)


class Unit3D(nn.Module):
    """Conv3d + BatchNorm (no scale) + ReLU with 'SAME' padding."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1)):
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.conv = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=False)
        self.bn: nn.Module = nn.BatchNorm3d(cout, eps=BN_EPS, affine=True)
        # The checkpoint's BatchNorm has no scale: gamma is fixed at 1.
        self.bn.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = same_padding(x.shape[2:], self.kernel, self.stride)
        x = conv3d(x, self.conv.weight, self.conv.bias, self.stride, pads)
        return F.relu(self.bn(x))

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the (frozen) BatchNorm into the conv: one op less at inference."""
        if not isinstance(self.bn, nn.BatchNorm3d):
            return
        bn, weight = self.bn, self.conv.weight
        folded = nn.Conv3d(
            self.conv.in_channels,
            self.conv.out_channels,
            self.kernel,
            self.stride,
            bias=True,
            device=weight.device,
        )
        if not weight.is_meta:  # a module built without weights takes the shape alone
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            folded.weight.copy_(weight * scale.view(-1, 1, 1, 1, 1))
            folded.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv = folded
        self.bn = nn.Identity()


class MaxPool3dSame(nn.Module):
    """Max-pool with 'SAME' padding. TF ignores padded cells in a max, as -inf padding
    does; where the input is known non-negative (after a ReLU) 0 does the same, and an
    int8 graph (unsigned activations) can hold it: I3D's pools pad with `floor=0`."""

    def __init__(self, kernel, stride, floor: float = float("-inf")):
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.floor = floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = same_padding(x.shape[2:], self.kernel, self.stride)
        if not _fixed(pads) or any(lo or hi for lo, hi in pads):
            x = F.pad(x, _flat_pad(pads), value=self.floor)
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionBlock(nn.Module):
    def __init__(self, cin: int, ch: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.branch0 = Unit3D(cin, ch[0])
        self.branch1a = Unit3D(cin, ch[1])
        self.branch1b = Unit3D(ch[1], ch[2], (3, 3, 3))
        self.branch2a = Unit3D(cin, ch[3])
        self.branch2b = Unit3D(ch[3], ch[4], (3, 3, 3))
        self.branch3_pool = MaxPool3dSame((3, 3, 3), (1, 1, 1), floor=0.0)
        self.branch3 = Unit3D(cin, ch[5])
        self.out_channels = ch[0] + ch[2] + ch[4] + ch[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch0(x),
                self.branch1b(self.branch1a(x)),
                self.branch2b(self.branch2a(x)),
                self.branch3(self.branch3_pool(x)),
            ],
            dim=1,
        )
