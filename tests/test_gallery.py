"""The gallery: a real SQLite file, real videos, and a killed indexing run."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from vidclass import VidclassError
from vidclass.gallery import Gallery, VideoRecord, fts_query

from .conftest import kill_midway, link_videos, run_cli, run_on_a_terminal, video


def record(path, tags, duration=10.0, feature=None, segments=()):
    return VideoRecord(
        path=path,
        hash=f"h-{path}",
        size=1,
        mtime=0.0,
        model="m",
        duration=duration,
        tags=[{"label": label, "score": score} for label, score in tags],
        segments=[dict(zip(("start", "end", "label", "score"), s, strict=True)) for s in segments],
        feature=feature,
    )


@pytest.fixture
def synthetic(tmp_path):
    g = Gallery(tmp_path / "g.sqlite")
    g.store.put(record("/v/guitar.mp4", [("playing guitar", 0.9), ("singing", 0.05)], 30))
    g.store.put(
        record(
            "/v/bass.mp4",
            [("playing bass guitar", 0.6)],
            200,
            segments=[(3, 9, "playing bass guitar", 0.7)],
        )
    )
    g.store.put(record("/v/soccer.mp4", [("juggling soccer ball", 0.8)], 12))
    g.store.put(record("/v/ballet.mp4", [("dancing ballet", 0.95)], 60))
    g.store.put(record("/v/swim.mp4", [("swimming backstroke", 0.4), ("playing guitar", 0.02)], 5))
    yield g
    g.close()


def paths(hits):
    return [Path(h.path).name for h in hits]


def test_search_by_words_prefixes_stems_and_synonyms(synthetic):
    g = synthetic
    assert paths(g.search("guitar")) == ["guitar.mp4", "bass.mp4", "swim.mp4"]
    assert paths(g.search("guit")) == paths(g.search("guitar"))  # a partial word
    assert paths(g.search("bass guitar")) == ["bass.mp4"]  # every word must match
    assert paths(g.search("football")) == ["soccer.mp4"]  # a synonym
    assert paths(g.search("dance")) == ["ballet.mp4"]  # a stem: dance ~ dancing
    assert paths(g.search("swim")) == ["swim.mp4"]
    assert g.search("cricket") == []
    # filters
    assert paths(g.search("guitar", min_score=0.1)) == ["guitar.mp4", "bass.mp4"]
    assert paths(g.search("guitar", label="playing bass guitar")) == ["bass.mp4"]
    assert paths(g.search("guitar", min_duration=20, max_duration=100)) == ["guitar.mp4"]
    assert paths(g.search("", label="dancing ballet")) == ["ballet.mp4"]
    bass = g.search("bass")[0]
    assert bass.duration == 200 and bass.moments == [
        {"start": 3, "end": 9, "label": "playing bass guitar", "score": 0.7, "source": "timeline"}
    ]
    with pytest.raises(VidclassError, match="some words"):
        g.search("?!")


def test_a_stretch_of_the_timeline_finds_its_video(tmp_path):
    """A long video whose whole-video tags miss a label is found by a stored segment
    carrying it, with the segment's times, and the hit says where each label comes from."""
    g = Gallery(tmp_path / "g.sqlite")
    long = record(
        "/v/long.mp4",
        [("side kick", 0.25), ("robot dancing", 0.1)],
        139,
        segments=[
            (0, 12, "side kick", 0.4),
            (12, 62, "tai chi", 0.81),
            (62, 139, "side kick", 0.5),
        ],
    )
    long.tags_from = "mean of 7 clips across the video"
    g.store.put(long)
    g.store.put(record("/v/short.mp4", [("tai chi", 0.6)], 10))
    hits = g.search("tai chi")
    assert paths(hits) == ["long.mp4", "short.mp4"]  # its segment scores 0.81
    assert hits[0].tags == [] and hits[0].tags_from == "mean of 7 clips across the video"
    assert hits[0].moments == [
        {"start": 12, "end": 62, "label": "tai chi", "score": 0.81, "source": "timeline"}
    ]
    assert hits[0].as_dict()["tags_from"] == "mean of 7 clips across the video"
    # Filters apply to segments as to tags.
    assert paths(g.search("tai chi", min_score=0.7)) == ["long.mp4"]
    assert paths(g.search("tai chi", max_duration=60)) == ["short.mp4"]
    assert paths(g.search("", label="tai chi")) == ["long.mp4", "short.mp4"]
    g.close()


