"""Live sources: real streams over loopback (UDP, TCP, standard input, a growing file, a
stream killed and restarted), each bounded in time, and the window bookkeeping that
keeps a slow model from queueing without bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import vidclass
from vidclass.errors import VidclassError
from vidclass.live import parse_source
from vidclass.live.windows import Grid, LiveWindows
from vidclass.models.spec import InputSpec
from vidclass.video.sampling import window_times

from .conftest import ROOT, free_port, run_cli, video, write_video

I3D_SPEC = InputSpec(num_frames=64, fps=25.0, short_side=256, crop_size=224)
SPREAD_SPEC = InputSpec(num_frames=8, short_side=32, crop_size=32)


def pusher(clip, url: str, *args: str) -> subprocess.Popen:
    """tests/streams.py sending `clip` to `url` at its own pace, in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.streams", str(clip), url, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE if url == "pipe:1" else subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(10)


def connect(session, limit: float = 30.0):
    """`session` with its source open: a sender takes a moment to start listening."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return session.open()
        except VidclassError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_session(session, limit: float = 90.0) -> list:
    """The session's events; stops it after `limit` seconds so no test can hang."""
    timer = threading.Timer(limit, session.stop)
    timer.start()
    try:
        return list(session)
    finally:
        timer.cancel()


# -- the window bookkeeping -------------------------------------------------------------


@pytest.mark.parametrize("spec", [I3D_SPEC, SPREAD_SPEC], ids=["fps", "spread"])
@pytest.mark.parametrize("stride", [1.0, 0.3, 0.333333])
def test_targets_are_every_windows_timestamps_once_in_order(spec, stride):
    grid = Grid(0.0, 2.56, stride, spec)
    targets = grid.targets()
    got = [next(targets) for _ in range(400)]
    n, fps = spec.num_frames, spec.fps
    expected = sorted({t for k in range(600) for t in window_times(*grid.span(k), n, fps)})
    assert got == expected[:400]
    assert grid.times(3) == window_times(3 * stride, round(3 * stride + 2.56, 6), n, fps)


@pytest.mark.parametrize("stride", [1.0, 0.25, 0.333333])
def test_a_model_that_never_takes_a_window_holds_one_window_of_frames(stride):
    """Ten minutes of 30 fps frames and nobody scoring: memory stays at about one
    window, the newest window is the one to score, and it holds its own frames."""
    windows = LiveWindows(I3D_SPEC, 2.56, stride)

    def convert(frame_number):  # each frame's RGB says which frame it was
        return np.full((2, 2, 3), frame_number % 251, dtype=np.uint8)

    most = 0  # distinct frames held at once: the memory
    for n in range(30 * 600):
        windows.add(n, n / 30, float(n), convert)
        most = max(most, len({id(f) for f in windows._held.values()}))
    assert most <= (2.56 + 2 * stride) * 30 + 2
    assert windows.trimmed == 0  # only time let frames go, never the cap
    ready = windows.newest(0)
    # the last frame is at 599.97 s: the last window ending before it is made
    last = int((599.967 - 2.56) / stride) * stride
    assert ready.span == (pytest.approx(last), pytest.approx(last + 2.56))
    assert ready.seq == windows.made == int(round(last / stride)) + 1
    assert len(ready.frames) == 64
    # the frame on screen at each timestamp: the last one at or before it
    for t, frame in zip(window_times(*ready.span, 64, 25.0), ready.frames, strict=True):
        assert frame[0, 0, 0] == int(np.floor(t * 30 + 1e-6)) % 251
    assert windows.newest(ready.seq) is None


def test_windows_restart_after_a_break_and_skip_nothing_twice():
    windows = LiveWindows(SPREAD_SPEC, 2.0, 1.0)

    def convert(n):
        return np.zeros((2, 2, 3), dtype=np.uint8)

    for n in range(100):  # 4 s at 25 fps: windows at 0, 1, 2 made
        windows.add(n, n / 25, float(n), convert)
    before = windows.made
    assert before == 3
    windows.restart(10.0)
    assert windows.newest(0) is None  # the old run's frames are gone with it
    for n in range(60):
        windows.add(n, 10.0 + n / 25, float(n), convert)
    ready = windows.newest(before)
    assert ready.span == (10.0, 12.0) and ready.seq == before + 1


