"""How `vidclass watch` keeps up with a live stream, per model and stride.

A shared clip, looped, is sent over TCP on 127.0.0.1 at its own pace (MPEG-TS, remuxed
by tests/streams.py in a process of its own, as a camera or encoder would send it). For
each model and stride, a live session labels it for --seconds and this prints: windows
labelled and skipped, latency from a window's last frame to its labels (median, p95),
the model's seconds per window, the real-time factor (RTF: that over the stride, the
model's seconds per second of stream; above 1 it cannot label every window) and the
resident memory after the first window, at its highest and at the end (flat over a long
run: the buffer holds about one window). The smallest
stride labelled with no window skipped is the one this machine sustains. Prints the CPU
and its flags first.

`i3d` reads every window off one map of the stream (the default for I3D: each frame
through the model once, whatever the stride; its model seconds are per 2.56 s step, not
per window); `i3d-per-window` scores each window alone, as before issue 31.

The small transformers model is VideoMAE-Small's architecture (22M parameters, 16
frames at 224) with random weights, built from its config: its speed is the real one,
its labels are not (no weights can be downloaded here).

    python benchmarks/live.py [--seconds 60] [--strides 1,0.5,0.25,0.1]
        [--models i3d,i3d-per-window,small]
        [--video eating_spaghetti.mp4] [--runtime auto]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def small_videomae(folder: Path) -> str:
    """VideoMAE-Small's shape with random weights, saved as a hub checkpoint would be."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(
        image_size=224,
        num_frames=16,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        num_labels=400,
        use_mean_pooling=True,
    )
    transformers.VideoMAEForVideoClassification(config).eval().save_pretrained(folder)
    transformers.VideoMAEImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    ).save_pretrained(folder)
    return str(folder)


def run(model, clip: Path, stride: float, seconds: float, per_window: bool = False) -> dict:
    import vidclass

    port = free_port()
    loops = int(seconds // 5) + 2  # more than enough stream for the run
    sender = subprocess.Popen(
        [sys.executable, "-m", "tests.streams", str(clip), f"tcp://127.0.0.1:{port}?listen=1"]
        + ["--loops", str(loops)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    samples: list[float] = []
    first_rss = None
    try:
        time.sleep(1.0)  # the sender listens
        session = vidclass.watch(
            f"tcp://127.0.0.1:{port}",
            model,
            stride=stride,
            duration=seconds,
            segments=False,
            per_window=per_window,
        )
        done = threading.Event()

        def sample():
            while not done.wait(1.0):
                samples.append(rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for event in session:
            if first_rss is None and event.kind == "window":
                first_rss = rss_mb()
        done.set()
    finally:
        sender.kill()
        sender.wait(10)
    s = session.summary
    return {
        "stride": stride,
        "windows": s.windows,
        "skipped": s.skipped,
        "latency_median": s.latency_median,
        "latency_p95": s.latency_p95,
        "model_seconds": s.model_seconds,
        "per": "step" if s.step_seconds else "window",
        "load": s.load,
        "stream": s.stream_seconds,
        "rss_first": first_rss,
        "rss_max": max(samples or [rss_mb()]),
        "rss_end": rss_mb(),
    }


def show(row: dict) -> None:
    def f(v, fmt="{:.3f}"):
        return "-" if v is None else fmt.format(v)

    print(
        f"  stride {row['stride']:>5g} s  windows {row['windows']:>4}  skipped "
        f"{row['skipped']:>4}  latency median {f(row['latency_median'])} p95 "
        f"{f(row['latency_p95'])} s  model {f(row['model_seconds'])} s/{row['per']}  RTF "
        f"{f(row['load'], '{:.2f}')}  RSS {f(row['rss_first'], '{:.0f}')} -> max "
        f"{f(row['rss_max'], '{:.0f}')}, end {f(row['rss_end'], '{:.0f}')} MB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per model and stride")
    parser.add_argument("--strides", default="1,0.5,0.25,0.1")
    parser.add_argument("--models", default="i3d,small")
    parser.add_argument("--video", default="eating_spaghetti.mp4")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--runtime", default="auto")
    args = parser.parse_args()

    import vidclass
    from vidclass.info import cpu_line

    print(cpu_line())
    clip = args.videos / args.video
    if not clip.exists():
        sys.exit(f"{clip} is missing (the shared videos belong beside the project)")
    strides = [float(s) for s in args.strides.split(",")]
    print(f"stream: {args.video} looped over TCP at its own pace, {args.seconds:g} s a run")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name == "small":
                folder = small_videomae(Path(tmp) / "small")
                model = vidclass.load_model(folder, runtime=args.runtime)
                title = "VideoMAE-Small shape (random weights)"
            else:
                model = vidclass.load_model(runtime=args.runtime)
                title = model.name + (", each window alone" if name.endswith("per-window") else "")
            print(f"{title}: runtime {model.runtime}, precision {model.precision}")
            sustained = None
            for stride in strides:
                row = run(model, clip, stride, args.seconds, name.endswith("per-window"))
                show(row)
                if row["skipped"] == 0 and row["windows"] > 0:
                    sustained = stride if sustained is None else min(sustained, stride)
            print(f"  smallest stride with no window skipped: {sustained} s")


if __name__ == "__main__":
    main()
