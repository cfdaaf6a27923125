"""A regression corpus of damaged and crafted videos: each ends in a result or a
VidclassError, in bounded time and memory (issue: nothing a file does may hang vidclass).

The files are made here from the shared clips with a fixed seed (tests/hostile.py):
byte flips, truncations, zeroed and random headers, shuffled and duplicated chunks,
garbage in the middle; headers claiming huge sizes, durations and frame counts; the raw
MPEG-4 remux whose seeks all land at the start; a GIF bomb.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

from . import hostile
from .conftest import run_cli

SEED = 20261121
MUTATED = 60
BOUND_S = 60  # per file; the slowest takes well under 10 s on the 2-core machine
MAX_RSS_MB = 3072


@pytest.fixture(scope="module")
def corpus(videos, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return hostile.crafted(videos, folder / "crafted") + hostile.mutated(
        videos, folder / "mutated", SEED, MUTATED
    )


@pytest.mark.slow
def test_every_file_ends_in_a_result_or_an_error_in_bounded_time(corpus, tiny_videomae):
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    outcomes, hung = {}, None
    try:
        for path in corpus:
            try:
                kind, detail, rss = pool.submit(hostile.outcome, str(path), tiny_videomae).result(
                    timeout=BOUND_S
                )
            except FutureTimeout:
                hung = path
                break
            outcomes[path.name] = (kind, detail, rss, str(path))
    finally:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()  # a hung decode must not outlive the test
        pool.shutdown(wait=False, cancel_futures=True)
    assert hung is None, f"{hung.name} took over {BOUND_S} s"
    crashes = {n: o[1] for n, o in outcomes.items() if o[0] == "crash"}
    assert not crashes, crashes
    for kind, detail, _, path in outcomes.values():
        if kind == "error":  # one line, naming the file
            assert "\n" not in detail and detail.startswith(path + ": "), detail
    assert max(o[2] for o in outcomes.values()) < MAX_RSS_MB
    # The corpus exercises both ends: files that still classify and files that cannot.
    kinds = [o[0] for o in outcomes.values()]
    assert kinds.count("ok") >= 10 and kinds.count("error") >= 10
    # The crafted files each end as they should.
    assert outcomes["raw_remux.m4v"][0] == "ok"  # every seek lands back: decoded straight
    assert "over the limit" in outcomes["gif_bomb.gif"][1]  # refused before decoding
    # 40 hours claimed: its clips decode, but a timeline would have too many windows.
    assert "windows of 2 s every 1 s are over the limit" in outcomes["mp4_huge_duration.mp4"][1]


@pytest.mark.slow
def test_the_cli_gives_every_damaged_file_one_result_line(corpus, tmp_path):
    """End to end with the real model, as a user runs a folder: one JSONL line per file,
    exit 0 or 1, no traceback."""
    files = [p for p in corpus if p.parent.name == "crafted"] + [
        p for p in corpus if p.parent.name == "mutated"
    ][:12]
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{p}\n" for p in files))
    out = tmp_path / "results.jsonl"
    done = run_cli("classify", listing, "--output", out, "--video-timeout", BOUND_S, timeout=900)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["video"] for r in lines) == sorted(map(str, files))
    by_name = {os.path.basename(r["video"]): r for r in lines}
    assert by_name["raw_remux.m4v"]["predictions"][0]["label"] == "juggling soccer ball"
    assert "over the limit" in by_name["gif_bomb.gif"]["error"]
    assert "predictions" in by_name["mp4_huge_duration.mp4"]  # sampled within what decodes
