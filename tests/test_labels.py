"""--labels with a closed-set model: only the labels named, matched loosely, scores
renormalised over them; in Python, the CLI, results files and serve."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidclass import VidclassError
from vidclass.label_choice import match_labels, parse_labels, read_labels_file

from .conftest import run_cli, video
from .helpers import call

FIVE = ["arm wrestling", "eating spaghetti", "flipping pancake", "juggling soccer ball", "tai chi"]


def test_names_match_ignoring_case_underscores_and_dashes():
    labels = ("arm wrestling", "eating spaghetti", "tai chi")
    assert match_labels(labels, ["Arm_Wrestling", "TAI-CHI", "eating  spaghetti"]) == (0, 2, 1)
    with pytest.raises(VidclassError, match=r"no label 'arm wresling' \(closest: arm wrestling"):
        match_labels(labels, ["arm wresling"])
    with pytest.raises(VidclassError, match="none is close"):
        match_labels(labels, ["quantum physics"])


def test_label_lists_are_checked_and_bounded(tmp_path):
    assert parse_labels(" surfing, Surfing ,, tai chi ") == ["surfing", "tai chi"]
    with pytest.raises(VidclassError, match="no labels given"):
        parse_labels(" , ")
    with pytest.raises(VidclassError, match="at most 1000"):
        parse_labels(",".join(f"label {i}" for i in range(1001)))
    listing = tmp_path / "labels.txt"
    listing.write_text("# my labels\nsurfing\n\n  tai_chi \n")
    assert read_labels_file(listing) == ["surfing", "tai_chi"]
    listing.write_bytes(b"\xff\xfe surfing")
    with pytest.raises(VidclassError, match="UTF-8"):
        read_labels_file(listing)
    with pytest.raises(VidclassError, match="not a file"):
        read_labels_file(tmp_path)


@pytest.mark.slow
def test_chosen_scores_are_the_full_scores_renormalised(model):
    clip = video("eating_spaghetti.mp4")
    full = model.scores(clip)
    chosen = model.with_labels(FIVE)
    assert chosen.labels == tuple(FIVE)
    assert model.labels == model.entry.labels  # the model itself is unchanged
    subset = full[list(match_labels(model.labels, FIVE))]
    np.testing.assert_allclose(chosen.scores(clip), subset / subset.sum(), rtol=1e-4, atol=1e-6)
    top = model.classify(clip, top_k=5, labels=["Eating_Spaghetti", "tai chi"])
    assert [p["label"] for p in top] == ["eating spaghetti", "tai chi"]
    assert sum(p["score"] for p in top) == pytest.approx(1.0, abs=1e-5)
    tl = model.timeline(video("arm_wrestling.mp4"), stride=4, labels=FIVE[:2])
    assert {p["label"] for w in tl.windows for p in w.predictions} <= set(FIVE[:2])


@pytest.mark.slow
def test_cli_labels_file_errors_and_results_files(tmp_path):
    clip = video("arm_wrestling.mp4")
    listing = tmp_path / "labels.txt"
    listing.write_text("\n".join(FIVE) + "\n")
    done = run_cli("classify", clip, "--labels-file", listing, "--format", "json", "-k", "9")
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert [p["label"] for p in result["predictions"]][0] == "arm wrestling"
    assert {p["label"] for p in result["predictions"]} == set(FIVE)
    bad = run_cli("classify", clip, "--labels", "arm wresling, tai chi")
    assert bad.returncode != 0
    (line,) = bad.stderr.strip().splitlines()  # one line, no traceback
    assert "the model has no label 'arm wresling' (closest: arm wrestling, " in line
    assert line.endswith("`vidclass models labels MODEL` lists them all")
    # a results file remembers the labels: other labels are not mixed into it
    out = tmp_path / "out.jsonl"
    first = run_cli("classify", clip, "--labels", "tai chi, arm wrestling", "--output", out)
    assert first.returncode == 0, first.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["model"] == "i3d.kinetics400 [labels: tai chi, arm wrestling]"
    assert record["predictions"][0]["label"] == "arm wrestling"
    other = run_cli("classify", clip, "--labels", "tai chi", "--output", out)
    assert other.returncode != 0
    assert "resume it with --model i3d.kinetics400 --labels 'tai chi, arm wrestling'" in (
        other.stderr
    )
    labels = run_cli("models", "labels")
    assert labels.returncode == 0 and len(labels.stdout.splitlines()) == 400
    assert "arm wrestling" in labels.stdout.splitlines()


@pytest.mark.slow
def test_serve_takes_a_labels_field(server):
    url = server["url"] + "/v1/classify?top_k=5&labels=" + "Tai-Chi,%20Arm_Wrestling"
    status, _, body = call(url, file=video("arm_wrestling.mp4"))
    assert status == 200, body
    assert [p["label"] for p in body["predictions"]] == ["arm wrestling", "tai chi"]
    status, _, body = call(
        server["url"] + "/v1/classify?labels=arm%20wresling", file=video("arm_wrestling.mp4")
    )
    assert status == 422 and "closest: arm wrestling" in body["detail"]
    status, _, body = call(server["url"] + "/v1/classify?labels=%20,%20", json_body={"path": "x"})
    assert status == 422 and body["detail"] == "no labels given"