def test_a_gallery_from_before_tag_sources_opens_and_gains_them(tmp_path):
    db = tmp_path / "g.sqlite"
    with Gallery(db) as g:
        g.store.put(record("/v/a.mp4", [("tai chi", 0.6)]))
    with sqlite3.connect(db) as conn:  # the schema of galleries made before tags_from
        conn.execute("ALTER TABLE videos DROP COLUMN tags_from")
    with Gallery(db) as g:
        assert g.store.by_path("/v/a.mp4").tags_from is None
        assert paths(g.search("tai")) == ["a.mp4"]
        newer = record("/v/b.mp4", [("tai chi", 0.7)])
        newer.tags_from = "its middle clip"
        g.store.put(newer)
        assert g.store.by_path("/v/b.mp4").tags_from == "its middle clip"


@pytest.mark.slow
def test_a_long_video_is_tagged_by_all_of_it(tmp_path):
    """people_139s.mp4's middle clip says "side kick"; tai chi fills much of the rest. Its
    tags are the mean of a clip per 20 s, and say so."""
    lib = link_videos(tmp_path / "lib", ["long/people_139s.mp4", "arm_wrestling.mp4"])
    db = tmp_path / "g.sqlite"
    done = run_cli("index", lib, "--db", db)
    assert done.returncode == 0, done.stderr
    assert not Path(f"{db}.index-lock").exists()  # the run's lock goes with it
    rows = {Path(r["video"]).name: r for r in json.loads(run_cli("export", "--db", db).stdout)}
    long = rows["people_139s.mp4"]
    assert long["tags_from"] == "mean of 7 clips across the video"
    assert long["tags"][0]["label"] == "tai chi"
    assert rows["arm_wrestling.mp4"]["tags_from"] == "its middle clip"
    found = run_cli("search", "tai chi", "--db", db)
    assert "people_139s.mp4" in found.stdout
    assert "(whole video: mean of 7 clips across the video)" in found.stdout


def test_fts_query_quotes_words():
    assert fts_query('gui"tar') == '("gui"*) AND ("tar"*)'
    assert fts_query("Football") == '("football"* OR "soccer"*)'


def test_similar_is_exact_cosine(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 64)).astype(np.float32)
    g = Gallery(tmp_path / "g.sqlite")
    for i, v in enumerate(vectors):
        g.store.put(record(f"/v/{i:03d}.mp4", [("x", 0.5)], feature=v))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found = g.similar("/v/007.mp4", limit=5)
    sims = unit @ unit[7]
    expected = [f"/v/{i:03d}.mp4" for i in np.argsort(-sims) if i != 7][:5]
    assert [f["video"] for f in found] == expected
    assert [f["similarity"] for f in found] == pytest.approx(sorted(sims, reverse=True)[1:6])
    tags = g.tags()
    assert tags == [{"label": "x", "videos": 300, "best_score": 0.5}]
    g.close()


@pytest.mark.slow
def test_index_search_similar_and_reindex(tmp_path):
    lib = link_videos(tmp_path / "lib", ["arm_wrestling.mp4", "soccer_juggling.avi"])
    link_videos(lib / "sub", ["flipping_pancake.mkv", "odd/empty.mp4"])
    db = tmp_path / "g.sqlite"
    first = run_cli("index", lib, "--db", db, "--precision", "fp32")
    assert first.returncode == 1, first.stderr  # empty.mp4 failed, and says so
    assert "4 videos found, 3 classified, 1 failed, 0 unchanged" in first.stderr
    hits = json.loads(run_cli("search", "juggl", "--db", db, "--format", "json").stdout)
    assert [Path(h["video"]).name for h in hits] == ["soccer_juggling.avi"]
    assert hits[0]["score"] > 0.9 and abs(hits[0]["duration"] - 8.0) < 0.1
    outside = run_cli("similar", video("arm_wrestling_vp9.webm"), "--db", db, "--format", "json")
    assert outside.returncode == 0, outside.stderr
    assert Path(json.loads(outside.stdout)[0]["video"]).name == "arm_wrestling.mp4"

    again = run_cli("index", lib, "--db", db)
    assert "0 classified, 0 failed, 4 unchanged" in again.stderr
    (lib / "arm_wrestling.mp4").rename(lib / "sub" / "moved.mp4")
    (lib / "copy.avi").symlink_to(video("soccer_juggling.avi"))
    moved = run_cli("index", lib, "--db", db)
    assert "0 classified" in moved.stderr and "1 moved" in moved.stderr
    assert "1 copy of indexed videos" in moved.stderr
    hits = json.loads(run_cli("search", "arm wrestling", "--db", db, "--format", "json").stdout)
    assert [Path(h["video"]).name for h in hits] == ["moved.mp4"]
    (lib / "sub" / "moved.mp4").unlink()
    kept = run_cli("index", lib, "--db", db)
    assert "1 gone from disk" in kept.stderr
    pruned = run_cli("index", lib, "--db", db, "--prune")
    assert "1 removed" in pruned.stderr
    exported = json.loads(run_cli("export", "--db", db).stdout)
    assert sorted(Path(r["video"]).name for r in exported) == [
        "copy.avi",
        "empty.mp4",
        "flipping_pancake.mkv",
        "soccer_juggling.avi",
    ]
    table = tmp_path / "gallery.csv"
    assert run_cli("export", table, "--db", db).returncode == 0
    rows = list(csv.DictReader(table.open()))
    assert sorted(Path(r["video"]).name for r in rows) == sorted(
        Path(r["video"]).name for r in exported
    )
    soccer = next(r for r in rows if r["video"].endswith("soccer_juggling.avi"))
    assert soccer["tags"].startswith("juggling soccer ball:") and soccer["width"] == "320"
    tags = json.loads(run_cli("tags", "--db", db, "--format", "json").stdout)
    assert tags[0]["label"] == "juggling soccer ball" and tags[0]["videos"] == 2  # and copy
    assert tags[0]["best_score"] > 0.9
    other = run_cli("index", lib, "--db", db, "--model", "nope")
    assert other.returncode == 1 and "indexed with 'i3d.kinetics400'" in other.stderr
    missing = run_cli("search", "x", "--db", tmp_path / "none.sqlite")
    assert missing.returncode == 1 and "no gallery here" in missing.stderr


