"""Requests per second and latency of POST /v1/classify at 1, 4 and 16 concurrent clients.

Starts `vidclass serve` on 127.0.0.1 (queue large enough that no request is refused),
uploads a shared clip from each client in a loop for a fixed number of requests per
level, and prints throughput and latency percentiles. Loopback only.

    python benchmarks/serve.py [--requests 24] [--clip cleaning_pool_1s.mp4]
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

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"


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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24, help="per concurrency level")
    parser.add_argument("--clip", default="cleaning_pool_1s.mp4")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    args = parser.parse_args()
    clip = args.videos / args.clip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "vidclass", "serve", "--port", str(port), "--queue", "64"]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(360):
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                time.sleep(0.5)
        upload(base + "/v1/classify", clip)  # warm-up
        print(f"POST /v1/classify with {clip.name}, {args.requests} requests per level")
        print(f"{'clients':>8}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'non-200':>9}")
        for clients in (1, 4, 16):
            r = level(base + "/v1/classify", clip, clients, args.requests)
            print(
                f"{r['clients']:>8}{r['rps']:>8.2f}{r['p50']:>8.2f}{r['p95']:>8.2f}"
                f"{r['p99']:>8.2f}{r['other']:>9}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
