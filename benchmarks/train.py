"""Time to train a classifier on N ten-second videos: feature extraction and head.

Makes N distinct 10 s videos (320x240, 25 fps) from five shared sources (random crop,
mirror and start offset, looped), then runs `vidclass.training.train` on them in a fresh
process per run with an empty feature cache, and once more after adding 10 videos (only
those are extracted). Prints medians of the runs.

    python benchmarks/train.py [--videos-per-label 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
SOURCES = {  # label -> shared clip
    "arm wrestling": "arm_wrestling.mp4",
    "eating spaghetti": "eating_spaghetti.mp4",
    "flipping pancake": "flipping_pancake.mkv",
    "juggling soccer ball": "soccer_juggling.avi",
    "people walking": "long/people_139s.mp4",
}
SECONDS, FPS, SIZE = 10, 25, (320, 240)


def make_videos(videos: Path, out: Path, per_label: int, seed: int = 0) -> int:
    import av
    import numpy as np

    from vidclass.video import read_frames

    rng = random.Random(seed)
    made = 0
    for label, name in SOURCES.items():
        src = read_frames(videos / name, None, size=None)  # every frame, decoded once
        times = np.asarray(src.times)
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            start = rng.uniform(0, src.end_time)
            h, w = src.frames[0].shape[:2]
            scale = rng.uniform(0.75, 1.0)
            ch, cw = int(h * scale), int(w * scale)
            top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
            mirror = rng.random() < 0.5
            with av.open(str(folder / f"{i:03d}.mp4"), "w") as container:
                stream = container.add_stream("libx264", rate=FPS)
                stream.width, stream.height = SIZE
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "ultrafast", "crf": "23"}
                for k in range(SECONDS * FPS):
                    t = (start + k / FPS) % src.end_time
                    frame = src.frames[min(int(np.searchsorted(times, t)), len(times) - 1)]
                    frame = frame[top : top + ch, left : left + cw]
                    if mirror:
                        frame = frame[:, ::-1]
                    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                    for packet in stream.encode(vf.reformat(*SIZE)):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            made += 1
    return made


def measure(data: Path, out: Path) -> dict:
    import vidclass.training

    start = time.perf_counter()
    result = vidclass.training.train(data, out, force=True)
    total = time.perf_counter() - start
    return {
        "total": total,
        "extract": result.extract_seconds,
        "head": result.head_seconds,
        "videos": result.config["training"]["videos"],
        "from_cache": result.config["training"]["features_from_cache"],
        "accuracy": result.config["metrics"]["validation"]["accuracy"],
        "epochs": result.config["training"]["epochs_run"],
    }


def run(data: Path, out: Path, cache: Path) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(data), "--out", str(out)]
    env = dict(os.environ, VIDCLASS_FEATURE_CACHE=str(cache))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-per-label", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        n = make_videos(args.videos, tmp / "data", args.videos_per_label)
        print(f"made {n} videos of {SECONDS} s in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        runs = []
        for r in range(args.repeats):
            runs.append(run(tmp / "data", tmp / "model", tmp / f"cache{r}"))
            print(f"run {r + 1}: {runs[-1]}", file=sys.stderr)
        make_videos(args.videos, tmp / "added", 2, seed=1)  # 10 more, two per label
        for label in SOURCES:
            for clip in (tmp / "added" / label).iterdir():
                clip.rename(tmp / "data" / label / f"new_{clip.name}")
        again = run(tmp / "data", tmp / "model", tmp / "cache0")
    med = {k: statistics.median(r[k] for r in runs) for k in ("total", "extract", "head")}
    acc = statistics.median(r["accuracy"] for r in runs)
    from vidclass.info import cpu_line

    print(f"\n{cpu_line()}")
    print(f"{n} videos of {SECONDS} s, {len(SOURCES)} labels, median of {args.repeats} runs")
    print(f"  total (load, features, head, save)  {med['total']:7.1f} s")
    print(
        f"  feature extraction                  {med['extract']:7.1f} s "
        f"({med['extract'] / n:.2f} s/video)"
    )
    print(f"  head training                       {med['head']:7.1f} s")
    print(f"  validation accuracy                 {acc:7.3f}")
    print(
        f"after adding 10 videos: {again['total']:.1f} s in all, {again['extract']:.1f} s "
        f"of features ({again['from_cache']} of {again['videos']} from the cache)"
    )
    print(f"goal: under 300 s for 100 videos -> {'met' if med['total'] < 300 else 'NOT met'}")


if __name__ == "__main__":
    main()
