"""WebSocket /v1/live against a real server on 127.0.0.1, and the page's camera in chromium
with the fake camera (see the `server` fixture and tests/test_page.py)."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from urllib.parse import urlencode

import pytest

from .conftest import start_server, stop_server
from .helpers import ARTIFACTS, browser_recording, call, chromium

websockets = pytest.importorskip("websockets", reason="serve needs the serve extra")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from vidclass.serve.live import MAX_MESSAGE  # noqa: E402

CHUNK = 32 << 10


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> bytes:
    """The first 6 s of arm_wrestling.mp4 as a browser records it: VP8 in WebM."""
    return browser_recording(tmp_path_factory.mktemp("live") / "arm_wrestling.webm")


def ws_url(http_url: str, **params) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return http_url.replace("http://", "ws://") + "/v1/live" + query


class Listener:
    """Every message of a socket, decoded, gathered by a thread until the close."""

    def __init__(self, socket):
        self.socket = socket
        self.messages: list[dict] = []
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self):
        try:
            for text in self.socket:
                self.messages.append(json.loads(text))
        except ConnectionClosed:
            pass

    def kinds(self) -> list[str]:
        return [m["type"] for m in self.messages]

    def wait_for(self, kind: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.messages if m["type"] == kind]
            if found:
                return found[0]
            if not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {kind} message in {timeout} s: {self.messages}")

    def closed(self, timeout: float = 60) -> tuple[int, str]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the server did not close the socket"
        return self.socket.close_code, self.socket.close_reason


def exchange(url: str, *sends, **options) -> tuple[list[dict], int]:
    """Send `sends` in order (stopping once the server has closed); (messages, code)."""
    with connect(url, open_timeout=30, close_timeout=10, **options) as ws:
        listener = Listener(ws)
        for message in sends:
            try:
                ws.send(message)
            except ConnectionClosed:
                break
        code, _ = listener.closed()
    return listener.messages, code


def live_running(url: str) -> int:
    return call(url + "/healthz")[2]["live"]["running"]


def wait_released(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while live_running(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_running(url) == 0, "a live session outlived its socket"


def test_a_recording_sent_in_chunks_gets_windows_segments_and_a_summary(server, recording):
    with connect(
        ws_url(server["url"], stride=1, top_k=3), subprotocols=["vidclass"], open_timeout=30
    ) as ws:
        assert ws.subprotocol == "vidclass"
        listener = Listener(ws)
        for start in range(0, len(recording), CHUNK):
            ws.send(recording[start : start + CHUNK])
            time.sleep(0.05)
        ready = listener.wait_for("ready", 30)
        assert ready["model"] == "i3d.kinetics400" and ready["stride"] == 1.0
        listener.wait_for("window", 120)
        ws.send("stop")
        code, _ = listener.closed()
    assert code == 1000
    messages = listener.messages
    windows = [m for m in messages if m["type"] == "window"]
    assert windows and all(len(w["predictions"]) == 3 for w in windows)
    assert all(w["predictions"][0]["label"] == "arm wrestling" for w in windows)
    assert all(w["latency"] > 0 and w["end"] - w["start"] == pytest.approx(2.56) for w in windows)
    segments = [m for m in messages if m["type"] == "segment"]
    assert segments and segments[-1]["label"] == "arm wrestling"  # the open one, closed at stop
    summary = messages[-1]
    assert summary["type"] == "summary" and summary["windows"] == len(windows)
    # "stop" ends the feed: what was sent is labelled, then the stream ends
    assert summary["ended"] == "end of stream" and summary["latency_median"] > 0
    assert "error" not in listener.kinds()
    wait_released(server["url"])


def test_chosen_labels_narrow_each_window(server, recording):
    url = ws_url(server["url"], labels="Tai-Chi, arm_wrestling", top_k=5, stride=2)
    with connect(url, open_timeout=30) as ws:
        listener = Listener(ws)
        for start in range(0, len(recording), CHUNK):
            ws.send(recording[start : start + CHUNK])
        window = listener.wait_for("window", 120)
        ws.send("stop")
        code, _ = listener.closed()
    assert code == 1000 and listener.messages[-1]["stride"] == 2.0
    assert [p["label"] for p in window["predictions"]] == ["arm wrestling", "tai chi"]
    assert "labels: Tai-Chi, arm_wrestling" in listener.messages[0]["model"]


def test_garbage_is_one_error_and_a_close(server):
    garbage = random.Random(0).randbytes(1_100_000)  # past FFmpeg's 1 MB format probe
    pieces = [garbage[i : i + (64 << 10)] for i in range(0, len(garbage), 64 << 10)]
    messages, code = exchange(ws_url(server["url"]), *pieces)
    assert code == 1003
    errors = [m for m in messages if m["type"] == "error"]
    assert len(errors) == 1 and "cannot open" in errors[0]["error"], messages
    assert "Traceback" not in errors[0]["error"]
    assert messages[-1]["type"] == "summary" and messages[-1]["windows"] == 0
    wait_released(server["url"])


@pytest.mark.parametrize(
    "query, needle",
    [
        ({"stride": "0"}, "stride must be a number from 0.04 to 3600"),
        ({"stride": "nan"}, "stride must be"),
        ({"top_k": "1e9"}, "top_k must be"),
        ({"labels": "no such label"}, "no label 'no such label'"),
        ({"prompt": "a video of {}"}, "need labels"),
        ({"multi_label": "maybe"}, "true or false"),
    ],
)
def test_bad_parameters_are_an_error_and_1008(server, query, needle):
    messages, code = exchange(ws_url(server["url"], **query))
    assert code == 1008
    assert [m["type"] for m in messages] == ["error"] and needle in messages[0]["error"]


def test_oversize_and_text_messages_are_refused(server):
    messages, code = exchange(ws_url(server["url"]), bytes(MAX_MESSAGE + 1))
    assert code == 1009 and "at most 2 MB" in messages[0]["error"]
    messages, code = exchange(ws_url(server["url"]), "hello")
    assert code == 1003 and 'the text "stop"' in messages[0]["error"]
    messages, code = exchange(ws_url(server["url"]), "stop")  # nothing sent: nothing to say
    assert code == 1000 and [m["type"] for m in messages] == ["summary"]
    wait_released(server["url"])


def test_the_key_and_the_session_limit(tmp_path):
    key = "s3cr3t/+~"
    proc, url, _ = start_server(tmp_path, "--precision", "fp32", "--live", "1", "--api-key", key)
    try:
        for options in ({}, {"additional_headers": {"Authorization": "Bearer nope"}}):
            messages, code = exchange(ws_url(url), **options)
            assert code == 4401 and messages == [
                {"type": "error", "error": "missing or wrong API key"}
            ]
        # A browser's way: the key as a subprotocol beside "vidclass".
        token = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
        as_browser = {"subprotocols": ["vidclass", f"vidclass.key.{token}"]}
        with connect(ws_url(url), open_timeout=30, **as_browser) as held:
            assert held.subprotocol == "vidclass"
            deadline = time.monotonic() + 10
            while not live_running(url) and time.monotonic() < deadline:
                time.sleep(0.05)
            headers = {"additional_headers": {"Authorization": f"Bearer {key}"}}
            messages, code = exchange(ws_url(url), **headers)
            assert code == 1013 and "busy: 1 live sessions" in messages[0]["error"]
            held.socket.close()  # gone without a close frame
        wait_released(url)
        messages, code = exchange(ws_url(url), "stop", **as_browser)
        assert code == 1000 and messages[-1]["type"] == "summary"
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def camera_browser():
    yield from chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")


@pytest.mark.slow
def test_the_page_labels_the_camera_live(camera_browser, server):
    page = camera_browser.new_page(viewport={"width": 1000, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server["url"] + "/")
    page.wait_for_selector("text=Model: i3d.kinetics400")
    page.click("#view-try")  # the server has a gallery: the page opens on it
    page.click("#camera-start")
    # The fake camera's test pattern: the structure and that it moves, not a label.
    page.locator("#bars li .label").first.wait_for(timeout=90_000)
    assert page.locator("#bars li").count() == 5
    assert 0 < float(page.locator("#bars .bar").first.get_attribute("aria-valuenow")) <= 1
    assert page.locator("#status").text_content().startswith("Live: i3d.kinetics400")
    assert page.locator("#camera").is_visible()
    stats = page.locator("#live-stats").text_content()
    assert stats.startswith("1 windows") and "latency" in stats
    page.wait_for_function(
        "s => document.getElementById('live-stats').textContent !== s", arg=stats, timeout=90_000
    )
    page.click("#camera-stop")
    page.wait_for_selector("#status >> text=Stopped:", timeout=60_000)
    segment = page.locator("#strip li.live-segment").first
    assert segment.text_content() and " from " in segment.get_attribute("aria-label")
    assert page.locator("#camera").is_hidden() and page.locator("#camera-stop").is_hidden()
    assert page.locator("#camera-start").is_enabled()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-live.png"), full_page=True)
    assert errors == []
    page.close()
    wait_released(server["url"])