# -- sources ------------------------------------------------------------------------------


def test_sources_are_checked_before_anything_opens(tmp_path):
    assert parse_source("-").kind == "stdin"
    assert parse_source("udp://127.0.0.1:9").kind == "network"
    assert parse_source("rtsp://cam/1").options["rtsp_transport"] == "tcp"
    secret = parse_source("rtsp://admin:hunter2@cam/1")
    assert "hunter2" not in secret.name and secret.target == "rtsp://admin:hunter2@cam/1"
    clip = tmp_path / "growing.ts"
    clip.write_bytes(b"")
    assert parse_source(str(clip)).kind == "file"
    for bad, why in [
        ("gopher://x/y", "unknown kind of stream"),
        ("/dev/video99", "no such camera"),
        ("/dev/null", "not a camera"),
        (str(tmp_path), "not a file, a pipe or a camera"),
        (str(tmp_path / "missing.ts"), "no such file"),
        ("", "not a source"),
    ]:
        with pytest.raises(VidclassError, match=why):
            parse_source(bad)


@pytest.fixture(scope="module")
def tiny_model(tiny_videomae):
    return vidclass.load_model(tiny_videomae, runtime="torch")


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """4 s of a shared clip at 25 fps, made small: a stream that plays in 4 s."""
    from .conftest import cut_piece

    out = tmp_path_factory.mktemp("clips") / "wrestling_4s.mp4"
    return cut_piece(video("arm_wrestling.mp4"), 1.0, 4.0, out, short=96)


@pytest.mark.slow
def test_a_source_that_cannot_be_opened_is_one_line(tiny_videomae, tmp_path):
    port = free_port()  # nothing listens there
    for source, why in [
        (f"tcp://127.0.0.1:{port}", "connection refused"),
        (f"srt://127.0.0.1:{port}", "cannot read srt:// streams"),
        (str(tmp_path / "missing.ts"), "no such file"),
    ]:
        done = run_cli("watch", source, "--model", tiny_videomae, "--timeout", "2", timeout=120)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0].lower(), done.stderr


# -- real streams over loopback ----------------------------------------------------------


@pytest.fixture(scope="module")
def two_actions(tmp_path_factory):
    """6 s of arm wrestling then 6 s of eating spaghetti, one 25 fps video: a stream
    whose leading label changes halfway."""
    from vidclass.video import read_frames

    frames = []
    for name in ("arm_wrestling.mp4", "eating_spaghetti.mp4"):
        times = list(1.0 + np.arange(0, 6.0, 1 / 25))
        frames += read_frames(video(name), times, size=(256, 340)).frames
    return write_video(tmp_path_factory.mktemp("clips") / "two_actions.mp4", frames)


@pytest.mark.slow
def test_live_labels_over_tcp_match_the_timeline_of_the_same_file(model, two_actions):
    """The same frames at the same times give the same windows: every window the live
    run labels has the timeline's scores, and the leading label changes within one
    window of where the timeline's segments change."""
    port = free_port()
    sender = pusher(two_actions, f"tcp://127.0.0.1:{port}?listen=1")
    try:
        session = vidclass.watch(
            f"tcp://127.0.0.1:{port}", model, stride=2.0, smooth=1, reconnect=False
        )
        events = run_session(connect(session))
    finally:
        stop(sender)
    timeline = model.timeline(two_actions, stride=2.0)
    by_start = {w.start: w for w in timeline.windows}
    windows = [e for e in events if e.kind == "window"]
    assert len(windows) >= 3, session.summary
    for w in windows:
        expected = by_start[w.start]
        assert w.end == expected.end
        assert w.predictions[0]["label"] == expected.predictions[0]["label"]
        assert w.predictions[0]["score"] == pytest.approx(
            expected.predictions[0]["score"], abs=2e-3
        )
    live_labels = [e.label for e in events if e.kind == "segment"]
    assert (
        live_labels
        == [g.label for g in timeline.segments]
        == [
            "arm wrestling",
            "eating spaghetti",
        ]
    )
    live_change = next(e.end for e in events if e.kind == "segment")
    assert abs(live_change - timeline.segments[0].end) <= timeline.window
    summary = session.summary
    assert summary.ended == "end of stream"
    assert summary.windows == len(windows)
    assert 0 < summary.latency_median < 30 and summary.latency_p95 >= summary.latency_median


