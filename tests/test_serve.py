"""The HTTP API against a real server on 127.0.0.1 (see the `server` fixture)."""

from __future__ import annotations

import copy
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import VIDEOS, free_port, video
from .helpers import call, multipart, wait_for


def test_classify_an_upload_and_a_path(server):
    status, _, body = call(server["url"] + "/v1/classify?top_k=3", file=video("arm_wrestling.mp4"))
    assert status == 200
    assert body["video"] == "arm_wrestling.mp4" and len(body["predictions"]) == 3
    assert body["predictions"][0]["label"] == "arm wrestling"
    assert set(body["predictions"][0]) == {"label", "score"}  # the CLI's JSON shape
    status, _, body = call(
        server["url"] + "/v1/classify?top_k=1", json_body={"path": "soccer_juggling.avi"}
    )
    assert status == 200 and body["predictions"][0]["label"] == "juggling soccer ball"


@pytest.mark.parametrize(
    "path",
    ["../docs/REFERENCE.md", "/etc/passwd", "odd/../../docs/REFERENCE.md", "..", "/"],
)
def test_no_path_outside_the_media_folder(server, path):
    status, _, body = call(server["url"] + "/v1/classify", json_body={"path": path})
    assert status == 403 and "outside the media folder" in body["detail"]


def test_bad_uploads_get_the_reason(server, tmp_path):
    # Announced as too big: refused from the headers, before any of the body is read.
    host, port = server["url"].removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/v1/classify")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(50 << 20))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and b"over 2 MB" in response.read()
    conn.close()
    # Within the announced slack but over the limit once streamed: refused while copying.
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(int(2.5 * (1 << 20))))
    status, _, body = call(server["url"] + "/v1/classify", file=big)
    assert status == 413 and "over 2 MB" in body["detail"]
    status, _, body = call(server["url"] + "/v1/classify", file=video("odd/not_a_video.mp4"))
    assert status == 415 and "not a readable video" in body["detail"]
    status, _, body = call(server["url"] + "/v1/classify", file=video("odd/empty.mp4"))
    assert status == 415 and "empty file" in body["detail"]
    status, _, body = call(server["url"] + "/v1/classify", json_body={"path": "nope.mp4"})
    assert status == 404
    status, _, body = call(server["url"] + "/v1/classify", json_body={"nothing": 1})
    assert status == 422
    status, _, body = call(server["url"] + "/v1/classify", json_body={"path": 5})
    assert status == 422 and "'path' must be" in body["detail"]


def test_timeline_models_gallery_and_schema(server):
    status, _, tl = call(
        server["url"] + "/v1/timeline?stride=0.5", file=video("cleaning_pool_1s.mp4")
    )
    assert status == 200 and tl["windows"] and tl["segments"]
    assert tl["segments"][0]["label"] == "cleaning pool"
    assert tl["windows"][0]["ood_score"] >= 0 and tl["windows"][0]["unknown"] is None
    # Why: the page asks on a budget of every window, then the two that matter most alone
    # and a 2x2 grid of each (the windows off the map: 2 passes for this 1 s video).
    budget = len(tl["windows"]) + 10
    status, _, why = call(
        server["url"] + f"/v1/explain?grid=2&budget={budget}&stride=0.5",
        file=video("cleaning_pool_1s.mp4"),
    )
    assert status == 200 and why["label"] == "cleaning pool" and why["passes"] <= budget
    assert len(why["seconds"]) == len(tl["windows"])
    assert len(why["regions"]) == min(2, len(tl["windows"]))
    assert all(len(r["grid"]) == 2 for r in why["regions"])
    status, _, why = call(  # only the labels asked for, as the timeline had them
        server["url"] + "/v1/explain?labels=surfing%20water,cleaning%20pool&grid=2&budget=5",
        file=video("cleaning_pool_1s.mp4"),
    )
    assert status == 200 and why["label"] == "cleaning pool"
    status, _, body = call(
        server["url"] + "/v1/explain?label=no%20such%20label", file=video("cleaning_pool_1s.mp4")
    )
    assert status == 422 and "no such label" in body["detail"]
    status, _, models = call(server["url"] + "/v1/models")
    assert status == 200 and models[0]["name"] == "i3d.kinetics400"
    assert models[0]["labels"] == 400
    status, _, hits = call(server["url"] + "/v1/search?q=guit")
    assert status == 200 and [h["video"] for h in hits] == ["/v/a.mp4", "/v/b.mp4"]
    # An indexed video under --media: its nearest is the same clip in another codec.
    status, _, near = call(server["url"] + "/v1/similar?video=arm_wrestling.mp4&limit=2")
    assert status == 200 and len(near) == 2
    assert near[0]["video"].endswith("arm_wrestling_vp9.webm") and near[0]["similarity"] > 0.9
    status, _, schema = call(server["url"] + "/openapi.json")
    assert {"/v1/classify", "/v1/timeline", "/v1/explain", "/v1/models"} <= set(schema["paths"])


