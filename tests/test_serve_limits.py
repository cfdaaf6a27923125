"""The server under hostile requests, on a real server on 127.0.0.1: every class of
request that once gave a 500, hung a thread or read past a limit now gets a bounded,
documented answer, and the server stays healthy."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

import pytest

from .conftest import start_server, stop_server, video
from .helpers import call, made_up_gallery


def raw(url: str, body, content_type: str, *, chunked=False, headers=None, timeout=300):
    """(status, decoded JSON or text) for a POST of raw bytes (or an iterable of
    chunks, sent with chunked transfer encoding)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(
            "POST",
            target,
            body=body,
            headers={"Content-Type": content_type, **(headers or {})},
            encode_chunked=chunked,
        )
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


def detail(body) -> str:
    return json.dumps(body)


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("/v1/classify?clips=40", "less than or equal to 16"),
        ("/v1/classify?top_k=0", "greater than or equal to 1"),
        ("/v1/timeline?stride=0.001", "greater than or equal to 0.04"),
        ("/v1/timeline?window=nan", "finite number"),
        ("/v1/timeline?stride=inf", "finite number"),
        ("/v1/timeline?window=1e400", "finite number"),
    ],
)
def test_work_the_queue_cannot_bound_is_refused_up_front(server, query, needle):
    status, _, body = call(server["url"] + query, json_body={"path": "arm_wrestling.mp4"})
    assert status == 422 and needle in detail(body)


@pytest.mark.parametrize(
    "query",
    [
        "/v1/search?q=guit&limit=1" + "0" * 30,
        "/v1/search?q=guit&limit=-1",
        "/v1/search?q=guit&min_score=nan",
        "/v1/search?q=" + "a" * 5000,
        "/v1/similar?video=arm_wrestling.mp4&limit=-5",
        "/v1/similar?video=" + "a" * 5000,
    ],
)
def test_gallery_parameters_are_bounded(server, query):
    status, _, body = call(server["url"] + query)
    assert status == 422, body


def test_similar_follows_the_rules_of_classify(server):
    url = server["url"]
    # Only paths under --media, and no telling whether a file outside exists.
    for path in ("/etc/passwd", "/etc/no-such-file"):
        status, _, body = call(f"{url}/v1/similar?video={path}")
        assert status == 403 and body["detail"] == f"{path}: outside the media folder"
    status, _, body = call(f"{url}/v1/similar?video=../docs/REFERENCE.md")
    assert status == 403
    # An upload goes through the served model; its nearest is the same clip re-encoded.
    status, body = raw(
        f"{url}/v1/similar?limit=2",
        video("arm_wrestling_hevc.mp4").read_bytes(),
        "video/mp4",
    )
    assert status == 200 and "arm_wrestling" in body[0]["video"], body


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"path": "a\0b.mp4"}, 422, "NUL"),
        ({"path": "a\ud800b.mp4"}, 422, "not valid Unicode"),
        ({"path": "x" * 300}, 422, "over 255 bytes"),
        ({"path": "a/" * 3000}, 422, "over 4096 characters"),
    ],
)
def test_bad_paths_are_422(server, body, status, needle):
    data = json.dumps(body).encode()  # the surrogate goes as \\ud800, as a client sends it
    got, answer = raw(server["url"] + "/v1/classify", data, "application/json")
    assert got == status and needle in detail(answer)


def test_json_bodies_are_capped_and_parsed_safely(server):
    url = server["url"] + "/v1/classify"
    big = json.dumps({"path": "a/" * 500_000}).encode()  # a 1 MB path
    hit = {}

    def health():  # the event loop stays free while the big body is refused
        hit["status"] = call(server["url"] + "/healthz", timeout=30)[0]

    probe = threading.Thread(target=health)
    probe.start()
    assert raw(url, big, "application/json")[0] == 413
    probe.join(60)
    assert hit["status"] == 200
    assert raw(url, b"[" * 100_000 + b"]" * 100_000, "application/json")[0] == 413
    assert raw(url, b"[" * 20_000 + b"]" * 20_000, "application/json")[0] == 422  # too deep
    # Chunked: no Content-Length to check, so it is counted as it streams.
    chunks = (b'{"path": "' + b"a" * 65536 for _ in range(200))  # 13 MB, never buffered
    status, body = raw(url, chunks, "application/json", chunked=True)
    assert status == 413 and "64 KiB" in detail(body)
    status, body = raw(url, b"hello", "text/plain")
    assert status == 415 and "multipart/form-data" in body["detail"]