@pytest.mark.slow
def test_udp_stream_joined_before_it_starts(tiny_model, short_clip):
    port = free_port()
    sender = pusher(short_clip, f"udp://127.0.0.1:{port}?pkt_size=1316", "--delay", "1.5")
    try:
        session = vidclass.watch(
            f"udp://127.0.0.1:{port}", tiny_model, stride=0.5, timeout=5, reconnect=False
        )
        events = run_session(session)
    finally:
        stop(sender)
    windows = [e for e in events if e.kind == "window"]
    # 4 s of stream: windows of 2 s every 0.5 s start at 0 ... 2
    assert [w.start for w in windows][:1] == [0.0]
    assert len(windows) + session.summary.skipped == 5
    assert windows[-1].end == pytest.approx(4.0, abs=0.01)
    assert session.summary.ended.startswith("end of stream")


@pytest.mark.slow
def test_stdin_pipe_as_json_lines_appended_to_an_output(tiny_videomae, short_clip, tmp_path):
    out = tmp_path / "live.jsonl"
    labelled = []  # windows of each run
    for _ in range(2):
        sender = pusher(short_clip, "pipe:1")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "vidclass", "watch", "-", "--model", tiny_videomae]
                + ["--format", "json", "--segments", "-k", "2", "-o", str(out)],
                stdin=sender.stdout,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            stop(sender)
        assert done.returncode == 0, done.stderr
        labelled.append(json.loads(done.stdout.splitlines()[-1])["windows"])
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    kinds = [x["type"] for x in lines]
    assert kinds[-1] == "summary" and "window" in kinds and "segment" in kinds
    summary = lines[-1]
    assert summary["source"] == "stdin" and summary["ended"] == "end of stream"
    windows = [x for x in lines if x["type"] == "window"]
    assert all(len(w["predictions"]) == 2 and w["latency"] >= 0 for w in windows)
    assert windows[0]["start"] == 0.0
    written = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(windows) == labelled[-1]
    assert len(written) == sum(labelled)  # both runs appended
    assert all(r["video"] == "stdin" and r["model"] == tiny_videomae for r in written)


@pytest.mark.slow
def test_a_growing_file_is_followed_until_it_stops_growing(tiny_model, short_clip, tmp_path):
    growing = tmp_path / "recording.ts"
    growing.write_bytes(b"")
    sender = pusher(short_clip, str(growing), "--delay", "0.5")
    try:
        session = vidclass.watch(str(growing), tiny_model, stride=1.0, timeout=5)
        events = run_session(session)
    finally:
        stop(sender)
    windows = [e for e in events if e.kind == "window"]
    assert windows and windows[-1].end == pytest.approx(4.0, abs=0.01)
    assert session.summary.ended == "end of stream"
    assert session.summary.stream_seconds == pytest.approx(4.0, abs=0.1)


def test_a_stream_that_ends_before_any_frame_is_an_error_that_says_why(tiny_model):
    """An MP4 whose index is at its end cannot be read as it is written: no frame
    decodes, and the run says so rather than ending quietly with nothing labelled."""
    session = vidclass.watch(str(video("arm_wrestling.mp4")), tiny_model, timeout=1)
    with pytest.raises(VidclassError, match="ended before a frame could be decoded.*MPEG-TS"):
        run_session(session)
    assert session.summary.windows == 0 and "before a frame" in session.summary.ended