def test_overload_gets_503_and_every_request_an_answer(server):
    """16 requests from 8 clients at once against a queue of 2: each is answered, with
    200 or with 503 and Retry-After, nothing else; memory stays bounded."""
    clip = video("cleaning_pool_1s.mp4")
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def client():
        for _ in range(2):
            status, headers, _ = call(server["url"] + "/v1/classify", file=clip, timeout=600)
            with lock:
                answers.append((status, headers))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert not any(t.is_alive() for t in threads)
    assert len(answers) == 16
    statuses = [s for s, _ in answers]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses
    assert all(h.get("retry-after") == "5" for s, h in answers if s == 503)
    rss_kb = int(
        next(
            ln
            for ln in Path(f"/proc/{server['pid']}/status").read_text().splitlines()
            if ln.startswith("VmRSS")
        ).split()[1]
    )
    assert rss_kb < 4 * 1024 * 1024  # under 4 GB with two clips in flight
    assert list(server["tmp"].iterdir()) == []  # every upload's temp file removed
    batching = call(server["url"] + "/healthz")[2]["batching"]
    assert batching["waiting"] == 0 and batching["batched_requests"] >= statuses.count(200)


def test_a_request_past_the_time_limit_gets_504(tmp_path):
    from .conftest import start_server, stop_server

    proc, url, tmp = start_server(tmp_path, "--timeout", "0.2", "--precision", "fp32")
    try:
        status, _, body = call(url + "/v1/classify", file=video("arm_wrestling.mp4"))
        assert status == 504 and "took over 0.2 s" in body["detail"]
        status, _, body = call(url + "/v1/classify", json_body={"path": "arm_wrestling.mp4"})
        assert status == 403 and "only allowed with --media" in body["detail"]
        status, _, _ = call(url + "/v1/search?q=x")
        assert status == 404  # no gallery given
    finally:
        stop_server(proc)
    assert list(tmp.iterdir()) == []


# -- batching: concurrent requests share forward passes ---------------------------------------
class Gate:
    """Forward passes, the first held until `release` is set: the model thread stays
    busy, so the requests sent meanwhile all queue up for it. `calls`: the clips of each
    forward pass, in order."""

    def __init__(self):
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def enter(self, clips: int) -> None:
        self.calls.append(clips)
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(600)


def held(model):
    """A copy of `model` (the weights shared) whose forward passes, and those of its
    label views, go through a Gate; (the copy, the gate)."""
    gate = Gate()

    class Held(type(model)):
        def logits(self, clips):
            gate.enter(len(clips))
            return super().logits(clips)

    served = copy.copy(model)
    served.__class__ = Held
    served._views = {}  # label views of its own, each a Held
    return served, gate


