"""Every script in examples/ runs as a user runs it, on the shared videos, and prints
what its docstring promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MISSING, VIDEOS, link_videos

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VIDEOS.is_dir(), reason=MISSING),
]


def run_example(name: str, *args, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_every_example_has_a_test():
    tested = {"classify_folder_to_csv.py", "tag_and_search_a_gallery.py"}
    tested |= {"train_and_evaluate.py", "live_to_jsonl.py"}
    assert {p.name for p in (ROOT / "examples").glob("*.py")} == tested


def test_classify_a_folder_into_a_csv(tmp_path):
    folder = link_videos(tmp_path / "videos", ["arm_wrestling.mp4", "eating_spaghetti.mp4"])
    out = tmp_path / "results.csv"
    done = run_example("classify_folder_to_csv.py", folder, out)
    assert "2 classified, 0 failed" in done.stdout
    rows = out.read_text().splitlines()
    assert len(rows) == 3 and "arm wrestling" in next(r for r in rows if "arm_wrestling" in r)
    again = run_example("classify_folder_to_csv.py", folder, out)
    assert "0 classified, 0 failed, 2 skipped" in again.stdout


def test_tag_and_search_a_gallery(tmp_path):
    folder = link_videos(tmp_path / "videos", ["arm_wrestling.mp4", "eating_spaghetti.mp4"])
    done = run_example("tag_and_search_a_gallery.py", folder, tmp_path / "g.sqlite", "wrestling")
    lines = done.stdout.splitlines()
    hits = [ln for ln in lines if "arm_wrestling.mp4" in ln and "(arm wrestling" in ln]
    assert hits and not any("eating_spaghetti.mp4" in ln for ln in lines if ln[:1] == "0")
    assert any("videos tagged" in ln for ln in lines)


def test_train_and_evaluate(tmp_path):
    train = tmp_path / "train"
    link_videos(train / "squat", ["dev/squat_1.mp4", "dev/squat_2.mp4"])
    link_videos(train / "push_up", ["dev/push_up_1.mp4", "dev/push_up_2.mp4"])
    test = tmp_path / "test"
    link_videos(test / "squat", ["dev/squat_3.mp4"])
    done = run_example("train_and_evaluate.py", train, test, tmp_path / "mine")
    assert "trained: ['push_up', 'squat']" in done.stdout
    assert "accuracy on 1 test videos:" in done.stdout
    assert "squat_3.mp4: squat ->" in done.stdout
    assert (tmp_path / "mine" / "vidclass.json").is_file()


def test_label_a_live_source_into_json_lines(tmp_path):
    out = tmp_path / "events.jsonl"
    source = VIDEOS / "flipping_pancake.mkv"  # a file is followed as it grows, then ends
    done = run_example("live_to_jsonl.py", source, out, 30)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    windows = [e for e in events if e["type"] == "window"]
    assert windows and all(len(w["predictions"]) == 3 for w in windows)
    assert "windows" in done.stdout and "ended:" in done.stdout
