"""No non-finite score leaves vidclass; one writer per results file; a CSV torn inside a
quoted name is resumed."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import vidclass
from vidclass import VidclassError
from vidclass.batch import classify_videos, open_store
from vidclass.formats import csv_header, csv_line, csv_row

from .conftest import run_cli, video

BAD = "arm_wrestling.mp4"  # its scores come out NaN from the damaged model below
GOOD = "cleaning_pool_1s.mp4"
CPU = ["--precision", "fp32", "--runtime", "torch", "--workers", "0"]


# -- non-finite scores ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def nan_folder(model, tmp_path_factory) -> Path:
    """A trained model folder whose head weights hold an infinity that BAD's features
    turn into NaN scores and GOOD's into finite ones: a damaged model on disk, run by the
    real runtime, that fails one video of a run and not the other."""
    import torch

    from vidclass.models import folder_config, trained
    from vidclass.models.head import Head

    bad, good = (
        torch.as_tensor(model.embed(np.stack(model.read_clips(video(n)))))[0] for n in (BAD, GOOD)
    )
    k = int((bad - good).abs().argmax())
    head = Head(1024, 2, hidden=1, dropout=0.0).eval()
    with torch.no_grad():
        head.mean.copy_((bad + good) / 2)  # standardised, BAD and GOOD lie either side of 0
        first, last = head.net[1], head.net[4]
        first.weight.zero_()
        first.bias.zero_()
        # ReLU(+inf) for BAD, ReLU(-inf) = 0 for GOOD; then [inf, 0 * inf = NaN] for BAD
        first.weight[0, k] = math.inf if bad[k] > good[k] else -math.inf
        last.weight.copy_(torch.tensor([[1.0], [0.0]]))
        last.bias.zero_()
    folder = tmp_path_factory.mktemp("damaged") / "head"
    config = {
        "backbone": vidclass.DEFAULT_MODEL,
        "labels": ["abseiling", "archery"],
        "multi_label": False,
        "threshold": None,
        "input": folder_config.spec_to_dict(model.spec),
        "head": {"in_dim": 1024, "hidden": 1, "dropout": 0.0, "prior": False},
        "training": {"videos": 0},
    }
    trained.save(folder, config, head)
    return folder


@pytest.fixture(scope="module")
def nan_model(nan_folder):
    return vidclass.load_model(str(nan_folder), precision="fp32", runtime="torch")


def _no_nan_in(path: Path) -> None:
    if path.suffix == ".sqlite":
        with sqlite3.connect(path) as conn:
            text = json.dumps(conn.execute("SELECT * FROM results").fetchall())
    else:
        text = path.read_text()
    assert not re.search(r"\b(nan|inf|infinity)\b", text, re.IGNORECASE), text


def _by_video(path: Path) -> dict[str, dict]:
    """{video: {"error"|"label": ...}} of a results file."""
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return {
            r["video"]: {"error": r.get("error"), "predictions": r.get("predictions")} for r in rows
        }
    if path.suffix == ".csv":
        rows = list(csv.DictReader(path.open(newline="")))
        return {
            r["video"]: {"error": r["error"] or None, "predictions": r["label_1"]} for r in rows
        }
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT video, error, predictions FROM results").fetchall()
    return {v: {"error": e, "predictions": p} for v, e, p in rows}


def test_the_damaged_model_gives_nan_for_one_video_only(nan_model):
    """The fixture does what the tests below rely on (checked below the driver)."""
    for name, finite in ((BAD, False), (GOOD, True)):
        x = np.stack(nan_model.read_clips(video(name)))
        scores = nan_model.activate(nan_model.logits(x))
        assert bool(np.isfinite(scores).all()) is finite, (name, scores)


def test_a_video_with_nan_scores_is_one_error_line_and_the_run_goes_on(nan_folder, tmp_path):
    out = tmp_path / "results.jsonl"
    bad, good = str(video(BAD)), str(video(GOOD))
    done = run_cli("classify", bad, good, "--model", nan_folder, "-o", out, *CPU)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [ln for ln in done.stderr.splitlines() if "non-finite" in ln]
    assert len(errors) == 1 and errors[0].startswith(f"vidclass: error: {bad}: "), done.stderr
    assert "the model gave non-finite scores; its cached graph may be damaged: " in errors[0]
    assert "1 classified, 1 failed" in done.stderr
    _no_nan_in(out)
    results = _by_video(out)
    assert "non-finite scores" in results[bad]["error"]
    assert results[good]["error"] is None and results[good]["predictions"]


@pytest.mark.slow
def test_stdout_formats_carry_the_error_not_nan(nan_folder):
    bad, good = str(video(BAD)), str(video(GOOD))
    done = run_cli("classify", bad, good, "--model", nan_folder, "--format", "csv", *CPU)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert not re.search(r"\b(nan|inf)\b", done.stdout, re.IGNORECASE), done.stdout
    rows = {r["video"]: r for r in csv.DictReader(io.StringIO(done.stdout))}
    assert "non-finite scores" in rows[bad]["error"] and rows[good]["label_1"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r.csv", "r.sqlite"])
def test_results_files_record_the_error_not_nan(nan_model, tmp_path, name):
    out = tmp_path / name
    bad, good = str(video(BAD)), str(video(GOOD))
    summary = classify_videos(nan_model, [bad, good], out, top_k=2, workers=0)
    assert (summary.succeeded, summary.failed) == (1, 1)
    _no_nan_in(out)
    results = _by_video(out)
    assert "non-finite scores" in results[bad]["error"]
    assert results[good]["error"] is None and results[good]["predictions"]


def test_one_video_and_a_timeline_raise_a_vidclass_error(nan_model):
    from vidclass.timelines import compute

    with pytest.raises(VidclassError, match="non-finite scores"):
        nan_model.classify(str(video(BAD)))
    with pytest.raises(VidclassError, match="non-finite scores; its cached graph may be damaged"):
        compute(nan_model, str(video(BAD)))
    assert nan_model.classify(str(video(GOOD)))  # the same model, a finite video


def test_features_for_a_gallery_fail_the_video_not_the_run(nan_model):
    """What `vidclass index` runs (scores and features from one pass), many videos."""
    from vidclass.engine import Clips, Driver, InProcess, Work

    driver = Driver(nan_model, Work(Clips(2), outputs="both"), InProcess(), batch_size=4)
    bad, good = list(driver.run([str(video(BAD)), str(video(GOOD))]))
    assert "non-finite scores" in bad.error and bad.scores is None and bad.features is None
    assert good.error is None and np.isfinite(good.features).all()
    assert (driver.stats.succeeded, driver.stats.failed) == (1, 1)


def test_the_servers_batched_forward_passes_raise_it_too(nan_model):
    from vidclass.engine import Work
    from vidclass.serve.batching import Batcher

    with ThreadPoolExecutor(1) as model_thread:
        batcher = Batcher(model_thread, 4, busy=lambda: 1)
        with pytest.raises(VidclassError, match="non-finite scores"):
            batcher.run(batcher.view(nan_model, None), str(video(BAD)), Work())
        assert batcher.run(batcher.view(nan_model, None), str(video(GOOD)), Work()).predictions


@pytest.mark.slow
def test_the_server_answers_nan_scores_as_its_own_fault(nan_folder, tmp_path):
    """Over HTTP: 500 (the model's fault, not the upload's) with the message, and the
    next video is answered."""
    import urllib.error
    import urllib.request

    from .conftest import start_server, stop_server

    proc, url, _ = start_server(
        tmp_path, "--model", str(nan_folder), "--precision", "fp32", "--runtime", "torch"
    )
    try:

        def post(name):
            body = video(name).read_bytes()
            request = urllib.request.Request(
                f"{url}/v1/classify", data=body, headers={"Content-Type": "video/mp4"}
            )
            try:
                with urllib.request.urlopen(request, timeout=300) as answer:
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, body = post(BAD)
        assert status == 500 and "non-finite scores" in body["detail"], body
        assert "nan" not in json.dumps(body).replace("non-finite", "").lower()
        status, body = post(GOOD)
        assert status == 200 and body["predictions"], body
    finally:
        stop_server(proc)


@pytest.mark.parametrize("shared", [False, True])
def test_a_live_window_with_nan_scores_ends_the_session_with_the_error(model, shared):
    from vidclass.live import LiveSession, parse_source

    class Damaged:  # the model's forward pass gives NaN, as a damaged graph would
        spec, labels, min_score, batch_size_hint = model.spec, model.labels, None, 1
        batch, activate, map_stream = model.batch, model.activate, model.map_stream
        # shared: windows read off the stream's map, whose head gives NaN
        temporal_map = model.temporal_map if shared else None

        def logits(self, x):
            return np.full((len(x), len(model.labels)), np.nan, dtype=np.float32)

        def logits_from_features(self, features):
            return self.logits(features)

    source = parse_source(str(video("flipping_pancake.mkv")))  # a file is followed: not MP4
    session = LiveSession(model, source, stride=1.0, runner=Damaged(), warm_up=False, duration=60)
    with pytest.raises(VidclassError, match="non-finite scores") as raised:
        for event in session:
            assert event.kind != "window", "a window was labelled from NaN"
    assert str(raised.value).startswith(f"{source.name}: ")


# -- one writer per results file -------------------------------------------------------------
HOLD = """
import sys
from vidclass.batch import open_store
store = open_store(sys.argv[1], sys.argv[2], 5)
print("held", flush=True)
sys.stdin.read()
store.close()
"""


def _holder(path: Path, model: str) -> subprocess.Popen:
    """Another process with `path` open as a results store, until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), model],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line == "held\n", proc.stderr.read()
    return proc


