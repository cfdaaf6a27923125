"""Runtimes x precisions: one forward pass of I3D (1x3x64x224x224, a real clip) and of a
VideoMAE-B sized transformers classifier (1x3x16x224x224, random weights built from its
config), in torch, OpenVINO and ONNX Runtime, and int8 (OpenVINO, from `vidclass models
quantize` calibrated on videos/dev where NNCF is installed); then how far int8 moves I3D's
scores on every shared labelled clip; then a one-video `vidclass classify` end to end,
split into decode, forward and the rest (start-up and exit).

Each row runs in its own process with a fresh cache folder (the default weights linked
in), so its conversion time is measured too. Prints the CPU model and flags, medians of
several runs and ratios against torch fp32 measured in the same run.

    python benchmarks/runtimes.py [--repeats 5] [--skip-transformers]
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
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "videos"
VIDEO = VIDEOS / "arm_wrestling.mp4"
ROWS = [  # (runtime, precision)
    ("torch", "fp32"),
    ("openvino", "fp32"),
    ("onnxruntime", "fp32"),
    ("torch", "bf16"),
    ("openvino", "bf16"),
    ("openvino", "int8"),  # the model quantized first (int8 rows need NNCF)
]


def _labelled_clips() -> list[Path]:
    """Every labelled shared clip (the manifests' label column), heldout excluded."""
    import csv

    found = []
    for manifest in (VIDEOS / "MANIFEST.tsv", VIDEOS / "dev" / "MANIFEST.tsv"):
        with open(manifest, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if row["label"] not in ("", "-"):
                    found.append(manifest.parent / row["file"])
    return found


def quantized(model: str, cache: str) -> tuple[str | None, str]:
    """`model` quantized on videos/dev into a temporary folder: (folder, what happened)."""
    out = Path(tempfile.mkdtemp(prefix="vidclass-bench-int8-")) / "model"
    cmd = [sys.executable, "-m", "vidclass", "models", "quantize", model]
    cmd += ["--calibrate", str(VIDEOS / "dev"), "--out", str(out)]
    t = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "VIDCLASS_CACHE": cache}
    )
    took = time.perf_counter() - t
    if done.returncode != 0:
        return None, f"quantize failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    said = [line.strip() for line in done.stdout.splitlines() if "top-1" in line]
    return str(out), f"quantized in {took:.0f} s; " + " ".join(said)


def measure_int8_scores(folder: str) -> dict:
    """int8 against fp32 (OpenVINO, equal to torch within 1e-3) on every labelled clip."""
    import numpy as np

    import vidclass
    from vidclass.errors import VidclassError

    fp32, int8 = vidclass.load_model(precision="fp32"), vidclass.load_model(folder)
    same, moves = 0, []
    for path in _labelled_clips():
        try:
            clip = np.stack(fp32.read_clips(path))
        except VidclassError:
            continue
        want = fp32.activate(fp32.logits(clip))[0]
        got = int8.activate(int8.logits(clip))[0]
        same += int(want.argmax() == got.argmax())
        top5 = np.argsort(-want)[:5]
        moves.append(float(np.abs(got[top5] - want[top5]).max()))
    return {"clips": len(moves), "same": same, "moves": moves}


def _fresh_cache() -> str:
    """A cache folder holding only the default weights (linked): conversions start anew."""
    from vidclass.models import get_entry
    from vidclass.models.weights import weights_path

    source = weights_path(get_entry("i3d.kinetics400"))
    root = Path(tempfile.mkdtemp(prefix="vidclass-bench-"))
    (root / "weights").mkdir()
    (root / "weights" / source.name).symlink_to(source)
    return str(root)


def _videomae(folder: Path) -> str:
    import torch
    import transformers

    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        config = transformers.VideoMAEConfig(num_labels=400)  # VideoMAE-B, 16 frames
        transformers.VideoMAEForVideoClassification(config).save_pretrained(folder)
        transformers.VideoMAEImageProcessor().save_pretrained(folder)
    return str(folder)


