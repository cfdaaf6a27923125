"""Windows read from one map of the video (engine.stretch): I3D's map made as a stream
(models.i3d_stream) is the map of one pass over the whole stretch, a window on the map
is the clip's features, and a timeline read so agrees with one scoring each window
alone, window edges aside (measured in benchmarks/timeline.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidclass.engine import Windows
from vidclass.engine.stretch import ALIGN, MapStream, most_steps, stretch_length, window_features
from vidclass.models.i3d import InceptionI3d
from vidclass.models.spec import TemporalMap
from vidclass.video import probe
from vidclass.video.sampling import window_count

from .conftest import save_random_head, video, write_video


@pytest.fixture(scope="module")
def i3d():
    """I3D with random weights and BatchNorm statistics: exactness needs no training."""
    torch.manual_seed(0)
    module = InceptionI3d().eval()
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, torch.nn.BatchNorm3d):
                bn.running_mean.uniform_(-0.1, 0.1)
                bn.running_var.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.1, 0.1)
    return module


def streamed(module, x: torch.Tensor, step_frames: int) -> np.ndarray:
    """The map of `x` (1, 3, T, H, W) through the stream in steps of `step_frames`."""
    step_module = module.stream_step()

    def step(frames, first, total, caches):
        positions, caches = step_module(torch.as_tensor(frames), first, total, caches)
        return positions.numpy(), caches

    stream = MapStream(step, step_frames, step_module.stride, step_module.lag)
    frames = x.numpy()
    at = 0
    while at < frames.shape[2]:
        part = frames[:, :, at : at + step_frames]
        stream.push(part, last=part.shape[2] < step_frames)
        at += part.shape[2]
    stream.finish()
    return np.concatenate(stream.rows)


@pytest.mark.parametrize(("frames", "step"), [(136, 8), (136, 64), (128, 32), (128, 64), (16, 64)])
@torch.no_grad()
def test_the_stream_gives_the_map_of_one_pass_over_the_stretch(i3d, frames, step):
    x = torch.randn(1, 3, frames, 64, 64, generator=torch.Generator().manual_seed(frames))
    whole = i3d.features(x).mean(dim=(3, 4))[0].T.numpy()  # (positions, 1024)
    got = streamed(i3d, x, step)
    assert got.shape == whole.shape == (frames // 8, 1024)
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-5 * np.abs(whole).max())


@torch.no_grad()
def test_a_window_over_the_whole_stretch_has_the_clip_s_features(i3d):
    x = torch.randn(1, 3, 64, 224, 224, generator=torch.Generator().manual_seed(1))
    positions = streamed(i3d, x, 32)
    features = window_features(positions, np.array([0.0]), 64, 25.0, i3d.temporal_map)
    np.testing.assert_allclose(features[0], i3d.embed(x)[0].numpy(), rtol=1e-4, atol=1e-6)


def test_a_window_between_two_positions_blends_the_windows_on_them():
    tmap = TemporalMap(stride=8, pool=2)
    positions = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    weights = tmap.weights(8)
    assert weights.tolist() == pytest.approx([1 / 14] + [1 / 7] * 6 + [1 / 14])
    on = [weights @ positions[m : m + 8] for m in (2, 3)]
    # 2 frames past position 2 at 25 fps: a quarter of the way to position 3.
    got = window_features(positions, np.array([16 / 25, 18 / 25, 24 / 25]), 64, 25.0, tmap)
    np.testing.assert_allclose(got[0], on[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], 0.75 * on[0] + 0.25 * on[1], rtol=1e-5)
    np.testing.assert_allclose(got[2], on[1], rtol=1e-5)
    # Past the end: the last window that fits.
    last = window_features(positions, np.array([100.0]), 64, 25.0, tmap)
    np.testing.assert_allclose(last[0], weights @ positions[12:20], rtol=1e-5)


def _top1(timeline) -> list[str]:
    return [w.predictions[0]["label"] for w in timeline.windows]


@pytest.mark.slow
def test_a_timeline_from_the_map_agrees_with_one_window_at_a_time(model):
    assert model.temporal_map is not None  # the default model as users load it shares
    path = video("arm_wrestling.mp4")
    seen = []
    shared = model.timeline(path, stride=1.0, progress=lambda done, total: seen.append(done))
    alone = model.timeline(path, stride=1.0, per_window=True)
    # Progress as the frames go in, not all at the end; each window counted once.
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] == len(shared.windows)
    assert [(w.start, w.end) for w in shared.windows] == [(w.start, w.end) for w in alone.windows]
    assert len(shared.windows) == 9
    assert _top1(shared) == _top1(alone) == ["arm wrestling"] * 9
    assert shared.predictions[0]["label"] == "arm wrestling"
    assert [s.label for s in shared.segments] == [s.label for s in alone.segments]


@pytest.mark.parametrize("frames", [1, 10, 16, 17, 56, 57, 64, 65, 120, 128, 129, 200, 640])
def test_a_map_takes_at_most_the_steps_planned_for_it(frames):
    """most_steps bounds the passes of a map (explain's budget): its steps and those past
    its end, for I3D's stride and lag, by at most one."""
    taken = MapStream(lambda f, first, total, c: (np.zeros((1, f.shape[2] // 8, 2)), c), 64, 8, 6)
    length = stretch_length(frames, ALIGN)
    at = 0
    while at < length:
        part = np.zeros((1, 3, min(64, length - at), 2, 2), np.float32)
        taken.push(part, last=part.shape[2] < 64)
        at += part.shape[2]
    taken.finish()
    assert taken.steps <= most_steps(frames) <= taken.steps + 1
    assert sum(len(r) for r in taken.rows) == length // 8  # every position, none past it


@pytest.mark.parametrize(
    ("frames", "steps"), [(65, [64, 8]), (71, [64, 8]), (128, [64, 64]), (10, [16])]
)
def test_a_video_is_cut_into_steps_its_last_padded_with_its_last_frame(tmp_path, frames, steps):
    from vidclass.engine.prepare import Preparation
    from vidclass.models import get_entry
    from vidclass.video import read_frames

    spec = get_entry("i3d.kinetics400").input
    times = [k / 25 for k in range(frames)]
    made = read_frames(video("arm_wrestling.mp4"), times, size=(240, 320)).frames
    path = write_video(tmp_path / "piece.mp4", made)
    preparation = Preparation(path, spec, Windows(2.56, 0.5, shared=True))
    got = list(preparation)
    assert [i for i, _ in got] == list(range(len(steps)))
    assert [len(step) for _, step in got] == steps
    assert got[0][1].shape[1:] == (224, 224, 3)
    last = got[-1][1]
    real = frames - 64 * (len(steps) - 1)  # the last step's own frames, then repeats
    assert all((last[k] == last[real - 1]).all() for k in range(real, len(last)))
    assert preparation.spans[0][0] == 0.0


@pytest.mark.parametrize("frames", [65, 71])  # a last step of 1 frame, of 7
def test_a_video_whose_last_step_is_a_few_frames_keeps_them(model, tmp_path, frames):
    from vidclass.video import read_frames

    times = [k / 25 for k in range(frames)]
    made = read_frames(video("arm_wrestling.mp4"), times, size=(240, 320)).frames
    path = write_video(tmp_path / "short.mp4", made)
    shared = model.timeline(path, stride=0.5, unknown="off")
    alone = model.timeline(path, stride=0.5, unknown="off", per_window=True)
    assert [(w.start, w.end) for w in shared.windows] == [(w.start, w.end) for w in alone.windows]
    assert _top1(shared) == _top1(alone) == ["arm wrestling"] * len(alone.windows)


def test_a_video_shorter_than_a_window_has_one_window_from_the_map(model):
    assert model.temporal_map is not None
    path = video("cleaning_pool_1s.mp4")
    shared = model.timeline(path, unknown="off")
    alone = model.timeline(path, unknown="off", per_window=True)
    assert len(shared.windows) == len(alone.windows) == 1
    assert (shared.windows[0].start, shared.windows[0].end) == (0.0, alone.windows[0].end)
    assert _top1(shared) == _top1(alone)


@pytest.mark.slow
def test_a_trained_head_reads_its_windows_from_the_backbone_s_map(model, tmp_path):
    import vidclass

    clips = np.stack(model.read_clips(video("arm_wrestling.mp4"), 2))
    save_random_head(tmp_path / "head", model, clips, ["a", "b", "c"], hidden=16)
    trained = vidclass.load_model(str(tmp_path / "head"), precision="fp32", runtime="torch")
    assert trained.temporal_map == model.temporal_map
    path = video("arm_wrestling.mp4")
    shared = trained.timeline(path, stride=2.0, unknown="off")
    alone = trained.timeline(path, stride=2.0, unknown="off", per_window=True)
    scores = [[p["score"] for p in w.predictions] for w in shared.windows]
    assert len(scores) == len(alone.windows) and np.isfinite(scores).all()
    assert _top1(shared) == _top1(alone)


def test_a_model_without_a_map_scores_each_window(tiny_videomae):
    import vidclass

    tiny = vidclass.load_model(tiny_videomae, runtime="torch")
    assert tiny.temporal_map is None
    path = video("arm_wrestling.mp4")
    timeline = tiny.timeline(path, window=2.0, stride=2.0)
    assert len(timeline.windows) == window_count(probe(path).duration, 2.0, 2.0) == 5
