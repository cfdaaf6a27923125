"""Live streams that lie: empty pieces in a byte feed, timestamps that jump back every
second, frames whose size changes every second. Each is made here with PyAV as MPEG-TS
segments (a segment per second, each with its own timestamps or size, as a relay that
re-stamps or an encoder that resizes sends them) and fed at its own pace."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from vidclass.live import ChunkFeed, LiveSession, parse_source
from vidclass.models.spec import InputSpec
from vidclass.video.transforms import clip_to_array

FPS = 25
SECONDS = 7
CROPPED = InputSpec(num_frames=8, short_side=32, crop_size=32)
WHOLE = InputSpec(num_frames=8, short_side=32)  # no crop: the frames' shape follows the video


class FakeModel:
    """What a LiveSession and the engine's Driver ask of a model, without one: every
    window scores (0.6, 0.4); the shapes of the batches it was given are kept."""

    labels = ("a", "b")
    identity = "fake"
    batch_size_hint = 1
    min_score = None
    temporal_map = None  # its windows are scored one by one

    def __init__(self, spec: InputSpec):
        self.spec = spec
        self.clips: list[tuple] = []

    def batch(self, clips) -> np.ndarray:
        x = np.stack([clip_to_array(clip, self.spec) for clip in clips])
        self.clips.append(tuple(x.shape))
        return x

    def logits(self, x) -> np.ndarray:
        return np.tile(np.array([0.6, 0.4], dtype=np.float32), (len(x), 1))

    def activate(self, logits) -> np.ndarray:
        return logits

    def top_k(self, scores, k):
        return [{"label": "a", "score": float(scores[0])}][:k]


def segment(first: int, start: float, size: tuple[int, int]) -> bytes:
    """One second of frames (`first` the number of its first) as MPEG-TS of its own,
    stamped from `start` seconds, `size` (width, height)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0"}
        for i in range(FPS):
            n = first + i
            rgb = np.zeros((size[1], size[0], 3), np.uint8)
            rgb[:, :, 0] = n * 7 % 256
            rgb[: n % size[1], :, 1] = 200  # something moves
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = round((start + i / FPS) * 90000), Fraction(1, 90000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def jumping() -> list[bytes]:
    """Timestamps that go back 2 s at every second: 10, 11, 8, 9, 6..."""
    return [segment(FPS * k, 10.0 - k, (160, 96)) for k in range(SECONDS)]


def resizing() -> list[bytes]:
    """Good timestamps, but the frames are 128x96 and 160x96 in turn, a second each."""
    return [segment(FPS * k, 10.0 + k, (160, 96) if k % 2 else (128, 96)) for k in range(SECONDS)]


def paced(segments: list[bytes], write, close) -> threading.Thread:
    """A thread writing each segment over its second, in eight pieces, then closing."""

    def send():
        try:
            for data in segments:
                for j in range(8):
                    write(data[j * len(data) // 8 : (j + 1) * len(data) // 8])
                    time.sleep(1 / 8)
        except (BrokenPipeError, OSError):
            pass
        finally:
            close()

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def live_run(spec: InputSpec, segments: list[bytes]):
    """(windows, session, model) of a session over `segments` sent at their pace."""
    model = FakeModel(spec)
    feed = ChunkFeed()
    sender = paced(segments, feed.write, feed.close)
    session = LiveSession(
        model,
        parse_source(feed),
        window=2.0,
        stride=1.0,
        timeout=5,
        warm_up=False,
    )
    timer = threading.Timer(60, session.stop)  # no test can hang
    timer.start()
    try:
        events = list(session)
    finally:
        timer.cancel()
        sender.join(10)
    return [e for e in events if e.kind == "window"], session, model


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_empty_piece_is_not_the_end_of_a_feed():
    feed = ChunkFeed(idle=2)
    feed.write(b"abc")
    feed.write(b"")  # FFmpeg takes an empty read for the end of the stream
    feed.write(b"def")
    assert feed.read(10) == b"abc" and feed.read(10) == b"def"
    feed.close()
    assert feed.read(10) == b""  # only close ends it


@pytest.mark.slow
def test_a_stream_whose_timestamps_jump_back_every_second_is_still_labelled(caplog):
    with caplog.at_level(logging.INFO, logger="vidclass"):
        windows, session, _ = live_run(CROPPED, jumping())
    said = warnings_of(caplog)
    assert any("timestamps jumped 3 times" in m and "by their arrival" in m for m in said), said
    # Once the clock is not trusted, the runs no longer end every second: windows fill.
    assert len(windows) >= 2, session.summary.describe()
    assert session.summary.frames == FPS * SECONDS
    assert session.summary.ended == "end of stream"
    # Timed by arrival, the stream lasts about as long as it took to send.
    assert 4.0 < session.summary.stream_seconds < SECONDS + 2
    assert all(b.start >= a.start for a, b in zip(windows, windows[1:], strict=False))


@pytest.mark.slow
def test_a_stream_whose_frame_size_changes_every_second_is_still_labelled(caplog):
    with caplog.at_level(logging.INFO, logger="vidclass"):
        windows, session, model = live_run(CROPPED, resizing())
    said = warnings_of(caplog)
    assert any("frame size changed 3 times" in m for m in said), said
    # Cropped as the model crops them, both sizes make frames of one shape: nothing
    # restarts, every window of the stream is made.
    assert len(windows) >= SECONDS - 2, session.summary.describe()
    assert all(shape == (1, 3, 8, 32, 32) for shape in model.clips)


@pytest.mark.slow
def test_size_changes_without_a_crop_end_in_frames_of_one_size(caplog):
    with caplog.at_level(logging.INFO, logger="vidclass"):
        windows, session, model = live_run(WHOLE, resizing())
    said = warnings_of(caplog)
    assert any("frame size changed 3 times" in m for m in said), said
    assert any("frames scaled to" in m for m in said), said
    assert len(windows) >= 2, session.summary.describe()
    assert len({shape for shape in model.clips}) == 1  # every window stacks


def test_windows_keep_frames_cropped_as_the_model_crops_them():
    """A 1024x16 stream scaled to a short side of 256 would be 16384x256 (12 MB a frame,
    a window's worth over a GB): kept, the frames are the model's crop."""
    from vidclass.live.capture import Capture
    from vidclass.live.windows import LiveWindows

    spec = InputSpec(num_frames=64, fps=25.0, short_side=256, crop_size=224)
    windows = LiveWindows(spec, 2.56, 1.0)
    capture = Capture(parse_source(ChunkFeed()), windows, reconnect=False)
    frame = av.VideoFrame.from_ndarray(np.zeros((16, 1024, 3), np.uint8), format="rgb24")
    kept = capture._convert(frame)
    assert kept.shape == (224, 224, 3) and kept.flags.c_contiguous
    assert capture._kept_shape(frame) == (224, 224)


@pytest.mark.slow
def test_watch_says_why_and_labels_a_stream_whose_timestamps_jump(tiny_videomae):
    """`vidclass watch tcp://...` over the jumping stream, sent once watch connects (its
    model loaded): windows, the warning, exit 0."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(120)
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidclass", "watch", f"tcp://127.0.0.1:{port}"]
        + ["--model", tiny_videomae, "--format", "json", "--window", "2", "--stride", "1"]
        + ["--timeout", "5", "--no-reconnect"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "VIDCLASS_OFFLINE": "1"},
    )
    try:
        with listener:
            conn, _ = listener.accept()
        sender = paced(jumping(), conn.sendall, conn.close)
        out, err = proc.communicate(timeout=120)
        sender.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    said = err.decode()
    assert proc.returncode == 0, said
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert "timestamps jumped 3 times" in said, said
    assert [line for line in lines if line["type"] == "window"], lines