@pytest.mark.slow
def test_a_killed_stream_is_reopened_and_the_gap_reported(tiny_model, short_clip):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    first = pusher(short_clip, url + "?listen=1", "--loops", "5")
    second = None
    try:
        session = vidclass.watch(url, tiny_model, stride=0.5, timeout=2, duration=14)
        events = []
        for event in connect(session):
            events.append(event)
            if event.kind == "window" and event.start >= 2.0 and second is None:
                stop(first)  # killed mid-stream
                time.sleep(1.0)
                second = pusher(short_clip, url + "?listen=1")
    finally:
        for proc in (first, second):
            if proc is not None:
                stop(proc)
    gaps = [e for e in events if e.kind == "gap"]
    assert len(gaps) == 1, [e.kind for e in events]
    gap = gaps[0]
    assert gap.end > gap.start and gap.seconds >= 0.9
    after = [e for e in events if e.kind == "window" and e.start >= gap.end]
    # windows start again from the first frame after the gap, on the stride's grid
    assert after, [(e.kind, getattr(e, "start", None)) for e in events]
    strides = (after[0].start - gap.end) / 0.5
    assert strides == pytest.approx(round(strides), abs=1e-4)
    before = [e for e in events if e.kind == "window" and e not in after]
    assert before and all(e.end < gap.end for e in before)  # no window spans the gap
    assert session.summary.reconnects >= 1 and session.summary.gaps == 1


