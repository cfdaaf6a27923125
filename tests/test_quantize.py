"""int8 models from `vidclass models quantize`: calibrated on the dev videos, they keep
the fp32 top-1 label of every shared labelled clip; the folder runs like any model,
records its calibration, stands alone when moved; misuse is a one-line error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import vidclass
from vidclass.digest import file_digest
from vidclass.errors import VidclassError
from vidclass.models import folder_config
from vidclass.pipeline import load_model
from vidclass.runtimes.quantize import quantize
from vidclass.training.evaluate import used_in_training

from .conftest import dev_clips, labelled_clips, run_cli, save_random_head, video

pytest.importorskip("openvino", reason="the openvino extra is not installed")
pytest.importorskip("nncf", reason="the int8 extra (nncf) is not installed")

CLIP = "arm_wrestling.mp4"


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory, videos):
    """The default model quantized as a user does it: on the dev videos, and a file
    that is not a video (skipped and recorded)."""
    out = tmp_path_factory.mktemp("int8") / "i3d-int8"
    done = run_cli(
        "models", "quantize", vidclass.DEFAULT_MODEL,
        "--calibrate", videos / "dev", videos / "odd" / "not_a_video.mp4",
        "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "int8, calibrated on 14 clips of 14 videos (1 unreadable, skipped)" in done.stdout
    return out


@pytest.fixture(scope="module")
def int8(int8_dir):
    return load_model(str(int8_dir))


def test_int8_keeps_the_top1_label_of_every_shared_labelled_clip(int8, model, videos):
    shared = [f for f, _ in labelled_clips()] + [f"dev/{f}" for f in dev_clips()]
    assert len(shared) >= 20
    assert (int8.runtime, int8.precision) == ("openvino", "int8")
    moves = []
    for name in shared:
        try:
            clip = torch.stack(model.read_clips(video(name)))
        except VidclassError:
            continue  # a shared clip no model can read (covered by the decode tests)
        want = model.activate(model.logits(clip))[0]
        got = int8.activate(int8.logits(clip))[0]
        assert int(got.argmax()) == int(want.argmax()), name
        top5 = want.topk(5).indices
        moves.append(float((got[top5] - want[top5]).abs().max()))
    assert len(moves) >= 20
    # The README reports these; on this data they stay under 0.05.
    assert max(moves) < 0.1, moves


def test_the_folder_records_its_calibration_and_classifies_from_the_cli(int8_dir):
    config = json.loads((int8_dir / "vidclass.json").read_text())
    assert (config["kind"], config["base"], config["precision"]) == (
        "quantized",
        vidclass.DEFAULT_MODEL,
        "int8",
    )
    calibration = config["calibration"]
    assert calibration["videos_found"] == 15 and calibration["videos_used"] == 14
    assert [s["video"] for s in calibration["skipped"]] == ["not_a_video.mp4"]
    assert calibration["clips"] == 14 and calibration["check"]["top1_same"] == 14
    assert calibration["nncf"] and calibration["openvino"]
    assert len(set(calibration["clip_frames"])) > 1  # clips of several lengths, one graph
    done = run_cli("classify", video(CLIP), "--model", int8_dir, "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)[0]
    assert result["predictions"][0]["label"] == "arm wrestling"
    # A clip length it was not calibrated on: 1 s windows.
    tl = run_cli("timeline", video(CLIP), "--model", int8_dir, "--window", "1", "--format", "json")
    assert tl.returncode == 0, tl.stderr
    assert len(json.loads(tl.stdout)["windows"]) >= 9


def test_an_int8_folder_runs_without_torch_once_run(int8, int8_dir):
    from vidclass.runtimes.light import LightClassifier, load_light

    want = int8.scores(video(CLIP))  # its first run, through torch, records it
    light = load_light(str(int8_dir))
    assert isinstance(light, LightClassifier)
    assert (light.runtime, light.precision, light.name) == ("openvino", "int8", str(int8_dir))
    np.testing.assert_allclose(light.scores(video(CLIP)), want, atol=1e-5)


def test_int8_is_only_what_a_quantized_model_runs_in(int8_dir):
    plain = run_cli("classify", video(CLIP), "--precision", "int8")
    assert plain.returncode == 1, plain.stderr
    assert "vidclass models quantize MODEL --calibrate DIR --out DIR" in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1
    for args, says in [
        (("--runtime", "torch"), "an int8 model runs in OpenVINO"),
        (("--precision", "bf16"), f"for bf16 use {vidclass.DEFAULT_MODEL}"),
    ]:
        done = run_cli("classify", video(CLIP), "--model", int8_dir, *args)
        assert done.returncode == 1 and says in done.stderr, done.stderr
    with pytest.raises(VidclassError, match="already quantized"):
        quantize(str(int8_dir), [str(video("dev"))], int8_dir.parent / "again")


def test_a_trained_model_quantizes_into_a_folder_that_stands_alone(tmp_path, model, videos):
    paths = [str(video(f"dev/{f}")) for f in sorted(dev_clips())[:4]]
    clips = torch.stack([model.read_clips(p)[0] for p in paths])
    mine = tmp_path / "mine"
    head = save_random_head(mine, model, clips, ["x", "y"], hidden=8)
    folder_config.write_trained_on(mine, [file_digest(p) for p in paths])  # as train does
    out = tmp_path / "mine-int8"
    result = quantize(str(mine), [str(videos / "dev")], out, max_clips=3)
    assert (result.clips, result.videos) == (3, 3)
    assert json.loads((out / "vidclass.json").read_text())["base_copied"] is True
    moved = tmp_path / "elsewhere"
    shutil.move(out, moved)
    shutil.rmtree(mine)  # the quantized folder keeps its own copy of the head
    int8 = load_model(str(moved))
    assert int8.labels == ("x", "y") and int8.precision == "int8"
    # The videos it was trained on come along: evaluate still tells them.
    assert used_in_training(int8, [*paths, str(video("arm_wrestling.mp4"))]) == 4
    reference = load_model(vidclass.DEFAULT_MODEL, precision="fp32", runtime="torch")
    with torch.no_grad():
        want = torch.softmax(head(reference.embed(clips)), dim=-1)
    got = int8.activate(int8.logits(clips))
    assert float((got - want).abs().max()) < 0.15


def test_quantize_leaves_a_folder_that_is_not_its_own_alone(tmp_path, videos):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(VidclassError, match="not empty|not a quantized model folder"):
            quantize(vidclass.DEFAULT_MODEL, [str(videos / "dev")], theirs, force=force)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(VidclassError, match="no videos"):
        quantize(vidclass.DEFAULT_MODEL, [str(empty)], tmp_path / "out")
    assert not (tmp_path / "out").exists()
