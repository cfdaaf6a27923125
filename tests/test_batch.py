"""Batch runs: inputs, resumable result files, decoding processes, killed runs."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidclass import VidclassError
from vidclass.batch import classify_videos, expand_inputs, open_store

from .conftest import link_videos, video

CLIPS = [
    "arm_wrestling.mp4",
    "cleaning_pool_1s.mp4",
    "flipping_pancake.mkv",
    "soccer_juggling.avi",
    "eating_spaghetti.mp4",
    "cricket_shot.gif",
]


def clip_folder(tmp_path: Path, names=CLIPS) -> Path:
    return link_videos(tmp_path / "clips", names)


# -- inputs ------------------------------------------------------------------------------
def test_folders_globs_and_lists_expand_to_videos(tmp_path):
    top = tmp_path / "top"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / ".hidden").mkdir()
    for rel in [
        "b.mp4",
        "a.MKV",
        "notes.txt.bak",
        "sub/c.webm",
        "sub/deeper/d.avi",
        ".hidden/e.mp4",
    ]:
        (top / rel).write_bytes(b"x")
    assert expand_inputs([str(top)]) == [str(top / "a.MKV"), str(top / "b.mp4")]
    assert expand_inputs([str(top)], recursive=True) == [
        str(top / "a.MKV"),
        str(top / "b.mp4"),
        str(top / "sub" / "c.webm"),
        str(top / "sub" / "deeper" / "d.avi"),
    ]
    assert expand_inputs([str(top / "*.mp4")]) == [str(top / "b.mp4")]
    assert expand_inputs([str(top / "**" / "*.avi")], recursive=True) == [
        str(top / "sub" / "deeper" / "d.avi")
    ]
    listing = top / "sub" / "list.txt"
    listing.write_text("# my videos\nc.webm\n\ndeeper/d.avi\n/abs/elsewhere.mp4\n")
    assert expand_inputs([str(listing)]) == [
        str(top / "sub" / "c.webm"),
        str(top / "sub" / "deeper" / "d.avi"),
        "/abs/elsewhere.mp4",
    ]
    # each once, in the order named; a missing file stays, to be reported as its error
    both = expand_inputs([str(top / "b.mp4"), str(top), "gone.mp4"])
    assert both == [str(top / "b.mp4"), str(top / "a.MKV"), "gone.mp4"]
    with pytest.raises(VidclassError, match="no videos to classify"):
        expand_inputs([str(top / "sub" / "deeper" / "*.mp4")])


# -- result files --------------------------------------------------------------------------
RESULT = {"video": "a.mp4", "model": "m", "predictions": [{"label": "x", "score": 0.5}]}
FAILED = {"video": "b.mp4", "model": "m", "error": "b.mp4: empty file (0 bytes)"}


@pytest.mark.parametrize("name", ["r.jsonl", "r.csv", "r.sqlite"])
def test_result_files_reopen_with_what_they_hold(tmp_path, name):
    path = tmp_path / name
    store = open_store(path, "m", top_k=1)
    assert store.done == set()
    store.write(RESULT)
    store.write(FAILED)
    store.close()
    again = open_store(path, "m", top_k=1)
    assert again.done == {"a.mp4", "b.mp4"}
    again.write({**RESULT, "video": "c.mp4"})
    again.close()
    assert open_store(path, "m", top_k=1).done == {"a.mp4", "b.mp4", "c.mp4"}
    with pytest.raises(VidclassError, match="holds results of model 'm'"):
        open_store(path, "other", top_k=1)


def test_a_torn_last_line_is_cut_off_and_redone(tmp_path):
    path = tmp_path / "r.jsonl"
    store = open_store(path, "m", top_k=1)
    store.write(RESULT)
    store.close()
    with open(path, "a") as f:  # what a kill in the middle of a write leaves
        f.write(json.dumps(FAILED)[:20])
    store = open_store(path, "m", top_k=1)
    assert store.done == {"a.mp4"}
    store.write(FAILED)
    store.close()
    lines = path.read_text().splitlines()
    assert [json.loads(ln)["video"] for ln in lines] == ["a.mp4", "b.mp4"]


def test_bad_output_names_are_refused(tmp_path):
    with pytest.raises(VidclassError, match="unknown results format"):
        open_store(tmp_path / "r.xlsx", "m", 1)
    with pytest.raises(VidclassError, match="no such folder"):
        open_store(tmp_path / "nope" / "r.jsonl", "m", 1)
    (tmp_path / "junk.jsonl").write_text("hello\n")
    with pytest.raises(VidclassError, match="not a vidclass result line"):
        open_store(tmp_path / "junk.jsonl", "m", 1)
    (tmp_path / "r.csv").write_text("video,model,error,label_1,score_1\n")
    with pytest.raises(VidclassError, match="other columns"):
        open_store(tmp_path / "r.csv", "m", top_k=3)


# -- the runner ------------------------------------------------------------------------------
@pytest.mark.slow
def test_batched_run_with_workers_matches_one_video_at_a_time(model, tmp_path):
    names = ["arm_wrestling.mp4", "soccer_juggling.avi", "cleaning_pool_1s.mp4"]
    paths = [str(video(n)) for n in names] + [str(video("odd/empty.mp4"))]
    alone = {p: model.classify(p, top_k=3) for p in paths[:3]}
    out = tmp_path / "r.jsonl"
    seen = []
    summary = classify_videos(
        model, paths, out, top_k=3, workers=1, batch_size=2, on_result=seen.append
    )
    assert (summary.succeeded, summary.failed, summary.skipped) == (3, 1, 0)
    assert 0 < summary.model_seconds < summary.wall_seconds
    records = {r["video"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == set(paths) and len(seen) == 4
    assert "empty file" in records[paths[3]]["error"]
    for p in paths[:3]:
        got = records[p]["predictions"]
        assert [g["label"] for g in got] == [a["label"] for a in alone[p]]
        for g, a in zip(got, alone[p], strict=True):
            assert g["score"] == pytest.approx(a["score"], abs=1e-4)
    again = classify_videos(model, paths, out, top_k=3, workers=1)
    assert (again.succeeded, again.failed, again.skipped) == (0, 0, 4)
    assert len(out.read_text().splitlines()) == 4


# -- killed runs, for real -------------------------------------------------------------------
def _start(args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "vidclass", "classify", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, VIDCLASS_OFFLINE="1"),
        **kw,
    )


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.2)


def _finished(path: Path) -> list[str]:
    if path.suffix == ".jsonl":
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(ln)["video"] for ln in lines]
    if path.suffix == ".csv":
        rows = list(csv.reader(path.open())) if path.exists() else []
        return [r[0] for r in rows[1:]]
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        try:
            return [r[0] for r in conn.execute("SELECT video FROM results ORDER BY rowid")]
        except sqlite3.OperationalError:  # the table is not made yet
            return []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("name", "sig"),
    [("r.jsonl", signal.SIGKILL), ("r.sqlite", signal.SIGKILL), ("r.csv", signal.SIGINT)],
)
def test_an_interrupted_run_resumes_without_losing_or_repeating(tmp_path, name, sig):
    folder = clip_folder(tmp_path)
    (folder / "broken.mp4").symlink_to(video("odd/not_a_video.mp4"))
    out = tmp_path / name
    args = [folder, "-o", out, "-k", "2", "--workers", "1", "--precision", "fp32"]
    proc = _start(args)
    try:
        _wait_for(lambda: len(_finished(out)) >= 2 or proc.poll() is not None, 240, "2 results")
        assert proc.poll() is None, (
            f"the run ended before it could be interrupted: {proc.stderr.read()}"
        )
        workers = _children(proc.pid)
        assert workers, "no decoding process was running"
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    # the decoders do not outlive the run
    _wait_for(lambda: not any(_alive(w) for w in workers), 20, "decoding processes to exit")
    before = _finished(out)
    assert 2 <= len(before) < len(CLIPS) + 1 and len(set(before)) == len(before)

    rerun = _start(args)
    _, stderr = rerun.communicate(timeout=600)
    after = _finished(out)
    expected = sorted(str(folder / n) for n in [*CLIPS, "broken.mp4"])
    assert sorted(after) == expected  # every video once: none lost, none repeated
    assert after[: len(before)] == before
    failed = 0 if str(folder / "broken.mp4") in before else 1
    classified = len(expected) - len(before) - failed
    summary = f"{classified} classified, {failed} failed, {len(before)} skipped (already in {out})"
    assert f"vidclass: {summary}" in stderr
    assert "\r" not in stderr and "it/s" not in stderr  # no progress bar when piped
    assert rerun.returncode == failed, stderr
    if out.suffix == ".csv":
        rows = list(csv.reader(out.open()))
        assert all(len(r) == len(rows[0]) == 9 for r in rows)
    if out.suffix == ".sqlite":
        with sqlite3.connect(out) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_video_named_twice_gets_two_results(model):
    clip = str(video("cleaning_pool_1s.mp4"))
    results = list(model.classify_many([clip, clip], top_k=2, workers=1, batch_size=2))
    assert [r.video for r in results] == [clip, clip]
    assert results[0].predictions == results[1].predictions
    assert results[0].predictions[0]["label"] == "cleaning pool"


def test_a_parquet_results_folder_reads_as_one_table_and_old_folders_resume(tmp_path):
    """The marker's leading "_" makes pyarrow (and pandas) skip it when reading the folder;
    a folder with the marker's earlier name resumes as before."""
    pytest.importorskip("pyarrow", reason="Parquet results need pyarrow (the ray extra)")
    import pyarrow.parquet as pq

    from vidclass.batch.parquet_folder import OLD_MARKER, ParquetFolder, PartWriter
    from vidclass.results import VideoResult

    folder = ParquetFolder(tmp_path / "parts", "i3d.kinetics400", 1)
    try:
        PartWriter(str(folder.path), folder.model, 1)(
            [VideoResult("a.mp4", [{"label": "x", "score": 0.9}])]
        )
    finally:
        folder.close()
    assert pq.read_table(tmp_path / "parts").column("video").to_pylist() == ["a.mp4"]

    old = tmp_path / "old"
    old.mkdir()
    (old / OLD_MARKER).write_text('{"vidclass": "results", "model": "i3d.kinetics400", "top_k": 1}')
    for part in (tmp_path / "parts").glob("part-*.parquet"):
        (old / part.name).write_bytes(part.read_bytes())
    again = ParquetFolder(old, "i3d.kinetics400", 1)
    try:
        assert again.done == {"a.mp4"}
    finally:
        again.close()
    assert sorted(p.name for p in old.iterdir() if not p.name.startswith("part-")) == [OLD_MARKER]
