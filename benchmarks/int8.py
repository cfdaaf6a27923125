"""int8 against the default (OpenVINO bf16 where the CPU has it) for I3D: where the time of
one clip goes, layer by layer, in each; one clip's forward pass; top-1 on the shared
labelled clips; whole `vidclass classify` runs over many clips; and on HD clips, decoding
against the forward pass.

- Per-layer: OpenVINO's own counters (PERF_COUNT) over the graphs the model runs, the
  default export's and the int8 folder's, compiled as vidclass compiles them. Each
  layer's kernel name says what it computes in (`..._bf16`, `..._i8`/`_I8`, `..._f32`);
  the table gives each kind's share of the clip's time, then the costliest layers.
- Whole runs: `vidclass classify` over every labelled shared clip (one clip each, the
  default), each run its own process, as a user runs it; medians of --runs.
- HD: 1920x1080 H.264 clips made here (10 s of three shared clips, scaled, encoded once)
  into a temporary folder: decoding one clip's 64 frames, FFmpeg's slice threads (PyAV's
  default) against its frame threads, then the end to end per video against the forward
  pass alone.

    python benchmarks/int8.py [--int8 FOLDER] [--runs 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtimes import VIDEOS, _labelled_clips, measure_int8_scores, quantized  # noqa: E402

HD_SOURCES = ("arm_wrestling.mp4", "eating_spaghetti.mp4", "dev/squat_1.mp4")


def _kind(exec_type: str) -> str:
    """What a kernel computes in, from OpenVINO's name for it."""
    low = exec_type.lower()
    for suffix, kind in (("_i8", "int8"), ("_u8", "int8"), ("_bf16", "bf16"), ("_f32", "fp32")):
        if low.endswith(suffix):
            return kind
    return "other"


def layer_profile(model, clip: np.ndarray, repeats: int) -> tuple[float, dict, dict]:
    """(median seconds, seconds per (layer type, kind), seconds per named layer) of one
    clip through `model`'s backbone graph, compiled with OpenVINO's counters on."""
    import openvino as ov

    from vidclass.runtimes.sessions import OPENVINO_PRECISION

    source, _ = model._embed
    core = ov.Core()
    xml, weights = source
    graph = core.read_model(xml, ov.Tensor(np.frombuffer(weights, np.uint8)))
    if model.manifest["any_frames"]:
        graph.reshape({0: ov.PartialShape([-1, *clip.shape[1:]])})
    config = {
        "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[model.precision],
        "INFERENCE_NUM_THREADS": model.runtime_threads,
        "PERFORMANCE_HINT": "LATENCY",
        "PERF_COUNT": True,
    }
    request = core.compile_model(graph, "CPU", config).create_infer_request()
    for _ in range(2):
        request.infer({0: clip})
    times, by_kind, by_layer = [], collections.Counter(), collections.Counter()
    for _ in range(repeats):
        t = time.perf_counter()
        request.infer({0: clip})
        times.append(time.perf_counter() - t)
        for p in request.profiling_info:
            seconds = p.real_time.total_seconds() / repeats
            if seconds <= 0:
                continue
            by_kind[(p.node_type, _kind(p.exec_type))] += seconds
            parts = p.node_name.split("/")
            by_layer[parts[2] if len(parts) > 3 else p.node_name] += seconds
    return statistics.median(times), by_kind, by_layer


def print_profiles(default, int8, clip: np.ndarray, repeats: int) -> None:
    print(f"\nOne clip {'x'.join(map(str, clip.shape))}, layer by layer (PERF_COUNT)")
    made = {}
    for name, model in (("default", default), ("int8", int8)):
        made[name] = layer_profile(model, clip, repeats)
        took, by_kind, _ = made[name]
        total = sum(by_kind.values())
        print(f"\n{name} ({model.precision}): {took * 1000:.1f} ms a clip; share by layer kind")
        kinds = collections.Counter()
        for (_node, kind), seconds in by_kind.items():
            kinds[kind] += seconds
        print("  computes in: " + ", ".join(f"{k} {v / total:.0%}" for k, v in kinds.most_common()))
        for (node, kind), seconds in by_kind.most_common(8):
            print(f"  {node:<16}{kind:<6}{seconds * 1000:>8.1f} ms{seconds / total:>7.1%}")
    print("\ncostliest layers (ms): default, int8, ratio")
    base, fast = made["default"][2], made["int8"][2]
    for layer, seconds in base.most_common(10):
        other = fast.get(layer, 0.0)
        ratio = f"{seconds / other:.2f}" if other else "-"
        print(f"  {layer[:34]:<34}{seconds * 1000:>8.1f}{other * 1000:>8.1f}{ratio:>7}")
    ratio = made["default"][0] / made["int8"][0]
    print(
        f"int8 per clip: {ratio:.2f}x the default ({made['default'][0] * 1000:.0f} ms -> "
        f"{made['int8'][0] * 1000:.0f} ms)"
    )