def serve_in_thread(app):
    """`app` under uvicorn in a thread of this process, on a free 127.0.0.1 port (so a
    test can hold its model); (url, stop)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "the server starting or failing")
    assert server.started, "the server did not start"

    def stop():
        server.should_exit = True
        thread.join(60)

    return f"http://127.0.0.1:{port}", stop


def zeroed_frames(source: Path, out: Path) -> Path:
    """`source` with its frame data zeroed: it probes as a video, but nothing decodes."""
    data = bytearray(source.read_bytes())
    at = data.find(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 68 : at - 4 + size] = bytes(size - 72)
    out.write_bytes(data)
    return out


def alone(model, name, params: dict) -> list[dict]:
    """The predictions of the engine run on one video, unbatched (`VideoClassifier.run`,
    what the server ran for each request before batching), for a request's `params`."""
    from vidclass import LabelChoice
    from vidclass.engine import Clips, Work

    labels, multi = params.get("labels"), params.get("multi_label") == "true"
    choice = LabelChoice(tuple(labels.split(",")), multi_label=multi) if labels else None
    work = Work(Clips(1), top_k=params.get("top_k", 5))
    return model.with_labels(choice).run(VIDEOS / name, work).predictions


def same_predictions(got: list[dict], want: list[dict]) -> bool:
    return [p["label"] for p in got] == [p["label"] for p in want] and all(
        abs(g["score"] - w["score"]) < 1e-4 for g, w in zip(got, want, strict=True)
    )


def send_held(url: str, gate: Gate, first: tuple, others: dict, waiting: int):
    """POST `first` to /v1/classify and, once its forward pass is held, every one of
    `others` ({name: (video, query parameters, as an upload)}) at once; release the
    model when `waiting` of them wait for it. ({name: (status, headers, body)}, the
    server's batching stats afterwards); "first" is the first one's name."""
    answers: dict[str, tuple] = {}

    def send(name, spec):
        path, params, upload = spec
        query = url + "/v1/classify?" + urllib.parse.urlencode(params)
        if upload:
            answers[name] = call(query, file=VIDEOS / path)
        else:
            answers[name] = call(query, json_body={"path": str(path)})

    threads = [threading.Thread(target=send, args=("first", first))]
    threads += [threading.Thread(target=send, args=item) for item in others.items()]
    try:
        threads[0].start()
        assert gate.entered.wait(300), "the first request never reached the model"
        for t in threads[1:]:
            t.start()
        health = lambda: call(url + "/healthz")[2]["batching"]  # noqa: E731
        wait_for(lambda: health()["waiting"] == waiting, f"{waiting} requests waiting")
    finally:
        gate.release.set()
        for t in threads:
            t.join(600)
    return answers, call(url + "/healthz")[2]["batching"]


@pytest.mark.slow
def test_concurrent_requests_share_forward_passes_and_answer_as_alone(model, tmp_path, monkeypatch):
    """While the model thread is held on a first request, eight more of three clip
    shapes (the same clip, others, labels chosen, an upload) and two bad ones arrive:
    each good one is scored in one forward pass per shape, whatever its labels, and
    answers as the engine does for it alone; the bad ones fail by themselves."""
    import tempfile

    from vidclass.serve.app import ServeConfig, create_app

    uploads = tmp_path / "tmp"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    pool = {"top_k": 3, "labels": "cleaning pool,diving cliff,swimming backstroke"}
    good = {  # name: (video, parameters, as an upload); clips of 27, 30 or 64 frames
        "pool": ("cleaning_pool_1s.mp4", {"top_k": 3}, False),
        "pool upload": ("cleaning_pool_1s.mp4", {"top_k": 3}, True),
        "pool top 5": ("cleaning_pool_1s.mp4", {"top_k": 5}, False),
        "pool labels": ("cleaning_pool_1s.mp4", pool, False),
        "one second": ("odd/one_second.mp4", {"top_k": 3}, False),
        "arm": ("arm_wrestling.mp4", {"top_k": 3}, False),
        "arm labels": (
            "arm_wrestling.mp4",
            {"top_k": 2, "labels": "arm wrestling,high kick"},
            False,
        ),
        "soccer": ("soccer_juggling.avi", {"top_k": 3}, False),
    }
    no_frames = zeroed_frames(video("cleaning_pool_1s.mp4"), tmp_path / "z.mp4")
    bad = {
        "not a video": ("odd/not_a_video.mp4", {}, False),
        "no frames": (no_frames, {}, True),
    }
    first = ("arm_wrestling.mp4", {"top_k": 3}, False)
    served, gate = held(model)
    url, stop = serve_in_thread(
        create_app(ServeConfig(model=model.name, media=str(VIDEOS), queue=16), served)
    )
    try:
        answers, stats = send_held(url, gate, first, {**good, **bad}, len(good))
    finally:
        stop()
    assert answers["not a video"][0] == 415
    assert answers["no frames"][0] == 422 and "z.mp4" in answers["no frames"][2]["detail"]
    for name, (path, params, _) in {**good, "first": first}.items():
        status, _, body = answers[name]
        assert status == 200, (name, body)
        assert same_predictions(body["predictions"], alone(model, path, params)), name
    # One forward pass for the first request, then one per clip shape: 4, 1 and 3 clips.
    assert stats["max_clips"] >= 4
    assert gate.calls[0] == 1 and sorted(gate.calls[1:]) == [1, 3, 4]
    assert stats["batches"] == 4 and stats["batched_requests"] == 1 + len(good)
    assert stats["largest"] == 4 and stats["waiting"] == 0 and stats["expired"] == 0
    assert list(uploads.iterdir()) == []


