"""The I3D module itself: TensorFlow 'SAME' padding, shapes, BatchNorm folding."""

import pytest
import torch
import torch.nn.functional as F

from vidclass.models.i3d import InceptionI3d, MaxPool3dSame, Unit3D, same_padding
from vidclass.models.i3d_layers import conv3d, folded_conv3d


def test_same_padding_puts_the_odd_pixel_on_the_high_side():
    # 224 -> 112 with a 7-wide kernel, stride 2: 5 pixels of padding, 2 low and 3 high.
    assert same_padding((64, 224, 224), (7, 7, 7), (2, 2, 2)) == [(2, 3)] * 3
    # stride 1, odd kernel: symmetric.
    assert same_padding((10, 28, 28), (3, 3, 3), (1, 1, 1)) == [(1, 1)] * 3
    # 112 -> 56 with a 3-wide max-pool: only the high side.
    assert same_padding((1, 112, 112), (1, 3, 3), (1, 2, 2)) == [(0, 0), (0, 1), (0, 1)]


def test_max_pool_ignores_padding():
    x = -torch.ones(1, 1, 1, 4, 4)  # all negative: zero padding would leak 0 into the max
    y = MaxPool3dSame((1, 3, 3), (1, 2, 2))(x)
    assert y.shape == (1, 1, 1, 2, 2)
    assert torch.all(y == -1)


def test_i3d_pools_pad_with_zero_where_their_inputs_are_non_negative():
    # 0 padding (what int8 graphs can hold) equals -inf padding on ReLU outputs.
    net = InceptionI3d(num_classes=7).eval()
    pools = [m for m in net.modules() if isinstance(m, MaxPool3dSame)]
    assert len(pools) == 13 and all(p.floor == 0.0 for p in pools)
    seen = []
    hooks = [p.register_forward_pre_hook(lambda _m, a: seen.append(a[0])) for p in pools]
    with torch.no_grad():
        net(torch.randn(1, 3, 9, 224, 224))
    for h in hooks:
        h.remove()
    assert len(seen) == 13 and all(float(x.min()) >= 0.0 for x in seen)
    x = torch.rand(1, 2, 5, 7, 7)
    for pool in pools[:3]:
        reference = MaxPool3dSame(pool.kernel, pool.stride)  # -inf padding
        assert torch.equal(pool(x), reference(x))


def test_output_shape_and_minimum_frames():
    net = InceptionI3d(num_classes=7).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 9, 224, 224)).shape == (1, 7)
        assert net.embed(torch.zeros(2, 3, 9, 224, 224)).shape == (2, 1024)
        with pytest.raises(RuntimeError):
            net(torch.zeros(1, 3, 8, 224, 224))  # below the 9-frame minimum


def test_folding_batchnorm_keeps_the_output():
    torch.manual_seed(0)
    unit = Unit3D(3, 8, (3, 3, 3), (2, 2, 2)).eval()
    unit.bn.running_mean.uniform_(-1, 1)
    unit.bn.running_var.uniform_(0.5, 2)
    unit.bn.bias.data.uniform_(-1, 1)
    x = torch.randn(1, 3, 5, 17, 17)
    with torch.no_grad():
        before = unit(x)
        unit.fold_batchnorm()
        after = unit(x)
    assert isinstance(unit.bn, torch.nn.Identity)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_the_registered_entry_says_the_modules_shortest_clip():
    # builtin.py states it without importing the module (runs without torch).
    from vidclass.models import get_entry

    assert get_entry("i3d.kinetics400").input.min_frames == InceptionI3d.MIN_FRAMES


@pytest.mark.parametrize(
    ("cin", "kernel", "stride", "pads", "frames"),
    [
        (3, (7, 7, 7), (2, 2, 2), ((2, 3), (2, 3), (1, 2)), 16),  # I3D's first, 'SAME'
        (3, (7, 7, 7), (2, 2, 2), ((0, 0), (3, 3), (3, 3)), 21),  # its stream's: valid in time
        (2, (3, 3, 3), (1, 1, 1), ((1, 1),) * 3, 9),
        (4, (3, 1, 1), (2, 1, 1), ((1, 1),) * 3, 11),
        (1, (4, 5, 3), (3, 2, 3), ((0, 0), (2, 1), (1, 1)), 13),  # odd pads in space
    ],
)
def test_a_conv_over_its_frames_stacked_as_channels_gives_the_same_sums(
    cin, kernel, stride, pads, frames
):
    """What exported graphs run for I3D's first conv (i3d_layers.folded_conv3d)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, cin, frames, 20, 18, generator=generator)
    weight = torch.randn(5, cin, *kernel, generator=generator)
    bias = torch.randn(5, generator=generator)
    flat = [p for lo_hi in reversed(pads) for p in lo_hi]
    want = F.conv3d(F.pad(x, flat), weight, bias, stride)
    got = folded_conv3d(x, weight, bias, stride, pads)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(conv3d(x, weight, bias, stride, pads), want)  # torch's
