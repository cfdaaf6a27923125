"""Videos per second of the local engine against the Ray engine, in one run.

The same folder (links to the shared clips, each `--copies` times) is classified by
`vidclass.classify_batch` with default settings, each variant in its own process,
interleaved over `--repeats` rounds:

- local: decoding processes on this machine (the default engine);
- ray, one node: a Ray cluster already up on this machine (`ray start --head`), as a
  cluster is in use; the figure counts joining it and starting the model actor;
- ray, two nodes: the same with a second node (`ray start --address`) on this
  machine, sharing its cores: the cost of spreading, not a gain from more hardware;
- ray, started by the run: no cluster given, so the run starts a local Ray itself.

Prints medians and each variant's ratio to the local engine (goal: Ray within 10 %).

    python benchmarks/engines.py [--repeats 3] [--copies 6] [--videos DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batch import CLIPS, DEFAULT_VIDEOS  # the same clips as the batch benchmark
from vidclass.info import cpu_line

RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
RAY_BIN = str(Path(sys.executable).with_name("ray"))
VARIANTS = ["local", "ray, one node", "ray, two nodes", "ray, started by the run"]


def measure(variant: str, folder: Path, address: str | None) -> dict:
    import vidclass

    begin = time.perf_counter()
    engine = "local" if variant == "local" else "ray"
    stamps: list[float] = []
    summary = vidclass.classify_batch(
        [folder],
        engine=engine,
        ray_address=address,
        on_result=lambda _: stamps.append(time.perf_counter()),
    )
    # once running: the videos after the first quarter over the time they took
    quarter = len(stamps) // 4
    return {
        "variant": variant,
        "videos": summary.succeeded + summary.failed,
        "failed": summary.failed,
        "wall": summary.wall_seconds,
        "steady": (len(stamps) - quarter - 1) / (stamps[-1] - stamps[quarter]),
        "total": time.perf_counter() - begin,
    }


class Cluster:
    """Ray nodes on this machine, each `ray start --block` in a session of its own."""

    def __init__(self, cpus: int):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{s.getsockname()[1]}"
        self.cpus = cpus
        self.nodes: list[subprocess.Popen] = []

    def add(self, head: bool) -> None:
        args = ["--head", "--port", self.address.split(":")[1], "--include-dashboard=false"]
        cmd = [RAY_BIN, "start", "--block", "--num-cpus", str(self.cpus), "--disable-usage-stats"]
        cmd += args if head else ["--address", self.address]
        self.nodes.append(
            subprocess.Popen(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **RAY_ENV},
            )
        )
        self.wait_for(len(self.nodes))

    def wait_for(self, count: int) -> None:
        code = (
            f"import ray; ray.init(address={self.address!r}, logging_level='ERROR');"
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        for _ in range(60):
            time.sleep(2)
            out = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                env={**os.environ, **RAY_ENV},
            ).stdout.strip()
            if out and int(out) >= count:
                return
        sys.exit(f"the Ray cluster did not reach {count} nodes")

    def stop_last(self) -> None:
        node = self.nodes.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=60)
        time.sleep(5)  # the head notices the node is gone

    def stop(self) -> None:
        while self.nodes:
            self.stop_last()


def run_variant(variant: str, folder: Path, address: str | None) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, "--folder", str(folder)]
    if address:
        cmd += ["--address", address]
    env = {**os.environ, **RAY_ENV}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=6, help="links to each clip (6)")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.folder, args.address)))
        return
    missing = [c for c in CLIPS if not (args.videos / c).exists()]
    if missing:
        sys.exit(f"missing shared videos under {args.videos}: {missing}")
    cores = len(os.sched_getaffinity(0))
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    cluster = Cluster(cores)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for copy in range(args.copies):
            for clip in CLIPS:
                (folder / f"{copy}_{Path(clip).name}").symlink_to(args.videos / clip)
        try:
            for round_ in range(args.repeats):
                # interleaved, so drift in the machine hits all alike
                runs["local"].append(run_variant("local", folder, None))
                cluster.add(head=True)
                runs["ray, one node"].append(run_variant("ray, one node", folder, cluster.address))
                cluster.add(head=False)
                runs["ray, two nodes"].append(
                    run_variant("ray, two nodes", folder, cluster.address)
                )
                cluster.stop()
                runs["ray, started by the run"].append(
                    run_variant("ray, started by the run", folder, None)
                )
                print(f"round {round_ + 1} done", file=sys.stderr)
        finally:
            cluster.stop()
    first = runs["local"][0]
    print(
        f"\n{cpu_line()}\n{first['videos']} videos ({len(CLIPS)} shared clips x {args.copies}), "
        f"median of {args.repeats} rounds"
    )
    header = ["videos/s", "vs local", "running", "vs local", "s in all", "failed"]
    print(f"{'variant':<28}" + "".join(f"{h:>10}" for h in header))
    base = statistics.median(r["videos"] / r["wall"] for r in runs["local"])
    steady_base = statistics.median(r["steady"] for r in runs["local"])
    for variant, rs in runs.items():
        rate = statistics.median(r["videos"] / r["wall"] for r in rs)
        steady = statistics.median(r["steady"] for r in rs)
        total = statistics.median(r["total"] for r in rs)
        failed = max(r["failed"] for r in rs)
        print(
            f"{variant:<28}{rate:>10.3f}{rate / base:>10.2f}{steady:>10.3f}"
            f"{steady / steady_base:>10.2f}{total:>10.1f}{failed:>8}"
        )
    print(
        "videos/s counts from the start of the run (joining or starting Ray and the model "
        "actor's loading included); 'running' counts the videos after the first quarter "
        "over the time they took; 's in all' adds loading the model in the driver."
    )


if __name__ == "__main__":
    main()
