"""What the backbone knows carries over: a head trained on pieces of one video per label
(videos/dev) is tested on the other videos of those labels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vidclass
from vidclass.video import probe

from .conftest import cut_piece, dev_clips, run_cli, video

# Kinetics actions with more than one distinct video in videos/dev; folder names as a
# user would write them (matched to the backbone's labels ignoring _ and case)
LABELS = ["archery", "bench_pressing", "push_up", "shooting_basketball", "squat"]
PIECE_S = 2.0


def cut(source: Path, folder: Path, stride: float) -> list[Path]:
    """2 s pieces of `source` every `stride` seconds and one ending at its end (a
    shorter video: one piece)."""
    folder.mkdir(parents=True, exist_ok=True)
    duration = probe(source).duration
    last = max(0.0, round(duration - PIECE_S, 1))
    starts = [t for t in np.arange(0.0, last, stride).round(1).tolist() if t < last] + [last]
    return [
        cut_piece(source, t, min(PIECE_S, duration), folder / f"{source.stem}_{t:04.1f}.mp4")
        for t in starts
    ]


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    """(training folder: a subfolder per label of pieces of its first video, test CSV of
    the pieces of the label's other videos)."""
    clips = dev_clips()
    if not clips:
        pytest.skip("videos/dev is missing")
    root = tmp_path_factory.mktemp("prior")
    rows = []
    for file, label in sorted(clips.items()):
        folder_name = label.replace(" ", "_")
        if folder_name not in LABELS:
            continue
        if file == f"{folder_name}_1.mp4":
            cut(video(f"dev/{file}"), root / "train" / folder_name, stride=1.0)
        else:
            rows += [(p, folder_name) for p in cut(video(f"dev/{file}"), root / "test", PIECE_S)]
    listing = root / "test.csv"
    with open(listing, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    return root / "train", listing


def _accuracy(model: str, listing: Path) -> float:
    done = run_cli("evaluate", model, listing, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["accuracy"]


@pytest.mark.slow
def test_a_head_from_one_video_per_label_carries_over_to_other_videos(pieces, model, tmp_path):
    train, listing = pieces
    with_prior, without = tmp_path / "prior", tmp_path / "scratch"
    done = run_cli("train", train, "--out", with_prior, "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    config = json.loads((with_prior / "vidclass.json").read_text())
    assert config["head"]["prior"] is True
    assert config["training"]["prior_labels"] == LABELS
    done = run_cli("train", train, "--out", without, "--prior", "off", "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    assert json.loads((without / "vidclass.json").read_text())["head"]["prior"] is False

    # the pretrained head restricted to the five labels: what the backbone knows
    with open(listing, newline="") as f:
        truth = {row["path"]: row["label"] for row in csv.DictReader(f)}
    done = run_cli("classify", *truth, "--labels", ", ".join(LABELS), "--format", "json")
    assert done.returncode == 0, done.stderr
    top = {r["video"]: r["predictions"][0]["label"] for r in json.loads(done.stdout)}
    restricted = sum(top[p].replace(" ", "_") == truth[p] for p in truth) / len(truth)

    prior, scratch = _accuracy(str(with_prior), listing), _accuracy(str(without), listing)
    print(f"restricted pretrained {restricted:.2f}, prior {prior:.2f}, scratch {scratch:.2f}")
    assert prior >= restricted - 0.1, (prior, restricted)
    assert prior >= scratch, (prior, scratch)

    # Without its learned correction the new head is the backbone's own, restricted.
    # In torch, whose head weights this test edits.
    trained = vidclass.load_model(str(with_prior), precision="fp32", runtime="torch")
    torch.nn.init.zeros_(trained.module.head.net[-1].weight)
    torch.nn.init.zeros_(trained.module.head.net[-1].bias)
    clip = next(iter(truth))
    own = model.with_labels(LABELS).scores(clip)
    np.testing.assert_allclose(trained.scores(clip), own, rtol=1e-4, atol=1e-5)
