"""Every shared video gets a result or a one-line error; labelled clips get their label."""

import pytest

import vidclass

from .conftest import VIDEOS, dev_clips, labelled_clips, manifest, video

UNREADABLE = {"odd/empty.mp4", "odd/not_a_video.mp4", "odd/truncated_no_index.mp4"}


def _all_videos():
    files = [r["file"] for r in manifest()]
    return files or pytest.skip(f"no MANIFEST.tsv under {VIDEOS}")


def test_manifest_lists_every_file_on_disk(videos):
    on_disk = {str(p.relative_to(videos)) for p in videos.rglob("*") if p.is_file()} - {
        "MANIFEST.tsv",
        "dev/MANIFEST.tsv",
    }
    listed = set(_all_videos()) | {f"dev/{name}" for name in dev_clips()}
    assert on_disk <= listed, "new files must be added to the manifest test"


@pytest.mark.slow
def test_every_file_gets_a_result_or_a_one_line_error(model, videos):
    """All of them in one run, whose forward passes mix clips of different videos: each
    labelled clip still gets its own label first."""
    files = _all_videos()
    labels = dict(labelled_clips())
    results = list(model.classify_many([videos / f for f in files], top_k=3))
    assert [r.video for r in results] == [str(videos / f) for f in files]
    for f, r in zip(files, results, strict=True):
        if f in UNREADABLE:
            assert r.predictions is None
            assert r.error.startswith(str(videos / f) + ": ") and "\n" not in r.error
        else:
            assert r.error is None, r.error
            assert len(r.predictions) == 3
            scores = [p["score"] for p in r.predictions]
            assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
            if f in labels:
                assert r.predictions[0]["label"] == labels[f], f
    assert len(labels) >= 10, f"only {len(labels)} labelled clips in the manifest"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "label"), labelled_clips() or [("-", "-")])
def test_labelled_clip_top1(model, name, label):
    if name == "-":
        pytest.skip(f"no labelled clips in {VIDEOS}")
    top = model.classify(video(name), top_k=1)[0]
    assert top["label"] == label


def test_truncated_file_warns_and_uses_the_part_that_decodes(model, caplog):
    top = model.classify(video("odd/truncated.mkv"), top_k=1)[0]
    assert top["label"] == "flipping pancake"
    assert any("truncated.mkv" in m and "decode" in m for m in caplog.messages)


def test_damage_is_reported_once(model, caplog):
    model.classify(video("odd/truncated_faststart.mp4"), top_k=1)
    damaged = [m for m in caplog.messages if "damaged data" in m]
    assert len(damaged) == 1 and "truncated_faststart.mp4" in damaged[0]


def test_too_few_frames_still_gives_a_result(model, caplog):
    """Five frames of a football match (a goal), fewer than a clip takes: repeated up to
    the clip's length, they are still classified as what they show."""
    caplog.set_level("INFO", logger="vidclass")
    preds = model.classify(video("odd/five_frames.mp4"), top_k=5)
    assert any("five_frames.mp4: short video, frames repeated" in m for m in caplog.messages)
    assert len(preds) == 5
    scores = [p["score"] for p in preds]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    assert preds[0]["label"] == "shooting goal (soccer)"
    assert {"kicking soccer ball", "shooting goal (soccer)"} <= {p["label"] for p in preds}


def test_several_clips_over_the_whole_video(model):
    path = video("long/scene_cuts_bikes.mp4")
    one = model.classify(path, top_k=400)
    three = model.classify(path, top_k=400, clips=3)
    assert sum(p["score"] for p in three) == pytest.approx(1.0, abs=1e-4)
    assert {p["label"]: p["score"] for p in one} != {p["label"]: p["score"] for p in three}


def test_python_api_shape_like_the_transformers_pipeline():
    preds = vidclass.classify(video("arm_wrestling.mp4"), top_k=2, precision="fp32")
    assert isinstance(preds, list) and len(preds) == 2
    assert set(preds[0]) == {"label", "score"}
    assert isinstance(preds[0]["label"], str) and isinstance(preds[0]["score"], float)
    assert preds[0]["label"] == "arm wrestling"


def test_bad_arguments_raise_the_user_error(model):
    with pytest.raises(vidclass.VidclassError, match="top_k"):
        model.classify(video("arm_wrestling.mp4"), top_k=0)
    with pytest.raises(vidclass.VidclassError, match="unknown model"):
        vidclass.load_model("no.such.model")
    assert len(model.classify(video("cleaning_pool_1s.mp4"), top_k=1000)) == 400
