"""Unknown answers: a head trained on the dev labels says "unknown" for clips of other
actions and scenes, keeps its own labels, and every output records the answer."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3

import numpy as np
import pytest

import vidclass
from vidclass.errors import VidclassError
from vidclass.training import evaluate, train
from vidclass.unknown import BANK, Detector, bank_of, held_out_scores, thinned, threshold_at

from .conftest import run_cli, video, write_video

DEV_LABELS = ("archery", "bench pressing", "push up", "shooting basketball", "squat")
HELD_BACK = {"dev/squat_3.mp4": "squat", "dev/bench_pressing_3.mp4": "bench pressing"}
# Shared clips of other actions (two near the labels: pull ups, situps) and scenes.
OUTSIDE = [
    "arm_wrestling.mp4",
    "eating_spaghetti.mp4",
    "cricket_shot.gif",
    "dev/pull_ups_1.mp4",
    "dev/situp_1.mp4",
    "long/scene_cuts_bikes.mp4",
]


@pytest.fixture(scope="module")
def dev_model(tmp_path_factory):
    """A head on the five dev labels with two or more videos, two videos held back."""
    root = tmp_path_factory.mktemp("dev")
    with open(video("dev/MANIFEST.tsv"), newline="") as f:
        rows = [(r["file"], r["label"]) for r in csv.DictReader(f, delimiter="\t")]
    data = root / "dev.csv"
    with open(data, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["video", "label"])
        for name, label in rows:
            if label in DEV_LABELS and f"dev/{name}" not in HELD_BACK:
                out.writerow([video(f"dev/{name}"), label])
    held = root / "held.csv"
    with open(held, "w", newline="") as f:
        csv.writer(f).writerows(
            [("video", "label"), *((video(n), lb) for n, lb in HELD_BACK.items())]
        )
    result = train(data, root / "model", clips=4)
    return root / "model", result.config, held


@pytest.mark.slow
def test_a_head_on_the_dev_labels_says_unknown_outside_them_and_keeps_its_own(dev_model):
    folder, config, held = dev_model
    u = config["unknown"]
    assert u["method"] == "knn" and u["space"] == "backbone classes"
    assert u["false_unknown"] == 0.05 and u["set_on"] == u["bank_rows"] > 20
    assert (folder / BANK).is_file()
    model = vidclass.load_model(folder)
    names = OUTSIDE + list(HELD_BACK)
    results = {r.video: r for r in model.classify_many([video(n) for n in names], clips=4, top_k=1)}
    for name in OUTSIDE:
        r = results[str(video(name))]
        assert r.unknown is True, (name, r.ood_score, u["threshold"])
    for name, label in HELD_BACK.items():  # videos of its labels it never saw
        r = results[str(video(name))]
        assert r.predictions[0]["label"] == label
        assert r.unknown is False, (name, r.ood_score, u["threshold"])
        # the threshold holds its rate on their clips: at most one of their five
        assert (r.clip_ood > u["threshold"]).sum() <= 1
    report = evaluate(folder, held, clips=4)
    assert report["accuracy"] == 1.0
    answers = report["unknown_answers"]
    assert answers["false_unknown_here"] == 0.0 and answers["threshold"] == u["threshold"]


def test_a_clip_is_scored_without_its_own_video():
    """The threshold comes from each video's clips against the bank without that video:
    a clip whose only twin is in its own video is far from everything else."""
    rng = np.random.default_rng(0)
    features = rng.random((6, 16)).astype(np.float32)
    features[1] = features[0]  # video 0's two clips are twins; videos 1 and 2 differ
    groups = np.array([0, 0, 1, 1, 2, 2])
    detector = Detector("knn", bank=bank_of(features))
    own = detector.score(None, features[:1])
    held_out = held_out_scores(detector, features, groups, groups[thinned(len(features))])
    assert own[0] == pytest.approx(0.0, abs=1e-3)  # its twin is in the bank
    assert held_out[0] > 0.01 and held_out[0] == pytest.approx(held_out[1], abs=1e-3)
    assert threshold_at(np.arange(100.0), 0.05) == pytest.approx(94.05)
    with pytest.raises(VidclassError, match="false-unknown rate"):
        threshold_at(held_out, 1.5)


def test_a_long_bank_is_thinned_evenly():
    assert list(thinned(5, max_rows=10)) == [0, 1, 2, 3, 4]
    kept = thinned(10_000, max_rows=100)
    assert len(kept) == 100 and kept[0] == 0 and kept[-1] == 9999


@pytest.fixture(scope="module")
def squat_then_wrestling(tmp_path_factory):
    """6 s of a squat (a dev label, a video the head was trained on) then 6 s of arm
    wrestling (outside its labels), as MPEG-TS: a file that plays like a stream."""
    from vidclass.video import read_frames

    frames = []
    for name in ("dev/squat_1.mp4", "arm_wrestling.mp4"):
        times = list(1.0 + np.arange(0, 6.0, 1 / 25))
        frames += read_frames(video(name), times, size=(256, 340)).frames
    out = tmp_path_factory.mktemp("clips") / "squat_then_wrestling.ts"
    return write_video(out, frames, gop=25)


@pytest.mark.slow
def test_a_timeline_and_a_live_run_mark_the_part_outside_the_labels(
    dev_model, squat_then_wrestling
):
    folder, config, _ = dev_model
    model = vidclass.load_model(folder)
    tl = model.timeline(squat_then_wrestling, stride=1.0)
    early = [w for w in tl.windows if w.end <= 5.5]
    late = [w for w in tl.windows if w.start >= 6.5]
    assert early and late
    assert all(w.unknown is False and w.predictions[0]["label"] == "squat" for w in early)
    assert all(w.unknown is True for w in late)
    assert [s.label for s in tl.segments] == ["squat", "unknown"]
    assert 4.0 <= tl.segments[1].start <= 7.0 and tl.segments[1].score == pytest.approx(1.0)
    assert json.loads(json.dumps(tl.as_dict()))["windows"][-1]["unknown"] is True

    off = model.timeline(squat_then_wrestling, stride=2.0, unknown="off")
    assert all(w.ood_score is None and w.unknown is None for w in off.windows)
    assert "unknown" not in {s.label for s in off.segments}

    session = vidclass.watch(str(squat_then_wrestling), model, stride=1.0, timeout=2)
    events = list(session)
    windows = [e for e in events if e.kind == "window"]
    assert any(w.unknown for w in windows) and not all(w.unknown for w in windows)
    assert "unknown" in [e.label for e in events if e.kind == "segment"]
    summary = session.summary.as_dict()
    assert summary["unknown_windows"] == sum(bool(w.unknown) for w in windows)
    assert 0.2 <= summary["unknown_share"] <= 0.8
    assert "% unknown" in session.summary.describe()


@pytest.mark.slow
def test_unknown_answers_cost_no_forward_pass(dev_model):
    from vidclass.engine import Clips, Driver, InProcess, Work

    model = vidclass.load_model(dev_model[0])
    passes = {}
    for unknown in (True, False):
        driver = Driver(model, Work(Clips(4), unknown=unknown), InProcess(raise_errors=True))
        (result,) = driver.run([video("arm_wrestling.mp4")])
        passes[unknown] = (driver.stats.forward_passes, driver.stats.clips)
        assert (result.ood_score is not None) is unknown
    assert passes[True] == passes[False]


@pytest.mark.slow
def test_every_output_records_the_answer(dev_model, tmp_path):
    folder, config, _ = dev_model
    clips = [video("arm_wrestling.mp4"), video("dev/squat_1.mp4")]
    table = run_cli("classify", *clips, "--model", folder, "--top-k", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    wrestling = lines.index(str(clips[0]))
    assert lines[wrestling + 1].split()[:2] == ["unknown", "ood"]  # first, before the labels
    squat = lines.index(str(clips[1]))
    assert lines[squat + 1].split()[0] == "squat"

    for name in ("r.jsonl", "r.csv", "r.sqlite"):
        done = run_cli("classify", *clips, "--model", folder, "--output", tmp_path / name)
        assert done.returncode == 0, done.stderr
    jsonl = {
        r["video"]: r for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())
    }
    assert jsonl[str(clips[0])]["unknown"] is True and jsonl[str(clips[1])]["unknown"] is False
    assert jsonl[str(clips[0])]["ood_score"] > config["unknown"]["threshold"]
    with open(tmp_path / "r.csv", newline="") as f:
        rows = {r["video"]: r for r in csv.DictReader(f)}
    assert rows[str(clips[0])]["unknown"] == "true" and rows[str(clips[1])]["unknown"] == "false"
    assert float(rows[str(clips[0])]["ood_score"]) == pytest.approx(
        jsonl[str(clips[0])]["ood_score"], abs=1e-5
    )
    db = sqlite3.connect(tmp_path / "r.sqlite")
    stored = dict(db.execute("SELECT video, unknown FROM results"))
    assert stored == {str(clips[0]): 1, str(clips[1]): 0}

    off = run_cli("classify", clips[0], "--model", folder, "--unknown", "off", "--format", "json")
    assert off.returncode == 0, off.stderr
    (answer,) = json.loads(off.stdout)
    assert answer["ood_score"] is None and answer["unknown"] is None

    db_path = tmp_path / "gallery.sqlite"
    indexed = run_cli("index", *clips, "--db", db_path, "--model", folder)
    assert indexed.returncode == 0, indexed.stderr
    top = jsonl[str(clips[0])]["predictions"][0]["label"]  # its best guess, and a tag
    found = run_cli("search", top, "--db", db_path, "--format", "json")
    known = run_cli("search", top, "--db", db_path, "--known-only", "--format", "json")
    everything = {h["video"]: h["unknown"] for h in json.loads(found.stdout)}
    assert everything.get(str(clips[0])) is True
    assert str(clips[0]) not in {h["video"] for h in json.loads(known.stdout)}


@pytest.mark.slow
def test_results_files_begun_before_unknown_answers_go_on_in_their_columns(tmp_path):
    """A CSV or SQLite results file an earlier vidclass began is resumed, not refused:
    the CSV keeps its columns, the database gains the new ones."""
    old_csv = tmp_path / "old.csv"
    old_csv.write_text(
        "video,model,error,label_1,score_1\nfirst.mp4,i3d.kinetics400,,squat,0.900000\n"
    )
    old_db = tmp_path / "old.sqlite"
    db = sqlite3.connect(old_db)
    db.execute(
        "CREATE TABLE results (video TEXT PRIMARY KEY, model TEXT NOT NULL, label TEXT, "
        "score REAL, predictions TEXT, error TEXT, finished_at TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO results VALUES ('first.mp4', 'i3d.kinetics400', 'squat', 0.9, NULL, NULL, 'x')"
    )
    db.commit()
    db.close()
    clip = video("arm_wrestling.mp4")
    for path in (old_csv, old_db):
        done = run_cli("classify", clip, "--top-k", "1", "--output", path)
        assert done.returncode == 0, done.stderr
    rows = list(csv.reader(old_csv.open(newline="")))
    assert rows[0] == ["video", "model", "error", "label_1", "score_1"]
    assert rows[2][0] == str(clip) and len(rows[2]) == 5
    db = sqlite3.connect(old_db)
    got = dict(db.execute("SELECT video, ood_score FROM results"))
    assert got["first.mp4"] is None and 0 <= got[str(clip)] < 0.01  # msp: it is sure


def test_a_damaged_bank_fails_the_load_and_says_which_file(tmp_path):
    """The bank is read as the user's file it is: checked, never trusted."""
    from vidclass.unknown import bank_bytes

    folder = tmp_path / "model"
    folder.mkdir()
    detector = Detector("knn", bank=bank_of(np.eye(4, dtype=np.float32)))
    config = {"unknown": {"method": "knn", "threshold": 0.5}}
    from vidclass.unknown import from_config

    assert from_config(config["unknown"], bank_bytes(detector)).bank.shape == (4, 4)
    for damaged in (
        b"not safetensors",
        bank_bytes(Detector("knn", bank=np.full((2, 4), np.nan, np.float16))),
    ):
        with pytest.raises(VidclassError, match="unknown bank"):
            from_config(config["unknown"], damaged)
    with pytest.raises(VidclassError, match="missing"):
        from_config(config["unknown"], None)
    for bad in ({"threshold": "high"}, {"threshold": True}, {"threshold": 0.5, "set_on": 1e999}):
        with pytest.raises(VidclassError, match="not readable|not a number"):
            from_config({"method": "knn", **bad}, bank_bytes(detector))
    # a head over other features than the model's: said, not a numpy error mid-run
    head = (np.ones((3, 8), np.float32), np.zeros(3, np.float32))
    wide = Detector("knn", bank=bank_of(np.ones((2, 8), np.float32), head), head=head)
    with pytest.raises(VidclassError, match="does not fit"):
        wide.score(None, np.ones((1, 4), np.float32))


