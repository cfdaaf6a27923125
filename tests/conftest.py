"""Shared fixtures: the real videos beside the project, and one loaded default model."""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = Path(os.environ.get("VIDCLASS_TEST_VIDEOS", ROOT.parent / "shared" / "videos"))
REFERENCE = VIDEOS.parent / "reference"
MISSING = f"shared test videos not found at {VIDEOS} (set VIDCLASS_TEST_VIDEOS)"


def video(rel: str) -> Path:
    path = VIDEOS / rel
    if not path.exists():
        pytest.skip(f"{MISSING}: {rel} is missing")
    return path


def manifest() -> list[dict]:
    """Rows of MANIFEST.tsv whose file is present."""
    path = VIDEOS / "MANIFEST.tsv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r for r in rows if (VIDEOS / r["file"]).exists()]


def dev_clips() -> dict[str, str]:
    """{file: label} of videos/dev/, distinct source videos per label (its own manifest)."""
    path = VIDEOS / "dev" / "MANIFEST.tsv"
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {r["file"]: r["label"] for r in csv.DictReader(f, delimiter="\t")}


def labelled_clips() -> list[tuple[str, str]]:
    return [(r["file"], r["label"]) for r in manifest() if r["label"] not in ("", "-")]


@contextlib.contextmanager
def own_cache(tmp_path_factory, graphs: Path | None = None):
    """A vidclass cache of the caller's own, the default weights linked in (so that
    conversions and records made there are seen happen), set as $VIDCLASS_CACHE.
    `graphs`: a cache's graphs folder copied in, for tests of what comes after the
    conversion to ONNX (exports), which then need not convert again."""
    import shutil

    import vidclass
    from vidclass.models.weights import weights_path

    root = tmp_path_factory.mktemp("cache")
    if graphs is not None:
        shutil.copytree(graphs, root / "graphs")
    source = weights_path(vidclass.models.get_entry(vidclass.DEFAULT_MODEL))
    (root / "weights").mkdir()
    (root / "weights" / source.name).symlink_to(source)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDCLASS_CACHE", str(root))
        yield root


def run_cli(*args, timeout=600, env=None):
    """`python -m vidclass ARGS` as a user runs it; `timeout` guards against a hang."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "vidclass", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "VIDCLASS_OFFLINE": "1", **(env or {})},
    )


def run_on_a_terminal(*args) -> tuple[int, str, str]:
    """`vidclass ARGS` with stderr on a pseudo-terminal (as a person runs it) and stdout
    piped: (exit code, stdout, what the terminal showed)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    # A terminal of 30 rows and 120 columns (a new pseudo-terminal has no size).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidclass", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed: the process has ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    out = proc.stdout.read()
    return proc.wait(timeout=600), out, shown.decode(errors="replace")


