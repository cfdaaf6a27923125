"""Decoding real files: timestamps, rotation, resizing, seeking, damaged files."""

import av
import numpy as np
import pytest

from vidclass import VidclassError
from vidclass.video import decode, probe, read_frames
from vidclass.video.decode import scaled_size
from vidclass.video.sampling import spread_clip

from .conftest import video


def _all_frame_times(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        t0 = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        return [float(f.time) - t0 for f in c.decode(s)]


def test_scaled_size_keeps_aspect():
    assert scaled_size(1280, 720, 256) == (455, 256)
    assert scaled_size(320, 568, 256) == (256, 454)
    assert scaled_size(640, 360, None) == (640, 360)


def test_frames_are_resized_in_the_decoder():
    d = read_frames(video("eating_spaghetti.mp4"), [1.0, 2.0], short_side=256)
    assert [f.shape for f in d.frames] == [(256, 455, 3)] * 2
    assert all(f.dtype == np.uint8 for f in d.frames)


def test_the_frame_on_screen_is_chosen_by_timestamp_on_vfr():
    path = video("odd/phone_rotated_vfr.mp4")  # variable frame rate, 80-100 ms per frame
    times = _all_frame_times(path)
    targets = list(np.arange(0, 2.3, 0.04))
    d = read_frames(path, targets, short_side=64)
    assert len(d.frames) == len(targets)
    for target, got in zip(targets, d.times, strict=True):
        shown = max(t for t in times if t <= target + 1e-4)
        assert got == pytest.approx(shown), target


def test_a_frame_wanted_twice_is_converted_once(monkeypatch):
    calls = []
    real = decode.to_rgb
    monkeypatch.setattr(decode, "to_rgb", lambda f, s: calls.append(f) or real(f, s))
    path = video("long/people_139s.mp4")  # 10 fps: 25 fps sampling repeats frames
    d = read_frames(path, [1.0 + k / 25 for k in range(25)], short_side=128)
    assert len(d.frames) == 25
    assert len(calls) == len(set(map(id, calls))) == 10


@pytest.mark.parametrize(
    "targets",
    [
        [70.0, 70.5, 71.0, 120.0, 120.3],  # far apart: seeks before keyframes are known
        spread_clip(0.0, 139.4, 16),  # 8.7 s apart: seeks once keyframes (1 s) are seen
        [2.0 + k / 25 for k in range(16)],  # a first target 2 s in: sought, nothing decoded yet
    ],
)
def test_seeking_gives_the_same_frames_as_decoding_through(monkeypatch, targets):
    path = video("long/people_139s.mp4")
    seeks = []
    real_seek = decode.Reader.seek
    monkeypatch.setattr(decode.Reader, "seek", lambda r, t: seeks.append(t) or real_seek(r, t))
    sought = read_frames(path, targets, short_side=64)
    assert seeks
    monkeypatch.setattr(decode, "SEEK_GAP", float("inf"))
    monkeypatch.setattr(decode, "MIN_SEEK_GAP", float("inf"))
    seeks.clear()
    through = read_frames(path, targets, short_side=64)
    assert not seeks
    assert sought.times == through.times
    for a, b in zip(sought.frames, through.frames, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["rotation_90.mov", "rotation_180.mov", "rotation_270.mov"])
def test_rotation_is_applied_like_ffmpeg_autorotate(name):
    path = video(f"odd/{name}")
    with av.open(str(path)) as c:
        raw = next(c.decode(video=0))
        rotation = raw.rotation
        # FFmpeg's own filters, as its command line rotates: transpose for +-90, flips for 180.
        theta = -rotation % 360
        graph = av.filter.Graph()
        src = graph.add_buffer(template=c.streams.video[0])
        chain = {90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}
        node = src
        for spec in chain[theta]:
            name_, _, arg = spec.partition("=")
            nxt = graph.add(name_, arg or None)
            node.link_to(nxt)
            node = nxt
        sink = graph.add("buffersink")
        node.link_to(sink)
        graph.configure()
        graph.push(raw)
        expected = graph.pull().to_ndarray(format="rgb24")
    got = read_frames(path, None).frames[0]
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    if theta in (90, 270):
        assert got.shape[0] > got.shape[1]  # portrait once upright


def test_unrotated_file_is_unchanged():
    path = video("odd/rotation_0.mov")
    with av.open(str(path)) as c:
        expected = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.array_equal(read_frames(path, None).frames[0], expected)


def test_missing_duration_is_measured():
    info = probe(video("odd/no_duration.webm"))
    assert not info.duration_from_header
    assert info.duration == pytest.approx(4.94, abs=0.1)


def test_damaged_file_decodes_in_part_with_a_warning():
    d = read_frames(video("odd/truncated_faststart.mp4"), [1.0, 4.0, 8.0], short_side=64)
    assert len(d.frames) == 2 and not d.complete
    assert d.warnings and "truncated_faststart.mp4" in d.warnings[0]


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("odd/empty.mp4", "empty file"),
        ("odd/not_a_video.mp4", "not a readable video"),
        ("odd/truncated_no_index.mp4", "not a readable video"),
    ],
)
def test_unreadable_files_raise_one_error_naming_the_file(name, cause):
    path = video(name)
    with pytest.raises(VidclassError) as err:
        read_frames(path, [0.0])
    assert str(path) in str(err.value) and cause in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(VidclassError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(VidclassError, match="is a folder"):
        probe(tmp_path)