def _release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["results.jsonl", "results.csv", "results.sqlite"])
def test_a_second_run_on_a_results_file_being_written_is_refused(model, tmp_path, name):
    """Through a symlink too: the lock is the file's, not the name's."""
    out = tmp_path / name
    link = tmp_path / f"link-{name}"
    link.symlink_to(out)
    first, second = str(video(GOOD)), str(video("soccer_juggling.avi"))
    store = open_store(out, model.identity, 5)
    store.write(
        {"video": first, "model": model.identity, "predictions": [{"label": "x", "score": 0.5}]}
    )
    store.close()
    before = out.read_bytes()
    holder = _holder(out, model.identity)
    try:
        done = run_cli("classify", first, second, "-o", link, *CPU)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        expected = f"vidclass: error: {link} is being written by another run (pid {holder.pid})"
        assert len(lines) == 1 and lines[0].startswith(expected), done.stderr
        assert out.read_bytes() == before  # nothing written by the refused run
    finally:
        _release(holder)
    if name.endswith(".jsonl"):  # once the first has finished, a rerun finishes the work
        done = run_cli("classify", first, second, "-o", link, *CPU)
        assert done.returncode == 0, done.stderr
        assert sorted(_by_video(out)) == sorted([first, second])  # each once
        assert len(out.read_text().splitlines()) == 2


