"""vidclass against `transformers.pipeline("video-classification")` on one checkpoint.

The checkpoint has VideoMAE-base's architecture (16 frames, 224x224, ViT-B) with random
weights, seeded (speed does not depend on the weights), and the processor config of
the Kinetics-400 VideoMAE checkpoints. Both sides classify the same shared videos with
the same number of frames: the pipeline decodes the first 16 frames of each video,
vidclass spreads them over the whole video. Each side runs in its own process (vidclass
tunes the allocator of its process). Prints median seconds per video end to end and
their ratio, vidclass's split into decode+transform and model, and whether both give
the same top-1 when fed the same frames. The OpenVINO rows convert the model first
(cached; not timed).

    python benchmarks/hf_pipeline.py [--repeats 3] [--videos DIR] [--only openvino-bf16 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
CLIPS = [
    "arm_wrestling.mp4",
    "eating_spaghetti.mp4",
    "flipping_pancake.mkv",
    "soccer_juggling.avi",
    "cleaning_pool_1s.mp4",
    "arm_wrestling_hevc.mp4",
    "long/people_139s.mp4",
]
VARIANTS = (
    "transformers pipeline",
    "vidclass torch fp32",
    "vidclass torch bf16",
    "vidclass openvino fp32",
    "vidclass openvino bf16",  # what `auto` runs on a CPU with native bf16
)


def make_checkpoint(folder: Path) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(num_labels=400)  # base: 16 frames, 224, ViT-B/16
    transformers.VideoMAEForVideoClassification(config).save_pretrained(folder)
    transformers.VideoMAEImageProcessor(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)


def _median_runs(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def measure(variant: str, checkpoint: Path, videos: Path, repeats: int) -> dict:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    row: dict = {"variant": variant, "per_video": {}}
    if variant == "transformers pipeline":
        pipe = transformers.pipeline("video-classification", model=str(checkpoint))
        for name in CLIPS:
            path = str(videos / name)
            row["per_video"][name] = _median_runs(lambda p=path: pipe(p), repeats)
    else:
        import vidclass

        _, runtime, precision = variant.split()
        clf = vidclass.load_model(str(checkpoint), precision=precision, runtime=runtime)
        clf.logits(clf.read_clips(videos / CLIPS[0])[0][None])  # converts (once) and warms
        decode, model, agree = [], [], 0
        pipe = transformers.pipeline("video-classification", model=str(checkpoint))
        for name in CLIPS:
            path = videos / name
            row["per_video"][name] = _median_runs(lambda p=path: clf.classify(p), repeats)
            decode.append(_median_runs(lambda p=path: clf.read_clips(p), repeats))
            clip = clf.read_clips(path)[0][None]
            model.append(_median_runs(lambda c=clip: clf.logits(c), repeats))
            # The same frames through the pipeline's own processor, model and postprocess.
            frames = clf.clip_frames(path)[0]
            inputs = pipe.image_processor(frames, return_tensors="pt")
            with torch.inference_mode():
                theirs = pipe.postprocess(pipe._forward(inputs), top_k=1)[0]["label"]
            agree += theirs == clf.classify(path, top_k=1)[0]["label"]
        row.update(decode=statistics.median(decode), model=statistics.median(model))
        row["same_top1"] = agree
    row["e2e"] = statistics.median(row["per_video"].values())
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["threads"] = torch.get_num_threads()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="RUNTIME-PRECISION",
        help="vidclass rows to run, e.g. openvino-bf16 (all); the pipeline always runs",
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.variant:
        print(json.dumps(measure(args.variant, args.checkpoint, args.videos, args.repeats)))
        return
    from vidclass.cpu import native_bf16

    missing = [c for c in CLIPS if not (args.videos / c).exists()]
    if missing:
        sys.exit(f"missing shared videos under {args.videos}: {missing}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "videomae-base-random"
        make_checkpoint(checkpoint)
        for variant in VARIANTS:
            wanted = {f"vidclass {o.replace('-', ' ')}" for o in args.only or []}
            if wanted and variant.startswith("vidclass") and variant not in wanted:
                continue
            if variant.endswith("bf16") and not native_bf16():
                print(f"{variant}: skipped, no native bf16 on this CPU (emulation is far slower)")
                continue
            cmd = [sys.executable, __file__, "--variant", variant, "--checkpoint", str(checkpoint)]
            cmd += ["--repeats", str(args.repeats), "--videos", str(args.videos)]
            env = {**os.environ, "HF_HUB_OFFLINE": "1"}
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"measured {variant}", file=sys.stderr)
    base = rows[0]
    from vidclass.info import cpu_line

    print(f"\n{cpu_line()}")
    print(
        f"VideoMAE-base (random weights), 16 frames at 224x224, {len(CLIPS)} shared videos, "
        f"median of {args.repeats} runs each, {base['threads']} threads"
    )
    print(
        f"{'variant':<24}{'s/video':>9}{'decode s':>10}{'model s':>9}{'peak MB':>9}"
        f"{'speedup':>9}  same top-1 on the same frames"
    )
    for r in rows:
        dec = f"{r['decode']:>10.3f}{r['model']:>9.3f}" if "decode" in r else " " * 19
        same = f"  {r['same_top1']}/{len(CLIPS)}" if "same_top1" in r else ""
        print(
            f"{r['variant']:<24}{r['e2e']:>9.3f}{dec}{r['peak_rss_mb']:>9.0f}"
            f"{base['e2e'] / r['e2e']:>9.2f}{same}"
        )
    print("\nper video, end to end seconds:")
    for name in CLIPS:
        print(f"  {name:<26}" + "".join(f"{r['per_video'][name]:>8.3f}" for r in rows))


if __name__ == "__main__":
    main()
