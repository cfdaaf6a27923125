"""Peak memory and speed of `vidclass timeline` on a 1-hour 720p video.

The video is made here: 10 s of the shared arm wrestling clip scaled to 1280x720 at
25 fps, encoded once, then its packets muxed 360 times with shifted timestamps (no
re-encoding), into a temporary folder. Each run is its own process, so peak RSS is per
run. Runs: a tiny random VideoMAE (16 frames spread over 2 s windows, stride 1 s: 3600
windows, so decoding and frame buffering dominate), and the default I3D model with a 60 s
stride (60 windows of 64 frames; at stride 1 s it would take about 2 h on 2 cores).

    python benchmarks/timeline.py [--videos DIR]
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


def run_one(video: str, model: str, window: float | None, stride: float) -> dict:
    import vidclass

    clf = vidclass.load_model(model)
    t0 = time.perf_counter()
    tl = clf.timeline(video, window=window, stride=stride)
    return {
        "seconds": time.perf_counter() - t0,
        "windows": len(tl.windows),
        "duration": tl.duration,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--run", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        video, model, window, stride = args.run
        window = float(window) if window != "-" else None
        print(json.dumps(run_one(video, model, window, float(stride))))
        return
    source = args.videos / "arm_wrestling.mp4"
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
            ),
            ("i3d.kinetics400, window 2.56 s, stride 60 s", "i3d.kinetics400", "-", "60"),
        ]
        from vidclass.info import cpu_line

        print(f"\n{cpu_line()}")
        print(f"1-hour 1280x720 25 fps H.264 video ({HOUR_COPIES} x 10 s), one process per run")
        print(f"{'run':<46}{'windows':>8}{'seconds':>9}{'peak RSS MB':>13}")
        for name, model, window, stride in runs:
            cmd = [sys.executable, __file__, "--run", str(hour), model, window, stride]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{name:<46}{r['windows']:>8}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}")


if __name__ == "__main__":
    main()
