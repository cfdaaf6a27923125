"""The gallery as a person explores it: a thumbnail per content hash made at index time
(shared by copies, kept by moves, gone with the last video), pages of videos by path or
by tag, and the HTTP routes that show them: pages, pictures, the video files under
--media with ranges, and the API key as a cookie for what <img> and <video> fetch."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from vidclass import VidclassError
from vidclass.digest import file_digest
from vidclass.gallery import Gallery, VideoRecord
from vidclass.gallery.records import EmbeddedVideo
from vidclass.gallery.thumbnails import LONG_SIDE, Thumbnail, frame_at, video_thumbnail
from vidclass.video import probe, read_frames

from .conftest import link_videos, run_cli, start_server, stop_server, video

CLIP = "cleaning_pool_1s.mp4"  # 340x256, 1.07 s
TURNED = "odd/rotation_90.mov"  # 568x320 stored, shown upright: 320x568
KEY = "s3cret/k=y;z"  # needs quoting as a cookie


# -- helpers ----------------------------------------------------------------------------------
def picture(jpeg: bytes) -> np.ndarray:
    """A JPEG decoded (PyAV's MJPEG decoder) as RGB (H, W, 3): it is a real picture."""
    import av

    assert jpeg[:3] == b"\xff\xd8\xff"
    frames = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg))
    assert len(frames) == 1
    return frames[0].to_ndarray(format="rgb24")