def test_raw_video_bodies_are_uploads(server):
    """As Hugging Face Inference API clients send them."""
    url = server["url"] + "/v1/classify?top_k=1"
    for kind in ("video/mp4", "application/octet-stream"):
        status, body = raw(url, video("cleaning_pool_1s.mp4").read_bytes(), kind)
        assert status == 200 and body["predictions"][0]["label"] == "cleaning pool", body
    status, body = raw(url, b"not a video at all", "video/mp4")
    assert status == 415 and "not a readable video" in body["detail"]
    # Over the upload limit, streamed without a length: cut off at the limit.
    chunks = (bytes(1 << 20) for _ in range(4))
    assert raw(url, chunks, "video/mp4", chunked=True)[0] == 413
    assert list(server["tmp"].iterdir()) == []


def test_odd_upload_names_and_damaged_uploads(server, tmp_path):
    url = server["url"] + "/v1/classify?top_k=1"
    clip = video("cleaning_pool_1s.mp4").read_bytes()
    for name in ("a\0b.mp4", "clip." + "x" * 300, "../../etc/passwd"):
        boundary = "vidclassboundary"
        body = (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="file"; filename="{name}"\r\nContent-Type: video/mp4\r\n\r\n'
            ).encode()
            + clip
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, answer = raw(url, body, f"multipart/form-data; boundary={boundary}")
        assert status == 200, answer
    # A stream whose codec has no decoder: once an AttributeError and a 500.
    data = bytearray(video("soccer_juggling.avi").read_bytes())
    for at in (i for i in range(len(data)) if data[i : i + 4] == b"xvid"):
        data[at : at + 4] = b"ZZZZ"
    status, answer = raw(url, bytes(data), "video/x-msvideo")
    assert status == 415 and "no decoder" in answer["detail"]
    assert list(server["tmp"].iterdir()) == []


def test_a_valid_file_that_once_hung_the_decoder(server, tmp_path):
    """The raw MPEG-4 remux sent the decoder into an endless seek loop, and four of them
    left the server answering 503 for good."""
    from .hostile import raw_m4v

    m4v = raw_m4v(video("soccer_juggling.avi"), tmp_path / "soccer.m4v").read_bytes()
    for _ in range(4):
        status, body = raw(server["url"] + "/v1/classify?top_k=1", m4v, "video/mp4")
        assert status == 200 and body["predictions"][0]["label"] == "juggling soccer ball"
    status, _, health = call(server["url"] + "/healthz")
    assert health["queue"]["inflight"] == 0


@pytest.mark.slow
def test_timed_out_work_stops_and_frees_the_model(tmp_path):
    proc, url, tmp = start_server(
        tmp_path, "--timeout", "3", "--precision", "fp32", "--media", str(video("odd").parent)
    )
    try:
        # Thousands of windows: far more than 3 s of work.
        status, _, body = call(
            url + "/v1/timeline?stride=0.04", json_body={"path": "long/people_139s.mp4"}
        )
        assert status == 504 and "took over 3 s" in body["detail"]
        deadline = time.monotonic() + 60  # one window's forward pass at most, in practice
        while call(url + "/healthz")[2]["queue"]["inflight"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert call(url + "/healthz")[2]["queue"]["inflight"] == 0
        status, _, body = call(url + "/v1/classify?top_k=1", json_body={"path": "odd/vfr.gif"})
        assert status == 200 and body["predictions"][0]["label"] == "arm wrestling"
    finally:
        stop_server(proc)


def test_a_damaged_gallery_is_503_not_500(tmp_path):
    db = made_up_gallery(tmp_path / "g.sqlite")
    proc, url, _ = start_server(tmp_path, "--gallery", str(db), "--precision", "fp32")
    try:
        assert call(url + "/v1/search?q=label")[0] == 200
        with open(db, "r+b") as f:  # damaged while the server runs
            for page in range(1, db.stat().st_size // 4096):
                f.seek(page * 4096)
                f.write(bytes(range(256)) * 16)
        status, _, body = call(url + "/v1/search?q=label")
        assert status == 503 and "gallery" in body["detail"], body
    finally:
        stop_server(proc)


def test_api_key(tmp_path):
    proc, url, _ = start_server(tmp_path, "--precision", "fp32", env={"VIDCLASS_API_KEY": "s3"})
    try:
        assert call(url + "/healthz")[0] == 200  # health checks need no key
        assert call(url + "/v1/models")[0] == 401
        assert call(url + "/v1/models", headers={"Authorization": "Bearer nope"})[0] == 401
        status, _, models = call(url + "/v1/models", headers={"Authorization": "Bearer s3"})
        assert status == 200 and models[0]["name"] == "i3d.kinetics400"
        schema = call(url + "/openapi.json")[2]
        assert "HTTPBearer" in schema["components"]["securitySchemes"]
    finally:
        stop_server(proc)


def test_a_public_address_without_a_key_is_warned_about(tmp_path):
    import subprocess
    import sys

    from .conftest import free_port

    proc = subprocess.Popen(
        [sys.executable, "-m", "vidclass", "serve", "--host", "0.0.0.0"]
        + ["--port", str(free_port()), "--model", "no.such.model"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "serving on 0.0.0.0 without --api-key" in err