@pytest.mark.parametrize("name", ["r.jsonl", "r.csv", "r.sqlite"])
def test_one_store_per_results_file_whatever_its_name(tmp_path, name):
    out = tmp_path / name
    (tmp_path / "sub").mkdir()
    link = tmp_path / "sub" / f"link{out.suffix}"
    link.symlink_to(Path("..") / name)
    store = open_store(out, "m", 1)
    for other in (out, link):
        with pytest.raises(
            VidclassError, match=rf"being written by another run \(pid {os.getpid()}\)"
        ):
            open_store(other, "m", 1)
    store.write({"video": "a.mp4", "model": "m", "error": "a.mp4: broken"})
    store.close()
    again = open_store(link, "m", 1)  # free once the writer has closed it
    assert again.done == {"a.mp4"}
    again.close()


def test_a_refused_store_leaves_the_file_unchanged_and_unlocked(tmp_path):
    """A store that fails on opening (another model's results) lets go of the lock."""
    out = tmp_path / "r.csv"
    store = open_store(out, "m", 1)
    store.write({"video": "a.mp4", "model": "m", "error": "a.mp4: broken"})
    store.close()
    before = out.read_bytes()
    with pytest.raises(VidclassError, match="holds results of model 'm'"):
        open_store(out, "other", 1)
    assert out.read_bytes() == before
    open_store(out, "m", 1).close()


