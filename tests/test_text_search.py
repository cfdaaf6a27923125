"""Text search over moments: a gallery indexed with a vision-language model stores an
embedding per video and per moment; `search` ranks videos by their best moments, beside
tag search of a classifier in the same gallery; the approximate index beside the
database agrees with exact search and never makes search wrong."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import vidclass
from vidclass.engine import Windows, Work
from vidclass.gallery import Gallery
from vidclass.gallery.vector_index import MomentIndex

from .conftest import kill_midway, link_videos, run_cli, video
from .tiny_vl import make_checkpoint

pytest.importorskip("transformers", reason="transformers not installed (pip install -e '.[hf]')")
pytest.importorskip("PIL", reason="transformers' image processors need Pillow")

DEV = ["archery_1.mp4", "bench_pressing_1.mp4", "push_up_1.mp4", "squat_1.mp4", "situp_1.mp4"]
CLIPS = ["arm_wrestling.mp4", "eating_spaghetti.mp4", "cricket_shot.gif", "cleaning_pool_1s.mp4"]


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vl") / "clip"
    make_checkpoint(folder, "clip")
    return str(folder)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, clip_model):
    """(db, folder of links, the loaded model): CLIPS indexed with the tiny CLIP."""
    root = tmp_path_factory.mktemp("gallery")
    folder = link_videos(root / "videos", CLIPS)
    db = root / "gallery.sqlite"
    with Gallery(db) as g:
        summary = g.index([folder], model=clip_model, workers=0, precision="fp32")
    assert (summary.classified, summary.failed) == (len(CLIPS), 0)
    assert "exact search" in summary.moments
    return db, folder, vidclass.load_model(clip_model, precision="fp32")


def test_moments_are_the_model_embeddings_of_windows(indexed):
    db, folder, model = indexed
    path = str(folder / "eating_spaghetti.mp4")
    with Gallery(db) as g:
        stored = g.store.embedded_by_path(path)
        assert stored.model == model.name and stored.duration == pytest.approx(10.0, abs=0.1)
        rows = g.store.conn.execute(
            "SELECT start, end FROM moments WHERE path = ? ORDER BY start", (path,)
        ).fetchall()
    result = model.run(path, Work(Windows(2.0, 2.0), outputs="features"))
    # pytest.approx takes flat sequences only (nested ones are a TypeError since pytest 9.1).
    assert len(rows) == len(result.spans)
    assert np.allclose(np.array(rows, dtype=float), np.array(result.spans, dtype=float))
    # Stored as float16: the video's vector is the mean of its moments, to that precision.
    assert np.allclose(stored.vector, result.features.mean(axis=0), atol=1e-3)


def test_search_ranks_videos_by_their_best_moments(indexed):
    db, _, model = indexed
    text = "a dog on the beach"
    with Gallery(db) as g:
        hits = g.search(text, limit=10, model=model)  # auto: by text, the gallery has moments
        assert g.text_model_name == model.name
    assert len(hits) == len(CLIPS)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Each score is the cosine similarity of the text and the video's best moment,
    # computed here from scratch.
    query = model.embed_text([text])[0]
    query /= np.linalg.norm(query)
    for hit in hits:
        result = model.run(hit.path, Work(Windows(2.0, 2.0), outputs="features"))
        sims = result.features @ query / np.linalg.norm(result.features, axis=1)
        assert hit.score == pytest.approx(sims.max(), abs=2e-3)
        best = hit.moments[0]
        assert (best["start"], best["end"]) == pytest.approx(result.spans[int(sims.argmax())])
        assert [m["score"] for m in hit.moments] == sorted(
            (m["score"] for m in hit.moments), reverse=True
        )
        assert 1 <= len(hit.moments) <= 3
    one = Gallery(db).search(text, limit=1, model=model)
    assert [h.path for h in one] == [hits[0].path]


def test_a_gallery_holds_a_classifier_and_a_vision_language_model(indexed, tmp_path, model):
    db, folder, vl = indexed
    copy = tmp_path / "both.sqlite"
    copy.write_bytes(db.read_bytes())
    with Gallery(copy) as g:
        summary = g.index([folder], workers=0)  # the default classifier: tags
        assert summary.classified == len(CLIPS)
        again = g.index([folder], model=vl.name, workers=0)  # its moments are kept
        assert again.unchanged == len(CLIPS) and again.classified == 0
        tagged = g.search("eating", by="tags")
        assert tagged and tagged[0].path.endswith("eating_spaghetti.mp4")
        texts = g.search("eating", by="text", model=vl, limit=10)
        assert len(texts) == len(CLIPS)
        assert {t["label"] for t in texts[0].tags}  # text hits show the classifier's tags too
        near = g.similar(folder / "arm_wrestling.mp4", limit=2, using="features")
        embedded = g.similar(folder / "arm_wrestling.mp4", limit=2, using="embeddings", model=vl)
        assert len(near) == len(embedded) == 2
        make_checkpoint(tmp_path / "other", "siglip")
        with pytest.raises(vidclass.VidclassError, match="holds moments of"):
            g.index([folder], model=str(tmp_path / "other"), workers=0)


def test_moved_copied_and_pruned_videos(tmp_path, clip_model):
    folder = link_videos(tmp_path / "v", CLIPS[:2])
    db = tmp_path / "g.sqlite"
    with Gallery(db) as g:
        g.index([folder], model=clip_model, workers=0, precision="fp32")
        count = g.store.moment_count()
        os.rename(folder / CLIPS[0], folder / "renamed.mp4")
        summary = g.index([folder], model=clip_model, workers=0, precision="fp32")
        assert (summary.moved, summary.classified) == (1, 0)
        assert g.store.moment_count() == count
        assert g.store.embedded_by_path(str(folder / "renamed.mp4")) is not None
        (folder / CLIPS[1]).unlink()
        summary = g.index([folder], model=clip_model, prune=True, workers=0)
        assert summary.pruned == 1 and g.store.moment_count() < count


def test_the_approximate_index_agrees_with_exact_search(indexed, tmp_path, caplog):
    db, folder, model = indexed
    copy = tmp_path / "g.sqlite"
    copy.write_bytes(db.read_bytes())
    with Gallery(copy) as g:
        exact = MomentIndex(g.store, str(copy))
        ann = MomentIndex(g.store, str(copy), exact_below=1)  # every gallery "large"
        said = ann.refresh()
        assert "index" in said and ann.path.is_file()
        rng = np.random.default_rng(0)
        dim = next(g.store.moment_vectors())[1].shape[1]
        for query in rng.standard_normal((5, dim)):
            assert [k for k, _ in ann.search(query, 5)] == [k for k, _ in exact.search(query, 5)]

        # Moments stored after the file was saved are found (exactly) before a refresh,
        # and deleted ones are never returned.
        first = next(g.store.moment_vectors())
        target = first[1][0]
        g.store.delete(str(folder / "arm_wrestling.mp4"))
        video_ = g.store.embedded_by_path(str(folder / "eating_spaghetti.mp4"))
        video_.path = "/elsewhere/new.mp4"
        video_.moments = [(0.0, 2.0, target)]
        g.store.put_embedded(video_)
        found = ann.search(target, 3)
        spans = g.store.moments_by_id([k for k, _ in found])
        assert spans[found[0][0]][0] == "/elsewhere/new.mp4"
        assert all(k in spans for k, _ in found)
        assert "+1" in ann.refresh() and "-" in ann.refresh()

        # A damaged file only makes search exact.
        ann.path.write_bytes(b"not an index")
        fresh = MomentIndex(g.store, str(copy), exact_below=1)
        assert [k for k, _ in fresh.search(target, 3)] == [k for k, _ in exact.search(target, 3)]
        assert "unreadable" in caplog.text
        assert "index" in fresh.refresh()  # and an index run builds it again


@pytest.mark.slow
def test_cli_index_search_similar(tmp_path, clip_model):
    folder = link_videos(tmp_path / "v", CLIPS[:3])
    db = tmp_path / "g.sqlite"
    r = run_cli("index", folder, "--model", clip_model, "--db", db, "--moment", "3")
    assert r.returncode == 0, r.stderr
    assert "3 classified" in r.stderr and "moments: exact search" in r.stderr
    r = run_cli("search", "a dog catching a frisbee", "--db", db, "--format", "json", "-n", "2")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert len(hits) == 2 and all(h["moments"] for h in hits)
    assert all(m["end"] - m["start"] <= 3.0 + 1e-6 for h in hits for m in h["moments"])
    r = run_cli("search", "dog", "--db", db)
    assert r.returncode == 0 and " s  dog " in r.stdout
    r = run_cli("search", "dog", "--db", db, "--by", "tags")
    assert r.returncode == 0 and "no videos found" in r.stderr
    r = run_cli("similar", video("arm_wrestling_vp9.webm"), "--db", db, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["video"].endswith("arm_wrestling.mp4")


@pytest.mark.slow
def test_serve_zero_shot_and_text_search(indexed, tmp_path):
    """`vidclass serve` with a vision-language model: labels as words, multi-label, and
    text search of the gallery's moments."""
    pytest.importorskip("fastapi", reason="serve needs the serve extra")
    from .conftest import start_server, stop_server
    from .helpers import call

    db, folder, model = indexed
    proc, url, _ = start_server(
        tmp_path,
        "--model",
        model.name,
        "--gallery",
        str(db),
        "--media",
        str(video(CLIPS[0]).parent),
    )
    try:
        clip = video("arm_wrestling.mp4")
        status, _, result = call(url + "/v1/classify?labels=dog,surfing,arm%20wrestling", file=clip)
        assert status == 200, result
        assert {p["label"] for p in result["predictions"]} == {"dog", "surfing", "arm wrestling"}
        status, _, result = call(
            url + "/v1/classify?labels=dog,surfing&multi_label=true&threshold=-1", file=clip
        )
        assert status == 200 and len(result["predictions"]) == 2
        assert all(-1 <= p["score"] <= 1 for p in result["predictions"])  # cosines
        status, _, result = call(url + "/v1/classify", file=clip)
        assert status == 422 and "--labels" in result["detail"]
        status, _, result = call(url + "/v1/classify?prompt=a%20video%20of%20%7B%7D", file=clip)
        assert status == 422 and "need labels" in result["detail"]

        status, _, hits = call(url + "/v1/search?q=a%20dog%20on%20the%20beach&limit=2")
        assert status == 200 and len(hits) == 2 and all(h["moments"] for h in hits)
        with Gallery(db) as g:
            want = g.search("a dog on the beach", limit=2, model=model)
        assert [h["video"] for h in hits] == [h.path for h in want]
        status, _, hits = call(url + "/v1/search?q=dog&by=tags")
        assert status == 200 and hits == []
        status, _, hits = call(url + "/v1/search?q=dog&by=words")
        assert status == 422
        # A video outside the gallery: embedded by the serving model, the nearest is itself.
        status, _, near = call(url + "/v1/similar?video=arm_wrestling.mp4&limit=2")
        assert status == 200 and len(near) == 2, near
        assert near[0]["video"] == str(folder / "arm_wrestling.mp4")
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_a_killed_embedding_run_loses_and_repeats_nothing(tmp_path, clip_model):
    import sqlite3

    names = [f"dev/{n}" for n in DEV]
    lib = link_videos(tmp_path / "lib", names)
    db = tmp_path / "g.sqlite"

    def embedded() -> list[str]:
        if not db.exists():
            return []
        with sqlite3.connect(db) as conn:
            try:
                return [r[0] for r in conn.execute("SELECT path FROM embedded")]
            except sqlite3.OperationalError:  # tables not made yet
                return []

    args = ["index", lib, "--db", db, "--model", clip_model, "--moment", "0.5", "--workers", "0"]
    kill_midway(args, lambda: len(embedded()))
    before = embedded()
    assert 2 <= len(before) < len(names)
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    done = len(names) - len(before)
    assert f"{done} classified, 0 failed, {len(before)} unchanged" in rerun.stderr
    assert sorted(embedded()) == sorted(str(lib / Path(n).name) for n in names)  # each once
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        per_video = conn.execute("SELECT COUNT(DISTINCT path) FROM moments").fetchone()[0]
    assert per_video == len(names)  # every video kept its moments
