"""Helpers more than one test module uses (plain functions; the fixtures are in conftest).

A test module imports its helpers from here, from conftest or from a helper module
(hostile, streams, tiny_vl), never from another test module: see test_layout_of_tests.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from .conftest import ROOT


# -- waiting -----------------------------------------------------------------------------------
def wait_for(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll `check()` every 0.05 s until it is true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened in {timeout:g} s: {what}")
        time.sleep(0.05)


# -- HTTP --------------------------------------------------------------------------------------
def multipart(file) -> tuple[bytes, str]:
    """A form upload of `file` as a browser sends it: (body, its Content-Type)."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{Path(file).name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + Path(file).read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def call(url, *, file=None, json_body=None, timeout=300, headers=None):
    """(status, headers, decoded JSON) for a GET, a multipart upload or a JSON POST."""
    data, headers = None, dict(headers or {})
    if file is not None:
        data, headers["Content-Type"] = multipart(file)
    elif json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.load(r)
    except urllib.error.HTTPError as err:
        headers = {k.lower(): v for k, v in err.headers.items()}
        return err.code, headers, json.loads(err.read() or b"null")


# -- a browser ---------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("VIDCLASS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# As root with no network: no sandbox, and no background calls to Google's hosts.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(*extra_flags: str):
    """Debian's chromium, headless, with FLAGS and `extra_flags` (a generator for a
    fixture: it yields the browser and closes it); skipped where it is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the test extra")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: ./install.sh installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*FLAGS, *extra_flags], headless=True
        )
        yield browser
        browser.close()


# -- galleries ---------------------------------------------------------------------------------
def made_up_gallery(path: Path, n: int = 200) -> Path:
    """A gallery of `n` made-up videos (tags and 16-number features, no files)."""
    import numpy as np

    from vidclass.gallery import Gallery, VideoRecord

    with Gallery(path) as g:
        for i in range(n):
            g.store.put(
                VideoRecord(
                    f"/v/{i}.mp4",
                    f"h{i}",
                    1,
                    0.0,
                    "i3d.kinetics400",
                    5.0,
                    tags=[{"label": f"label {i % 7}", "score": 0.9}],
                    feature=np.full(16, i, dtype=np.float32),
                )
            )
    return path


# -- tiny transformers checkpoints (random weights) ---------------------------------------------
HF_LABELS = ["archery", "bowling", "cooking", "dancing", "eating"]
HF_LABEL_MAPS = {
    "id2label": dict(enumerate(HF_LABELS)),
    "label2id": {n: i for i, n in enumerate(HF_LABELS)},
}
HF_SIZE = 32  # short side and crop of the tiny checkpoints
HF_FRAMES = 8


def _transformers():
    """transformers, or the calling test skipped where it (or Pillow) is missing."""
    transformers = pytest.importorskip(
        "transformers", reason="transformers not installed (pip install -e '.[hf,test]')"
    )
    pytest.importorskip("PIL", reason="transformers' image processors need Pillow")
    return transformers


def hf_config(kind: str):
    """The config of a tiny `kind` ("videomae", "timesformer", "vivit") checkpoint."""
    transformers = _transformers()
    common = dict(
        num_frames=HF_FRAMES,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        # Larger than the default 0.02 so logits are O(1) and move with the input.
        initializer_range=0.3,
        **HF_LABEL_MAPS,
    )
    if kind == "videomae":
        return transformers.VideoMAEConfig(
            image_size=HF_SIZE, patch_size=8, tubelet_size=2, **common
        )
    if kind == "timesformer":
        return transformers.TimesformerConfig(image_size=HF_SIZE, patch_size=8, **common)
    if kind == "vivit":
        return transformers.VivitConfig(image_size=HF_SIZE, tubelet_size=[2, 8, 8], **common)
    raise ValueError(kind)


def hf_processor(kind: str):
    transformers = _transformers()
    if kind == "vivit":  # its own defaults: rescale to [-1, 1], mean/std 0.5
        return transformers.VivitImageProcessor(
            size={"shortest_edge": HF_SIZE}, crop_size={"height": HF_SIZE, "width": HF_SIZE}
        )
    # TimeSformer checkpoints on the hub ship VideoMAE's image processor too.
    return transformers.VideoMAEImageProcessor(
        size={"shortest_edge": HF_SIZE},
        crop_size={"height": HF_SIZE, "width": HF_SIZE},
        image_mean=[0.45, 0.45, 0.45],
        image_std=[0.225, 0.225, 0.225],
    )


def make_hf_checkpoint(folder, kind: str):
    """A tiny random-weight checkpoint saved as a user would get it from the hub."""
    import torch

    transformers = _transformers()
    torch.manual_seed(0)
    model = transformers.AutoModelForVideoClassification.from_config(hf_config(kind)).eval()
    model.save_pretrained(folder)
    hf_processor(kind).save_pretrained(folder)
    return model


def browser_recording(
    path: Path, seconds: float = 6.0, width: int | None = None, height: int | None = None
) -> bytes:
    """The first `seconds` of arm_wrestling.mp4 as a browser records it (VP8 in WebM),
    written to `path`: at `width` x `height`, or 320 wide keeping the shape."""
    import av

    from .conftest import video

    with av.open(str(video("arm_wrestling.mp4"))) as source, av.open(str(path), "w") as sink:
        stream = sink.add_stream("libvpx", rate=25)
        stream.options = {"deadline": "realtime", "cpu-used": "8", "b": "800k"}
        stream.pix_fmt = "yuv420p"
        if width is not None:
            stream.width, stream.height = width, height
        for frame in source.decode(video=0):
            if frame.time >= seconds:
                break
            if not stream.width:
                stream.width, stream.height = 320, round(frame.height * 320 / frame.width) // 2 * 2
            copy = frame.reformat(stream.width, stream.height, "yuv420p")
            copy.pts, copy.time_base = round(frame.time * 1000), Fraction(1, 1000)
            for packet in stream.encode(copy):
                sink.mux(packet)
        for packet in stream.encode():
            sink.mux(packet)
    return path.read_bytes()
