"""Which timestamps a clip takes."""

import pytest

from vidclass.video.sampling import middle_clip, uniform_clips


def test_middle_clip_is_centred():
    ts = middle_clip(10.0, 64, 25.0)
    assert len(ts) == 64
    assert ts[0] == pytest.approx((10.0 - 2.56) / 2)
    assert ts[1] - ts[0] == pytest.approx(0.04)
    assert (ts[0] + ts[-1] + 0.04) / 2 == pytest.approx(5.0)


def test_short_video_gives_fewer_frames_from_the_start():
    ts = middle_clip(1.0, 64, 25.0)
    assert ts[0] == 0.0
    assert len(ts) == 25 and ts[-1] < 1.0


def test_unknown_duration_starts_at_zero():
    assert middle_clip(None, 8, 25.0)[0] == 0.0


def test_uniform_clips_cover_the_whole_video():
    clips = uniform_clips(100.0, 64, 25.0, 4)
    assert len(clips) == 4
    starts = [c[0] for c in clips]
    assert starts == sorted(starts)
    assert starts[0] < 25.0 and clips[-1][-1] > 75.0
    assert all(len(c) == 64 and c[-1] < 100.0 for c in clips)


def test_uniform_clips_on_a_short_video_is_one_clip():
    assert uniform_clips(2.0, 64, 25.0, 5) == [middle_clip(2.0, 64, 25.0)]