def whole_runs(int8_folder: str, runs: int) -> None:
    clips = [str(p) for p in _labelled_clips() if p.is_file()]
    print(
        f"\n`vidclass classify` over {len(clips)} labelled shared clips, whole processes, "
        f"median of {runs} (s)"
    )
    took = {}
    for name, extra in (("default", []), ("int8", ["--model", int8_folder])):
        cmd = [sys.executable, "-m", "vidclass", "classify", *clips, "--format", "json", *extra]
        subprocess.run(cmd, capture_output=True, check=True)  # caches warm
        walls = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            walls.append(time.perf_counter() - t)
        took[name] = statistics.median(walls)
        print(f"  {name:<8}{took[name]:>7.1f}  ({took[name] / len(clips):.3f} a clip)")
    print(f"  int8: {took['default'] / took['int8']:.2f}x the default")


def make_hd(folder: Path) -> list[Path]:
    import av

    from vidclass.video import read_frames

    made = []
    for name in HD_SOURCES:
        source = VIDEOS / name
        out = folder / f"{Path(name).stem}_1080p.mp4"
        frames = read_frames(source, [k / 25 for k in range(250)], size=(1080, 1920)).frames
        with av.open(str(out), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "23"}
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        made.append(out)
    return made


def median_seconds(call, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def hd_runs(default, int8, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_hd(Path(tmp))
        print(f"\nHD: {len(videos)} clips 1920x1080 25 fps H.264, 10 s; median of {repeats} (s)")
        print(
            f"{'video':<28}{'decode':>8}{'forward bf16':>14}{'forward int8':>14}"
            f"{'e2e bf16':>10}{'e2e int8':>10}"
        )
        clip = default.read_clips(videos[0])[0][None]
        forward = {}
        for name, model in (("default", default), ("int8", int8)):
            model.logits(clip)  # warm
            forward[name] = median_seconds(lambda m=model: m.logits(clip), repeats)
        for path in videos:
            decode = median_seconds(lambda p=path: default.clip_frames(p), repeats)
            e2e = {
                name: median_seconds(lambda m=model, p=path: m.classify(p), repeats)
                for name, model in (("default", default), ("int8", int8))
            }
            print(
                f"{path.name:<28}{decode:>8.3f}{forward['default']:>14.3f}"
                f"{forward['int8']:>14.3f}{e2e['default']:>10.3f}{e2e['int8']:>10.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--int8", help="an int8 folder (else one is made on videos/dev)")
    parser.add_argument("--runs", type=int, default=3, help="whole runs of each (medians)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-whole", action="store_true")
    parser.add_argument("--skip-hd", action="store_true")
    args = parser.parse_args()
    import vidclass
    from vidclass.info import cpu_line

    print(cpu_line())
    folder = args.int8
    if folder is None:
        folder, said = quantized("i3d.kinetics400", tempfile.mkdtemp(prefix="vidclass-bench-"))
        print(said)
        if folder is None:
            sys.exit("no int8 folder")
    default, int8 = vidclass.load_model(), vidclass.load_model(folder)
    clip = default.read_clips(VIDEOS / "arm_wrestling.mp4")[0][None]
    print_profiles(default, int8, clip, args.repeats)
    scores = measure_int8_scores(folder)
    moves = sorted(scores["moves"])
    print(
        f"\nint8 vs fp32 on {scores['clips']} shared labelled clips: top-1 same on "
        f"{scores['same']}/{scores['clips']}; largest top-5 score move: median "
        f"{statistics.median(moves):.4f}, max {moves[-1]:.4f}"
    )
    if not args.skip_whole:
        whole_runs(folder, args.runs)
    if not args.skip_hd:
        hd_runs(default, int8, args.repeats)


if __name__ == "__main__":
    main()
