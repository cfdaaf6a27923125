"""Shared fixtures: the real videos beside the project, and one loaded default model."""

from __future__ import annotations

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


def labelled_clips() -> list[tuple[str, str]]:
    return [(r["file"], r["label"]) for r in manifest() if r["label"] not in ("", "-")]


def write_video(path, frames, fps=25, crf="18") -> Path:
    """Encode RGB uint8 frames as an H.264 MP4 (the tests' own made-up videos)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": crf, "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)


@pytest.fixture(scope="session")
def videos() -> Path:
    if not VIDEOS.is_dir():
        pytest.skip(MISSING)
    return VIDEOS


@pytest.fixture(scope="session")
def model():
    """The default model in fp32, loaded once for the whole session."""
    import vidclass

    return vidclass.load_model(precision="fp32")
