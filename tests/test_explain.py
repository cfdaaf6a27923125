"""Explanations: the seconds and the regions of the picture behind a label, by occlusion,
on videos made of real clips (two clips one after the other; a 2x2 mosaic)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidclass import Explanation, VidclassError, explain
from vidclass.cli.explain import passes_line
from vidclass.explanations import cells, fill_colour
from vidclass.models.spec import InputSpec
from vidclass.video import read_frames

from .conftest import run_cli, video, write_video

ARM, SPAGHETTI = "arm wrestling", "eating spaghetti"
JOIN = 4.0  # seconds of spaghetti, then as many of arm wrestling
QUADRANT = (128, 170)  # (height, width): the mosaic is the size of arm_wrestling.mp4


def _frames(name: str, start: float, seconds: float, size: tuple[int, int]) -> list:
    times = list(start + np.arange(0, seconds - 1e-6, 1 / 25))
    return read_frames(video(name), times, size=size).frames


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    """4 s of eating spaghetti, then 4 s of arm wrestling, at 25 fps."""
    first = _frames("eating_spaghetti.mp4", 2.0, JOIN, (240, 320))
    second = _frames("arm_wrestling.mp4", 2.0, JOIN, (240, 320))
    return write_video(tmp_path_factory.mktemp("two") / "two.mp4", first + second)


def _mosaic(folder, where: tuple[int, int]):
    """2.56 s (one window) of a 2x2 mosaic: arm wrestling in quadrant `where` (row,
    column), eating spaghetti and soccer juggling in two others, still grey in the last."""
    arm = _frames("arm_wrestling.mp4", 3.0, 2.56, QUADRANT)
    others = [
        _frames("eating_spaghetti.mp4", 3.0, 2.56, QUADRANT),
        _frames("soccer_juggling.avi", 3.0, 2.56, QUADRANT),
        [np.full((*QUADRANT, 3), 128, np.uint8)] * len(arm),
    ]
    quadrants = {}
    for row in range(2):
        for column in range(2):
            quadrants[row, column] = arm if (row, column) == where else others.pop(0)
    frames = [
        np.concatenate(
            [np.concatenate([quadrants[r, 0][t], quadrants[r, 1][t]], axis=1) for r in range(2)]
        )
        for t in range(len(arm))
    ]
    return write_video(folder / f"mosaic_{where[0]}{where[1]}.mp4", frames)


# -- without the model ---------------------------------------------------------------------
def test_the_cells_split_the_picture_exactly():
    seen = np.zeros((224, 224), int)
    found = list(cells(224, 224, 3))
    assert [(i, j) for i, j, _, _ in found] == [(i, j) for i in range(3) for j in range(3)]
    for _, _, ys, xs in found:
        seen[ys, xs] += 1
    assert (seen == 1).all()
    assert len(list(cells(224, 224, 8))) == 64


def test_the_grey_is_what_the_model_input_centres_on():
    assert fill_colour(InputSpec(64, 25.0, value_range=(-1.0, 1.0))).tolist() == [128] * 3
    imagenet = InputSpec(16, None, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert fill_colour(imagenet).tolist() == [124, 116, 104]


def test_an_explanation_is_json():
    ex = Explanation("v.mp4", "a", 0.5, 2.56, 1.0, 2, 10, 5, [], [])
    d = json.loads(json.dumps(ex.as_dict()))
    assert list(d)[:5] == ["video", "label", "passes", "seconds", "regions"]


# -- with the model ------------------------------------------------------------------------
@pytest.mark.slow
def test_the_importance_falls_on_the_seconds_showing_the_label(model, two_clips):
    for label, before, after in ((ARM, -1, 1), (SPAGHETTI, 1, -1)):
        ex = explain(model, two_clips, label=label, stride=2.0, grid=2, budget=8, per_window=True)
        assert ex.label == label
        spans = [(s.start, s.end) for s in ex.seconds]
        assert spans == [(0.0, 2.56), (2.0, 4.56), (4.0, 6.56), (5.44, 8.0)]
        first, *_, third, fourth = ex.seconds  # wholly before, and wholly after, the join
        assert np.sign(first.importance) == before and abs(first.importance) > 0.3
        for s in (third, fourth):
            assert np.sign(s.importance) == after and abs(s.importance) > 0.3
        # The whole video's score is the mean of its windows', and leaving a window out
        # lowers it by its importance over the other windows (n - 1).
        scores = np.array([s.score for s in ex.seconds])
        assert ex.score == pytest.approx(scores.mean(), abs=1e-5)
        for i, s in enumerate(ex.seconds):
            drop = ex.score - np.delete(scores, i).mean()
            assert s.importance == pytest.approx(drop * len(scores), abs=1e-4)
        # 4 windows, then the budget left covers one window's 2x2 grid: the most important.
        assert ex.passes == 8 and len(ex.regions) == 1
        best = max(ex.seconds, key=lambda s: s.importance)
        assert (ex.regions[0].start, ex.regions[0].end) == (best.start, best.end)
        assert "covers the regions of 1 of 4 windows" in ex.note
        assert len(ex.frames) == 1 and ex.frames[0].shape == (224, 224, 3)


@pytest.mark.slow
@pytest.mark.parametrize("where", [(1, 1), (0, 0)])
def test_the_regions_fall_on_the_quadrant_showing_the_label(model, tmp_path, where):
    path = _mosaic(tmp_path, where)
    seen = []
    ex = explain(
        model,
        path,
        label=ARM,
        grid=2,
        budget=5,
        per_window=True,
        progress=lambda *a: seen.append(a),
    )
    assert ex.passes == 5 and ex.note is None
    assert seen[0] == (1, 1) and seen[-1] == (5, 5)  # the window, then its 4 copies
    assert [(s.start, s.end) for s in ex.seconds] == [(0.0, 2.56)]
    (region,) = ex.regions
    assert region.score > 0.5
    grid = np.array(region.grid)
    assert grid.shape == (2, 2)
    others = np.delete(grid.ravel(), where[0] * 2 + where[1])
    assert grid[where] > 0.5 * region.score and grid[where] > others.max() + 0.3, grid


@pytest.mark.slow
def test_the_label_is_the_videos_top_one_by_default_and_a_budget_of_windows_explains_seconds(
    model, two_clips
):
    # windows scored alone, as the greyed-out copies are (not off the video's map)
    tl = model.timeline(two_clips, stride=2.0, per_window=True)
    ex = explain(model, two_clips, stride=2.0, budget=4, per_window=True)
    assert ex.label == tl.predictions[0]["label"]
    assert ex.score == pytest.approx(tl.predictions[0]["score"], abs=1e-4)
    assert ex.passes == 4 and ex.regions == [] and "regions of 0 of 4 windows" in ex.note
    with pytest.raises(VidclassError, match=r"its 4 windows .* over the budget of 3"):
        explain(model, two_clips, stride=2.0, budget=3, per_window=True)
    # off the map (the default), the video's 8 s take 5 passes at most
    with pytest.raises(VidclassError, match=r"its map .* takes 5 passes, over the budget of 4"):
        explain(model, two_clips, budget=4)


@pytest.mark.slow
def test_overlapping_windows_are_read_off_the_video_s_map_and_regions_compare_windows_alone(
    model, two_clips
):
    # 7 windows at a 1 s stride, where one map of the 8 s video takes 5 passes at most
    ex = explain(model, two_clips, label=ARM, grid=2, budget=15)
    table = run_cli("explain", two_clips, "--label", ARM, "--grid", "2", "--budget", "15")
    assert table.returncode == 0 and table.stdout.splitlines()[-1] == passes_line(ex)
    tl = model.timeline(two_clips, top_k=len(model.labels))  # shared, as a timeline is
    assert len(ex.seconds) == len(tl.windows) == 7 and 0 < ex.map_passes <= 5
    for s, w in zip(ex.seconds, tl.windows, strict=True):
        assert (s.start, s.end) == (w.start, w.end)
        want = next(p["score"] for p in w.predictions if p["label"] == ARM)
        assert s.score == pytest.approx(want, abs=1e-4)
    # each explained window costs itself alone, then its 4 greyed-out copies
    assert ex.passes == ex.map_passes + 5 * len(ex.regions) <= 15 and len(ex.regions) >= 1
    alone = model.timeline(two_clips, per_window=True, top_k=len(model.labels))
    for region in ex.regions:
        w = next(w for w in alone.windows if (w.start, w.end) == (region.start, region.end))
        want = next(p["score"] for p in w.predictions if p["label"] == ARM)
        assert region.score == pytest.approx(want, abs=1e-4)
    line = passes_line(ex)
    assert line == (
        f"{ex.passes} passes of a budget of 15: {ex.map_passes} over the video for its 7 "
        f"windows, {len(ex.regions)} window{'s' if len(ex.regions) > 1 else ''} alone, "
        f"{4 * len(ex.regions)} greyed-out clips"
    )
    assert ex.as_dict()["map_passes"] == ex.map_passes


def test_bad_input_is_a_clear_error(model, tmp_path):
    good = video("cleaning_pool_1s.mp4")
    with pytest.raises(VidclassError, match=r"no label 'arm wrestlin' \(closest: arm wrestling"):
        explain(model, good, label="arm wrestlin")
    with pytest.raises(VidclassError, match="^budget must be a whole number from 1 to 100000"):
        explain(model, good, budget=0)
    for grid in (1, 9):
        with pytest.raises(VidclassError, match="^grid must be a whole number from 2 to 8"):
            explain(model, good, grid=grid)
    with pytest.raises(VidclassError, match="not_a_video.mp4"):
        explain(model, video("odd/not_a_video.mp4"))
    with pytest.raises(VidclassError, match="^model must be"):
        explain("", good)


@pytest.mark.slow
def test_the_command(two_clips, tmp_path):
    pytest.importorskip("matplotlib", reason="--format png needs matplotlib (the plot extra)")
    options = ["--label", ARM, "--stride", "2", "--grid", "2", "--budget", "8", "--per-window"]
    run = run_cli("explain", two_clips, "--format", "json", *options)
    assert run.returncode == 0, run.stderr
    ex = json.loads(run.stdout)
    assert list(ex)[:5] == ["video", "label", "passes", "seconds", "regions"]
    assert ex["label"] == ARM and ex["passes"] == 8
    assert [set(s) >= {"start", "end", "importance"} for s in ex["seconds"]] == [True] * 4
    (region,) = ex["regions"]
    assert set(region) >= {"start", "end", "grid"} and np.shape(region["grid"]) == (2, 2)

    table = run_cli("explain", two_clips, *options)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"why {ARM} in ")
    assert lines[-1] == "8 passes of a budget of 8: 4 windows, 4 greyed-out clips"
    assert lines[2].split()[:2] == ["0.00", "2.56"] and lines[2].endswith("-" * 10)

    png = tmp_path / "why.png"
    drawn = run_cli("explain", two_clips, "--format", "png", "--out", png, *options)
    assert drawn.returncode == 0, drawn.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "8 passes of a budget of 8" in drawn.stdout

    bad = run_cli("explain", two_clips, "--label", "arm wrestlin")
    assert bad.returncode == 1 and "no label 'arm wrestlin' (closest: arm wrestling" in bad.stderr
    no_out = run_cli("explain", two_clips, "--format", "png")
    assert no_out.returncode == 1 and "give --out FILE.png" in no_out.stderr
    wide = run_cli("explain", two_clips, "--grid", "9")
    assert wide.returncode == 2 and "--grid: must be a whole number from 2 to 8" in wide.stderr
