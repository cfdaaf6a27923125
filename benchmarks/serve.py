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
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from vidclass.info import cpu_line

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
LEVELS = (1, 4, 16)  # concurrent clients


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


def start(args) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "vidclass", "serve", "--port", str(port), "--queue", "64"]
    cmd += ["--runtime", args.runtime, "--precision", args.precision]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24, help="per concurrency level")
    parser.add_argument("--rounds", type=int, default=1, help="every level once a round")
    parser.add_argument("--clip", default="cleaning_pool_1s.mp4")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--runtime", default="auto", help="the server's --runtime (auto)")
    parser.add_argument("--precision", default="auto", help="the server's --precision (auto)")
    args = parser.parse_args()
    clip = args.videos / args.clip
    print(cpu_line())
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
