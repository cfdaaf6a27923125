"""Fuzz vidclass through its CLI with fresh damaged videos for as long as asked.

Each round makes --batch files from the shared clips with a new seed (byte flips,
truncations, zeroed and random headers, shuffled and duplicated chunks, garbage; see
tests/hostile.py), plus the crafted files in the first round, and runs

    vidclass classify LIST --output results.jsonl --video-timeout S --top-k 1

then checks what a user must get: exit 0 or 1, no traceback, exactly one result line
per file, within a bound. Prints outcome counts; a hang or crash prints its seed and
file so it can be made again (`tests.hostile.mutated(videos, folder, seed, batch)`).

    python benchmarks/fuzz.py --seconds 600
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import hostile  # noqa: E402

from vidclass.info import cpu_line  # noqa: E402

VIDEOS = Path(os.environ.get("VIDCLASS_TEST_VIDEOS", ROOT.parent / "shared" / "videos"))
KINDS = [
    ("not a readable video", "not a readable video"),
    ("no video frame", "no frames decode"),
    ("over the limit", "over a size limit"),
    ("took over", "over the time limit"),
    ("no decoder", "no decoder"),
    ("has no video stream", "no video stream"),
    ("empty file", "empty file"),
    (": unexpected ", "unexpected exception (a bug)"),
]


def error_kind(message: str) -> str:
    return next((kind for needle, kind in KINDS if needle in message), "other error")


def run_round(files: list[Path], folder: Path, timeout: float) -> tuple[Counter, list[str]]:
    listing = folder / "videos.txt"
    listing.write_text("".join(f"{p}\n" for p in files))
    out = folder / "results.jsonl"
    bound = len(files) * (timeout + 5) + 120
    command = [sys.executable, "-m", "vidclass", "classify", str(listing), "--output", str(out)]
    command += ["--video-timeout", str(timeout), "--top-k", "1"]
    counts, problems = Counter(), []
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=bound,
            env={**os.environ, "VIDCLASS_OFFLINE": "1"},
        )
    except subprocess.TimeoutExpired:
        counts["hang (run over its bound)"] += 1
        problems.append(f"the run over {[p.name for p in files]} took over {bound:.0f} s")
        return counts, problems
    if done.returncode not in (0, 1) or "Traceback" in done.stderr:
        counts["crash"] += 1
        problems.append(f"exit {done.returncode}: {done.stderr[-2000:]}")
    lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    seen = Counter(r["video"] for r in lines)
    for path in map(str, files):
        if seen[path] != 1:
            counts["missing or repeated result"] += 1
            problems.append(f"{path}: {seen[path]} result lines")
    for r in lines:
        kind = "classified" if "predictions" in r else error_kind(r["error"])
        counts[kind] += 1
        if kind.startswith(("other", "unexpected")):  # worth a look
            problems.append(f"other error: {r['error']}")
    return counts, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="how long to go on (300)")
    parser.add_argument("--batch", type=int, default=20, help="files per round (20)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="first seed (now)")
    parser.add_argument("--video-timeout", type=float, default=60.0, help="per video (60)")
    args = parser.parse_args()
    if not VIDEOS.is_dir():
        print(f"no shared videos at {VIDEOS}", file=sys.stderr)
        return 2
    print(f"{cpu_line()}; first seed {args.seed}")
    totals, problems = Counter(), []
    start, rounds, files_done = time.monotonic(), 0, 0
    while time.monotonic() - start < args.seconds:
        seed = args.seed + rounds
        with tempfile.TemporaryDirectory(prefix="vidclass-fuzz-") as tmp:
            folder = Path(tmp)
            files = hostile.mutated(VIDEOS, folder / "mutated", seed, args.batch)
            if rounds == 0:
                files += hostile.crafted(VIDEOS, folder / "crafted")
            counts, found = run_round(files, folder, args.video_timeout)
        totals += counts
        problems += [f"seed {seed}: {p}" for p in found]
        rounds += 1
        files_done += len(files)
        print(f"round {rounds} (seed {seed}): {dict(counts)}", flush=True)
    elapsed = time.monotonic() - start
    rate = files_done / elapsed
    print(f"\n{files_done} files in {rounds} rounds, {elapsed:.0f} s ({rate:.2f}/s)")
    for kind, n in totals.most_common():
        print(f"  {kind:<28} {n:5d}")
    failures = (
        "hang (run over its bound)",
        "crash",
        "missing or repeated result",
        "unexpected exception (a bug)",
    )
    bad = sum(totals[k] for k in failures)
    print(f"hangs, crashes and lost results: {bad}")
    for p in sorted(set(problems)):
        print("  " + re.sub(r"\s+", " ", p)[:500])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
