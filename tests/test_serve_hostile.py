"""`vidclass serve` against an attacker on loopback: heads too big or too slow, sockets
that only hold slots, empty WebSocket messages, a non-ASCII key, and a recording whose
odd shape once kept a gigabyte after its session. Each waits a bounded time."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import free_port, run_cli, start_server, stop_server
from .helpers import browser_recording

pytest.importorskip("fastapi", reason="serve needs the serve extra")
websockets = pytest.importorskip("websockets", reason="serve needs the serve extra")
from websockets.sync.client import connect  # noqa: E402

from vidclass.serve import protocols  # noqa: E402

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
CHUNK = 32 << 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_videomae):
    """A server of the tiny test model: what is tested here is the server, not labels."""
    root = tmp_path_factory.mktemp("hostile")
    proc, url, _ = start_server(root, "--model", tiny_videomae, "--live", "2")
    yield {"url": url, "port": int(url.rsplit(":", 1)[1]), "proc": proc}
    stop_server(proc)


def healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def handshake(path: str = "/v1/live", *extra: str) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(sock: socket.socket, limit: float = 5.0) -> tuple[int, bytes]:
    """(status, everything the server sent) once it closed; fails if it has not closed
    within `limit` seconds."""
    sock.settimeout(limit)
    deadline = time.monotonic() + limit
    data = b""
    while True:
        assert time.monotonic() < deadline, f"no close within {limit} s: {data[:200]!r}"
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no close within {limit} s: {data[:200]!r}") from None
        if not piece:
            break
        data += piece
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


def send(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    return sock


BIG = "x" * 9000
LABELS = ",".join(f"label{i}" for i in range(1200))  # 1,200 labels: 11 KB of query


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (handshake("/v1/live", f"Cookie: a={BIG}"), 431),
        (handshake("/v1/live", f"Authorization: Bearer {BIG}"), 431),
        (handshake("/v1/live", f"Sec-WebSocket-Protocol: vidclass, vidclass.key.{BIG}"), 431),
        (handshake(f"/v1/live?labels={LABELS}"), 414),
        (handshake("/v1/live", *(f"X-{i}: 1" for i in range(200))), 431),
    ],
    ids=["cookie", "authorization", "subprotocol", "labels", "headers"],
)
def test_oversized_live_handshakes_are_answered_and_closed_at_once(tiny, request_bytes, status):
    began = time.monotonic()
    with send(tiny["port"], request_bytes) as sock:
        got, data = answer(sock)
    assert got == status, data[:300]
    assert b"at most" in data  # and says what the limit is
    assert time.monotonic() - began < 5


def test_seventy_oversized_handshakes_leave_the_server_to_everyone(tiny):
    """Once these hung for 300 s and more, and 70 of them made /healthz a 503."""
    socks = [send(tiny["port"], handshake("/v1/live", f"Cookie: a={BIG}")) for _ in range(70)]
    try:
        assert all(answer(sock)[0] == 431 for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert healthz(tiny["url"]) == 200


@pytest.mark.slow
def test_slow_and_incomplete_heads_do_not_hold_the_slots(tiny):
    """70 heads that never end and one socket that sends nothing, past --limit-
    concurrency's 64: each is cut off HEAD_TIMEOUT seconds after it began (408 where a
    head had begun), and /healthz answers again."""
    partial = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    socks = [send(tiny["port"], partial) for _ in range(70)]
    silent = socket.create_connection(("127.0.0.1", tiny["port"]), timeout=5)
    dribble = send(tiny["port"], b"G")
    began = time.monotonic()
    try:
        for _ in range(3):  # a byte now and then does not keep a head alive
            time.sleep(2)
            dribble.sendall(b"E")
        limit = protocols.HEAD_TIMEOUT + 5 - (time.monotonic() - began)
        assert all(answer(sock, limit)[0] == 408 for sock in [*socks, dribble])
        assert answer(silent, 5)[1] == b""  # nothing asked, nothing answered: closed
        assert time.monotonic() - began < protocols.HEAD_TIMEOUT + 5
    finally:
        for sock in [*socks, silent, dribble]:
            sock.close()
    assert healthz(tiny["url"]) == 200


def test_a_handshake_the_websockets_library_refuses_is_answered(monkeypatch):
    """Behind the head limits, uvicorn's WebSocket protocol itself: when websockets
    refuses a handshake, its answer used to stay queued, the socket open for good."""
    import threading

    import uvicorn
    import websockets.http11

    async def app(scope, receive, send):  # accepts and closes every WebSocket
        assert scope["type"] == "websocket"
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    # Lines the head limits let through, that websockets refuses.
    monkeypatch.setattr(websockets.http11, "MAX_LINE_LENGTH", 300)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="critical",
        **protocols.uvicorn_protocols(),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        with send(port, handshake("/ws", f"X-Long: {'y' * 400}")) as sock:
            status, data = answer(sock)
        assert status == 431 and b"Failed to open a WebSocket connection" in data, data
        with send(port, handshake("/ws")) as sock:  # the rest are taken as ever
            sock.settimeout(5)
            assert sock.recv(100).startswith(b"HTTP/1.1 101")
    finally:
        server.should_exit = True
        thread.join(10)


def test_http_heads_have_limits_that_leave_long_label_lists_alone(tiny):
    # A head of over 32 KB of fields: 431 at once.
    big = f"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: a={'y' * 40_000}\r\n\r\n".encode()
    with send(tiny["port"], big) as sock:
        assert answer(sock)[0] == 431
    # 15,000 characters of labels (serve takes up to 20,000) in a head that arrives in
    # pieces reach the API, which answers the missing video (h11 alone refused a head
    # still incomplete at 16 KB).
    labels = ",".join(f"not a label {i}" for i in range(1100))[:15_000]
    query = urllib.request.quote(labels)
    head = f"POST /v1/classify?labels={query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    data = head.encode()
    with socket.create_connection(("127.0.0.1", tiny["port"]), timeout=10) as sock:
        for start in range(0, len(data), 8000):
            sock.sendall(data[start : start + 8000])
            time.sleep(0.1)
        sock.settimeout(10)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 415"), reply[:300]
    assert b"send the video" in reply or b"multipart" in reply


def test_empty_messages_do_not_end_a_live_recording(tiny, tmp_path):
    """FFmpeg reads an empty read as the end of the file: once, a 6 s recording sent
    with empty messages between its chunks decoded 41 of its 150 frames."""
    recording = browser_recording(tmp_path / "rec.webm", width=320, height=180)
    url = tiny["url"].replace("http://", "ws://") + "/v1/live"
    with connect(url, open_timeout=30, close_timeout=10) as ws:
        for start in range(0, len(recording), CHUNK):
            ws.send(recording[start : start + CHUNK])
            ws.send(b"")
        ws.send("stop")
        messages = [json.loads(m) for m in ws]
    summary = messages[-1]
    assert summary["type"] == "summary", messages
    assert summary["frames"] == 150 and summary["ended"] == "end of stream", summary
    assert ws.close_code == 1000


@pytest.mark.slow
def test_empty_messages_keep_no_session_alive(tiny):
    url = tiny["url"].replace("http://", "ws://") + "/v1/live"
    began = time.monotonic()
    with connect(url, open_timeout=30, close_timeout=10) as ws:
        try:
            while time.monotonic() - began < 30:
                ws.send(b"")
                time.sleep(0.5)
        except websockets.exceptions.ConnectionClosed:
            pass
        messages = []
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            messages += [json.loads(m) for m in ws]
    assert ws.close_code == 4408, messages
    assert time.monotonic() - began < 20  # IDLE_S (10 s) after the start, not never


@pytest.mark.slow
@pytest.mark.parametrize("key", ["clé", "ключ", " padded", "tab\there"])
def test_an_api_key_headers_cannot_carry_is_refused_at_start(key, tiny_videomae):
    """Non-ASCII keys worked only as the subprotocol: HTTP clients send such header
    values in different encodings (or refuse to). Refused before the model loads."""
    began = time.monotonic()
    done = run_cli("serve", "--model", tiny_videomae, "--api-key", key, timeout=120)
    assert done.returncode != 0
    assert "--api-key must be printable ASCII" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - began < 60
    env_done = run_cli("serve", "--model", tiny_videomae, env={"VIDCLASS_API_KEY": key})
    assert "--api-key must be printable ASCII" in env_done.stderr


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) >> 10
    raise AssertionError("no VmRSS")


def live_session(url: str, recording: bytes) -> dict:
    with connect(url.replace("http://", "ws://") + "/v1/live", open_timeout=30) as ws:
        for start in range(0, len(recording), CHUNK):
            ws.send(recording[start : start + CHUNK])
            time.sleep(0.02)
        ws.send("stop")
        messages = [json.loads(m) for m in ws]
    return messages[-1]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_memory_after_a_thin_recording_returns_to_where_it_was(tmp_path):
    """A 1024x16 recording, scaled to the model's short side of 256, made frames of
    16384x256: the session held over a GB of them, and the server kept it (781 MB to
    1,931 MB). Its frames are kept cropped now: after a normal session has warmed the
    model, two thin sessions leave the server within a bound that would catch that."""
    normal = browser_recording(tmp_path / "normal.webm", width=320, height=180)
    thin = browser_recording(tmp_path / "thin.webm", width=1024, height=16)
    proc, url, _ = start_server(tmp_path, "--precision", "fp32", "--live", "1")
    try:
        summary = live_session(url, normal)
        assert summary["frames"] == 150 and summary["windows"] >= 1, summary
        time.sleep(1)
        warm = rss_mb(proc.pid)
        for _ in range(2):
            summary = live_session(url, thin)
            assert summary["frames"] == 150 and summary["windows"] >= 1, summary
        time.sleep(1)
        after = rss_mb(proc.pid)
        assert after - warm < 300, f"RSS {warm} MB warm, {after} MB after two thin sessions"
        assert healthz(url) == 200
    finally:
        stop_server(proc)