@pytest.mark.slow
def test_ctrl_c_ends_cleanly_with_a_summary_and_csv_rows(tiny_videomae, short_clip):
    import signal

    port = free_port()
    sender = pusher(short_clip, f"tcp://127.0.0.1:{port}?listen=1", "--loops", "10")
    try:
        time.sleep(1.0)
        watch = subprocess.Popen(
            [sys.executable, "-m", "vidclass", "watch", f"tcp://127.0.0.1:{port}"]
            + ["--model", tiny_videomae, "--format", "csv", "--stride", "0.5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "VIDCLASS_OFFLINE": "1"},
        )
        watchdog = threading.Timer(120, watch.kill)  # the reads below cannot hang the run
        watchdog.start()
        header = watch.stdout.readline()
        rows = [watch.stdout.readline() for _ in range(3)]  # three windows, as they come
        watch.send_signal(signal.SIGINT)
        rest, err = watch.communicate(timeout=60)
        watchdog.cancel()
    finally:
        stop(sender)
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert (
        header.strip()
        == "start,end,captured,latency,ood_score,unknown,label_1,score_1,label_2,score_2,"
        "label_3,score_3"
    )
    for row in rows:
        start, end, captured, latency, ood, unknown, label, score = row.split(",")[:8]
        assert float(end) - float(start) == pytest.approx(2.0)
        assert captured.startswith("20") and float(latency) >= 0 and 0 <= float(score) <= 1
        assert 0 <= float(ood) <= 1 and unknown == ""  # a score; no threshold to say unknown
    summary = err.strip().splitlines()[-1]
    assert "windows labelled" in summary and "ended: stopped" in summary, err


@pytest.mark.slow
def test_zero_shot_labels_on_a_live_source(tmp_path, short_clip):
    """A vision-language model scores the words it is given, live as in a file."""
    pytest.importorskip("transformers", reason="needs the hf extra")
    from .tiny_vl import make_checkpoint

    make_checkpoint(tmp_path / "clip", "clip")
    model = vidclass.load_model(str(tmp_path / "clip"), runtime="torch")
    with pytest.raises(VidclassError, match="labels"):
        vidclass.watch(str(short_clip), model)
    growing = tmp_path / "live.ts"
    growing.write_bytes(b"")
    sender = pusher(short_clip, str(growing))
    try:
        session = vidclass.watch(
            str(growing), model, labels=["arm wrestling", "surfing", "dancing"], timeout=5
        )
        events = run_session(session)
    finally:
        stop(sender)
    windows = [e for e in events if e.kind == "window"]
    assert windows
    assert all(
        {p["label"] for p in w.predictions} == {"arm wrestling", "surfing", "dancing"}
        for w in windows
    )
    assert all(
        sum(p["score"] for p in w.predictions) == pytest.approx(1.0, abs=1e-4) for w in windows
    )


@pytest.mark.slow
def test_a_tenth_of_a_second_stride_labels_every_window_off_one_map(model, two_actions):
    """Windows read off one map of the stream: each frame passes the model once, so a
    0.1 s stride skips nothing, and each window scores as the file's timeline does."""
    port = free_port()
    sender = pusher(two_actions, f"tcp://127.0.0.1:{port}?listen=1")
    try:
        session = vidclass.watch(f"tcp://127.0.0.1:{port}", model, stride=0.1, reconnect=False)
        assert session.shared
        events = run_session(connect(session))
    finally:
        stop(sender)
    windows = [e for e in events if e.kind == "window"]
    summary = session.summary
    assert summary.skipped == 0, summary.describe()
    # Every whole window of the 12 s stream, in order: starts 0.0, 0.1, ... 9.4.
    assert [round(w.start, 6) for w in windows] == [round(k * 0.1, 6) for k in range(95)]
    timeline = {w.start: w for w in model.timeline(two_actions, stride=0.1).windows}
    for w in windows:
        expected = timeline[w.start].predictions
        assert w.predictions[0]["label"] == expected[0]["label"]
        assert w.predictions[0]["score"] == pytest.approx(expected[0]["score"], abs=2e-3)
    assert summary.step_seconds == 2.56


@pytest.mark.slow
def test_a_trained_head_labels_a_live_source_as_it_labels_the_file(model, short_clip, tmp_path):
    from .conftest import save_random_head

    clips = np.stack(model.read_clips(video("arm_wrestling.mp4"), clips=2))
    save_random_head(tmp_path / "mine", model, clips, ["near", "far", "other"], hidden=8)
    mine = vidclass.load_model(str(tmp_path / "mine"), precision="fp32", runtime="torch")
    growing = tmp_path / "live.ts"
    growing.write_bytes(b"")
    sender = pusher(short_clip, str(growing))
    try:
        events = run_session(vidclass.watch(str(growing), mine, stride=1.0, timeout=3))
    finally:
        stop(sender)
    windows = [e for e in events if e.kind == "window"]
    assert windows
    timeline = {w.start: w for w in mine.timeline(short_clip, stride=1.0).windows}
    for w in windows:
        assert {p["label"] for p in w.predictions} == {"near", "far", "other"}
        expected = timeline[w.start].predictions
        assert [p["label"] for p in w.predictions] == [p["label"] for p in expected]
        assert w.predictions[0]["score"] == pytest.approx(expected[0]["score"], abs=1e-3)


@pytest.mark.slow
def test_an_output_that_is_not_a_live_results_file_is_refused_untouched(tiny_videomae, tmp_path):
    theirs = tmp_path / "notes.jsonl"
    theirs.write_text('{"mine": 1}\n')
    for output, why in [
        (tmp_path / "live.sqlite", "live results go to a .jsonl or .csv file"),
        (theirs, "not a vidclass result line"),
    ]:
        done = run_cli("watch", "-", "--model", tiny_videomae, "-o", output, timeout=120)
        assert done.returncode == 1 and why in done.stderr, done.stderr
    assert theirs.read_text() == '{"mine": 1}\n'
    assert not (tmp_path / "live.sqlite").exists()


@pytest.mark.slow
def test_an_hls_playlist_over_http(tiny_model, tmp_path):
    """A live HLS playlist served over HTTP on 127.0.0.1, its segments appearing as the
    sender writes them; FFmpeg's HLS reader follows the playlist to its end."""
    import functools
    import http.server

    from vidclass.video import read_frames

    times = list(1.0 + np.arange(0, 4.0, 1 / 25))
    frames = read_frames(video("arm_wrestling.mp4"), times, size=(96, 128)).frames
    clip = write_video(tmp_path / "gop.mp4", frames, gop=25)  # a keyframe a second
    folder = tmp_path / "hls"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sender = pusher(clip, str(folder / "live.m3u8"), "--format", "hls")
    try:
        deadline = time.monotonic() + 30
        while not (folder / "live.m3u8").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        url = f"http://127.0.0.1:{server.server_address[1]}/live.m3u8"
        session = vidclass.watch(url, tiny_model, stride=0.5, reconnect=False, timeout=5)
        events = run_session(session)
    finally:
        stop(sender)
        server.shutdown()
    windows = [e for e in events if e.kind == "window"]
    assert windows and windows[-1].end == pytest.approx(4.0, abs=0.01)
    assert session.summary.ended == "end of stream"


def test_options_out_of_bounds_are_one_line_errors(tiny_model):
    for options, why in [
        ({"stride": 0.01}, "stride must be a number from 0.04 to 3600, got 0.01"),
        ({"window": 61.0}, "window must be a number more than 0 and at most 60"),
        ({"give_up": float("inf")}, "give_up must be a number more than 0, got inf"),
        ({"window": 0.0}, "window must be a number more than 0"),
        ({"top_k": 0}, "top_k must be a whole number from 1 to 1000"),
        ({"duration": 0}, "duration must be a number more than 0"),
    ]:
        with pytest.raises(VidclassError, match=why):
            vidclass.watch("-", tiny_model, **options)


@pytest.mark.slow
def test_a_stream_that_stays_away_is_given_up_on(tiny_model, short_clip):
    port = free_port()
    sender = pusher(short_clip, f"tcp://127.0.0.1:{port}?listen=1")
    events = []
    try:
        session = vidclass.watch(f"tcp://127.0.0.1:{port}", tiny_model, timeout=2, give_up=2)
        with pytest.raises(VidclassError, match="no frames for over 2 s; gave up"):
            for event in connect(session):
                events.append(event)
    finally:
        stop(sender)
    assert any(e.kind == "window" for e in events)  # what came before it went
    assert "gave up" in session.summary.ended and session.summary.reconnects == 0


def test_a_chunk_feed_is_bounded_and_ends_when_closed_or_silent():
    from vidclass.live import ChunkFeed

    feed = ChunkFeed(limit=100, idle=0.2)
    feed.write(b"a" * 60)
    with pytest.raises(VidclassError, match="ahead of the decoder"):
        feed.write(b"b" * 60)  # 120 bytes held: refused, nothing kept of it
    assert feed.read(50) == b"a" * 50 and feed.read(50) == b"a" * 10
    feed.write(b"c" * 100)  # read bytes no longer count
    began = time.monotonic()
    assert feed.read(1000) == b"c" * 100
    assert feed.read(10) == b""  # silent for `idle`: the end
    assert 0.15 < time.monotonic() - began < 5
    feed.write(b"d")
    feed.close()
    assert feed.read(10) == b"d" and feed.read(10) == b""  # what was held, then the end
    with pytest.raises(VidclassError, match="closed"):
        feed.write(b"e")


@pytest.mark.slow
def test_a_server_that_keeps_dropping_is_reopened_ever_less_often(tiny_model, short_clip, tmp_path):
    """Each connection gets 4 s of stream at once and is closed: the backoff grows
    (0, 0.5, 1, 2, 4 s...) instead of reopening as fast as the server answers, and
    every reopening is reported as a gap."""
    import socket

    ts = tmp_path / "clip.ts"
    subprocess.run(
        [sys.executable, "-m", "tests.streams", str(short_clip), str(ts), "--speed", "1000"],
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    data = ts.read_bytes()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    accepted = []
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(time.monotonic())
            with conn:
                conn.sendall(data)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        port = listener.getsockname()[1]
        session = vidclass.watch(f"tcp://127.0.0.1:{port}", tiny_model, timeout=3, duration=10)
        events = run_session(session, limit=60)
    finally:
        done.set()
        server.join(5)
        listener.close()
    assert 3 <= len(accepted) <= 8, len(accepted)  # not hundreds
    waits = np.diff(accepted)
    assert waits[-1] > waits[1]  # later reopenings wait longer
    assert session.summary.gaps == len([e for e in events if e.kind == "gap"]) >= 2
