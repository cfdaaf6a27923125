"""Throughput of batch runs against a plain loop over the same folder, in one run.

A folder of links to the shared clips (each linked `--copies` times, so a run is long
enough to measure) is classified by each variant in its own process, interleaved over
`--repeats` rounds. Prints videos per second and model utilisation (time inside forward
passes / wall time), medians over the rounds, and the speedup over the plain loop.

    python benchmarks/batch.py [--repeats 3] [--copies 2] [--videos DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
CLIPS = [
    "arm_wrestling.mp4",
    "arm_wrestling_av1.mkv",
    "arm_wrestling_hevc.mp4",
    "arm_wrestling_vp9.webm",
    "cleaning_pool_1s.mp4",
    "cricket_shot.gif",
    "eating_spaghetti.mp4",
    "flipping_pancake.mkv",
    "soccer_juggling.avi",
    "long/people_139s.mp4",
    "long/scene_cuts_bikes.mp4",
]
VARIANTS = {
    # name: (workers, batch size); None is the plain loop
    "plain loop (classify per video)": None,
    "decoding process, batch 1": (1, 1),
    "decoding process, batch 2 (default)": (1, 2),
}


def measure(variant: str, folder: Path) -> dict:
    import torch

    import vidclass
    from vidclass.batch import expand_inputs
    from vidclass.engine import DecoderPool, Driver, Work, executor_for

    begin = time.perf_counter()
    paths = expand_inputs([str(folder)])
    setting = VARIANTS[variant]
    # As `vidclass classify` does: decoding processes start while the model loads.
    decoders = DecoderPool(setting[0]).start() if setting else None
    model = vidclass.load_model(precision="fp32")
    if setting is None:
        busy = 0.0
        forward = model.logits

        def timed(x):
            nonlocal busy
            t = time.perf_counter()
            try:
                return forward(x)
            finally:
                busy += time.perf_counter() - t

        model.logits = timed
        start = time.perf_counter()
        done = [model.classify(p) for p in paths]
        wall = time.perf_counter() - start
    else:
        runner = Driver(model, Work(), executor_for(None, len(paths), decoders), setting[1])
        done = list(runner.run(paths))
        wall, busy = runner.stats.wall_seconds, runner.stats.model_seconds
    total = time.perf_counter() - begin
    return {
        "variant": variant,
        "videos": len(done),
        "wall": wall,
        "busy": busy,
        "total": total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=2, help="links to each clip")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.folder)))
        return
    missing = [c for c in CLIPS if not (args.videos / c).exists()]
    if missing:
        sys.exit(f"missing shared videos under {args.videos}: {missing}")
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for copy in range(args.copies):
            for clip in CLIPS:
                (folder / f"{copy}_{Path(clip).name}").symlink_to(args.videos / clip)
        for round_ in range(args.repeats):
            for variant in VARIANTS:  # interleaved, so drift in the machine hits all alike
                cmd = [sys.executable, __file__, "--variant", variant, "--folder", str(folder)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                runs[variant].append(json.loads(out.strip().splitlines()[-1]))
                print(f"round {round_ + 1}: {variant}", file=sys.stderr)
    first = next(iter(runs.values()))[0]
    from vidclass.info import cpu_line

    print(f"\n{cpu_line()}")
    print(
        f"{first['videos']} videos ({len(CLIPS)} shared clips x {args.copies}), "
        f"{first['threads']} threads, median of {args.repeats} rounds"
    )
    print(
        f"{'variant':<38}{'videos/s':>9}{'s/video':>9}{'model busy':>12}{'peak MB':>9}"
        f"{'speedup':>9}{'with load':>11}"
    )
    base_rate = base_total = None
    for variant, rs in runs.items():
        rate = statistics.median(r["videos"] / r["wall"] for r in rs)
        busy = statistics.median(r["busy"] / r["wall"] for r in rs)
        total = statistics.median(r["videos"] / r["total"] for r in rs)
        peak = max(r["peak_rss_mb"] for r in rs)
        base_rate, base_total = base_rate or rate, base_total or total
        print(
            f"{variant:<38}{rate:>9.3f}{1 / rate:>9.2f}{busy:>11.0%}{peak:>9.0f}"
            f"{rate / base_rate:>9.2f}{total / base_total:>11.2f}"
        )
    print(
        "videos/s, model busy and speedup count from the start of classifying; 'with load' "
        "is the speedup counting the model's loading too."
    )


if __name__ == "__main__":
    main()