def test_vision_language_label_sets_batch_only_with_the_same_set(tmp_path):
    """A vision-language model's labels change its forward pass: requests with the same
    label set share one, another set or multi-label runs apart, and each answers as the
    engine does for it alone."""
    pytest.importorskip("transformers", reason="transformers not installed")
    import vidclass
    from vidclass.serve.app import ServeConfig, create_app

    from .tiny_vl import make_checkpoint

    make_checkpoint(tmp_path / "xclip", "xclip")
    model = vidclass.load_model(str(tmp_path / "xclip"), precision="fp32")
    one, two = "arm wrestling,eating spaghetti,surfing", "dog on the beach,cooking"
    same = {"top_k": 3, "labels": one}
    others = {
        "same": ("arm_wrestling.mp4", same, False),
        "same, other video": ("cleaning_pool_1s.mp4", {"top_k": 2, "labels": one}, False),
        "other set": ("arm_wrestling.mp4", {"top_k": 2, "labels": two}, False),
        "multi-label": ("arm_wrestling.mp4", {**same, "multi_label": "true"}, False),
    }
    first = ("eating_spaghetti.mp4", same, False)
    served, gate = held(model)
    url, stop = serve_in_thread(
        create_app(ServeConfig(model=model.name, media=str(VIDEOS), queue=8), served)
    )
    try:
        answers, stats = send_held(url, gate, first, others, len(others))
    finally:
        stop()
    for name, (path, params, _) in {**others, "first": first}.items():
        status, _, body = answers[name]
        assert status == 200, (name, body)
        assert same_predictions(body["predictions"], alone(model, path, params)), name
    assert gate.calls[0] == 1 and sorted(gate.calls[1:]) == [1, 1, 2]
    assert stats["batches"] == 4 and stats["batched_requests"] == 5


class Recorder:
    """A model whose logits are its clips times ten; `calls`: clips per pass."""

    def __init__(self):
        self.calls: list[int] = []

    def logits(self, clips):
        self.calls.append(len(clips))
        return clips * 10


