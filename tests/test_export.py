"""Exported model folders and the one model factory: `vidclass models export`, runs
that never import torch, the backend rule, and folders that are not as exported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vidclass
from vidclass.digest import file_digest
from vidclass.engine import Windows, Work
from vidclass.errors import VidclassError
from vidclass.loading import cached_export, load_torch, plan
from vidclass.models import exported, folder_config
from vidclass.runtimes import sessions
from vidclass.runtimes.export import export
from vidclass.runtimes.exported import ExportedClassifier
from vidclass.training.evaluate import used_in_training

from .conftest import dev_clips, own_cache, run_cli, save_random_head, video

pytest.importorskip("openvino", reason="the openvino extra is not installed")

CLIP = "arm_wrestling.mp4"
OTHER = "eating_spaghetti.mp4"
LABELS = ["arm wrestling", "eating spaghetti", "surfing water"]


@pytest.fixture(scope="module")
def folder(cache, tmp_path_factory):
    """The default model exported as a user does it."""
    out = tmp_path_factory.mktemp("export") / "i3d"
    done = run_cli("models", "export", vidclass.DEFAULT_MODEL, "--out", out)
    assert done.returncode == 0, done.stderr
    assert f"{out}: {vidclass.DEFAULT_MODEL} exported for openvino (fp32)" in done.stdout
    return out


@pytest.fixture(scope="module")
def converted(cache, folder) -> Path:
    """The module cache's ONNX graphs, made by the export `folder` (the tests of what a
    new cache does with exports start from them, not from converting again)."""
    return cache / "graphs"


def imports_of(*args, cache) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`python -X importtime -m vidclass ARGS` on `cache`: the run, and the modules it
    imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vidclass", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "VIDCLASS_CACHE": str(cache), "VIDCLASS_OFFLINE": "1"},
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    return done, imported


@pytest.mark.slow
def test_an_exported_folder_is_self_describing_and_checked(folder):
    manifest = json.loads((folder / exported.MANIFEST).read_text())
    assert (manifest["runtime"], manifest["precision"]) == ("openvino", "fp32")
    assert manifest["clip"] == [3, 64, 224, 224] and manifest["any_frames"] is True
    assert len(manifest["labels"]) == 400 and manifest["features"] == 1024
    assert manifest["input"]["fps"] == 25 and manifest["input"]["crop_size"] == 224
    assert manifest["made"]["from"] == vidclass.DEFAULT_MODEL and manifest["made"]["vidclass"]
    on_disk = sorted(p.name for p in folder.iterdir() if p.name != exported.MANIFEST)
    # OpenVINO's IR, which names no other file (ONNX may: external data)
    assert sorted(manifest["files"]) == on_disk
    assert on_disk == ["embed.bin", "embed.xml", "head.bin", "head.xml", "stream.bin", "stream.xml"]
    # I3D's map stream (windows share one pass): steps of 64 frames, 8 frames a position
    stream = manifest["stream"]
    assert (stream["step_frames"], stream["stride"], stream["pool"]) == (64, 8, 2)
    assert stream["caches"][0] == [1, 3, 6, 224, 224] and len(stream["caches"]) == 39
    for name, digest in manifest["files"].items():
        assert file_digest(folder / name) == digest


@pytest.mark.slow
def test_an_exported_folder_runs_from_the_cli_without_importing_torch(folder, tmp_path):
    moved = tmp_path / "shipped"
    shutil.copytree(folder, moved)  # a folder that stands alone
    done, imported = imports_of(
        "classify", video(CLIP), "--model", moved, "--format", "json", cache=tmp_path / "empty"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "openvino" in imported and "torch" not in imported
    assert json.loads(done.stdout)[0]["predictions"][0]["label"] == "arm wrestling"
    tl, imported = imports_of(
        "timeline", video(CLIP), "--model", moved, "--format", "json", cache=tmp_path / "empty"
    )
    assert tl.returncode == 0 and "torch" not in imported, tl.stderr[-2000:]
    assert len(json.loads(tl.stdout)["windows"]) >= 2


@pytest.mark.slow
def test_an_export_scores_as_torch_does(folder, reference, monkeypatch):
    model = vidclass.load_model(str(folder), precision="fp32")
    assert isinstance(model, ExportedClassifier)
    assert (model.runtime, model.precision, model.labels) == ("openvino", "fp32", reference.labels)
    x = np.stack([reference.read_clips(video(name))[0] for name in (CLIP, OTHER)])
    want, got = reference.logits(x), model.logits(x)
    assert np.abs(got - want).max() < 1e-3
    assert (np.argsort(-got, 1)[:, :5] == np.argsort(-want, 1)[:, :5]).all()
    scores, features = model.scores_and_features(x)
    np.testing.assert_allclose(features, reference.embed(x), atol=1e-4)
    np.testing.assert_allclose(scores, reference.activate(want), atol=1e-5)
    # A label choice renormalises over the labels kept, as through torch.
    mine = model.with_labels(LABELS).classify(video(OTHER))
    theirs = reference.with_labels(LABELS).classify(video(OTHER))
    assert [p["label"] for p in mine] == [p["label"] for p in theirs]
    np.testing.assert_allclose([p["score"] for p in mine], [p["score"] for p in theirs], atol=1e-4)
    # A timeline: the same windows, the same leading labels.
    a = model.timeline(video(CLIP), window=2.56, stride=2.56)
    b = reference.timeline(video(CLIP), window=2.56, stride=2.56)
    assert len(a.windows) == len(b.windows) >= 2
    for x_, y_ in zip(a.windows, b.windows, strict=True):
        assert (x_.start, x_.end) == (y_.start, y_.end)
        assert x_.predictions[0]["label"] == y_.predictions[0]["label"]
    # Windows off the map: the folder's stream graph scores as torch's stream does.
    assert model.temporal_map == reference.temporal_map is not None
    shared = Work(Windows(2.56, 1.0, shared=True), video_timeout=None)
    rows = [m.run(video(OTHER), shared).clip_scores for m in (model, reference)]
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-4)
    # OpenVINO keeps the stream's caches itself; loaded again, its compiled model (kept
    # under a key of its own) is read back and scores the same.
    imported = []
    real_import = sessions._import
    monkeypatch.setattr(
        sessions, "_import", lambda c, blob, cfg: _noted(imported, blob, real_import(c, blob, cfg))
    )
    again = vidclass.load_model(str(folder), precision="fp32")
    # Opened by a label view, the stream is the model's: its graph's bytes are let go.
    assert again.with_labels(LABELS).run(video(OTHER), shared).clip_scores.shape[0] == len(rows[0])
    assert "stream" not in again._unopened
    np.testing.assert_allclose(again.run(video(OTHER), shared).clip_scores, rows[0], atol=1e-6)
    assert any(name.startswith("export-stream-") and found for name, found in imported)


def _noted(seen: list, blob, compiled):
    seen.append((blob.name, compiled is not None))
    return compiled


@pytest.mark.slow
def test_an_onnxruntime_export_runs_in_onnxruntime(cache, reference, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "ort"
    export(vidclass.DEFAULT_MODEL, out, runtime="onnxruntime")
    model = vidclass.load_model(str(out))
    assert (model.runtime, model.precision) == ("onnxruntime", "fp32")
    np.testing.assert_allclose(model.scores(video(CLIP)), reference.scores(video(CLIP)), atol=1e-4)
    shared = Work(Windows(2.56, 2.0, shared=True), video_timeout=None)
    rows = [m.run(video(CLIP), shared).clip_scores for m in (model, reference)]
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-4)
    with pytest.raises(VidclassError, match="exported for onnxruntime"):
        vidclass.load_model(str(out), runtime="openvino")
    with pytest.raises(VidclassError, match="computes in fp32"):
        vidclass.load_model(str(out), precision="bf16")


@pytest.mark.slow
def test_an_export_is_refused_where_it_cannot_run_as_asked(folder):
    for kwargs, says in [
        ({"runtime": "torch"}, "exported for openvino"),
        ({"device": "cuda"}, "runs on the CPU"),
        ({"precision": "int8"}, "is not int8"),
    ]:
        with pytest.raises(VidclassError, match=says):
            vidclass.load_model(str(folder), **kwargs)
    done = run_cli("classify", video(CLIP), "--model", folder, "--runtime", "torch")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    # What needs torch says so: training on an export, fine-tuning it.
    with pytest.raises(VidclassError, match="has no torch module"):
        load_torch(str(folder))


def test_a_damaged_or_forged_export_is_refused_naming_the_file(folder, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    graph = bad / "embed.bin"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(VidclassError, match=r"embed\.bin: not as exported"):
        vidclass.load_model(str(bad))
    assert graph.read_bytes() == bytes(data)  # the user's file: never repaired
    shutil.copyfile(folder / "embed.bin", graph)
    (bad / "head.bin").unlink()
    (bad / "head.bin").symlink_to(folder / "head.bin")  # the same bytes, but a link
    with pytest.raises(VidclassError, match=r"head\.bin: a link"):
        vidclass.load_model(str(bad))
    (bad / "head.bin").unlink()
    shutil.copyfile(folder / "head.bin", bad / "head.bin")
    path = bad / exported.MANIFEST
    good = json.loads(path.read_text())
    forged = [
        "{",  # torn
        "[]",
        "[" * 100_000 + "]" * 100_000,  # nested past the parser's recursion
        json.dumps({**good, "version": 99}),
        json.dumps({**good, "files": {"../embed.bin": "0" * 64}}),
        json.dumps({**good, "graphs": {"embed": ["/etc/passwd"], "head": ["head.xml"]}}),
        # ONNX for OpenVINO: it could name external data, any file on the machine
        json.dumps(
            {
                **good,
                "files": {**good["files"], "e.onnx": "0" * 64},
                "graphs": {**good["graphs"], "embed": ["e.onnx"]},
            }
        ),  # fmt: skip
        json.dumps({**good, "input": {**good["input"], "num_frames": "64"}}),
        json.dumps({**good, "input": {**good["input"], "short_side": 1 << 30}}),
        json.dumps({**good, "clip": [3, 64, 112, 112]}),  # not what its input makes
        json.dumps({**good, "labels": []}),
        json.dumps({**good, "clip": [3, 64, 2240000, 224]}),
        json.dumps({**good, "precision": "int4"}),
        json.dumps({**good, "runtime": "tensorrt"}),
        json.dumps({**good, "features": 7}),  # the graphs' widths say otherwise
        json.dumps({**good, "labels": good["labels"][:-1]}),
        # the map stream: its graph without its description, or caches past any model's
        json.dumps({k: v for k, v in good.items() if k != "stream"}),
        json.dumps({**good, "stream": {**good["stream"], "caches": [[1, 4096, 4096, 4096, 4]]}}),
        json.dumps({**good, "stream": {**good["stream"], "step_frames": 60}}),
        json.dumps({**good, "stream": []}),
        json.dumps({**good, "stream": {**good["stream"], "stride": 16}}),
        json.dumps({**good, "stream": {**good["stream"], "caches": [[1, 3, 6, 225, 224]]}}),
        " " * (5 << 20),  # beyond the size a manifest may have
    ]
    for text in forged:
        path.write_text(text)
        with pytest.raises(VidclassError):
            vidclass.load_model(str(bad))
    path.unlink()
    os.mkfifo(path)  # a reader that waited for a writer would hang here
    with pytest.raises(VidclassError):
        ExportedClassifier(bad)


def test_export_leaves_a_folder_that_is_not_its_own_alone(cache, tmp_path, folder):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(VidclassError, match="not empty|not an exported model"):
            export(vidclass.DEFAULT_MODEL, theirs, force=force)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    with pytest.raises(VidclassError, match="exported already"):
        export(str(folder), tmp_path / "again")
    with pytest.raises(VidclassError, match="--calibrate"):
        export(vidclass.DEFAULT_MODEL, tmp_path / "int8", precision="int8")
    assert not (tmp_path / "int8").exists()
    # An export is replaced with --force.
    again = tmp_path / "replaced"
    shutil.copytree(folder, again)
    export(vidclass.DEFAULT_MODEL, again, force=True)
    assert exported.read_manifest(again)["made"]["from"] == vidclass.DEFAULT_MODEL


@pytest.mark.slow
def test_the_backend_rule_does_not_depend_on_what_the_cache_holds(tmp_path_factory, converted):
    with own_cache(tmp_path_factory, converted) as root:
        name = vidclass.DEFAULT_MODEL
        before = plan(name)
        assert (before.backend, before.runtime) == ("export", "openvino")
        assert not before.folder.exists()
        first = vidclass.load_model(name, precision="fp32")  # makes the export, once
        assert isinstance(first, ExportedClassifier) and first.name == name
        assert plan(name) == before and before.folder.is_dir()
        second = vidclass.load_model(name, precision="fp32")
        assert isinstance(second, ExportedClassifier) and second.runtime == first.runtime
        np.testing.assert_allclose(second.scores(video(CLIP)), first.scores(video(CLIP)))
        assert before.folder.parent == root / "exports"
        # Other options, other rules; each says why.
        for kwargs, backend, runtime in [
            ({"runtime": "torch"}, "torch", "torch"),
            ({"runtime": "onnxruntime"}, "torch", "onnxruntime"),
            ({"device": "cuda"}, "torch", "torch"),
            ({"precision": "int8"}, "torch", "torch"),
        ]:
            chosen = plan(name, **kwargs)
            assert (chosen.backend, chosen.runtime) == (backend, runtime), kwargs
            assert chosen.why
        # `models list MODEL` prints what will run and why.
        listed = run_cli("models", "list", name, env={"VIDCLASS_CACHE": str(root)})
        assert listed.returncode == 0, listed.stderr
        from vidclass.loading import _file_identity
        from vidclass.models.resolve import source_files

        ids = [_file_identity(p) for p in source_files(name)]
        cache_now = os.environ.get("VIDCLASS_CACHE")
        assert f"runs in: {before.describe()}" in listed.stdout, (ids, cache_now)


@pytest.mark.slow
def test_a_damaged_export_in_the_cache_is_made_again(tmp_path_factory, caplog, converted):
    with own_cache(tmp_path_factory, converted):
        name = vidclass.DEFAULT_MODEL
        vidclass.load_model(name, precision="fp32")
        graph = plan(name).folder / "head.xml"
        graph.write_bytes(b"not a graph")
        with caplog.at_level("WARNING", logger="vidclass"):
            model = vidclass.load_model(name, precision="fp32")
        assert "not as exported" in caplog.text and "exporting it again" in caplog.text
        assert isinstance(model, ExportedClassifier) and graph.stat().st_size > 1000


@pytest.mark.slow
def test_a_default_run_after_models_pull_starts_without_torch(tmp_path_factory, converted):
    with own_cache(tmp_path_factory, converted) as root:
        done = run_cli("models", "pull", env={"VIDCLASS_CACHE": str(root)})
        assert done.returncode == 0, done.stderr
        assert "runs of it start without torch" in done.stdout
        assert plan(vidclass.DEFAULT_MODEL).folder.is_dir()
        run, imported = imports_of("classify", video(CLIP), "--format", "json", cache=root)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "openvino" in imported and "torch" not in imported
        assert json.loads(run.stdout)[0]["predictions"][0]["label"] == "arm wrestling"


@pytest.mark.slow
def test_a_retrained_folder_gets_an_export_of_its_own(cache, reference, tmp_path):
    folder = tmp_path / "trained"
    x = np.stack([reference.read_clips(video(name))[0] for name in (CLIP, OTHER)])
    save_random_head(folder, reference, x, LABELS, hidden=0)
    first = vidclass.load_model(str(folder), precision="fp32")
    assert isinstance(first, ExportedClassifier) and first.labels == tuple(LABELS)
    want = load_torch(str(folder), precision="fp32", runtime="torch").scores(video(CLIP))
    np.testing.assert_allclose(first.scores(video(CLIP)), want, atol=1e-4)
    where = cached_export(str(folder))
    save_random_head(folder, reference, x[::-1].copy(), LABELS, hidden=8)  # retrained in place
    assert cached_export(str(folder)) != where
    second = vidclass.load_model(str(folder), precision="fp32")
    want = load_torch(str(folder), precision="fp32", runtime="torch").scores(video(CLIP))
    np.testing.assert_allclose(second.scores(video(CLIP)), want, atol=1e-4)


def test_an_old_quantized_folder_says_how_to_make_it_again(tmp_path):
    old = tmp_path / "old-int8"
    old.mkdir()
    (old / folder_config.CONFIG).write_text(json.dumps({"format": 1, "kind": "quantized"}))
    done = run_cli("classify", video(CLIP), "--model", old)
    assert done.returncode == 1, done.stderr
    assert "models export MODEL --precision int8" in done.stderr


def test_the_timeline_function_stays_a_function_once_its_module_is_imported():
    import vidclass.timelines  # noqa: F401  (what the first timeline call imports)

    assert callable(vidclass.timeline) and vidclass.timeline.__module__ == "vidclass"
    assert vidclass.timelines.compute is not None  # the module has its own name


# -- int8 ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def int8_dir(cache, tmp_path_factory, videos):
    """The default model exported in int8 as a user does it: calibrated on the dev
    videos and a file that is not a video (skipped and recorded)."""
    pytest.importorskip("nncf", reason="the int8 extra (nncf) is not installed")
    out = tmp_path_factory.mktemp("int8") / "i3d-int8"
    done = run_cli(
        "models", "export", vidclass.DEFAULT_MODEL, "--precision", "int8",
        "--calibrate", videos / "dev", videos / "odd" / "not_a_video.mp4",
        "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "calibrated on 14 clips of 14 videos (1 unreadable, skipped)" in done.stdout
    return out


@pytest.mark.slow
def test_int8_keeps_the_top1_label_of_every_dev_clip(int8_dir, reference):
    int8 = vidclass.load_model(str(int8_dir))
    assert (int8.runtime, int8.precision) == ("openvino", "int8")
    moves = []
    for name in sorted(dev_clips()):
        clip = np.stack(reference.read_clips(video(f"dev/{name}")))
        want = reference.activate(reference.logits(clip))[0]
        got = int8.activate(int8.logits(clip))[0]
        assert int(got.argmax()) == int(want.argmax()), name
        top5 = np.argsort(-want)[:5]
        moves.append(float(np.abs(got[top5] - want[top5]).max()))
    assert len(moves) >= 14
    assert max(moves) < 0.1, moves  # on this data they stay near 0.05


@pytest.mark.slow
def test_an_int8_export_records_its_calibration_and_runs_without_torch(int8_dir, tmp_path):
    manifest = exported.read_manifest(int8_dir)
    assert (manifest["precision"], manifest["graphs"]["embed"]) == (
        "int8",
        ["embed.int8.xml", "embed.int8.bin"],
    )
    calibration = manifest["made"]["calibration"]
    assert calibration["videos_used"] == 14 and calibration["clips"] == 14
    assert [s["video"] for s in calibration["skipped"]] == ["not_a_video.mp4"]
    assert manifest["made"]["check"]["top1_same"] == 14
    done, imported = imports_of(
        "classify", video(CLIP), "--model", int8_dir, "--format", "json", cache=tmp_path
    )
    assert done.returncode == 0 and "torch" not in imported, done.stderr[-2000:]
    assert json.loads(done.stdout)[0]["predictions"][0]["label"] == "arm wrestling"
    # A clip length it was not calibrated on: 1 s windows.
    tl = run_cli("timeline", video(CLIP), "--model", int8_dir, "--window", "1", "--format", "json")
    assert tl.returncode == 0, tl.stderr
    assert len(json.loads(tl.stdout)["windows"]) >= 9
    for args, says in [(("--precision", "bf16"), "computes in int8"), ((), None)]:
        run = run_cli("classify", video(CLIP), "--model", int8_dir, *args)
        assert (run.returncode == 1 and says in run.stderr) if says else run.returncode == 0
    plain = run_cli("classify", video(CLIP), "--precision", "int8")
    assert plain.returncode == 1 and "--precision int8 --calibrate" in plain.stderr


@pytest.mark.slow
def test_a_trained_models_int8_export_stands_alone(cache, reference, tmp_path, videos):
    pytest.importorskip("nncf", reason="the int8 extra (nncf) is not installed")
    paths = [str(video(f"dev/{f}")) for f in sorted(dev_clips())[:4]]
    clips = np.stack([reference.read_clips(p)[0] for p in paths])
    mine = tmp_path / "mine"
    save_random_head(mine, reference, clips, ["x", "y"], hidden=8)
    folder_config.write_trained_on(mine, [file_digest(p) for p in paths])  # as train does
    want = load_torch(str(mine), precision="fp32", runtime="torch")
    want_scores = want.activate(want.logits(clips))
    out = tmp_path / "mine-int8"
    result = export(str(mine), out, precision="int8", calibrate=[str(videos / "dev")], max_clips=3)
    assert (result.clips, result.videos) == (3, 3)
    moved = tmp_path / "elsewhere"
    shutil.move(out, moved)
    shutil.rmtree(mine)  # the export needs nothing of the folder it came from
    int8 = vidclass.load_model(str(moved))
    assert int8.labels == ("x", "y") and int8.precision == "int8"
    # The videos it was trained on come along: evaluate still tells them.
    assert used_in_training(int8, [*paths, str(video(CLIP))]) == 4
    got = int8.activate(int8.logits(clips))
    assert float(np.abs(got - want_scores).max()) < 0.15


def test_the_caches_exports_are_bounded_least_recently_used_first(tmp_path):
    from vidclass.loading import MAX_CACHED_EXPORTS, _prune

    exports = tmp_path / "exports"
    made = []
    for i in range(MAX_CACHED_EXPORTS + 3):
        (exports / f"e{i:02d}").mkdir(parents=True)
        os.utime(exports / f"e{i:02d}", (1000 + i, 1000 + i))
        made.append(f"e{i:02d}")
    (exports / ".e-new.partial-1").mkdir()  # being written by another run
    (exports / ".e-old.partial-2").mkdir()
    os.utime(exports / ".e-old.partial-2", (0, 0))  # left by a run killed long ago
    (exports / "stranger").symlink_to(tmp_path)  # never followed
    _prune(exports, keep=exports / "e00")  # e00: the one this run uses
    left = sorted(p.name for p in exports.iterdir())
    assert left == sorted(
        [".e-new.partial-1", "e00", "stranger", *made[-(MAX_CACHED_EXPORTS - 1) :]]
    )


def test_what_needs_torch_says_so_in_one_line_without_it(tmp_path):
    """Without torch (as in a slim install: here it is hidden from the interpreter), the
    commands that need it end in one line naming the extra to install."""
    script = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from vidclass.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    for args, extra in [
        (["train", str(tmp_path), "--out", str(tmp_path / "out")], "train"),
        (["models", "export", "i3d.kinetics400", "--out", str(tmp_path / "x")], "export"),
    ]:
        done = subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == (
            f"vidclass: error: this needs torch, which is not installed: "
            f"pip install 'vidclass[{extra}]'"
        ), done.stderr