def thumbnail_rows(db: Path) -> dict[str, tuple[bytes, int, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT hash, jpeg, width, height FROM thumbnails").fetchall()
    return {digest: (jpeg, w, h) for digest, jpeg, w, h in rows}


def as_indexed(path: Path, tags=(), **fields) -> VideoRecord:
    """`path` as an index run stores it (its content hash, size, mtime and size in
    pixels), with `tags` [(label, score)] and other `fields`."""
    info = probe(path)
    st = os.stat(path)
    return VideoRecord(
        str(path),
        file_digest(path),
        st.st_size,
        st.st_mtime,
        "i3d.kinetics400",
        info.duration,
        info.width,
        info.height,
        tags=[{"label": label, "score": score} for label, score in tags],
        **fields,
    )


def made_up(path: str, tags=(), digest: str | None = None, **fields) -> VideoRecord:
    return VideoRecord(
        path,
        digest or f"h-{path}",
        1,
        0.0,
        "i3d.kinetics400",
        5.0,
        tags=[{"label": label, "score": score} for label, score in tags],
        **fields,
    )


def fetch(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, lower-cased headers, body bytes) of a GET."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def fetch_json(url: str, headers: dict | None = None):
    status, _, body = fetch(url, headers)
    return status, json.loads(body)


def q(value) -> str:
    return quote(str(value), safe="")


# -- thumbnails -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, size",
    [(CLIP, (240, 181)), (TURNED, (135, 240)), ("odd/unordered_pts.mov", (50, 50))],
)
def test_a_thumbnail_is_the_middle_frame_upright_and_small(name, size):
    """Long side 240 (a smaller video is not enlarged), upright, and the picture of the
    frame in the middle of the video."""
    path = video(name)
    info = probe(path)
    thumb = video_thumbnail(path, info.duration, info.width, info.height)
    assert (thumb.width, thumb.height) == size and max(size) <= LONG_SIDE
    rgb = picture(thumb.jpeg)
    assert rgb.shape == (size[1], size[0], 3)
    assert len(thumb.jpeg) < 20_000
    middle = read_frames(path, [info.duration / 2], short_side=min(size)).frames[-1]
    assert middle.shape == rgb.shape
    assert np.abs(middle.astype(int) - rgb.astype(int)).mean() < 6  # JPEG's loss only
    # Sizes unknown: probed.
    assert video_thumbnail(path, info.duration).jpeg == thumb.jpeg


def test_a_moment_past_the_end_is_its_last_frame():
    path = video(CLIP)  # 1.07 s
    last = frame_at(path, 5.0, None, None)
    assert (last.width, last.height) == (240, 181)


def test_copies_share_a_thumbnail_and_the_last_video_takes_it_along(tmp_path):
    """One picture per content: copies (classified or only embedded) show it, a moved
    video keeps it, and it goes when no video of that content is left."""
    thumb = video_thumbnail(video(CLIP), 1.07)
    other = video_thumbnail(video(TURNED), 0.1)
    db = tmp_path / "g.sqlite"
    with Gallery(db) as g:
        store = g.store
        store.put(made_up("/v/a.mp4", [("x", 0.5)], digest="same"))
        store.put(made_up("/v/b.mp4", [("x", 0.4)], digest="same"))
        store.put_embedded(EmbeddedVideo("/v/c.mp4", "same", 1, 0.0, "clip", 3.0))
        store.put(made_up("/v/other.mp4", digest="other"))
        store.put_thumbnail("same", thumb)
        store.put_thumbnail("other", other)
        for path in ("/v/a.mp4", "/v/b.mp4", "/v/c.mp4"):
            assert g.thumbnail(path) == thumb
        assert g.thumbnail("/v/other.mp4") == other
        assert g.thumbnail("/v/none.mp4") is None
        assert len(thumbnail_rows(db)) == 2
        embedded = g.video("/v/c.mp4")
        assert embedded["thumbnail"] is True and embedded["tags"] == []
        assert embedded["duration"] == 3.0
        assert g.video("/v/a.mp4")["thumbnail"] is True
        assert g.video("/v/none.mp4") is None

        store.delete("/v/a.mp4")
        assert g.thumbnail("/v/b.mp4") == thumb
        store.move("/v/b.mp4", "/v/moved.mp4", 1.0)
        assert g.thumbnail("/v/moved.mp4") == thumb and g.thumbnail("/v/b.mp4") is None
        store.delete("/v/moved.mp4")  # an embedded video still has that content
        assert g.thumbnail("/v/c.mp4") == thumb
        store.delete("/v/c.mp4")
        assert set(thumbnail_rows(db)) == {"other"}
        # A video whose content changed (put again under its path): its old picture goes.
        store.put(made_up("/v/other.mp4", digest="changed"))
        assert thumbnail_rows(db) == {} and g.thumbnail("/v/other.mp4") is None


def test_a_stored_thumbnail_that_is_not_a_sane_jpeg_is_not_served(tmp_path):
    db = tmp_path / "g.sqlite"
    with Gallery(db) as g:
        for name in ("svg", "big", "text", "ok"):
            g.store.put(made_up(f"/v/{name}.mp4", digest=name))
    good = video_thumbnail(video(CLIP), 1.07)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO thumbnails VALUES (?, ?, ?, ?)",
            [
                ("svg", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", 9, 9),
                ("big", b"\xff\xd8\xff" + bytes(600 << 10), 240, 180),  # a JPEG's start
                ("text", "\xff\xd8\xff not bytes", 240, 180),
                ("ok", good.jpeg, "240", "181"),  # sizes as text: read as numbers
            ],
        )
    with Gallery(db) as g:
        assert g.thumbnail("/v/svg.mp4") is None
        assert g.thumbnail("/v/big.mp4") is None
        assert g.thumbnail("/v/text.mp4") is None
        assert g.thumbnail("/v/ok.mp4") == Thumbnail(good.jpeg, 240, 181)


def test_a_page_says_no_thumbnail_where_none_would_be_served(tmp_path):
    db = tmp_path / "g.sqlite"
    with Gallery(db) as g:
        g.store.put(made_up("/v/svg.mp4", digest="svg"))
        g.store.conn.execute("INSERT INTO thumbnails VALUES ('svg', ?, 9, 9)", (b"<svg/>",))
        g.store.conn.commit()
        assert g.thumbnail("/v/svg.mp4") is None
        assert g.browse()["videos"][0]["thumbnail"] is False


# -- pages ------------------------------------------------------------------------------------
@pytest.fixture
def paged(tmp_path):
    """30 made-up videos put in a shuffled order (every third one answered unknown,
    each tagged "common" with score (i % 10) / 10 and four other labels) and a video
    only embedded by a vision-language model; thumbnails for the even ones."""
    thumb = video_thumbnail(video(CLIP), 1.07)
    g = Gallery(tmp_path / "g.sqlite")
    for i in np.random.default_rng(0).permutation(30):
        tags = [("common", (i % 10) / 10), (f"solo {i}", 0.95)] + [
            (f"extra {k}", 0.01 * k) for k in (3, 2, 1)
        ]
        tags.sort(key=lambda t: -t[1])
        g.store.put(made_up(f"/v/{i:02d}.mp4", tags, unknown=bool(i % 3 == 0)))
        if i % 2 == 0:
            g.store.put_thumbnail(f"h-/v/{i:02d}.mp4", thumb)
    g.store.put_embedded(EmbeddedVideo("/v/zz.mp4", "h-zz", 1, 0.0, "clip", 7.0))
    yield g
    g.close()


def test_browse_pages_every_video_by_path(paged):
    first = paged.browse()
    assert (first["total"], first["offset"], first["limit"], first["tag"]) == (31, 0, 24, None)
    assert [v["video"] for v in first["videos"]] == [f"/v/{i:02d}.mp4" for i in range(24)]
    v7 = first["videos"][7]
    assert v7["tags"] == [  # its best three, best first
        {"label": "solo 7", "score": 0.95},
        {"label": "common", "score": 0.7},
        {"label": "extra 3", "score": 0.03},
    ]
    assert v7["unknown"] is False and v7["tag_score"] is None and v7["duration"] == 5.0
    assert [v["thumbnail"] for v in first["videos"][:4]] == [True, False, True, False]
    assert first["videos"][3]["unknown"] is True
    rest = paged.browse(offset=24, limit=24)
    assert [v["video"] for v in rest["videos"]] == [
        *(f"/v/{i:02d}.mp4" for i in range(24, 30)),
        "/v/zz.mp4",
    ]
    embedded = rest["videos"][-1]
    assert embedded["tags"] == [] and embedded["unknown"] is None
    assert embedded["duration"] == 7.0 and embedded["thumbnail"] is False
    assert paged.browse(offset=31)["videos"] == [] and paged.browse(offset=31)["total"] == 31
    page = paged.browse(offset=5, limit=3)
    assert [v["video"] for v in page["videos"]] == ["/v/05.mp4", "/v/06.mp4", "/v/07.mp4"]
    known = paged.browse(known_only=True, limit=200)  # not unknown: the embedded one too
    assert known["total"] == 21
    assert [v["video"] for v in known["videos"]] == [
        *(f"/v/{i:02d}.mp4" for i in range(30) if i % 3),
        "/v/zz.mp4",
    ]


def test_browse_a_tag_best_score_first(paged):
    page = paged.browse(tag="common", limit=5)
    assert page["total"] == 30 and page["tag"] == "common"
    # Scores 0.9 (09, 19, 29), then 0.8 (08, 18, ...): ties by path.
    assert [v["video"] for v in page["videos"]] == [
        "/v/09.mp4",
        "/v/19.mp4",
        "/v/29.mp4",
        "/v/08.mp4",
        "/v/18.mp4",
    ]
    assert [v["tag_score"] for v in page["videos"]] == [0.9, 0.9, 0.9, 0.8, 0.8]
    whole = paged.browse(tag="common", limit=200)["videos"]
    assert [(-v["tag_score"], v["video"]) for v in whole] == sorted(
        (-v["tag_score"], v["video"]) for v in whole
    )
    assert paged.browse(tag="common", offset=28, limit=5)["videos"][-1]["video"] == "/v/20.mp4"
    known = paged.browse(tag="common", known_only=True, limit=200)
    assert known["total"] == 20
    assert [v["video"] for v in known["videos"][:3]] == ["/v/19.mp4", "/v/29.mp4", "/v/08.mp4"]
    assert all(v["unknown"] is False for v in known["videos"])
    one = paged.browse(tag="solo 12")
    assert one["total"] == 1 and one["videos"][0]["tag_score"] == 0.95
    assert paged.browse(tag="no such tag") == {
        "total": 0,
        "offset": 0,
        "limit": 24,
        "tag": "no such tag",
        "videos": [],
    }


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"tag": ""}])
def test_browse_refuses_pages_out_of_bounds(paged, bad):
    with pytest.raises(VidclassError):
        paged.browse(**bad)