@pytest.mark.slow
def test_timeline_moments_are_searchable(tmp_path, model):
    g = Gallery(tmp_path / "g.sqlite")
    g._model = model  # the session's fp32 model, loaded once
    lib = link_videos(tmp_path / "lib", ["arm_wrestling.mp4"])
    summary = g.index([lib], timeline=True, workers=0)
    assert summary.classified == 1
    hit = g.search("wrestling")[0]
    assert hit.moments and hit.moments[0]["label"] == "arm wrestling"
    assert hit.moments[0]["source"] == "timeline"
    assert hit.moments[0]["start"] < 1 and hit.moments[-1]["end"] > 9
    # With a timeline, the tags are the mean of all its windows.
    assert hit.tags_from == "mean of its timeline's 9 windows"
    g.close()


def test_a_damaged_file_is_warned_about_once(tmp_path):
    """Its tags and its timeline both decode it: the decoder's warning shows once."""
    lib = link_videos(tmp_path / "lib", ["odd/corrupt_midstream.mp4"])
    done = run_cli("index", lib, "--db", tmp_path / "g.sqlite", "--timeline")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "damaged data after" in line]
    assert len(warnings) == 1, done.stderr


@pytest.mark.slow
def test_search_finds_a_long_video_by_the_stretch_its_timeline_saw(tmp_path, long_timeline):
    """The 139 s video's real timeline (the session's, made once: `index --timeline`
    stores timelines as test_timeline_moments_are_searchable shows) finds it."""
    tl = long_timeline
    db = tmp_path / "g.sqlite"
    with Gallery(db) as g:
        stored = record(
            tl.video, [], tl.duration, segments=[tuple(vars(s).values()) for s in tl.segments]
        )
        stored.tags = tl.predictions[:5]
        stored.tags_from = f"mean of its timeline's {len(tl.windows)} windows"
        g.store.put(stored)
    hits = json.loads(run_cli("search", "tai chi", "--db", db, "--format", "json").stdout)
    assert [Path(h["video"]).name for h in hits] == ["people_139s.mp4"]
    moments = hits[0]["moments"]
    assert moments and all(m["label"] == "tai chi" and m["source"] == "timeline" for m in moments)
    assert sum(m["end"] - m["start"] for m in moments) > 30  # tai chi fills much of it
    assert hits[0]["tags_from"].startswith("mean of its timeline's")


@pytest.mark.slow
def test_a_killed_indexing_run_loses_and_repeats_nothing(tmp_path):
    names = [
        "arm_wrestling.mp4",
        "cleaning_pool_1s.mp4",
        "flipping_pancake.mkv",
        "soccer_juggling.avi",
        "eating_spaghetti.mp4",
        "cricket_shot.gif",
    ]
    lib = link_videos(tmp_path / "lib", names)
    db = tmp_path / "g.sqlite"

    def indexed() -> list[str]:
        if not db.exists():
            return []
        with sqlite3.connect(db) as conn:
            try:
                return [r[0] for r in conn.execute("SELECT path FROM videos")]
            except sqlite3.OperationalError:  # tables not made yet
                return []

    kill_midway(["index", lib, "--db", db, "--workers", "1"], lambda: len(indexed()))
    before = indexed()
    assert 2 <= len(before) < len(names)
    rerun = run_cli("index", lib, "--db", db)
    assert rerun.returncode == 0, rerun.stderr
    assert (
        f"{len(names) - len(before)} classified, 0 failed, {len(before)} unchanged" in rerun.stderr
    )
    after = indexed()
    assert sorted(after) == sorted(str(lib / n) for n in names)  # each once
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        per_video = conn.execute("SELECT COUNT(DISTINCT video_id) FROM tags").fetchone()[0]
    assert per_video == len(names)  # every video kept its tags


