"""Requests per second and latency of POST /v1/classify at 1, 4 and 16 concurrent clients.

Starts `vidclass serve` on 127.0.0.1 (queue large enough that no request is refused),
uploads a shared clip from each client in a loop for a fixed number of requests per
level, and prints throughput, latency percentiles and how the server batched the
requests (from /healthz: forward passes, requests per pass, the model's seconds per
clip and the share of the time it was busy), then the throughput of 4 and 16 clients
against 1, measured in the same round. Each round runs every level; with several
rounds the medians come last. Prints the CPU and its flags first: a figure means
little without them. Loopback only. `PYTHONPATH=OTHER/src` serves another checkout
(an earlier revision without batching stats leaves those columns blank).

    python benchmarks/serve.py [--requests 24] [--rounds 1] [--clip cleaning_pool_1s.mp4]

`--gallery-page` measures instead what the gallery page waits for: a gallery of
--videos-in-gallery made-up videos (3 to 5 tags each from the 400 Kinetics labels, the
thumbnail of --clip stored for each content hash) is put through the store, `vidclass
serve --gallery DB` is started, and the first page is loaded as a browser loads it:
GET /v1/gallery/videos?limit=24 and /v1/gallery/tags at once, then the page's 24
thumbnails over 6 connections; likewise a page deep in the list (offset 9,000) and a
tag's page. The first load after the server starts is shown apart, then medians of
--runs loads.

    python benchmarks/serve.py --gallery-page [--runs 7] [--videos-in-gallery 10000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np

from vidclass.info import cpu_line

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
LEVELS = (1, 4, 16)  # concurrent clients
PAGE = 24  # videos on a page of the gallery (the browse verb's default)
BROWSER_CONNECTIONS = 6  # what a browser opens to one host over HTTP/1.1


def upload(url: str, path: Path) -> int:
    boundary = uuid.uuid4().hex
    data = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def level(url: str, clip: Path, clients: int, total: int) -> dict:
    latencies, statuses = [], []
    lock = threading.Lock()
    left = [total]

    def client():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t = time.perf_counter()
            status = upload(url, clip)
            with lock:
                latencies.append(time.perf_counter() - t)
                statuses.append(status)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = statuses.count(200)
    return {
        "clients": clients,
        "rps": ok / wall,
        "p50": statistics.median(latencies),
        "p95": float(np.percentile(latencies, 95)),
        "p99": float(np.percentile(latencies, 99)),
        "other": len(statuses) - ok,
        "wall": wall,
    }


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def start(args, *extra: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "vidclass", "serve", "--port", str(port), "--queue", "64"]
    cmd += ["--runtime", args.runtime, "--precision", args.precision, *extra]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            if get(base + "/healthz")["status"] == "ok":
                return server, base
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not come up in 3 minutes")


def batches_since(base: str, before: dict | None, wall: float) -> str:
    """Forward passes the batcher ran since `before` (a /healthz "batching"), the
    requests each held on average, the model's seconds per clip and the share of the
    level's time the model was busy (blank for a server without batching)."""
    now = get(base + "/healthz").get("batching")
    if before is None or now is None:
        return ""
    passes = now["batches"] - before["batches"]
    held = now["batched_requests"] - before["batched_requests"]
    clips = now["clips"] - before["clips"]
    seconds = now["model_seconds"] - before["model_seconds"]
    return (
        f"{passes:>8}{held / passes if passes else 0:>10.2f}"
        f"{seconds / clips if clips else 0:>11.3f}{seconds / wall:>7.0%}"
    )


# -- --gallery-page ----------------------------------------------------------------------------
def made_up_gallery(db: Path, n: int, clip: Path, seed: int = 0) -> float:
    """`n` made-up videos put through the store as an index run puts them (one
    transaction per video, and one per thumbnail: `clip`'s, for every content hash);
    the seconds it took."""
    from gallery import made_up  # the gallery benchmark's made-up videos
    from vidclass.gallery import Gallery
    from vidclass.gallery.thumbnails import video_thumbnail
    from vidclass.models import get_entry
    from vidclass.video import probe

    labels = get_entry("i3d.kinetics400").labels
    info = probe(clip)
    picture = video_thumbnail(clip, info.duration, info.width, info.height)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with Gallery(db) as g:
        g.store.set_meta("model", "i3d.kinetics400")
        for i in range(n):
            path = f"/videos/{i // 1000:02d}/{i:06d}.mp4"
            tags = int(rng.integers(3, 6))
            record = made_up(i, rng, labels, path, tags, unknown=bool(rng.random() < 0.1))
            g.store.put(record)
            g.store.put_thumbnail(record.hash, picture)
    return time.perf_counter() - start


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        if r.status != 200:
            raise SystemExit(f"{url}: {r.status}")
        return r.read()