def test_a_forward_past_its_deadline_is_dropped_not_scored():
    """A request that waited for the model past its deadline gets TimeLimitExceeded and
    leaves no row in the batch that runs next; the request beside it is scored."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from vidclass.limits import TimeLimitExceeded, remaining_time, time_limit
    from vidclass.serve.batching import Batcher

    model_thread = ThreadPoolExecutor(1)
    busy = threading.Event()
    model_thread.submit(busy.wait, 600)  # the model is busy with another request
    source = Recorder()
    batcher = Batcher(model_thread, max_clips=8, busy=lambda: 0)
    outcome: dict = {}

    def late():
        with time_limit(0.05, "late"):
            outcome["deadline"] = time.monotonic() + remaining_time()
            try:
                batcher.logits(source, torch.ones(1, 3))
            except TimeLimitExceeded:
                outcome["late"] = "expired"

    def on_time():
        outcome["on time"] = batcher.logits(source, torch.full((2, 3), 2.0))

    threads = [threading.Thread(target=late), threading.Thread(target=on_time)]
    try:
        threads[0].start()
        wait_for(lambda: batcher.stats.waiting == 1, "the late request waiting")
        wait_for(lambda: time.monotonic() > outcome["deadline"], "the late request's 0.05 s over")
        threads[1].start()
        wait_for(lambda: batcher.stats.waiting == 2, "both requests waiting")
    finally:
        busy.set()
        for t in threads:
            t.join(60)
        model_thread.shutdown()
    assert outcome["late"] == "expired"
    assert torch.equal(outcome["on time"], torch.full((2, 3), 20.0))
    assert source.calls == [2]
    assert batcher.stats.expired == 1 and batcher.stats.batches == 1


# -- a timeline's progress, streamed as NDJSON -------------------------------------------------
def stream(url: str, *, file=None, json_body=None, timeout=300, headers=None):
    """POST a video to `url` and read the answer line by line: (status, headers, the
    parsed lines, or the JSON body where it is not a stream)."""
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}"
    if file is not None:
        body, kind = multipart(file)
    else:
        body, kind = json.dumps(json_body).encode(), "application/json"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", target, body=body, headers={"Content-Type": kind, **(headers or {})})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        if not headers.get("content-type", "").startswith("application/x-ndjson"):
            return response.status, headers, json.loads(response.read() or b"null")
        return response.status, headers, [json.loads(line) for line in response if line.strip()]
    finally:
        conn.close()


def close_enough(got, want, what="") -> None:
    """The same JSON, numbers within 1e-5."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), what
        for key in want:
            close_enough(got[key], want[key], f"{what}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            close_enough(g, w, f"{what}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-5), what
    else:
        assert got == want, what


@pytest.mark.slow
def test_timeline_progress_streams_then_the_same_answer(server):
    """progress=true: NDJSON lines of progress up to every window, then the timeline
    the plain endpoint answers for the same video."""
    query = server["url"] + "/v1/timeline?stride=2&top_k=3"
    status, headers, lines = stream(query + "&progress=true", file=video("arm_wrestling.mp4"))
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    *progress, final = lines
    assert progress and all(p["type"] == "progress" for p in progress)
    done = [p["done"] for p in progress]
    assert done == sorted(done) and len(set(done)) == len(done) and done[0] >= 1
    assert {p["total"] for p in progress} == {len(final["windows"])}
    assert done[-1] == len(final["windows"]) == 5
    assert final["type"] == "timeline" and final["video"] == "arm_wrestling.mp4"
    status, _, plain = call(query, file=video("arm_wrestling.mp4"))
    assert status == 200 and "type" not in plain
    assert plain["predictions"][0]["label"] == "arm wrestling"
    close_enough({k: v for k, v in final.items() if k != "type"}, plain)
    assert list(server["tmp"].iterdir()) == []


def test_timeline_progress_fails_before_streaming_with_its_status(server, tmp_path):
    url = server["url"] + "/v1/timeline?progress=true"
    status, headers, body = stream(url, file=video("odd/not_a_video.mp4"))
    assert status == 415 and headers["content-type"] == "application/json"
    assert "not_a_video.mp4: not a readable video" in body["detail"]
    status, _, body = stream(url, file=video("odd/empty.mp4"))
    assert status == 415 and "empty file" in body["detail"]
    status, _, body = stream(url, json_body={"path": "nope.mp4"})
    assert status == 404
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(int(2.5 * (1 << 20))))
    status, _, body = stream(url, file=big)
    assert status == 413 and "over 2 MB" in body["detail"]
    status, _, body = stream(url + "&stride=0", json_body={"path": "arm_wrestling.mp4"})
    assert status == 422
    assert list(server["tmp"].iterdir()) == []