@pytest.mark.slow
def test_a_trained_folder_with_a_damaged_bank_is_refused_at_load(dev_model, tmp_path):
    folder, _, _ = dev_model
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    (copy / BANK).write_bytes(b"\x00" * 64)
    with pytest.raises(VidclassError, match="unknown bank"):
        vidclass.load_model(copy)
    (copy / BANK).unlink()
    with pytest.raises(VidclassError, match=f"{BANK}: no such file"):
        vidclass.load_model(copy)


@pytest.mark.slow
def test_an_exported_model_carries_its_unknown_answers(dev_model, tmp_path):
    """An export runs without torch: its bank goes with it, checked like its graphs."""
    pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
    folder, config, _ = dev_model
    out = tmp_path / "exported"
    done = run_cli("models", "export", folder, "--runtime", "onnxruntime", "--out", out)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "vidclass-export.json").read_text())
    assert manifest["unknown"]["threshold"] == config["unknown"]["threshold"]
    assert BANK in manifest["files"]
    model = vidclass.load_model(out)
    r = model.answer(video("arm_wrestling.mp4"), clips=4)
    assert r.unknown is True and r.ood_score > config["unknown"]["threshold"]
    bank = out / BANK
    bank.write_bytes(bank.read_bytes()[:-8] + b"\x00" * 8)
    with pytest.raises(VidclassError, match="sha256"):
        vidclass.load_model(out)
