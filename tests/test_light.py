"""Runs without torch (runtimes.light): a run in OpenVINO through torch leaves a record,
the next run starts from it without importing torch and scores as the torch run did; a
record whose files changed, or that is damaged or forged, is passed over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vidclass
from vidclass.loading import load_classifier
from vidclass.pipeline import load_model
from vidclass.runtimes.light import LightClassifier, file_identity, load_light, record_path

from .conftest import own_cache, run_cli, save_random_head, video

pytest.importorskip("openvino", reason="the openvino extra is not installed")

CLIP = "arm_wrestling.mp4"
OTHER = "eating_spaghetti.mp4"
LABELS = ["arm wrestling", "eating spaghetti", "surfing water"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with own_cache(tmp_path_factory) as root:
        yield root


@pytest.fixture(scope="module")
def recorded(cache):
    """The default model run once in OpenVINO fp32 through torch: what leaves the record."""
    model = load_model(precision="fp32", runtime="openvino")
    model.scores(video(CLIP))
    return model


def without_torch(code: str, cache) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter on `cache`; it prints JSON, then whether torch was
    imported."""
    script = f"import json, sys\n{code}\nprint('torch' in sys.modules)"
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VIDCLASS_CACHE": str(cache), "VIDCLASS_OFFLINE": "1"},
    )


def test_a_run_in_openvino_leaves_a_record_and_the_next_starts_without_torch(recorded, cache):
    record = json.loads(record_path(vidclass.DEFAULT_MODEL, "fp32").read_text())
    assert record["precision"] == "fp32" and record["features"] == 1024
    assert record["shape"] == [3, "T", 224, 224] and record["clip"] == [3, 64, 224, 224]
    assert isinstance(load_light(vidclass.DEFAULT_MODEL, "fp32", "cpu"), LightClassifier)
    code = (
        f"import vidclass\nr = vidclass.classify({str(video(CLIP))!r}, precision='fp32')\n"
        "print(json.dumps(r))"
    )
    done = without_torch(code, cache)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "False"  # torch never imported
    got = json.loads(lines[-2])
    want = recorded.classify(video(CLIP))
    assert [p["label"] for p in got] == [p["label"] for p in want]
    np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in want], atol=1e-5)