def measure_forward(model_name: str, runtime: str, precision: str, repeats: int) -> dict:
    import torch

    from vidclass.loading import load_torch as load_model

    model = load_model(model_name, precision=precision, runtime=runtime)
    clip = torch.stack(model.read_clips(VIDEO))
    t = time.perf_counter()
    model.logits(clip)  # converts where needed, and warms up
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.logits(clip)
        runs.append(time.perf_counter() - t)
    return {
        "first": first,
        "forward": statistics.median(runs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "shape": "x".join(map(str, clip.shape)),
    }


def measure_cli(runtime: str, repeats: int) -> dict:
    """`vidclass classify VIDEO` end to end, and in-process the decode and forward it
    contains (both warmed, as a run's own are not: the first forward's warm-up counts as
    overhead). `runtime` "light": OpenVINO from the export in the cache the first run
    makes, without torch (vidclass.loading); "torch": torch alone."""
    chosen = "openvino" if runtime == "light" else runtime
    cmd = [sys.executable, "-m", "vidclass", "classify", str(VIDEO), "--runtime", chosen]
    subprocess.run(cmd, capture_output=True, check=True)  # converts, records; caches warm
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        walls.append(time.perf_counter() - t)
    if runtime == "light":
        import vidclass
        from vidclass.runtimes.exported import ExportedClassifier

        model = vidclass.load_model("i3d.kinetics400")
        if not isinstance(model, ExportedClassifier):
            raise SystemExit("the default model does not run from its export here")
    else:
        from vidclass.loading import load_torch as load_model

        model = load_model(runtime=runtime)
    from vidclass.video.transforms import stack_clip

    decode, forward = [], []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        x = model.batch([stack_clip(model.clip_frames(VIDEO)[0], model.spec)])
        t1 = time.perf_counter()
        model.logits(x)
        decode.append(t1 - t)
        forward.append(time.perf_counter() - t1)
    e2e, dec, fwd = statistics.median(walls), statistics.median(decode), min(forward[1:])
    return {"e2e": e2e, "decode": dec, "forward": fwd, "overhead": e2e - dec - fwd}


def _child(args) -> dict:
    os.environ["VIDCLASS_CACHE"] = args.cache
    if args.int8_scores:
        return measure_int8_scores(args.model)
    if args.cli:
        return measure_cli(args.runtime, args.repeats)
    return measure_forward(args.model, args.runtime, args.precision, args.repeats)


def _run(extra: list[str], cache: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--cache", cache, *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument(
        "--start-only", action="store_true", help="only the one-video CLI split (start time)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cli", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--int8-scores", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="i3d.kinetics400", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    if not VIDEO.is_file():
        sys.exit(f"missing {VIDEO}")
    from vidclass import runtimes
    from vidclass.cpu import native_bf16
    from vidclass.info import cpu, cpu_line

    info = cpu()
    print(cpu_line())
    amx = "amx_tile" in info["features"]
    print(f"AMX: {'yes' if amx else 'no'}; VNNI (int8): {'avx512_vnni' in info['features']}")
    models = [] if args.start_only else [("i3d.kinetics400", "I3D")]
    if not (args.skip_transformers or args.start_only):
        folder = Path(tempfile.gettempdir()) / "vidclass-bench-videomae-b"
        models.append((_videomae(folder), "VideoMAE-B"))
    for model, title in models:
        print(f"\n{title}: one clip, forward pass, median of {args.repeats} (s)")
        print(
            f"{'runtime':<13}{'precision':<10}{'forward':>9}{'vs torch fp32':>15}"
            f"{'first call':>12}{'peak MB':>9}"
        )
        base, int8_folder = None, None
        for runtime, precision in ROWS:
            if not runtimes.installed(runtime):
                print(f"{runtime:<13}{precision:<10}  not installed")
                continue
            name = model
            if precision == "int8":
                if find_spec("nncf") is None:
                    print(f"{runtime:<13}{precision:<10}  NNCF not installed (the int8 extra)")
                    continue
                cache = _fresh_cache()
                int8_folder, said = quantized(model, cache)
                print(f"  ({said})")
                if int8_folder is None:
                    continue
                name = int8_folder
            if precision == "bf16" and not native_bf16():
                print(f"{runtime:<13}{precision:<10}  no native bf16 on this CPU: not run")
                continue
            r = _run(
                [
                    "--model",
                    name,
                    "--runtime",
                    runtime,
                    "--precision",
                    precision,
                    "--repeats",
                    str(args.repeats),
                ],
                cache if precision == "int8" else _fresh_cache(),
            )
            if "error" in r:
                print(f"{runtime:<13}{precision:<10}  failed: {r['error']}")
                continue
            base = base or r["forward"]
            print(
                f"{runtime:<13}{precision:<10}{r['forward']:>9.3f}{base / r['forward']:>14.2f}x"
                f"{r['first']:>12.2f}{r['peak_rss_mb']:>9.0f}"
            )
        print("(first call: conversion, where the runtime needs one, plus warm-up)")
        if int8_folder is not None and title == "I3D":
            r = _run(["--int8-scores", "--model", int8_folder], cache)
            if "error" in r:
                print(f"int8 scores: failed: {r['error']}")
                continue
            moves = sorted(r["moves"])
            print(
                f"int8 vs fp32 on {r['clips']} shared labelled clips: top-1 same on "
                f"{r['same']}/{r['clips']}; largest top-5 score move per clip: median "
                f"{statistics.median(moves):.4f}, max {moves[-1]:.4f}"
            )

    print(f"\nvidclass classify one video, end to end, median of {args.repeats} (s)")
    print(f"{'runtime':<13}{'e2e':>7}{'decode':>8}{'forward':>9}{'overhead':>10}")
    cache = _fresh_cache()
    for runtime in ("torch", "light"):
        if runtime == "light" and not runtimes.installed("openvino"):
            continue
        r = _run(["--cli", "--runtime", runtime, "--repeats", str(args.repeats)], cache)
        if "error" in r:
            print(f"{runtime:<13}failed: {r['error']}")
            continue
        print(
            f"{runtime:<13}{r['e2e']:>7.2f}{r['decode']:>8.2f}{r['forward']:>9.2f}"
            f"{r['overhead']:>10.2f}"
        )
    print(
        "(overhead: end to end minus decode and a warm forward pass: interpreter, imports,"
        " loading, first-call warm-up, exit; light: OpenVINO from the export an earlier run"
        " left, without importing torch)"
    )


if __name__ == "__main__":
    main()