def test_ranking_equals_a_brute_force_one(tmp_path):
    rng = np.random.default_rng(1)
    labels = [f"playing thing{i}" for i in range(8)] + ["other a", "other b"]
    g = Gallery(tmp_path / "g.sqlite")
    truth = {}
    for i in range(400):
        picks = rng.choice(len(labels), 3, replace=False)
        tags = [(labels[j], float(rng.random())) for j in picks]
        duration = float(rng.uniform(1, 100))
        g.store.put(record(f"/v/{i:03d}.mp4", tags, duration))
        truth[f"/v/{i:03d}.mp4"] = (tags, duration)

    def brute(min_score=0.0, lo=None, hi=None, limit=7):
        ranked = []
        for path, (tags, duration) in truth.items():
            scores = [s for label, s in tags if label.startswith("playing") and s >= min_score]
            if scores and (lo is None or duration >= lo) and (hi is None or duration <= hi):
                ranked.append((-max(scores), path))
        return [p for _, p in sorted(ranked)[:limit]]

    assert [h.path for h in g.search("playing", limit=7)] == brute()
    assert [h.path for h in g.search("play", limit=7, min_score=0.5)] == brute(0.5)
    hits = g.search("playing", limit=7, min_duration=20, max_duration=40)
    assert [h.path for h in hits] == brute(lo=20, hi=40)
    g.close()


def test_two_names_of_one_gallery_share_its_lock_and_moment_index(tmp_path):
    """A link to the gallery is the same gallery: an index run through the link is
    refused while one runs through the real name, and both names use one moment index."""
    from vidclass.gallery.indexing import index_lock

    (tmp_path / "real").mkdir()
    db = tmp_path / "real" / "g.sqlite"
    with Gallery(db) as g:
        g.store.put(record("/v/a.mp4", [("tai chi", 0.6)]))
    alias = tmp_path / "alias.sqlite"
    alias.symlink_to(db)
    folder = link_videos(tmp_path / "v", ["cleaning_pool_1s.mp4"])
    with index_lock(str(db)):
        done = run_cli("index", folder, "--db", alias, timeout=120)
    assert done.returncode == 1 and "is being indexed by another run" in done.stderr
    with Gallery(alias) as a, Gallery(db) as b:
        assert a.moments().path == b.moments().path == Path(f"{db}.moments.usearch")


def test_search_text_that_is_not_utf8_is_one_line_error(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "g.sqlite"
    with Gallery(db) as g:
        g.store.put(record("/v/a.mp4", [("tai chi", 0.6)]))
        with pytest.raises(VidclassError, match="not valid UTF-8"):
            g.search("tai \udcff")  # what Python makes of the byte 0xff in argv
    done = subprocess.run(  # the bytes as a terminal passes them
        [sys.executable.encode(), b"-m", b"vidclass", b"search", b"tai \xff", b"--db", bytes(db)],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == b"vidclass: error: the search text is not valid UTF-8"


@pytest.mark.slow
def test_index_shows_videos_and_each_timelines_windows_on_a_terminal(tmp_path):
    lib = link_videos(tmp_path / "lib", ["eating_spaghetti.mp4"])
    code, out, terminal = run_on_a_terminal(
        "index", lib, "--db", tmp_path / "g.sqlite", "--timeline"
    )
    assert code == 0, terminal
    assert "index:" in terminal and "1/1" in terminal  # the videos
    assert "eating_spaghetti.mp4:" in terminal and "9/9" in terminal  # its timeline's windows
    piped = run_cli("index", lib, "--db", tmp_path / "h.sqlite", "--timeline")
    assert piped.returncode == 0 and "9/9" not in piped.stderr and "1/1" not in piped.stderr


def test_index_without_subfolders_says_how_to_look_in_them(tmp_path):
    lib = tmp_path / "lib"
    link_videos(lib / "sub", ["cleaning_pool_1s.mp4"])
    done = run_cli("index", lib, "--db", tmp_path / "g.sqlite", "--no-recursive")
    assert done.returncode == 0, done.stderr
    assert "its subfolders hold 1 video: leave out --no-recursive" in done.stderr
    assert "0 videos found" in done.stderr
