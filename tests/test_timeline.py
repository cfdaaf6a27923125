"""Timelines: windows, segments, one-pass decoding, outputs, and a video of joined clips."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from vidclass.engine import Windows, Work
from vidclass.subtitles import to_srt, to_vtt
from vidclass.timelines import Segment, segment, window_starts
from vidclass.video import decode, read_frames

from .conftest import run_cli, run_on_a_terminal, video

JOINED = [
    ("arm_wrestling.mp4", "arm wrestling"),
    ("flipping_pancake.mkv", "flipping pancake"),
    ("soccer_juggling.avi", "juggling soccer ball"),
]


def test_window_starts_cover_the_video():
    assert window_starts(10.0, 2.56, 1.0)[:3] == [0.0, 1.0, 2.0]
    starts = window_starts(10.0, 2.56, 1.0)
    assert starts[-1] + 2.56 == pytest.approx(10.0)  # a last window ends at the end
    assert window_starts(1.0, 2.56, 1.0) == [0.0]


def _probs(tops, n_labels=3, p=0.9):
    out = np.full((len(tops), n_labels), (1 - p) / (n_labels - 1))
    out[np.arange(len(tops)), tops] = p
    return out


def test_one_noisy_window_does_not_split_a_segment():
    tops = [0] * 6 + [1] + [0] * 6
    spans = [(i, i + 2.0) for i in range(len(tops))]
    segs = segment(_probs(tops), spans, 14.0, ("a", "b", "c"), smooth=1, min_length=2.0)
    assert [s.label for s in segs] == ["a"]
    assert (segs[0].start, segs[0].end) == (0.0, 14.0)
    # Without the minimum length, the noisy window is its own segment.
    segs = segment(_probs(tops), spans, 14.0, ("a", "b", "c"), smooth=1, min_length=0.0)
    assert [s.label for s in segs] == ["a", "b", "a"]


def test_segments_change_where_the_label_changes():
    tops = [0] * 5 + [2] * 5
    spans = [(i, i + 2.0) for i in range(10)]
    segs = segment(_probs(tops), spans, 11.0, ("a", "b", "c"), smooth=3, min_length=2.0)
    assert [(s.label, s.start, s.end) for s in segs] == [("a", 0.0, 5.5), ("c", 5.5, 11.0)]
    assert segs[0].score == pytest.approx(0.9)


def test_subtitles():
    segs = [Segment(0.0, 1.5, "a", 0.9), Segment(1.5, 3725.25, "b", 0.5)]
    assert to_srt(segs) == (
        "1\n00:00:00,000 --> 00:00:01,500\na (0.90)\n\n2\n00:00:01,500 --> 01:02:05,250\nb (0.50)\n"
    )
    assert to_vtt(segs).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\na (0.90)\n")


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """The three clips one after another at 25 fps, 320x240, and the join times."""
    path = tmp_path_factory.mktemp("joined") / "joined.mp4"
    joins, t0 = [], 0.0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for name, _ in JOINED:
            frames = read_frames(video(name), None, size=(240, 320))
            times = np.arange(0, frames.end_time + 1e-6, 1 / 25)
            picked = read_frames(video(name), list(times), size=(240, 320)).frames
            for f in picked:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    out.mux(packet)
            t0 += len(picked) / 25
            joins.append(t0)
        for packet in stream.encode():
            out.mux(packet)
    return path, joins[:-1]


@pytest.mark.slow
def test_segments_find_each_joined_action(model, joined):
    path, joins = joined
    tl = model.timeline(path)
    assert [s.label for s in tl.segments] == [label for _, label in JOINED]
    for seg, join in zip(tl.segments, joins, strict=False):
        assert abs(seg.end - join) <= 2.0, (seg, join)
    assert tl.segments[0].start == 0.0 and tl.segments[-1].end == pytest.approx(tl.duration)
    assert all(w.end - w.start == pytest.approx(2.56) for w in tl.windows)


@pytest.mark.slow
def test_each_frame_is_decoded_once(model, monkeypatch):
    converted = []
    real = decode.to_rgb
    monkeypatch.setattr(decode, "to_rgb", lambda f, r: converted.append(f.pts) or real(f, r))
    tl = model.timeline(video("soccer_juggling.avi"), stride=0.5)
    assert len(tl.windows) >= 10  # windows overlap by 2 s: frames are shared
    assert len(converted) == len(set(converted))


@pytest.mark.slow
def test_cli_outputs(tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (the plot extra)")
    path = str(video("cleaning_pool_1s.mp4"))
    png = tmp_path / "t.png"
    run = run_cli("timeline", path, "--format", "json", "--plot", str(png))
    assert run.returncode == 0, run.stderr
    tl = json.loads(run.stdout)
    assert tl["windows"][0]["predictions"][0]["label"] == "cleaning pool"
    assert tl["segments"][0]["label"] == "cleaning pool"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    srt = run_cli("timeline", path, "--format", "srt")
    assert srt.stdout.startswith("1\n00:00:00,000 --> 00:00:01,0")
    csv_rows = run_cli("timeline", path, "--format", "csv", "--segments").stdout.splitlines()
    assert csv_rows[0] == "start,end,label,score" and "cleaning pool" in csv_rows[1]
    bad = run_cli("timeline", path, "--stride", "0")
    assert bad.returncode == 2 and "--stride: must be a number from 0.04 to 3600" in bad.stderr


@pytest.mark.slow
def test_progress_counts_every_window_and_the_whole_video_is_their_mean(model):
    path = video("arm_wrestling.mp4")
    seen = []
    tl = model.timeline(path, top_k=3, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (len(tl.windows), len(tl.windows))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # it only moves forward
    # the windows as the timeline scored them: off one map of the video (the default)
    windows = Windows(tl.window, tl.stride, shared=model.temporal_map is not None)
    probs = model.run(path, Work(windows, video_timeout=None)).clip_scores
    mean = probs.mean(axis=0)
    assert [p["label"] for p in tl.predictions] == [model.labels[i] for i in np.argsort(-mean)[:3]]
    assert tl.predictions[0]["score"] == pytest.approx(float(mean.max()), abs=1e-5)


@pytest.mark.slow
def test_the_cli_shows_windows_done_on_a_terminal_and_nothing_when_piped():
    path = video("eating_spaghetti.mp4")
    code, out, terminal = run_on_a_terminal("timeline", path, "--stride", "0.5")
    assert code == 0
    assert "timeline:" in terminal and "16/16" in terminal and "window" in terminal
    assert "timeline:" not in out  # the bar never reaches the results
    piped = run_cli("timeline", path, "--stride", "0.5")
    assert piped.returncode == 0 and "window/s" not in piped.stderr and "16/16" not in piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0].split() == ["start", "end", "top", "labels", "and", "scores"]
    assert len(lines) == 1 + 16 + 1
    assert lines[-1].startswith("whole video (mean of 16 windows): eating spaghetti")
