"""Training your own classifier and evaluating it, on pieces cut from the shared clips."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from functools import partial

import numpy as np
import pytest

import vidclass
from vidclass import VidclassError
from vidclass.training import load_dataset, split_dataset

from .conftest import cut_piece, run_cli, video

pytest.importorskip("sklearn", reason="training needs the train extra (scikit-learn)")

# label -> source clip; Kinetics names, so the default model can be evaluated on them too
SOURCES = {
    "arm wrestling": "arm_wrestling.mp4",
    "eating spaghetti": "eating_spaghetti.mp4",
    "flipping pancake": "flipping_pancake.mkv",
    "juggling soccer ball": "soccer_juggling.avi",
}
PIECE = 1.6  # seconds
STARTS = [0.0, 1.6, 3.2, 4.8, 6.4]  # pieces 0-2 to train on, 3-4 held back


@pytest.fixture(scope="module", autouse=True)
def fresh_feature_cache(tmp_path_factory):
    """Features cached by earlier runs must not hide what this run extracts."""
    old = os.environ.get("VIDCLASS_FEATURE_CACHE")
    os.environ["VIDCLASS_FEATURE_CACHE"] = str(tmp_path_factory.mktemp("features"))
    yield
    if old is None:
        del os.environ["VIDCLASS_FEATURE_CACHE"]
    else:
        os.environ["VIDCLASS_FEATURE_CACHE"] = old


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    """DATA folder (3 pieces per label), a held-back CSV (2 per label), and the paths."""
    root = tmp_path_factory.mktemp("train")
    data, held = root / "data", root / "held"
    held.mkdir()
    rows = []
    for label, name in SOURCES.items():
        (data / label).mkdir(parents=True)
        for i, start in enumerate(STARTS):
            folder = data / label if i < 3 else held
            out = cut_piece(video(name), start, PIECE, folder / f"{name.split('.')[0]}_{i}.mp4")
            if i >= 3:
                rows.append((out.name, label))
    with open(held / "held.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    return data, held / "held.csv"


cli = partial(run_cli, timeout=900)


@pytest.fixture(scope="module")
def trained(pieces, tmp_path_factory):
    """A model trained by the command line, as a user would."""
    data, _ = pieces
    out = tmp_path_factory.mktemp("model") / "mymodel"
    proc = cli("train", data, "--out", out, "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.mark.slow
def test_training_writes_a_self_describing_folder(trained, pieces):
    out, proc = trained
    files = sorted(out.iterdir())
    assert [p.name for p in files] == [
        "head.safetensors",
        "training_videos.sha256",
        "unknown.safetensors",
        "vidclass.json",
    ]
    # Every file with the mode of any new file of the user's, none private (0600).
    umask = os.umask(0)
    os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o7777 for p in files} == dict.fromkeys(
        [p.name for p in files], 0o666 & ~umask
    )
    # The videos it was trained and validated on, by content: all 12 pieces.
    data, _ = pieces
    digests = (out / "training_videos.sha256").read_text().split("\n")[1:-1]
    assert digests == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in data.glob("*/*.mp4")
    )
    config = json.loads((out / "vidclass.json").read_text())
    assert config["labels"] == sorted(SOURCES)
    assert config["backbone"] == vidclass.DEFAULT_MODEL and not config["multi_label"]
    assert config["input"]["num_frames"] == 64 and config["input"]["fps"] == 25
    t = config["training"]
    assert (t["train_videos"], t["val_videos"]) == (8, 4)  # one of three per label held back
    assert t["validation"] == "0.2 split, seed 0"
    assert 0 <= config["metrics"]["validation"]["accuracy"] <= 1
    assert "validated on 4" in proc.stdout and f"--model {out}" in proc.stdout
    # The kept epoch, said in words (epoch 0 being the head before any training).
    best, run = t["best_epoch"], t["epochs_run"]
    accuracy = config["metrics"]["validation"]["accuracy"]
    (kept,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("best epoch")]
    assert kept.startswith(f"best epoch {best} of {run} (validation accuracy {accuracy:.3f}), kept")
    if best == 0:  # with a prior (Kinetics labels), training may not improve on it
        assert kept.endswith(
            ", kept: the head as it started (the backbone's own head for 4 of the labels); "
            "no epoch of training lowered its validation loss"
        )
    else:
        assert kept.endswith("), kept")
    listed = cli("models", "list", out)
    assert listed.returncode == 0, listed.stderr
    assert f"{out}  4 labels" in listed.stdout and "trained on 12 videos" in listed.stdout


@pytest.mark.slow
def test_trained_model_beats_chance_on_held_back_videos(trained, pieces):
    out, _ = trained
    _, held = pieces
    proc = cli("evaluate", out, held, "--format", "json", "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["evaluated"] == 8 and not report["failed"]
    assert report["accuracy"] >= 0.75  # chance is 0.25
    # None of them was trained on: no warning.
    assert report["used_in_training"] == 0 and "used to train" not in proc.stderr


@pytest.mark.slow
def test_evaluate_warns_of_videos_the_model_was_trained_on(trained, pieces, tmp_path):
    out, _ = trained
    data, held = pieces
    # Two training pieces under new names (known by content) and two held-back ones.
    mixed = tmp_path / "mixed"
    for label, name in list(SOURCES.items())[:2]:
        (mixed / label).mkdir(parents=True)
        stem = name.split(".")[0]
        (mixed / label / "renamed.mp4").symlink_to(data / label / f"{stem}_0.mp4")
        (mixed / label / "new.mp4").symlink_to(held.parent / f"{stem}_3.mp4")
    proc = cli("evaluate", out, mixed, "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stderr.splitlines() if "used to train" in ln]
    assert warned == [
        f"vidclass: warning: evaluate: 2 of 4 videos were used to train {out}; "
        "its figures on them are not a fair test"
    ]
    # A folder made before models recorded their videos (or had unknown answers, or a
    # temperature): no warning, no failure.
    old = tmp_path / "old-model"
    old.mkdir()
    (old / "head.safetensors").write_bytes((out / "head.safetensors").read_bytes())
    config = json.loads((out / "vidclass.json").read_text())
    for later in ("unknown", "temperature", "calibration"):
        del config[later]
    (old / "vidclass.json").write_text(json.dumps(config))
    proc = cli("evaluate", old, mixed, "--precision", "fp32", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "used to train" not in proc.stderr
    assert json.loads(proc.stdout)["used_in_training"] is None


@pytest.mark.slow
def test_saved_model_reloads_with_identical_scores(trained, pieces):
    out, _ = trained
    _, held = pieces
    clip = held.parent / "arm_wrestling_3.mp4"
    first = vidclass.load_model(str(out), precision="fp32")
    again = vidclass.load_model(str(out), precision="fp32")
    assert first.labels == tuple(sorted(SOURCES))
    a, b = first.scores(clip), again.scores(clip)
    assert np.array_equal(a, b) and abs(a.sum() - 1) < 1e-5
    proc = cli("classify", clip, "--model", out, "--json", "-k", "4", "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)[0]["predictions"]
    assert [p["label"] for p in got] == [first.labels[i] for i in np.argsort(-a)]
    assert [p["score"] for p in got] == pytest.approx(sorted(a, reverse=True), abs=1e-6)
    windows = first.timeline(clip, stride=0.5).windows
    assert windows and windows[0].predictions[0]["label"] in SOURCES


@pytest.mark.slow
def test_evaluate_agrees_with_a_hand_computed_confusion_matrix(trained, pieces, tmp_path):
    out, _ = trained
    _, held = pieces
    report_path, plots = tmp_path / "report.json", tmp_path / "plots"
    proc = cli("evaluate", out, held, "--report", report_path, "--plots", plots)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    pairs = Counter((v["true"], v["predicted"]) for v in report["videos"])
    labels = report["confusion_matrix"]["labels"]
    by_hand = [[pairs[(t, p)] for p in labels] for t in labels]
    assert report["confusion_matrix"]["matrix"] == by_hand
    m = np.array(by_hand, dtype=float)
    assert report["accuracy"] == pytest.approx(np.trace(m) / m.sum())
    for i, row in enumerate(report["per_class"]):
        tp = m[i, i]
        precision = tp / m[:, i].sum() if m[:, i].sum() else 0.0
        recall = tp / m[i].sum()
        assert row["label"] == labels[i] and row["support"] == m[i].sum()
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
    macro_f1 = np.mean([r["f1"] for r in report["per_class"]])
    assert report["macro"]["f1"] == pytest.approx(macro_f1)
    assert report["micro"]["precision"] == pytest.approx(np.trace(m) / m.sum())
    assert (plots / "confusion_matrix.png").stat().st_size > 5000
    assert "precision  recall" in proc.stdout and "accuracy" in proc.stdout


@pytest.mark.slow
def test_evaluate_the_default_model_matches_labels_by_name(pieces, tmp_path):
    data, held = pieces
    mixed = tmp_path / "mixed.csv"
    header, *rows = csv.reader(held.open())
    rows = [[str(held.parent / path), label] for path, label in rows]  # the CSV moves
    rows[0][1] = rows[0][1].upper().replace(" ", "_")  # "ARM_WRESTLING" still matches
    other = sorted((data / "arm wrestling").iterdir())[0]
    rows.append([str(other), "my own label"])  # unknown to Kinetics: reported, left out
    rows = [header, *rows]
    with open(mixed, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    model = vidclass.load_model(precision="fp32")
    from vidclass.training import evaluate

    report = evaluate(model, mixed, workers=0)
    assert report["unknown_labels"] == ["my own label"]
    assert report["evaluated"] == 8 and not report["multi_label"]  # the 9th is left out
    assert report["top_k"]["top_5"] >= report["top_k"]["top_1"] == report["accuracy"]
    assert report["accuracy"] >= 0.5


@pytest.mark.slow
def test_retraining_extracts_only_new_videos(trained, pieces, tmp_path):
    data, held = pieces
    more = tmp_path / "more"
    for label in SOURCES:
        (more / label).mkdir(parents=True)
        for clip in (data / label).iterdir():
            (more / label / clip.name).symlink_to(clip)
    extra = held.parent / "arm_wrestling_3.mp4"
    (more / "arm wrestling" / extra.name).symlink_to(extra)
    (more / "arm wrestling" / "broken.mp4").symlink_to(video("odd/not_a_video.mp4"))
    result = vidclass.training.train(more, tmp_path / "m2", precision="fp32", workers=0)
    t = result.config["training"]
    assert t["features_from_cache"] == 12  # all but the new one (and the broken one)
    assert t["videos"] == 13 and list(result.skipped) == [
        str(more / "arm wrestling" / "broken.mp4")
    ]
    assert "not a readable video" in result.skipped[str(more / "arm wrestling" / "broken.mp4")]


@pytest.mark.slow
def test_multi_label_tags_get_sigmoid_scores_and_map(trained, pieces, tmp_path):
    data, _ = pieces
    tags = {"arm wrestling": "sport", "juggling soccer ball": "sport|ball"}
    rows = [("path", "labels")]
    for label in SOURCES:
        for clip in sorted((data / label).iterdir()):
            rows.append((str(clip), tags.get(label, "food")))
    table = tmp_path / "tags.csv"
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    dataset = load_dataset(table)
    assert dataset.multi_label and dataset.labels == ("ball", "food", "sport")
    result = vidclass.training.train(table, tmp_path / "tagger", precision="fp32", workers=0)
    assert result.config["multi_label"] and result.config["threshold"] == 0.5
    assert "mAP" in result.config["metrics"]["validation"]
    tagger = vidclass.load_model(str(tmp_path / "tagger"), precision="fp32")
    scores = tagger.scores(data / "juggling soccer ball" / "soccer_juggling_0.mp4")
    # independent sigmoid scores, not a softmax: both tags of this video are on
    ball, food, sport = scores
    assert ball >= 0.5 and sport >= 0.5 and food < 0.5 and scores.sum() > 1.5
    assert tagger.threshold == 0.5
    report = vidclass.training.evaluate(tagger, table, workers=0)
    assert report["multi_label"] and report["mAP"] is not None
    assert {r["label"] for r in report["per_class"]} == {"ball", "food", "sport"}
    assert all("average_precision" in r for r in report["per_class"])


@pytest.mark.slow
def test_a_split_column_chooses_the_validation_videos_and_the_record_says_so(
    trained, pieces, tmp_path
):
    data, _ = pieces
    rows = [("path", "label", "split")]
    for label in SOURCES:
        for i, clip in enumerate(sorted((data / label).iterdir())):
            rows.append((str(clip), label, "val" if i == 0 else "train"))
    table = tmp_path / "split.csv"
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    result = vidclass.training.train(table, tmp_path / "m", precision="fp32", workers=0)
    t = result.config["training"]
    assert t["validation"] == "the data's split column"
    assert t["val_videos"] == len(SOURCES)  # the one row of each label marked val


@pytest.mark.slow
def test_force_replaces_a_model_folder(trained, pieces, tmp_path):
    data, _ = pieces
    out = tmp_path / "again"
    out.mkdir()
    (out / "vidclass.json").write_text("{}\n")
    refused = cli("train", data, "--out", out)
    assert refused.returncode == 1 and "give --force to replace it" in refused.stderr
    proc = cli("train", data, "--out", out, "--force", "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "vidclass.json").read_text())["labels"] == sorted(SOURCES)
    mine = tmp_path / "mine"  # a user's folder that is not a model: never written into
    mine.mkdir()
    (mine / "head.safetensors").write_bytes(b"my own file")
    kept = cli("train", data, "--out", mine, "--force")
    assert kept.returncode == 1 and "no vidclass model" in kept.stderr
    assert [p.name for p in mine.iterdir()] == ["head.safetensors"]
    assert (mine / "head.safetensors").read_bytes() == b"my own file"


def test_bad_data_gives_clear_errors(tmp_path, pieces):
    data, _ = pieces
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidclassError, match="no label subfolders"):
        load_dataset(tmp_path / "empty")
    few = tmp_path / "few"
    (few / "a").mkdir(parents=True)
    (few / "b").mkdir()
    for i in range(3):
        (few / "a" / f"{i}.mp4").symlink_to(next((data / "arm wrestling").iterdir()))
    (few / "b" / "0.mp4").symlink_to(next((data / "flipping pancake").iterdir()))
    with pytest.raises(VidclassError, match=r"too few videos for: 'b' \(1\)"):
        split_dataset(load_dataset(few))
    proc = cli("train", few, "--out", tmp_path / "m")
    assert proc.returncode == 1 and "too few videos for: 'b' (1)" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("file,tag\nx.mp4,a\n")
    with pytest.raises(VidclassError, match="path and label columns"):
        load_dataset(bad)


@pytest.mark.slow
def test_a_transformers_backbone_trains_and_evaluates_the_same_way(pieces, tmp_path):
    pytest.importorskip("transformers", reason="Hugging Face backbones need the hf extra")
    pytest.importorskip("PIL", reason="transformers' image processors need Pillow")
    from .helpers import make_hf_checkpoint

    data, held = pieces
    backbone = tmp_path / "tiny-videomae"
    make_hf_checkpoint(backbone, "videomae")
    out = tmp_path / "on-videomae"
    proc = cli("train", data, "--out", out, "--model", backbone, "--head", "mlp", "--hidden", "16")
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "vidclass.json").read_text())
    assert config["backbone"] == str(backbone.resolve()) and config["head"]["in_dim"] == 32
    assert config["input"]["num_frames"] == 8 and config["input"]["fps"] is None
    model = vidclass.load_model(str(out), precision="fp32")
    assert model.labels == tuple(sorted(SOURCES))
    scores = model.scores(held.parent / "arm_wrestling_3.mp4")
    assert scores.shape == (4,) and abs(scores.sum() - 1) < 1e-5
    report = vidclass.training.evaluate(model, held, workers=0)
    assert report["evaluated"] == 8 and len(report["per_class"]) == 4


@pytest.mark.slow
def test_finetuning_the_last_blocks_saves_only_those_and_reloads(pieces, trained, tmp_path):
    data, held = pieces
    out = tmp_path / "tuned"
    proc = cli("train", data, "--out", out, "--finetune", "last-blocks", "--epochs", "15")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "backbone.safetensors",
        "head.safetensors",
        "training_videos.sha256",
        "unknown.safetensors",
        "vidclass.json",
    ]
    from safetensors import safe_open

    with safe_open(out / "backbone.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith(("features.Mixed_5b.", "features.Mixed_5c.")) for k in keys)
    config = json.loads((out / "vidclass.json").read_text())
    assert "fine-tuned" in config["training"]["method"] and config["head"]["in_dim"] == 1024
    tuned = vidclass.load_model(str(out), precision="fp32")
    frozen = vidclass.load_model(str(trained[0]), precision="fp32")
    clip = held.parent / "flipping_pancake_3.mp4"
    # the blocks moved: the tuned backbone's features differ from the pretrained ones
    x = tuned.read_clips(clip)[0][None]
    assert not np.allclose(tuned.embed(x), frozen.embed(x), atol=1e-4)
    again = vidclass.load_model(str(out), precision="fp32")
    assert np.array_equal(tuned.scores(clip), again.scores(clip))
    report = vidclass.training.evaluate(tuned, held, workers=0)
    assert report["accuracy"] >= 0.75


def test_finetuning_a_backbone_without_blocks_is_refused(pieces, tmp_path):
    pytest.importorskip("transformers", reason="Hugging Face backbones need the hf extra")
    pytest.importorskip("PIL", reason="transformers' image processors need Pillow")
    from .helpers import make_hf_checkpoint

    data, _ = pieces
    make_hf_checkpoint(tmp_path / "tiny", "videomae")
    with pytest.raises(VidclassError, match="do not support --finetune last-blocks"):
        vidclass.training.train(
            data, tmp_path / "m", backbone=str(tmp_path / "tiny"), finetune="last-blocks"
        )
