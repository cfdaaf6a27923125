"""Gallery speed: indexing throughput and search latency at 1k and 100k entries.

Synthetic entries (5 tags drawn from the Kinetics-400 labels, a 1024-d feature vector,
a duration) go through the same storage path as indexed videos (one transaction per
video). Then text searches (words, prefixes, synonyms) and similar-video queries are
timed; medians and 95th percentiles. Real indexing of the shared clips is timed too.

    python benchmarks/gallery.py [--sizes 1000 100000] [--queries 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
QUERIES = ["guitar", "guit", "football", "dance", "swim", "playing drums", "cook", "ski"]
CLIPS = [
    "arm_wrestling.mp4",
    "cleaning_pool_1s.mp4",
    "cricket_shot.gif",
    "eating_spaghetti.mp4",
    "flipping_pancake.mkv",
    "soccer_juggling.avi",
]


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def made_up(i: int, rng, labels: list[str], path: str, tags: int = 5, **fields):
    """The i-th made-up video: `tags` of `labels` with Dirichlet scores, a random size
    and length, 720p; `fields` set the rest."""
    from vidclass.gallery import VideoRecord

    picks = rng.choice(len(labels), tags, replace=False)
    scores = np.sort(rng.dirichlet(np.ones(tags)))[::-1]
    return VideoRecord(
        path=path,
        hash=f"{i:064x}",
        size=int(rng.integers(1e5, 1e8)),
        mtime=0.0,
        model="i3d.kinetics400",
        duration=float(rng.uniform(1, 600)),
        width=1280,
        height=720,
        tags=[{"label": labels[j], "score": float(s)} for j, s in zip(picks, scores, strict=True)],
        **fields,
    )


def fill(db: Path, n: int, dim: int = 1024, seed: int = 0) -> float:
    """Insert n synthetic videos; returns entries per second."""
    from vidclass.gallery import Gallery
    from vidclass.models import get_entry

    labels = get_entry("i3d.kinetics400").labels
    rng = np.random.default_rng(seed)
    g = Gallery(db)
    start = time.perf_counter()
    for i in range(n):
        feature = rng.standard_normal(dim).astype(np.float32)
        g.store.put(made_up(i, rng, labels, f"/videos/{i:06d}.mp4", feature=feature))
    rate = n / (time.perf_counter() - start)
    g.store.set_meta("model", "i3d.kinetics400")
    g.close()
    return rate


def time_queries(db: Path, repeats: int) -> dict:
    from vidclass.gallery import Gallery

    g = Gallery(db)
    text = []
    for _ in range(repeats):
        for q in QUERIES:
            t = time.perf_counter()
            g.search(q, limit=20)
            text.append(time.perf_counter() - t)
    t = time.perf_counter()
    paths, _ = g.vectors.matrix(g.store)  # first similar query loads the vectors
    load = time.perf_counter() - t
    sim = []
    for i in range(repeats):
        t = time.perf_counter()
        g.similar(paths[i * 7 % len(paths)], limit=10)
        sim.append(time.perf_counter() - t)
    g.close()
    return {"text": text, "similar": sim, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--queries", type=int, default=50, help="repeats of each query")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    args = parser.parse_args()
    from vidclass.info import cpu_line

    print(cpu_line())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(
            f"{'entries':>8}{'insert/s':>10}{'search ms median':>18}{'p95':>7}"
            f"{'similar ms median':>19}{'p95':>7}{'vectors load s':>16}{'db MB':>8}"
        )
        for n in args.sizes:
            db = tmp / f"g{n}.sqlite"
            rate = fill(db, n)
            q = time_queries(db, args.queries)
            size = sum(f.stat().st_size for f in tmp.glob(f"g{n}.sqlite*")) / 1e6
            print(
                f"{n:>8}{rate:>10.0f}{statistics.median(q['text']) * 1e3:>18.2f}"
                f"{p95(q['text']) * 1e3:>7.2f}{statistics.median(q['similar']) * 1e3:>19.2f}"
                f"{p95(q['similar']) * 1e3:>7.2f}{q['load']:>16.2f}{size:>8.0f}"
            )
        if all((args.videos / c).exists() for c in CLIPS):
            lib = tmp / "clips"
            lib.mkdir()
            for c in CLIPS:
                (lib / c).symlink_to(args.videos / c)
            cmd = [sys.executable, "-m", "vidclass", "index", str(lib), "--db", str(tmp / "r.db")]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ))
            wall = time.perf_counter() - start
            print(
                f"\nreal indexing, {len(CLIPS)} shared clips with i3d.kinetics400 (whole "
                f"command, model load included): {wall:.1f} s, {len(CLIPS) / wall:.2f} videos/s"
            )


if __name__ == "__main__":
    main()