def link_videos(folder: Path, names) -> Path:
    """A folder of links to shared videos (the videos themselves stay in ../shared)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / Path(name).name).symlink_to(video(name))
    return folder


def cut_piece(source: Path, start: float, seconds: float, out: Path, short: int = 160) -> Path:
    """A `seconds`-long clip of `source` from `start` as a file of its own (25 fps, short
    side `short`): pieces of one video for training and testing."""
    import numpy as np

    from vidclass.video import read_frames

    h, w = read_frames(source, [start], size=None).frames[0].shape[:2]  # upright
    size = (
        (short, round(w * short / h) // 2 * 2) if h <= w else (round(h * short / w) // 2 * 2, short)
    )
    times = list(start + np.arange(0, seconds, 1 / 25))
    return write_video(out, read_frames(source, times, size=size).frames)


def write_video(path, frames, fps=25, crf="18", gop: int | None = None) -> Path:
    """Encode RGB uint8 frames as an H.264 MP4 (the tests' own made-up videos), or as
    VP8 in WebM where `path` ends so (what a browser without H.264 plays); `gop`: frames
    between keyframes (the encoder decides otherwise), as live senders keep it short."""
    import av

    webm = str(path).endswith(".webm")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx" if webm else "libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        quality = {"crf": "10", "b": "1M"} if webm else {"crf": crf, "preset": "veryfast"}
        stream.options = {**quality, **({"g": str(gop)} if gop else {})}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)


def save_random_head(folder: Path, backbone, clips, labels: list[str], hidden: int):
    """A trained model folder on the default backbone with a seeded random head,
    standardised on `clips`' features (so its scores move with the input); the head."""
    import torch

    import vidclass
    from vidclass.models import folder_config, trained
    from vidclass.models.head import Head

    torch.manual_seed(0)
    features = torch.as_tensor(backbone.embed(clips))
    head = Head(1024, len(labels), hidden=hidden).standardise_on(features).eval()
    config = {
        "backbone": vidclass.DEFAULT_MODEL,
        "labels": labels,
        "multi_label": False,
        "threshold": None,
        "input": folder_config.spec_to_dict(backbone.spec),
        "head": {"in_dim": 1024, "hidden": hidden, "dropout": 0.0, "prior": False},
        "training": {"videos": 0},
    }
    trained.save(folder, config, head)
    return head


@pytest.fixture(scope="session")
def videos() -> Path:
    if not VIDEOS.is_dir():
        pytest.skip(MISSING)
    return VIDEOS


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A vidclass cache of the module's own (own_cache): what it converts and exports is
    seen to happen there."""
    with own_cache(tmp_path_factory) as root:
        yield root


@pytest.fixture(scope="module")
def reference(cache):
    """The default model through torch alone, fp32: what the other backends match."""
    from vidclass.loading import load_torch

    return load_torch(precision="fp32", runtime="torch")


@pytest.fixture(scope="session")
def model():
    """The default model in fp32, loaded once for the whole session."""
    import vidclass

    return vidclass.load_model(precision="fp32")


@pytest.fixture(scope="session")
def long_timeline():
    """A real timeline of the 139 s shared video (people walking by), every 2 s, by the
    default model as a user runs it (bf16 where the CPU has it: several times faster
    than the session's fp32 model): made once for the tests that draw or search long
    timelines."""
    import vidclass

    return vidclass.load_model().timeline(video("long/people_139s.mp4"), stride=2.0)


@pytest.fixture(scope="session")
def tiny_videomae(tmp_path_factory) -> str:
    """A small transformers checkpoint (random weights): runs in seconds."""
    pytest.importorskip("transformers", reason="needs the hf extra")
    from .helpers import make_hf_checkpoint

    folder = tmp_path_factory.mktemp("tiny") / "videomae"
    make_hf_checkpoint(folder, "videomae")
    return str(folder)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, *args: str, env: dict | None = None):
    """`vidclass serve ARGS` in a subprocess on a free 127.0.0.1 port, with its own
    TMPDIR (and `env` added); returns (process, url, tmp) once /healthz says ok (or
    fails in 180 s)."""
    import json
    import subprocess
    import sys
    import time
    import urllib.request

    tmp = root / "tmp"
    tmp.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidclass", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, TMPDIR=str(tmp), VIDCLASS_OFFLINE="1", **(env or {})),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if json.load(r)["status"] == "ok":
                    return proc, url, tmp
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("server did not come up in 180 s")
        time.sleep(0.5)


def stop_server(proc) -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


# Shared clips the server's gallery holds with their real features.
GALLERY_CLIPS = [
    "arm_wrestling.mp4",
    "arm_wrestling_vp9.webm",
    "cleaning_pool_1s.mp4",
    "soccer_juggling.avi",
]


@pytest.fixture(scope="session")
def server(tmp_path_factory, model):
    """`vidclass serve` with a small gallery, the shared videos as its media folder, a
    2 MB upload limit and a queue of 2. The gallery holds two tagged made-up videos and
    GALLERY_CLIPS with the features `vidclass index` stores."""
    pytest.importorskip("fastapi", reason="serve needs the serve extra")
    if not VIDEOS.is_dir():
        pytest.skip(MISSING)
    import numpy as np

    from vidclass.gallery import Gallery, VideoRecord

    root = tmp_path_factory.mktemp("serve")
    db = root / "gallery.sqlite"
    with Gallery(db) as g:
        for name, label in [("a.mp4", "playing guitar"), ("b.mp4", "playing bass guitar")]:
            g.store.put(
                VideoRecord(
                    f"/v/{name}",
                    name,
                    1,
                    0.0,
                    "i3d.kinetics400",
                    5.0,
                    tags=[{"label": label, "score": 0.9}],
                )
            )
        # A long video found by a stretch of its timeline (its tags are about the rest).
        g.store.put(
            VideoRecord(
                "/v/taichi.mp4",
                "taichi",
                1,
                0.0,
                "i3d.kinetics400",
                140.0,
                tags=[{"label": "side kick", "score": 0.3}, {"label": "tai chi", "score": 0.26}],
                segments=[
                    {"start": 0.0, "end": 12.0, "label": "side kick", "score": 0.4},
                    {"start": 12.0, "end": 62.0, "label": "tai chi", "score": 0.81},
                ],
                tags_from="mean of its timeline's 138 windows",
            )
        )
        for name in GALLERY_CLIPS:
            path = os.path.realpath(video(name))
            _, features = model.scores_and_features(np.stack(model.read_clips(path)))
            g.store.put(VideoRecord(path, name, 1, 0.0, model.name, feature=features.mean(axis=0)))
    args = ["--media", str(VIDEOS), "--gallery", str(db), "--max-upload-mb", "2"]
    proc, url, tmp = start_server(root, *args, "--queue", "2", "--precision", "fp32")
    yield {"url": url, "tmp": tmp, "pid": proc.pid}
    stop_server(proc)


def kill_midway(args, stored, at_least: int = 2) -> None:
    """Run `vidclass ARGS` and SIGKILL it once `stored()` counts `at_least` items (fails
    if it never gets there, or finishes first)."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "vidclass", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, VIDCLASS_OFFLINE="1"),
    )
    try:
        deadline = time.monotonic() + 240
        while stored() < at_least and proc.poll() is None:
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