def load_page(base: str, query: str, pool) -> dict:
    """Seconds a browser waits for a page of the gallery: the page and the tags at once,
    then the page's thumbnails over BROWSER_CONNECTIONS connections."""
    start = time.perf_counter()
    listing = pool.submit(fetch, f"{base}/v1/gallery/videos?limit={PAGE}{query}")
    tags = pool.submit(fetch, f"{base}/v1/gallery/tags")
    page = json.loads(listing.result())
    listed = time.perf_counter() - start
    tags.result()
    both = time.perf_counter() - start
    pictures = [
        f"{base}/v1/gallery/thumbnail?video={quote(v['video'], safe='')}"
        for v in page["videos"]
        if v["thumbnail"]
    ]
    sizes = list(pool.map(fetch, pictures))
    if len(sizes) != min(PAGE, page["total"] - page["offset"]):
        raise SystemExit(f"{len(sizes)} thumbnails on a page of {len(page['videos'])}")
    return {
        "videos": listed,
        "tags": both,
        "whole": time.perf_counter() - start,
        "bytes": sum(map(len, sizes)),
    }


def gallery_page(args) -> None:
    clip = args.videos / args.clip
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "gallery.sqlite"
        took = made_up_gallery(db, args.videos_in_gallery, clip)
        size = sum(f.stat().st_size for f in Path(tmp).glob("gallery.sqlite*")) / 1e6
        print(
            f"{args.videos_in_gallery} made-up videos put through the store in {took:.1f} s "
            f"(a video and its thumbnail a transaction each); database {size:.0f} MB"
        )
        server, base = start(args, "--gallery", str(db))
        try:
            with concurrent.futures.ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
                cold = load_page(base, "", pool)  # the server's first requests
                common = json.loads(fetch(base + "/v1/gallery/tags"))[0]
                deep = max(0, min(9000, args.videos_in_gallery - PAGE))
                pages = [
                    ("first page", ""),
                    (f"offset {deep:,}", f"&offset={deep}"),
                    (f"tag {common['label']!r} ({common['videos']} videos)",
                     "&tag=" + quote(common["label"], safe="")),
                ]  # fmt: skip
                print(
                    f"seconds a browser waits: the page's JSON, with the tags, with its {PAGE} "
                    f"thumbnails ({BROWSER_CONNECTIONS} connections), medians of {args.runs} "
                    "loads; first: the page's first load (the first page's: the server's "
                    "first requests)"
                )
                print(f"{'page':<42}{'videos':>8}{'+tags':>8}{'whole':>8}{'first':>8}{'KB':>6}")
                for name, query in pages:
                    first = cold if not query else load_page(base, query, pool)
                    runs = [load_page(base, query, pool) for _ in range(args.runs)]
                    med = {k: statistics.median(r[k] for r in runs) for k in first}
                    print(
                        f"{name:<42}{med['videos']:>8.3f}{med['tags']:>8.3f}"
                        f"{med['whole']:>8.3f}{first['whole']:>8.3f}{first['bytes'] / 1e3:>6.0f}"
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24, help="per concurrency level")
    parser.add_argument("--rounds", type=int, default=1, help="every level once a round")
    parser.add_argument("--clip", default="cleaning_pool_1s.mp4")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--runtime", default="auto", help="the server's --runtime (auto)")
    parser.add_argument("--precision", default="auto", help="the server's --precision (auto)")
    parser.add_argument(
        "--gallery-page", action="store_true", help="time the gallery page's requests instead"
    )
    parser.add_argument("--videos-in-gallery", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7, help="page loads (--gallery-page)")
    args = parser.parse_args()
    clip = args.videos / args.clip
    print(cpu_line())
    if args.gallery_page:
        gallery_page(args)
        return
    server, base = start(args)
    rps: dict[int, list[float]] = {n: [] for n in LEVELS}
    try:
        upload(base + "/v1/classify", clip)  # warm-up
        info = get(base + "/v1/info")
        print(
            f"POST /v1/classify with {clip.name}, {args.requests} requests per level; "
            f"{info['model']} in {info['runtime']} {info['precision']}"
        )
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}")
            print(
                f"{'clients':>8}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'non-200':>9}"
                f"{'passes':>8}{'req/pass':>10}{'s/clip':>11}{'busy':>7}"
            )
            for clients in LEVELS:
                before = get(base + "/healthz").get("batching")
                r = level(base + "/v1/classify", clip, clients, args.requests)
                rps[clients].append(r["rps"])
                print(
                    f"{r['clients']:>8}{r['rps']:>8.2f}{r['p50']:>8.2f}{r['p95']:>8.2f}"
                    f"{r['p99']:>8.2f}{r['other']:>9}{batches_since(base, before, r['wall'])}"
                )
            one = rps[1][-1]
            print(f"  4 vs 1: {rps[4][-1] / one:.2f}x, 16 vs 1: {rps[16][-1] / one:.2f}x")
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.rounds > 1:
        medians = {n: statistics.median(v) for n, v in rps.items()}
        ratios = [four / one for four, one in zip(rps[4], rps[1], strict=True)]
        print(
            "medians: "
            + ", ".join(f"{n} clients {m:.2f} req/s" for n, m in medians.items())
            + f"; 4 vs 1 (median of the rounds' ratios): {statistics.median(ratios):.2f}x"
        )


if __name__ == "__main__":
    main()