def test_a_frame_only_of_a_held_video(tmp_path):
    lib = link_videos(tmp_path / "lib", [CLIP])
    with Gallery(tmp_path / "g.sqlite") as g:
        g.store.put(as_indexed(lib / CLIP))
        assert g.held(lib / CLIP) == (340, 256)
        at = g.frame(lib / CLIP, 0.5)
        assert (at.width, at.height) == (240, 181) and picture(at.jpeg).shape == (181, 240, 3)
        other = video(TURNED)
        assert g.held(other) is None
        with pytest.raises(VidclassError, match="not in the gallery"):
            g.frame(other, 0.0)
        with pytest.raises(VidclassError, match="not in the gallery"):
            g.frame("/etc/hostname", 0.0)
        for t in (-1.0, float("nan"), float("inf")):
            with pytest.raises(VidclassError, match="t must be"):
                g.frame(lib / CLIP, t)


# -- index runs -------------------------------------------------------------------------------
def test_a_gallery_made_before_thumbnails_gets_them_on_the_next_index_run(tmp_path):
    """Videos indexed before thumbnails, by a vidclass whose gallery had no such table:
    the next index run (nothing new to classify, so no model) makes their pictures and
    says so; a video whose picture cannot be made keeps its record."""
    lib = link_videos(tmp_path / "lib", [CLIP, TURNED, "odd/not_a_video.mp4"])
    db = tmp_path / "g.sqlite"
    with Gallery(db) as g:
        g.store.set_meta("model", "i3d.kinetics400")
        g.store.put(as_indexed(lib / CLIP, [("cleaning pool", 0.9)]))
        g.store.put(as_indexed(lib / "rotation_90.mov", [("yoga", 0.2)]))
        st = os.stat(lib / "not_a_video.mp4")  # recorded as if it had been read
        g.store.put(
            VideoRecord(
                str(lib / "not_a_video.mp4"), "nv", st.st_size, st.st_mtime, "i3d.kinetics400"
            )
        )
    with sqlite3.connect(db) as conn:  # the schema before thumbnails
        conn.executescript(
            "DROP TRIGGER videos_thumbnail; DROP TRIGGER embedded_thumbnail; DROP TABLE thumbnails;"
        )
    done = run_cli("index", lib, "--db", db, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 videos found, 0 classified, 0 failed, 3 unchanged" in done.stderr
    assert "2 thumbnails added to videos indexed before" in done.stderr
    assert "not_a_video.mp4: no thumbnail" in done.stderr
    rows = thumbnail_rows(db)
    clip, turned = file_digest(video(CLIP)), file_digest(video(TURNED))
    assert set(rows) == {clip, turned}
    assert rows[clip][1:] == (240, 181) and rows[turned][1:] == (135, 240)
    assert picture(rows[turned][0]).shape == (240, 135, 3)
    with Gallery(db) as g:
        assert g.video(lib / "not_a_video.mp4")["thumbnail"] is False
        assert g.browse()["total"] == 3
    again = run_cli("index", lib, "--db", db, timeout=120)
    assert again.returncode == 0 and "thumbnails added" not in again.stderr
    assert thumbnail_rows(db) == rows


@pytest.mark.slow
def test_index_makes_thumbnails_copies_share_them_moves_keep_them_prune_removes_them(tmp_path):
    lib = link_videos(tmp_path / "lib", [CLIP, TURNED])
    clip, turned = file_digest(video(CLIP)), file_digest(video(TURNED))
    db = tmp_path / "g.sqlite"

    def index(*extra):
        done = run_cli("index", lib, "--db", db, *extra)
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "2 classified" in index()
    first = thumbnail_rows(db)
    assert set(first) == {clip, turned}
    for jpeg, w, h in first.values():
        assert max(w, h) == LONG_SIDE and picture(jpeg).shape == (h, w, 3)
    with sqlite3.connect(db) as conn:  # as a gallery made before thumbnails has none
        conn.execute("DELETE FROM thumbnails")
    assert "2 thumbnails added to videos indexed before" in index()
    assert thumbnail_rows(db) == first  # the same pictures again

    (lib / "copy.mp4").symlink_to(video(CLIP))
    copied = index()
    assert "1 copy of indexed videos" in copied and "thumbnails added" not in copied
    with Gallery(db) as g:
        assert g.thumbnail(lib / "copy.mp4").jpeg == first[clip][0]
    (lib / "sub").mkdir()
    (lib / "rotation_90.mov").rename(lib / "sub" / "moved.mov")
    assert "1 moved" in index()
    with Gallery(db) as g:
        assert g.thumbnail(lib / "sub" / "moved.mov").jpeg == first[turned][0]
    assert thumbnail_rows(db) == first

    (lib / "sub" / "moved.mov").unlink()
    assert "1 gone from disk" in index()
    assert set(thumbnail_rows(db)) == {clip, turned}  # kept until pruned
    assert "1 removed" in index("--prune")
    assert set(thumbnail_rows(db)) == {clip}
    (lib / CLIP).unlink()  # its copy still holds that content
    assert "1 removed" in index("--prune")
    assert set(thumbnail_rows(db)) == {clip}
    (lib / "copy.mp4").unlink()
    assert "1 removed" in index("--prune")
    assert thumbnail_rows(db) == {}


# -- over HTTP --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    """A media folder (two copied clips, a text file, links inside and out) and a
    gallery of its clips, one video outside it, made-up ones and crafted pictures."""
    pytest.importorskip("fastapi", reason="serve needs the serve extra")
    root = Path(os.path.realpath(tmp_path_factory.mktemp("browse")))
    media = root / "media"
    (media / "sub").mkdir(parents=True)
    shutil.copy(video(CLIP), media / "clip.mp4")
    shutil.copy(video(TURNED), media / "sub" / "turned.mov")
    (media / "notes.txt").write_text("not a video\n")
    (media / "inner.mp4").symlink_to("clip.mp4")  # a link that stays inside
    (media / "out.mp4").symlink_to(video("arm_wrestling.mp4"))  # one that leads out
    (media / "fake.mp4").symlink_to("notes.txt")  # a video's name for a text file
    shutil.copy(video(CLIP), root / "secret.mp4")  # beside the media folder
    outside = Path(os.path.realpath(video("odd/unordered_pts.mov")))
    db = root / "g.sqlite"
    with Gallery(db) as g:
        for path, tags, unknown in [
            (media / "clip.mp4", [("cleaning pool", 0.9), ("a", 0.1), ("b", 0.05), ("c", 0.01)], 0),
            (media / "sub" / "turned.mov", [("cleaning pool", 0.4), ("yoga", 0.3)], 1),
            (outside, [("juggling", 0.7)], None),
        ]:
            record = as_indexed(path, tags, unknown=None if unknown is None else bool(unknown))
            g.store.put(record)
            info = probe(path)
            g.store.put_thumbnail(record.hash, video_thumbnail(path, info.duration))
        g.store.put(made_up("/v/made_up.mp4", [("cleaning pool", 0.6)]))
        g.store.put(made_up("/v/crafted.mp4", digest="crafted"))
        g.store.put(made_up("/v/oversize.mp4", digest="oversize"))
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO thumbnails VALUES ('crafted', ?, 9, 9)", (b"<svg/>",))
        conn.execute(
            "INSERT INTO thumbnails VALUES ('oversize', ?, 240, 180)",
            (b"\xff\xd8\xff" + bytes(600 << 10),),
        )
    return {
        "root": root,
        "media": media,
        "db": db,
        "clip": str(media / "clip.mp4"),
        "turned": str(media / "sub" / "turned.mov"),
        "outside": str(outside),
    }


def serving(site: dict, name: str, *args: str):
    (site["root"] / name).mkdir()
    return start_server(
        site["root"] / name, "--gallery", str(site["db"]), "--media", str(site["media"]), *args
    )


@pytest.fixture(scope="module")
def plain(site):
    proc, url, _ = serving(site, "plain")
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def keyed(site):
    proc, url, _ = serving(site, "keyed", "--api-key", KEY)
    yield url
    stop_server(proc)


def test_pages_over_http_say_where_to_play_each_video(site, plain):
    status, page = fetch_json(plain + "/v1/gallery/videos")
    assert status == 200
    everything = sorted(
        [site["clip"], site["turned"], site["outside"]]
        + ["/v/made_up.mp4", "/v/crafted.mp4", "/v/oversize.mp4"]
    )
    assert page["total"] == 6 and page["limit"] == 24 and page["offset"] == 0
    assert [v["video"] for v in page["videos"]] == everything
    by_path = {v["video"]: v for v in page["videos"]}
    assert by_path[site["clip"]]["media"] == "clip.mp4"
    assert by_path[site["turned"]]["media"] == "sub/turned.mov"
    assert by_path[site["outside"]]["media"] is None  # not under --media
    assert by_path["/v/made_up.mp4"]["media"] is None  # not on disk
    assert by_path[site["clip"]]["thumbnail"] and by_path[site["outside"]]["thumbnail"]
    assert by_path["/v/made_up.mp4"]["thumbnail"] is False
    assert [t["label"] for t in by_path[site["clip"]]["tags"]] == ["cleaning pool", "a", "b"]
    status, page = fetch_json(plain + "/v1/gallery/videos?offset=1&limit=2")
    assert status == 200 and [v["video"] for v in page["videos"]] == everything[1:3]
    assert (page["total"], page["offset"], page["limit"]) == (6, 1, 2)
    status, page = fetch_json(plain + "/v1/gallery/videos?tag=cleaning%20pool")
    assert status == 200 and page["total"] == 3 and page["tag"] == "cleaning pool"
    assert [(v["video"], v["tag_score"]) for v in page["videos"]] == [
        (site["clip"], 0.9),
        ("/v/made_up.mp4", 0.6),
        (site["turned"], 0.4),
    ]
    status, page = fetch_json(plain + "/v1/gallery/videos?tag=cleaning%20pool&known_only=true")
    assert status == 200 and page["total"] == 2
    assert [v["video"] for v in page["videos"]] == [site["clip"], "/v/made_up.mp4"]
    assert fetch_json(plain + "/v1/gallery/videos?limit=200")[0] == 200
    for bad in ("limit=0", "limit=201", "offset=-1", "limit=x", "tag="):
        assert fetch(plain + "/v1/gallery/videos?" + bad)[0] == 422, bad


def test_tags_and_one_video_over_http(site, plain):
    status, tags = fetch_json(plain + "/v1/gallery/tags")
    with Gallery(site["db"]) as g:
        assert status == 200 and tags == g.tags()
    assert tags[0] == {"label": "cleaning pool", "videos": 3, "best_score": 0.9}
    status, one = fetch_json(plain + "/v1/gallery/video?video=" + q(site["clip"]))
    assert status == 200 and one["video"] == site["clip"] and one["media"] == "clip.mp4"
    assert one["thumbnail"] is True and one["unknown"] is False
    assert one["hash"] == file_digest(site["clip"]) and (one["width"], one["height"]) == (340, 256)
    assert [t["label"] for t in one["tags"]] == ["cleaning pool", "a", "b", "c"]
    status, one = fetch_json(plain + "/v1/gallery/video?video=" + q("/v/made_up.mp4"))
    assert status == 200 and one["media"] is None and one["thumbnail"] is False
    for missing in ("/etc/hostname", site["root"] / "secret.mp4", "/v/none.mp4"):
        status, body = fetch_json(plain + "/v1/gallery/video?video=" + q(missing))
        assert status == 404 and "not in the gallery" in body["detail"]
    assert fetch(plain + "/v1/gallery/video?video=")[0] == 422


def test_thumbnails_over_http(site, plain):
    url = plain + "/v1/gallery/thumbnail?video="
    status, headers, body = fetch(url + q(site["clip"]))
    with Gallery(site["db"]) as g:
        assert status == 200 and body == g.thumbnail(site["clip"]).jpeg
    assert headers["content-type"] == "image/jpeg" and headers["etag"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"].startswith("private")
    # A moment's frame, decoded now, of a held video.
    status, headers, at = fetch(url + q(site["turned"]) + "&t=0.05")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert picture(at).shape == (240, 135, 3)
    status, _, first = fetch(url + q(site["clip"]) + "&t=0")
    assert status == 200 and picture(first).shape == (181, 240, 3)
    assert fetch(url + q(site["clip"]) + "&t=0.01")[2] == first  # kept, by the tenth
    # Only pictures of videos the gallery holds, whatever is on disk.
    for path in ("/etc/hostname", site["root"] / "secret.mp4", "/v/none.mp4"):
        assert fetch(url + q(path))[0] == 404, path
        assert fetch(url + q(path) + "&t=0")[0] == 404, path
    assert fetch(url + q("/v/made_up.mp4"))[0] == 404  # held, no picture
    status, _, body = fetch(url + q("/v/made_up.mp4") + "&t=1")
    assert status == 422 and b"no longer on disk" in body
    assert fetch(url + q("/v/crafted.mp4"))[0] == 404  # not a JPEG
    assert fetch(url + q("/v/oversize.mp4"))[0] == 404
    for t in ("-1", "nan", "inf", "1e8", "x"):
        assert fetch(url + q(site["clip"]) + "&t=" + t)[0] == 422, t


def test_media_answers_ranges(site, plain):
    data = Path(site["clip"]).read_bytes()
    url = plain + "/v1/media?video=clip.mp4"
    status, headers, body = fetch(url)
    assert status == 200 and body == data
    assert headers["accept-ranges"] == "bytes" and headers["content-type"] == "video/mp4"
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, body = fetch(url, {"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(data)}"
    status, headers, body = fetch(url, {"Range": "bytes=-10"})
    assert status == 206 and body == data[-10:]
    status, _, body = fetch(url, {"Range": f"bytes={len(data) - 5}-"})
    assert status == 206 and body == data[-5:]
    assert fetch(url, {"Range": f"bytes={len(data) + 10}-"})[0] == 416
    status, headers, body = fetch(plain + "/v1/media?video=" + q("sub/turned.mov"))
    assert status == 200 and body == Path(site["turned"]).read_bytes()
    assert headers["content-type"] == "video/quicktime"
    status, _, body = fetch(plain + "/v1/media?video=inner.mp4")  # a link inside
    assert status == 200 and body == data


@pytest.mark.parametrize(
    "name, status",
    [
        ("../secret.mp4", 403),
        ("sub/../../secret.mp4", 403),
        ("SECRET", 403),  # the same file by its absolute path
        ("out.mp4", 403),  # a link inside that leads out
        ("/etc/hostname", 403),
        ("notes.txt", 404),
        ("fake.mp4", 404),  # a video's name, a text file's bytes
        ("nope.mp4", 404),
        ("sub", 404),
        ("", 422),
    ],
)
def test_media_only_video_files_under_the_media_folder(site, plain, name, status):
    name = str(site["root"] / "secret.mp4") if name == "SECRET" else name
    got, _, body = fetch(plain + "/v1/media?video=" + q(name))
    assert got == status, body


def test_media_examples(site, plain):
    status, found = fetch_json(plain + "/v1/media/examples")
    assert status == 200
    # Video files only, by name, links left out; sizes as on disk.
    assert found == [
        {"video": "clip.mp4", "size": os.path.getsize(site["clip"])},
        {"video": os.path.join("sub", "turned.mov"), "size": os.path.getsize(site["turned"])},
    ]
    assert fetch_json(plain + "/v1/media/examples?limit=1") == (200, found[:1])
    for bad in ("0", "101", "x"):
        assert fetch(plain + "/v1/media/examples?limit=" + bad)[0] == 422, bad


def session_cookie(url: str, headers: dict) -> tuple[int, str | None]:
    """(status, the Set-Cookie header) of POST /v1/session."""
    request = urllib.request.Request(url + "/v1/session", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.headers.get("set-cookie")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("set-cookie")


def test_with_an_api_key_pictures_and_media_take_the_session_cookie_too(site, keyed, plain):
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert session_cookie(keyed, {}) == (401, None)
    status, made = session_cookie(keyed, bearer)
    assert status == 200
    # Named by the port, HttpOnly, SameSite=Strict, for /v1 only; its value is not the key.
    port = keyed.rsplit(":", 1)[1]
    pair, *flags = [part.strip() for part in made.split(";")]
    name, value = pair.split("=", 1)
    assert name == f"vidclass_pictures_{port}" and KEY not in value and len(value) == 64
    assert {"HttpOnly", "Path=/v1"} <= set(flags) and "SameSite=strict" in flags
    assert session_cookie(plain, {}) == (200, None)  # without --api-key: no cookie
    cookie = {"Cookie": pair}
    wrong_cookies = [
        {"Cookie": f"{name}=nope"},
        {"Cookie": f"{name}={value[:-1]}"},
        {"Cookie": f"vidclass_pictures_1={value}"},  # another port's name
        {"Cookie": f"{name}=%FF%FE"},
        {"Cookie": f"vidclass_key={quote(KEY, safe='')}"},  # the key itself is no cookie
    ]
    pages = keyed + "/v1/gallery/videos"
    assert fetch(pages)[0] == 401
    assert fetch(pages, cookie)[0] == 401  # pages need the header
    assert fetch_json(pages, bearer)[1]["total"] == 6
    assert fetch(keyed + "/v1/media/examples", cookie)[0] == 401
    assert fetch(keyed + "/v1/media/examples", bearer)[0] == 200
    shown = [
        keyed + "/v1/media?video=clip.mp4",
        keyed + "/v1/gallery/thumbnail?video=" + q(site["clip"]),
    ]
    for url in shown:
        assert fetch(url, bearer)[0] == 200, url
        assert fetch(url, cookie)[0] == 200, url
        assert fetch(url)[0] == 401, url
        for wrong in wrong_cookies:
            assert fetch(url, wrong)[0] == 401, (url, wrong)
        wrong_header = {"Authorization": "Bearer nope", **cookie}  # the header decides
        assert fetch(url, wrong_header)[0] == 401, url
    status, _, body = fetch(shown[0], {**cookie, "Range": "bytes=0-9"})
    assert status == 206 and body == Path(site["clip"]).read_bytes()[:10]


def test_every_video_file_kind_is_served_as_a_video_type():
    from vidclass.batch import VIDEO_EXTENSIONS
    from vidclass.serve.routes.media import TYPES

    assert set(TYPES) == set(VIDEO_EXTENSIONS)
    assert TYPES[".ts"] == "video/mp2t" and TYPES[".3gp"] == "video/3gpp"
