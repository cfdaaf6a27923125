"""Speed of shared windows against one pass per window, and peak memory of `vidclass
timeline` on a 1-hour 720p video.

Shared windows (the default for I3D): the 139 s shared video at a 1 s and a 0.25 s
stride, each window scored alone (`per_window`) and read off one map of the video, in
one process with the default model as a user loads it, medians of `--runs` runs; with
how the two agree: top-1 labels, and the largest difference of any label's score.

The 1-hour video is made here: 10 s of the shared arm wrestling clip scaled to 1280x720 at
25 fps, encoded once, then its packets muxed 360 times with shifted timestamps (no
re-encoding), into a temporary folder. Each run is its own process, so peak RSS is per
run. Runs: a tiny random VideoMAE (16 frames spread over 2 s windows, stride 1 s: 3600
windows, so decoding and frame buffering dominate), and the default I3D model with a 60 s
stride (60 windows of 64 frames; at stride 1 s it would take about 2 h on 2 cores), and
the default model's shared windows at a 1 s stride (every frame through the model once).

    python benchmarks/timeline.py [--videos DIR] [--runs N] [--strides 1,0.25]
                                  [--skip-long] [--skip-hour]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
HOUR_COPIES = 360  # of a 10 s piece


def make_hour_video(source: Path, folder: Path) -> Path:
    import av

    from vidclass.video import read_frames

    piece = folder / "piece.mp4"
    times = [k / 25 for k in range(250)]
    frames = read_frames(source, times, size=(720, 1280)).frames
    with av.open(str(piece), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "32", "g": "50"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    hour = folder / "hour_720p.mp4"
    with av.open(str(piece)) as src, av.open(str(hour), "w") as out:
        ins = src.streams.video[0]
        outs = out.add_stream_from_template(ins)
        packets = [p for p in src.demux(ins) if p.size]
        span = int(round(10 / ins.time_base))
        for k in range(HOUR_COPIES):
            for p in packets:
                p.stream = outs
                shift = k * span
                p.pts, p.dts = p.pts + shift, p.dts + shift
                out.mux(p)
                p.pts, p.dts = p.pts - shift, p.dts - shift
    return hour


def make_tiny_model(folder: Path) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(
        image_size=64,
        patch_size=16,
        num_frames=16,
        tubelet_size=2,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        num_labels=10,
    )
    transformers.VideoMAEForVideoClassification(config).save_pretrained(folder)
    transformers.VideoMAEImageProcessor(
        size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}
    ).save_pretrained(folder)
    return folder


def run_one(video: str, model: str, window: float | None, stride: float, per_window: bool) -> dict:
    import vidclass

    clf = vidclass.load_model(model)
    t0 = time.perf_counter()
    tl = clf.timeline(video, window=window, stride=stride, per_window=per_window)
    return {
        "seconds": time.perf_counter() - t0,
        "windows": len(tl.windows),
        "duration": tl.duration,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--runs", type=int, default=3, help="runs of each (medians)")
    parser.add_argument("--strides", default="1,0.25", help="strides of the 139 s comparison")
    parser.add_argument("--skip-long", action="store_true", help="no 139 s comparison")
    parser.add_argument("--skip-hour", action="store_true", help="no 1-hour video")
    parser.add_argument("--run", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        video, model, window, stride, mode = args.run
        window = float(window) if window != "-" else None
        print(json.dumps(run_one(video, model, window, float(stride), mode == "per-window")))
        return
    from vidclass.info import cpu_line

    print(cpu_line())
    if not args.skip_long:
        strides = [float(s) for s in args.strides.split(",")]
        compare_shared(args.videos / "long" / "people_139s.mp4", args.runs, strides)
    if not args.skip_hour:
        hour_runs(args.videos)


def compare_shared(video: Path, runs: int, strides: list[float]) -> None:
    """Per-window against shared windows on one long video, in this process."""
    import numpy as np

    import vidclass

    if not video.exists():
        sys.exit(f"missing shared video {video}")
    model = vidclass.load_model()
    model.timeline(video, stride=60.0)  # graphs compiled, caches warm
    model.timeline(video, stride=60.0, per_window=True)
    print(
        f"\n{video.name}: {type(model).__name__}, {model.runtime} {model.precision}; "
        f"medians of {runs} runs, seconds"
    )
    print(
        f"{'stride':>7}{'windows':>9}{'per-window':>12}{'shared':>9}{'ratio':>7}"
        f"{'top-1 agree':>13}{'max score diff':>16}"
    )
    for stride in strides:
        took: dict[bool, list[float]] = {True: [], False: []}
        made = {}
        for _ in range(runs):
            for per_window in (True, False):
                t0 = time.perf_counter()
                # every label's score kept, for the largest difference below
                made[per_window] = model.timeline(
                    video, stride=stride, per_window=per_window, top_k=len(model.labels)
                )
                took[per_window].append(time.perf_counter() - t0)
        alone, shared = made[True].windows, made[False].windows
        assert [(w.start, w.end) for w in alone] == [(w.start, w.end) for w in shared]
        agree = sum(
            a.predictions[0]["label"] == b.predictions[0]["label"]
            for a, b in zip(alone, shared, strict=True)
        )
        diff = max(
            abs(p["score"] - dict((q["label"], q["score"]) for q in b.predictions)[p["label"]])
            for a, b in zip(alone, shared, strict=True)
            for p in a.predictions
        )
        per, sha = float(np.median(took[True])), float(np.median(took[False]))
        print(
            f"{stride:>7g}{len(alone):>9}{per:>12.1f}{sha:>9.1f}{per / sha:>7.2f}"
            f"{f'{agree}/{len(alone)}':>13}{diff:>16.3f}"
        )


def hour_runs(videos: Path) -> None:
    source = videos / "arm_wrestling.mp4"
    if not source.exists():
        sys.exit(f"missing shared video {source}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        hour = make_hour_video(source, folder)
        print(
            f"made {hour.name} ({hour.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
        runs = [
            (
                "tiny VideoMAE, window 2 s, stride 1 s",
                str(make_tiny_model(folder / "tiny")),
                "2.0",
                "1.0",
                "per-window",
            ),
            (
                "i3d.kinetics400, per window, stride 60 s",
                "i3d.kinetics400",
                "-",
                "60",
                "per-window",
            ),
            ("i3d.kinetics400, shared, stride 1 s", "i3d.kinetics400", "-", "1", "shared"),
        ]
        print(f"\n1-hour 1280x720 25 fps H.264 video ({HOUR_COPIES} x 10 s), one process per run")
        print(f"{'run':<46}{'windows':>8}{'seconds':>9}{'peak RSS MB':>13}")
        for name, model, window, stride, mode in runs:
            cmd = [sys.executable, __file__, "--run", str(hour), model, window, stride, mode]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{name:<46}{r['windows']:>8}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}")


if __name__ == "__main__":
    main()
