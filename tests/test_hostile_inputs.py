"""Hostile names, special files, other people's files and damaged databases: each ends
in a one-line error (or is skipped with a warning), and nothing a user owns is changed
before it is known to be vidclass's."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vidclass import VidclassError
from vidclass.batch import expand_inputs, open_store
from vidclass.engine import Clips, DecoderPool, Driver, LocalProcesses, Work
from vidclass.gallery import Gallery
from vidclass.video import probe

from .conftest import link_videos, run_cli, video
from .helpers import made_up_gallery, wait_for


def one_line_error(done, *needles: str) -> None:
    """A CLI run that failed with one `vidclass: error:` line per problem, no traceback."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("vidclass: error:")]
    assert errors, done.stderr
    for needle in needles:
        assert any(needle in ln for ln in errors), (needle, done.stderr)


# -- names and special files ------------------------------------------------------------------
def test_special_files_and_bad_names_are_one_line_errors(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    cases = {
        fifo: "is a FIFO",
        "/dev/zero": "is a character device",
        tmp_path: "is a folder",
        tmp_path / ("x" * 5000 + ".mp4"): "file name too long",
        str(tmp_path / "a\0b.mp4"): "not a valid file name",
        tmp_path / "missing.mp4": "no such file",
    }
    for path, why in cases.items():
        with pytest.raises(VidclassError, match=why) as caught:
            probe(path)
        assert "\n" not in str(caught.value)


def test_recursive_globs_do_not_follow_link_loops(tmp_path):
    top = link_videos(tmp_path / "top", ["cleaning_pool_1s.mp4"])
    (top / "sub").mkdir()
    (top / "sub" / "c.mp4").write_bytes(b"x")
    (top / "sub" / "up").symlink_to(top, target_is_directory=True)  # a loop through the tree
    (top / "self1").symlink_to(top / "self2")  # two links pointing at each other
    (top / "self2").symlink_to(top / "self1")
    found = expand_inputs([str(top / "**" / "*.mp4")], recursive=True)
    assert found == [str(top / "cleaning_pool_1s.mp4"), str(top / "sub" / "c.mp4")]
    assert expand_inputs([str(top)], recursive=True) == found  # the folder walk agrees


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_unreadable_folders_and_files_are_reported_not_tracebacks(tmp_path):
    import subprocess
    import sys

    top = link_videos(tmp_path / "top", ["cleaning_pool_1s.mp4"])
    locked = top / "locked"
    locked.mkdir()
    (locked / "hidden.mp4").write_bytes(b"x")
    secret = tmp_path / "secret.mp4"
    shutil.copy(video("cleaning_pool_1s.mp4"), secret)
    secret.chmod(0)
    locked.chmod(0)
    try:
        command = [*_without_root_powers(), sys.executable, "-m", "vidclass", "classify"]
        env = {**os.environ, "VIDCLASS_OFFLINE": "1"}
        done = subprocess.run(
            [*command, str(locked)], capture_output=True, text=True, timeout=300, env=env
        )
        one_line_error(done, "no videos to classify")
        assert f"{locked}: cannot read the folder (permission denied)" in done.stderr
        done = subprocess.run(
            [*command, "--recursive", "--top-k", "1", str(top), str(secret)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        one_line_error(done, f"{secret}: permission denied")
        assert "cannot read the folder" in done.stderr  # the locked subfolder, warned
        assert "cleaning pool" in done.stdout  # the readable video is still classified
    finally:
        locked.chmod(0o755)


# -- result files that are not ours ----------------------------------------------------------
def test_a_csv_that_is_not_ours_is_refused_unchanged(tmp_path):
    """The issue's example: the torn-tail cut must not run before the ownership check."""
    theirs = tmp_path / "a.csv"
    theirs.write_bytes(b"name,amount\nalice,10\nbob,20")
    done = run_cli("classify", video("cleaning_pool_1s.mp4"), "--output", theirs)
    one_line_error(done, "not a vidclass results file")
    assert theirs.read_bytes() == b"name,amount\nalice,10\nbob,20"


def test_other_files_named_as_output_are_refused_unchanged(tmp_path):
    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_bytes(b'{"a": 1}\nhalf a line')
    db = tmp_path / "people.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    text = tmp_path / "words.csv"
    text.write_bytes(b"video,model,error,label_1,score_1\nno newline at the end")
    before = {p: p.read_bytes() for p in (jsonl, db, text)}
    for path, why in [
        (jsonl, "not a vidclass results file"),
        (db, "not a vidclass results file"),
        (text, "not a vidclass results file"),  # a header for another --top-k
    ]:
        with pytest.raises(VidclassError, match=why):
            open_store(path, "m", top_k=3)
    assert {p: p.read_bytes() for p in before} == before
    assert not Path(str(db) + "-wal").exists()


def test_devices_and_fifos_as_output_are_refused_at_once(tmp_path):
    full = tmp_path / "full.jsonl"
    full.symlink_to("/dev/full")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(VidclassError, match="is a character device"):
        open_store(full, "m", 1)
    with pytest.raises(VidclassError, match="is a FIFO"):
        open_store(fifo, "m", 1)


# -- per-video time limits ---------------------------------------------------------------------
def test_a_video_past_its_time_limit_is_recorded_as_failed(tmp_path):
    out = tmp_path / "r.jsonl"
    done = run_cli(
        "classify",
        video("long/people_139s.mp4"),
        video("cleaning_pool_1s.mp4"),
        "--output",
        out,
        "--video-timeout",
        "0.001",
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 2
    assert all("decoding took over 0.001 s; stopped" in r["error"] for r in lines)


def _stuck(path, spec, sampling, timeout):
    """A decoding task stuck where the cooperative time limit is never checked."""
    time.sleep(3600)


@pytest.mark.slow
def test_a_stuck_decoding_process_is_killed_and_the_run_goes_on(model):
    clips = [str(video("cleaning_pool_1s.mp4")), str(video("odd/one_second.mp4"))]
    work = Work(Clips(), top_k=1, video_timeout=0.5)
    runner = Driver(model, work, LocalProcesses(DecoderPool(1, task=_stuck)))
    results = list(runner.run(clips))
    assert sorted(r.video for r in results) == sorted(clips)
    stopped = [r for r in results if r.error is not None]
    assert stopped, "the stuck process was never stopped"
    assert all(r.error.endswith("decoding took over 0.5 s; stopped") for r in stopped)


def _marks_then_sticks(marker, spec, sampling, timeout):
    """Says it is decoding (the marker file), then never ends."""
    Path(marker).touch()
    time.sleep(3600)


class _MarksWhenPickled:
    """Touches its file as it is pickled, which a result is just before it is sent."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        Path(self.marker).touch()
        return (str, ())


def _sends_a_lot(marker, spec, sampling, timeout):
    """A result that takes a while to pass through the pipe (300 MB), with the marker
    pickled last: a close soon after the marker kills the process halfway through
    sending it."""
    return np.ones(300 * 2**20, dtype=np.uint8), _MarksWhenPickled(marker)


def _close_while_decoding(task, marker: Path, sending: bool = False) -> None:
    """Start a pool of `task`, submit one video, and close the pool once the task has
    marked `marker` (with `sending`: once its result is in the pipe back): nothing of
    the pool may outlive close."""
    threads_before = set(threading.enumerate())
    children_before = set(multiprocessing.active_children())
    pool = DecoderPool(2, task=task).start()
    ours = set(multiprocessing.active_children()) - children_before
    future = pool.submit(str(marker), None, None, None)
    # The processes start and run the task within seconds.
    wait_for(marker.exists, "the decoding task ran", timeout=120)
    if sending:  # the result's first bytes have reached this process (or all of them)
        results = pool._pool._result_queue._reader
        wait_for(lambda: future.done() or results.poll(), "the result being sent")
    closing = threading.Thread(target=pool.close, daemon=True)
    closing.start()
    closing.join(120)  # a liveness bound: close used to hang here for good
    assert not closing.is_alive(), "closing the decoders hangs"
    assert future.done()
    assert ours and not any(p.is_alive() for p in ours)
    assert {t for t in threading.enumerate() if t.is_alive()} <= threads_before | {closing}


def test_closing_the_decoders_stops_a_video_being_decoded(tmp_path):
    """A video still decoding at close is given up, and nothing of the pool outlives
    close: its thread, left running, races interpreter exit over a pipe it closes."""
    _close_while_decoding(_marks_then_sticks, tmp_path / "decoding")


def test_closing_the_decoders_while_a_result_is_being_sent(tmp_path):
    _close_while_decoding(_sends_a_lot, tmp_path / "sending", sending=True)


# -- galleries ---------------------------------------------------------------------------------
def test_a_damaged_gallery_gives_one_line_errors(tmp_path):
    db = made_up_gallery(tmp_path / "g.sqlite")
    rng = np.random.default_rng(0)
    with open(db, "r+b") as f:  # every other page after the first overwritten
        for page in range(1, db.stat().st_size // 4096, 2):
            f.seek(page * 4096)
            f.write(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "v").mkdir()
    for args in [
        ["search", "label"],
        ["tags"],
        ["export"],
        ["similar", "/v/3.mp4"],
        ["index", tmp_path / "v"],
    ]:
        done = run_cli(*args, "--db", db, timeout=120)
        # Caught on opening ("not a usable vidclass gallery") or on reading a page.
        one_line_error(done, f"error: {db}: ")
        assert "gallery" in done.stderr


def test_a_database_that_is_not_a_gallery_is_not_touched(tmp_path):
    db = tmp_path / "people.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    before = db.read_bytes()
    done = run_cli("search", "x", "--db", db, timeout=120)
    one_line_error(done, "not a vidclass gallery")
    assert db.read_bytes() == before


def test_a_second_index_run_on_the_same_gallery_is_refused(tmp_path):
    from vidclass.gallery.indexing import index_lock

    db = made_up_gallery(tmp_path / "g.sqlite", 1)
    folder = link_videos(tmp_path / "v", ["cleaning_pool_1s.mp4"])
    with index_lock(str(db)):  # another run holds the gallery
        done = run_cli("index", folder, "--db", db, timeout=120)
    one_line_error(done, "is being indexed by another run", f"pid {os.getpid()}")
    with Gallery(db) as g:
        assert g.store.paths() == ["/v/0.mp4"]  # the refused run stored nothing


# -- writing -----------------------------------------------------------------------------------
def test_a_file_is_written_whole_or_not_at_all(tmp_path):
    from vidclass.files import is_partial, written_whole

    target = tmp_path / "record.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), written_whole(target) as partial:
        partial.write_text("half")
        assert is_partial(partial) and partial.suffix == ".json"
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
    with written_whole(target, durable=True) as partial:
        partial.write_text("new\n")
        assert target.read_text() == "old\n"  # readers see the old file until the end
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077], ids=oct)
def test_a_written_file_gets_the_users_normal_mode(tmp_path, umask):
    """0666 less the umask, as any new file of the user's, whatever mode its writer gave
    the partial file (safetensors makes its files 0600)."""
    import torch
    from safetensors.torch import save_file

    from vidclass.files import written_whole

    old = os.umask(umask)
    try:
        with written_whole(tmp_path / "head.safetensors") as partial:
            save_file({"w": torch.zeros(2)}, partial)
        with written_whole(tmp_path / "vidclass.json") as partial:
            partial.write_text("{}\n")
            partial.chmod(0o755)  # a writer that gave it more than a file should have
    finally:
        os.umask(old)
    for name in ("head.safetensors", "vidclass.json"):
        assert (tmp_path / name).stat().st_mode & 0o7777 == 0o666 & ~umask, name
