"""The commands a user runs, timed on this tree and on an earlier revision, in one run.

Each command is run as a user runs it (`python -m vidclass ...`, a fresh process, default
settings, importing and loading the model included) once from this tree's sources and
once from REV's (checked out into a temporary git worktree), interleaved over
`--repeats` rounds so that drift in the machine hits both alike. Prints medians and the
ratio of this tree's time to REV's (below 1.00: faster now).

    python benchmarks/revisions.py --against cadd946 [--repeats 3] [--videos DIR]
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

from batch import CLIPS, DEFAULT_VIDEOS, ROOT  # the batch benchmark's clips
from vidclass.info import cpu_line

TRAIN_VIDEOS = {  # label -> videos/dev files: a small head, as a user's first try
    "squat": ["squat_1.mp4", "squat_2.mp4"],
    "push_up": ["push_up_1.mp4", "push_up_2.mp4"],
}


def commands(videos: Path, work: Path) -> dict[str, list[str]]:
    """name -> arguments of `vidclass`; `{out}` is a fresh path for each run."""
    return {
        "classify one video": ["classify", str(videos / "arm_wrestling.mp4")],
        f"classify a folder of {len(CLIPS)} (--output)": [
            "classify",
            str(work / "clips"),
            "--output",
            "{out}.jsonl",
        ],  # fmt: skip
        "timeline of a 139 s video": ["timeline", str(videos / "long" / "people_139s.mp4")],
        "index a folder into a gallery": ["index", str(work / "clips"), "--db", "{out}.db"],
        "train a head (2 labels x 2 videos)": [
            "train",
            str(work / "train"),
            "--out",
            "{out}",
            "--epochs",
            "50",
        ],  # fmt: skip
    }


def prepare_inputs(videos: Path, work: Path) -> None:
    (work / "clips").mkdir()
    for clip in CLIPS:
        (work / "clips" / Path(clip).name).symlink_to(videos / clip)
    for label, files in TRAIN_VIDEOS.items():
        (work / "train" / label).mkdir(parents=True)
        for name in files:
            (work / "train" / label / name).symlink_to(videos / "dev" / name)


def run_once(src: Path, args: list[str], out: Path) -> float:
    args = [a.replace("{out}", str(out)) for a in args]
    env = {**os.environ, "PYTHONPATH": str(src)}  # before the installed (editable) tree
    begin = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vidclass", *args], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - begin
    if done.returncode != 0:
        sys.exit(f"vidclass {' '.join(args)} failed from {src}:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, metavar="REV", help="the earlier revision")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    args = parser.parse_args()
    needed = [*CLIPS, "long/people_139s.mp4"]
    needed += [f"dev/{n}" for files in TRAIN_VIDEOS.values() for n in files]
    missing = [c for c in needed if not (args.videos / c).exists()]
    if missing:
        sys.exit(f"missing shared videos under {args.videos}: {missing}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old_tree = work / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree), args.against],
            check=True,
            capture_output=True,
        )
        try:
            args.videos = args.videos.resolve()
            prepare_inputs(args.videos, work)
            trees = {"now": ROOT / "src", args.against: old_tree / "src"}
            times: dict[tuple[str, str], list[float]] = {}
            for round_ in range(args.repeats):
                for number, (name, cmd) in enumerate(commands(args.videos, work).items()):
                    for label, src in trees.items():
                        out = work / f"out-{round_}-{number}-{label}"
                        times.setdefault((name, label), []).append(run_once(src, cmd, out))
                print(f"round {round_ + 1} done", file=sys.stderr)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)],
                capture_output=True,
            )
    print(f"\n{cpu_line()}\nmedian of {args.repeats} rounds, seconds per command end to end")
    print(f"{'command':<42}{args.against:>10}{'now':>10}{'now/old':>10}")
    for name in commands(args.videos, Path(tmp)):
        old = statistics.median(times[(name, args.against)])
        now = statistics.median(times[(name, "now")])
        print(f"{name:<42}{old:>10.2f}{now:>10.2f}{now / old:>10.2f}")


if __name__ == "__main__":
    main()