def test_a_parquet_results_folder_has_one_writer(tmp_path):
    pytest.importorskip("pyarrow", reason="needs the ray extra")
    folder = tmp_path / "parts"
    link = tmp_path / "link"
    folder.mkdir()
    link.symlink_to(folder)
    store = open_store(f"{folder}/", "m", 1)
    with pytest.raises(VidclassError, match=r"being written by another run \(pid"):
        open_store(f"{link}/", "m", 1)
    store.close()
    open_store(f"{link}/", "m", 1).close()


# -- a CSV torn inside a quoted name ---------------------------------------------------------
def test_a_csv_row_torn_anywhere_in_a_name_with_a_newline_is_dropped_and_redone(tmp_path):
    kept = {"video": 'clips/two\nlines, "quoted".mp4', "model": "m", "error": "broken"}
    torn = {
        "video": "clips/new\nline.mp4",
        "model": "m",
        "predictions": [{"label": "x", "score": 0.5}],
    }
    row = csv_line(csv_row(torn, 1)).encode()
    for cut in range(1, len(row)):  # every place a kill can tear the row
        out = tmp_path / f"r{cut}.csv"
        store = open_store(out, "m", 1)
        store.write(kept)
        store.close()
        whole = out.read_bytes()
        with open(out, "ab") as f:
            f.write(row[:cut])
        store = open_store(out, "m", 1)
        assert store.done == {kept["video"]}, cut
        assert out.read_bytes() == whole, cut  # the torn row is cut off, the rest kept
        store.write(torn)
        store.close()
        rows = list(csv.reader(out.open(newline="")))
        assert rows[0] == csv_header(1)
        assert [r[0] for r in rows[1:]] == [kept["video"], torn["video"]], cut
        assert open_store(out, "m", 1).done == {kept["video"], torn["video"]}


# -- names that are not UTF-8 ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["r.jsonl", "r.csv", "r.sqlite"])
def test_a_video_whose_name_is_not_utf8_is_recorded_and_resumed(model, tmp_path, name):
    """A file name's bytes on disk need not be UTF-8; the results file takes it, and a
    rerun knows it is done."""
    link = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.mp4"))
    link.symlink_to(video(GOOD))
    missing = Path(os.fsdecode(os.fsencode(tmp_path) + b"/gone\xff.mp4"))
    out = tmp_path / name
    first = classify_videos(model, [str(link), str(missing)], out, top_k=1, workers=0)
    assert (first.succeeded, first.failed) == (1, 1)
    again = classify_videos(model, [str(link), str(missing)], out, top_k=1, workers=0)
    assert (again.skipped, again.succeeded, again.failed) == (2, 0, 0)
    if out.suffix == ".sqlite":
        with sqlite3.connect(out) as conn:
            errors = [e for (e,) in conn.execute("SELECT error FROM results") if e]
        assert len(errors) == 1 and "gone\\xff.mp4" in errors[0]
    elif out.suffix == ".jsonl":
        assert len(out.read_text().splitlines()) == 2  # escaped: the file is UTF-8