def test_the_cli_classifies_from_the_record_without_importing_torch(recorded, cache):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vidclass", "classify", str(video(CLIP))]
        + ["--precision", "fp32", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VIDCLASS_CACHE": str(cache)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert "openvino" in imported and "torch" not in imported
    [result] = json.loads(done.stdout)
    assert result["predictions"][0]["label"] == "arm wrestling"


def test_light_scores_logits_and_features_match_torch(recorded):
    light = load_light(vidclass.DEFAULT_MODEL, "fp32", "cpu", "auto")
    assert isinstance(light, LightClassifier)
    assert (light.runtime, light.precision, light.labels) == ("openvino", "fp32", recorded.labels)
    reference = load_model(precision="fp32", runtime="torch")
    clips = [reference.clip_frames(video(name))[0] for name in (CLIP, OTHER)]
    from vidclass.video.transforms import stack_clip

    uint8 = [stack_clip(frames, reference.spec) for frames in clips]
    x_light, x_torch = light.batch(uint8), reference.batch(uint8)
    np.testing.assert_array_equal(x_light, x_torch.numpy())  # one preprocessing
    want = reference.logits(x_torch).numpy()
    got = light.logits(x_light)
    assert np.abs(got - want).max() < 1e-3
    assert (np.argsort(-got, 1)[:, :5] == np.argsort(-want, 1)[:, :5]).all()
    scores, features = light.scores_and_features(x_light)
    np.testing.assert_allclose(features, reference.embed(x_torch).numpy(), atol=1e-4)
    np.testing.assert_allclose(scores, torch.softmax(torch.from_numpy(want), 1), atol=1e-5)
    # A label choice renormalises over the labels kept, as in torch.
    mine = light.with_labels(LABELS).classify(video(OTHER))
    theirs = reference.with_labels(LABELS).classify(video(OTHER))
    assert [p["label"] for p in mine] == [p["label"] for p in theirs]
    np.testing.assert_allclose([p["score"] for p in mine], [p["score"] for p in theirs], atol=1e-4)


def test_a_timeline_runs_from_the_record(recorded):
    light = load_light(vidclass.DEFAULT_MODEL, "fp32", "cpu", "openvino")
    mine = light.timeline(video(CLIP), window=2.56, stride=2.56)
    theirs = recorded.timeline(video(CLIP), window=2.56, stride=2.56)
    assert len(mine.windows) == len(theirs.windows) >= 2
    for a, b in zip(mine.windows, theirs.windows, strict=True):
        assert (a.start, a.end) == (b.start, b.end)
        assert a.predictions[0]["label"] == b.predictions[0]["label"]
        assert abs(a.predictions[0]["score"] - b.predictions[0]["score"]) < 1e-4


def test_no_record_applies_to_other_devices_runtimes_or_precisions(recorded):
    name = vidclass.DEFAULT_MODEL
    assert load_light(name, "fp32", "cpu", "torch") is None
    assert load_light(name, "fp32", "cuda", "auto") is None
    assert load_light(name, "fp32", "cpu", "onnxruntime") is None
    assert load_light(name, "bf16", "cpu", "auto") is None  # recorded for fp32 only
    assert load_light("no-such-model", "fp32", "cpu", "auto") is None


def test_a_damaged_or_forged_record_is_passed_over(recorded, cache, tmp_path):
    path = record_path(vidclass.DEFAULT_MODEL, "fp32")
    good = path.read_text()
    record = json.loads(good)
    outside = tmp_path / "embed.onnx"  # a graph outside the cache, as it truly is
    outside.write_bytes(Path(record["embed"][0]).read_bytes())
    zero = cache / "graphs" / "zero.onnx"  # in the cache, but not a regular file
    zero.symlink_to("/dev/zero")
    bad = [
        good[: len(good) // 2],  # torn
        "[]",
        "[" * 100_000 + "]" * 100_000,  # nested past the parser's recursion
        json.dumps({**record, "format": 99}),
        json.dumps({**record, "embed": file_identity(outside)}),
        json.dumps({**record, "embed": [record["embed"][0], 11, 0, 0, 0]}),  # not as it is
        json.dumps({**record, "head": [str(zero), 0, 0, 0, 0]}),
        json.dumps({**record, "files": []}),
        json.dumps({**record, "shape": 5}),
        json.dumps({**record, "clip": [3, 64, 2240, 2240]}),
        json.dumps({**record, "precision": "int4"}),
        json.dumps({**record, "precision": "bf16"}),  # asked for fp32
        json.dumps({**record, "precision": "int8"}),  # not a quantized model
        json.dumps({**record, "any_frames": "yes"}),
        " " * (2 << 20),  # beyond the size a record may have
    ]
    try:
        for text in bad:
            path.write_text(text)
            assert load_light(vidclass.DEFAULT_MODEL, "fp32", "cpu", "auto") is None, text[:80]
        path.unlink()
        os.mkfifo(path)  # a reader that waited for a writer would hang here
        assert load_light(vidclass.DEFAULT_MODEL, "fp32", "cpu", "auto") is None
        path.unlink()
        # The run goes through torch and writes the record again.
        model = load_classifier(vidclass.DEFAULT_MODEL, precision="fp32", runtime="openvino")
        assert not isinstance(model, LightClassifier)
        model.scores(video(CLIP))
        assert isinstance(load_light(vidclass.DEFAULT_MODEL, "fp32", "cpu"), LightClassifier)
    finally:
        path.unlink(missing_ok=True)
        path.write_text(good)


def test_a_retrained_folder_is_not_run_from_its_old_record(recorded, tmp_path):
    folder = tmp_path / "trained"
    backbone = load_model(precision="fp32", runtime="torch")
    x = torch.stack([backbone.read_clips(video(name))[0] for name in (CLIP, OTHER)])
    save_random_head(folder, backbone, x, LABELS, hidden=0)
    first = load_model(str(folder), precision="fp32", runtime="openvino")
    want = first.scores(video(CLIP))
    light = load_light(str(folder), "fp32", "cpu", "auto")
    assert isinstance(light, LightClassifier) and light.labels == tuple(LABELS)
    np.testing.assert_allclose(light.scores(video(CLIP)), want, atol=1e-5)
    # A file added to the folder (it might be a fine-tuned backbone): not from the record.
    (folder / "notes.txt").write_text("mine")
    assert load_light(str(folder), "fp32", "cpu", "auto") is None
    (folder / "notes.txt").unlink()
    assert isinstance(load_light(str(folder), "fp32", "cpu", "auto"), LightClassifier)
    # Retrained in place (another head): the record no longer applies ...
    save_random_head(folder, backbone, x.flip(2), LABELS, hidden=8)
    assert load_light(str(folder), "fp32", "cpu", "auto") is None
    # ... until a run through torch records the new head.
    second = load_model(str(folder), precision="fp32", runtime="openvino")
    want = second.scores(video(CLIP))
    light = load_light(str(folder), "fp32", "cpu", "auto")
    np.testing.assert_allclose(light.scores(video(CLIP)), want, atol=1e-5)


def test_models_pull_converts_for_openvino(cache):
    done = run_cli("models", "pull", env={"VIDCLASS_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    assert "runs of it start without torch" in done.stdout
    assert record_path(vidclass.DEFAULT_MODEL, "auto").is_file()
    assert isinstance(load_light(vidclass.DEFAULT_MODEL), LightClassifier)


def test_the_timeline_function_stays_a_function_once_its_module_is_imported():
    import vidclass.timeline  # noqa: F401  (what the first timeline call imports)

    assert callable(vidclass.timeline) and vidclass.timeline.__module__ == "vidclass"


def test_records_of_gone_models_and_old_partials_are_pruned(tmp_path):
    from vidclass.runtimes.remember import _prune

    kept_model, gone_model = tmp_path / "kept.safetensors", tmp_path / "gone.safetensors"
    kept_model.write_bytes(b"w")
    records = tmp_path / "light"
    records.mkdir()
    for name, model in (("kept", kept_model), ("gone", gone_model)):
        (records / f"{name}.json").write_text(json.dumps({"files": [[str(model), 1]]}))
    (records / "torn.json").write_text('{"files": [[')
    fresh, old = records / ".a.partial-1.json", records / ".b.partial-2.json"
    fresh.write_text("{")
    old.write_text("{")
    os.utime(old, (0, 0))  # left by a run killed long ago
    _prune(records)
    assert sorted(p.name for p in records.iterdir()) == [fresh.name, "kept.json"]