def test_a_streamed_timeline_past_its_deadline_ends_with_an_error_line(model):
    """Past --timeout, once the stream has begun: a last line of type error (the
    status code went out long ago), and the model is free again."""
    from vidclass.serve.app import ServeConfig, create_app

    config = ServeConfig(model=model.name, media=str(VIDEOS), queue=1, timeout=3)
    url, stop = serve_in_thread(create_app(config, model))
    try:
        status, _, lines = stream(
            url + "/v1/timeline?progress=true", json_body={"path": "long/people_139s.mp4"}
        )
        assert status == 200
        assert lines[-1] == {"type": "error", "status": 504, "detail": "timeline took over 3 s"}
        assert all(line["type"] == "progress" for line in lines[:-1])
        health = lambda: call(url + "/healthz")[2]["queue"]["inflight"]  # noqa: E731
        wait_for(lambda: health() == 0, "the work stopped", timeout=30)
    finally:
        stop()


def test_a_client_gone_mid_stream_stops_the_work(model):
    """A client that closes the connection mid-stream: the work stops at its next
    forward pass, long before --timeout, and frees its slot. Meanwhile the API key and
    the queue hold for streams as for the rest: 401, and 503 with Retry-After."""
    from vidclass.serve.app import ServeConfig, create_app

    config = ServeConfig(model=model.name, media=str(VIDEOS), queue=1, timeout=300, api_key="k")
    url, stop = serve_in_thread(create_app(config, model))
    key = {"Authorization": "Bearer k"}
    health = lambda: call(url + "/healthz")[2]["queue"]["inflight"]  # noqa: E731
    long = {"path": "long/people_139s.mp4"}
    try:
        status, headers, _ = stream(url + "/v1/timeline?progress=true", json_body=long)
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=120)
        conn.request(
            "POST",
            "/v1/timeline?progress=true",
            body=json.dumps(long).encode(),
            headers={"Content-Type": "application/json", **key},
        )
        response = conn.getresponse()
        assert response.status == 200
        first = json.loads(response.readline())
        assert first["type"] == "progress" and first["done"] < first["total"]
        assert health() == 1
        status, headers, body = stream(
            url + "/v1/timeline?progress=true", json_body=long, headers=key
        )
        assert status == 503 and headers["retry-after"] == "5" and "busy" in body["detail"]
        conn.sock.shutdown(socket.SHUT_RDWR)  # gone, mid-stream (138 windows: minutes)
        response.close()
        conn.close()
        wait_for(lambda: health() == 0, "the work stopped", timeout=60)
        status, _, body = call(
            url + "/v1/timeline", json_body={"path": "cleaning_pool_1s.mp4"}, headers=key
        )
        assert status == 200 and body["windows"]
    finally:
        stop()


@pytest.mark.slow
def test_a_classify_sent_during_a_long_timeline_is_answered_before_it(model):
    """Only forward passes run in the model thread: a timeline decodes in its own
    request thread, so a classify sent while a long one runs is answered first (before,
    the whole timeline ran in the model thread and the classify waited for all of it)."""
    from vidclass.serve.app import ServeConfig, create_app

    config = ServeConfig(model=model.name, media=str(VIDEOS), queue=4, timeout=300)
    url, stop = serve_in_thread(create_app(config, model))
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=120)
    try:
        conn.request(
            "POST",
            "/v1/timeline?progress=true",
            body=json.dumps({"path": "long/people_139s.mp4"}).encode(),  # 138 windows
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        assert response.status == 200
        first = json.loads(response.readline())
        assert first["type"] == "progress" and first["done"] < first["total"]
        clip = {"path": "arm_wrestling.mp4"}
        status, _, body = call(url + "/v1/classify", json_body=clip, timeout=60)
        assert status == 200 and body["predictions"][0]["label"] == "arm wrestling"
        # The timeline is still going: it holds its slot, its next line is progress.
        assert call(url + "/healthz")[2]["queue"]["inflight"] == 1
        after = json.loads(response.readline())
        assert after["type"] == "progress" and after["done"] < after["total"], after
        # Tag search and similar read SQLite in request threads too (no gallery: 404).
        assert call(url + "/v1/search?q=tai")[0] == 404
    finally:
        conn.sock.shutdown(socket.SHUT_RDWR)  # gone: the timeline stops
        conn.close()
        stop()
