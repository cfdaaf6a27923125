"""Calibrated scores: the temperature fit, the calibration error, and `vidclass
calibrate`, which fits a pretrained model to a user's videos."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import vidclass
from vidclass.calibration import (
    at_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability,
)
from vidclass.errors import VidclassError
from vidclass.results import activate
from vidclass.training import calibrate, evaluate

from .conftest import run_cli, video


def sampled(temperature: float, n: int, seed: int = 0):
    """Logits and labels drawn from softmax(logits / temperature): a model whose scores
    are calibrated at that temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(n, 5))
    probs = activate(logits / temperature, "softmax").astype(np.float64)
    labels = np.array([rng.choice(5, p=p / p.sum()) for p in probs])
    return logits, labels


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_at():
    for true in (0.6, 1.0, 2.5):
        logits, labels = sampled(true, 4000)
        assert fit_temperature(logits, labels) == pytest.approx(true, rel=0.1)


def test_a_few_clips_all_right_keep_the_temperature_near_one():
    """Without the prior, the best temperature for rows all right by a wide margin is the
    lowest (every score 1.0): what no new video bears out."""
    logits = np.array([[4.0, 0.0, -1.0], [0.0, 5.0, 1.0], [1.0, 0.0, 6.0]])
    assert 0.5 <= fit_temperature(logits, np.array([0, 1, 2])) <= 1.0
    with pytest.raises(VidclassError, match="held-out rows"):
        fit_temperature(logits, np.array([0, 1]))


def test_calibration_error_is_low_at_the_right_temperature_and_the_bins_add_up():
    logits, labels = sampled(2.0, 4000, seed=1)
    right = activate(logits / 2.0, "softmax")
    overconfident = activate(logits, "softmax")
    assert expected_calibration_error(right, labels) < 0.03
    assert expected_calibration_error(overconfident, labels) > 0.1
    bins = reliability(overconfident, labels)
    assert sum(b["count"] for b in bins) == 4000
    assert all(b["low"] <= b["confidence"] <= b["high"] for b in bins)


def test_scores_go_back_to_temperature_one_exactly():
    logits, _ = sampled(1.0, 50)
    at_two = activate(logits / 2.0, "softmax")
    assert np.allclose(at_temperature(at_two, 2.0), activate(logits, "softmax"), atol=1e-5)


def folds(tmp_path) -> tuple:
    """Labelled shared clips of Kinetics actions, every other one in each of two CSVs."""
    with open(video("dev/MANIFEST.tsv"), newline="") as f:
        items = [(video(f"dev/{r['file']}"), r["label"]) for r in csv.DictReader(f, delimiter="\t")]
    others = (
        "cricket_shot.gif",
        "arm_wrestling.mp4",
        "eating_spaghetti.mp4",
        "flipping_pancake.mkv",
        "cleaning_pool_1s.mp4",
        "soccer_juggling.avi",
    )
    with open(video("MANIFEST.tsv"), newline="") as f:
        rows = csv.DictReader(f, delimiter="\t")
        items += [(video(r["file"]), r["label"]) for r in rows if r["file"] in others]
    paths = []
    for part in (0, 1):
        path = tmp_path / f"fold_{part}.csv"
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["video", "label"])
            out.writerows(item for i, item in enumerate(items) if i % 2 == part)
        paths.append(path)
    return tuple(paths)


@pytest.mark.slow
def test_a_temperature_fit_on_some_videos_lowers_the_calibration_error_on_others(tmp_path):
    """The default model is overconfident on these clips: calibrate fits its temperature
    on half of them, and evaluate finds the other half's calibration error lower."""
    fit_on, held = folds(tmp_path)
    result = calibrate("i3d.kinetics400", fit_on, tmp_path / "calibrated", clips=4)
    c = result.config["calibration"]
    assert c["temperature"] > 1.0 and c["videos"] == 10
    assert c["nll_after"] < c["nll_before"]
    model = vidclass.load_model(tmp_path / "calibrated")
    assert model.labels == vidclass.load_model().labels and model.temperature > 1.0
    report = evaluate(tmp_path / "calibrated", held, clips=4)
    e = report["calibration"]
    assert e["temperature"] == pytest.approx(c["temperature"])
    assert e["ece"] < e["ece_at_temperature_1"], e
    assert report["used_in_training"] == 0  # the folds share no video

    plots = tmp_path / "plots"
    done = run_cli("evaluate", tmp_path / "calibrated", held, "--clips", "4", "--plots", plots)
    assert done.returncode == 0, done.stderr
    assert (
        "calibration error (ECE, 15 bins)" in done.stdout
        and "without its temperature" in done.stdout
    )
    assert (plots / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_calibrate_on_unlabelled_videos_sets_only_the_unknown_threshold(tmp_path):
    folder = tmp_path / "gym"
    folder.mkdir()
    for name in ("squat_1", "squat_2", "bench_pressing_1", "bench_pressing_2", "push_up_1"):
        (folder / f"{name}.mp4").symlink_to(video(f"dev/{name}.mp4"))
    out = tmp_path / "model"
    done = run_cli("calibrate", "i3d.kinetics400", folder, "--out", out, "--clips", "2")
    assert done.returncode == 0, done.stderr
    assert "no temperature" in done.stdout and f"--model {out}" in done.stdout
    config = json.loads((out / "vidclass.json").read_text())
    assert config["temperature"] is None and config["unknown"]["videos"] == 5
    answer = vidclass.load_model(out).answer(video("arm_wrestling.mp4"))
    assert answer.unknown is True  # far from every gym video given
    again = run_cli("calibrate", "i3d.kinetics400", folder, "--out", out)
    assert again.returncode == 1 and "give --force" in again.stderr


def test_a_folder_of_videos_with_a_subfolder_is_not_labelled(tmp_path):
    """A folder holding videos of its own is videos to calibrate on, whatever subfolders
    it has; only a folder of label subfolders alone is labelled."""
    from vidclass.training.dataset import is_labelled

    (tmp_path / "mixed" / "extra").mkdir(parents=True)
    (tmp_path / "mixed" / "a.mp4").write_bytes(b"")
    (tmp_path / "labelled" / "squat").mkdir(parents=True)
    (tmp_path / "labelled" / "squat" / "a.mp4").write_bytes(b"")
    (tmp_path / "list.csv").write_text("video,label\n")
    assert not is_labelled(tmp_path / "mixed")
    assert is_labelled(tmp_path / "labelled") and is_labelled(tmp_path / "list.csv")


def test_calibrate_refuses_what_it_cannot_fit(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(VidclassError, match="no vidclass model"):
        calibrate("i3d.kinetics400", tmp_path, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    with pytest.raises(VidclassError, match="false_unknown"):
        calibrate("i3d.kinetics400", tmp_path, tmp_path / "out", false_unknown=0.9)
