"""Speed of `vidclass classify` on the shared clips: end to end, decode, model, memory.

Each variant runs in its own process (allocator settings and peak memory are per
process). Prints the median seconds per video, split into decode+transform and model
time, frames per second, peak RSS, and ratios against fp32 eager measured in the same run.

    python benchmarks/classify.py [--repeats 3] [--videos DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
CLIPS = [
    "arm_wrestling.mp4",
    "eating_spaghetti.mp4",
    "flipping_pancake.mkv",
    "soccer_juggling.avi",
    "cleaning_pool_1s.mp4",
    "cricket_shot.gif",
    "arm_wrestling_hevc.mp4",
    "long/people_139s.mp4",
]
VARIANTS = {
    # name: (precision, optimised, tune malloc)
    "fp32 eager (baseline)": ("fp32", False, False),
    "fp32 vidclass": ("fp32", True, True),
    "bf16 vidclass": ("bf16", True, True),
}


def measure(variant: str, videos: Path, repeats: int) -> dict:
    precision, optimised, tune = VARIANTS[variant]
    if not tune:
        os.environ["VIDCLASS_TUNE_MALLOC"] = "0"
    import torch

    import vidclass
    from vidclass.models import get_entry
    from vidclass.models.weights import load_state_dict
    from vidclass.torch_classifier import VideoClassifier

    if optimised:
        # torch: this compares its variants; benchmarks/runtimes.py compares runtimes.
        model = vidclass.load_model(precision=precision, runtime="torch")
    else:  # the plain port: BatchNorm unfolded, contiguous tensors, default allocator
        entry = get_entry(vidclass.DEFAULT_MODEL)
        module = entry.build()
        module.load_state_dict(load_state_dict(entry))
        model = VideoClassifier(entry, module, "fp32", optimize=False)
    e2e, dec, mod, frames = [], [], [], 0
    for name in CLIPS:
        path = videos / name
        runs_e2e, runs_dec, runs_mod = [], [], []
        for _ in range(repeats + 1):  # the first run warms up
            t0 = time.perf_counter()
            clips = model.read_clips(path)
            t1 = time.perf_counter()
            model.logits(clips[0][None])
            t2 = time.perf_counter()
            runs_dec.append(t1 - t0)
            runs_mod.append(t2 - t1)
            t3 = time.perf_counter()
            model.classify(path)
            runs_e2e.append(time.perf_counter() - t3)
        frames += clips[0].shape[1]
        e2e.append(statistics.median(runs_e2e[1:]))
        dec.append(statistics.median(runs_dec[1:]))
        mod.append(statistics.median(runs_mod[1:]))
    return {
        "variant": variant,
        "per_video": dict(zip(CLIPS, e2e, strict=True)),
        "e2e": statistics.median(e2e),
        "decode": statistics.median(dec),
        "model": statistics.median(mod),
        "fps": frames / sum(e2e),
        "e2e_over_model": sum(e2e) / sum(mod),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.videos, args.repeats)))
        return
    from vidclass.cpu import native_bf16

    missing = [c for c in CLIPS if not (args.videos / c).exists()]
    if missing:
        sys.exit(f"missing shared videos under {args.videos}: {missing}")
    rows = []
    for variant in VARIANTS:
        if variant.startswith("bf16") and not native_bf16():
            print(f"{variant}: skipped, no native bf16 on this CPU (emulation is >100x slower)")
            continue
        cmd = [sys.executable, __file__, "--variant", variant]
        cmd += ["--repeats", str(args.repeats), "--videos", str(args.videos)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"measured {variant}", file=sys.stderr)
    base = rows[0]
    from vidclass.info import cpu_line

    print(f"\n{cpu_line()}")
    print(
        f"{len(CLIPS)} shared clips, median of {args.repeats} runs each, "
        f"{base['threads']} threads, 1 clip of 64 frames per video"
    )
    head = f"{'variant':<24}{'e2e s':>8}{'decode s':>10}{'model s':>9}{'e2e/model':>11}"
    print(head + f"{'frames/s':>10}{'peak MB':>9}{'speedup':>9}")
    for r in rows:
        print(
            f"{r['variant']:<24}{r['e2e']:>8.3f}{r['decode']:>10.3f}{r['model']:>9.3f}"
            f"{r['e2e_over_model']:>11.2f}{r['fps']:>10.1f}{r['peak_rss_mb']:>9.0f}"
            f"{base['e2e'] / r['e2e']:>9.2f}"
        )
    print("\nper video, end to end seconds:")
    for name in CLIPS:
        print(f"  {name:<26}" + "".join(f"{r['per_video'][name]:>8.3f}" for r in rows))


if __name__ == "__main__":
    main()
