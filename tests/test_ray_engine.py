"""The Ray engine on a real cluster: two Ray nodes started on this machine (`ray start
--head` plus `ray start --address`), joined through 127.0.0.1. The node processes
are this module's own (each node in its own session), so killing one kills nothing
else; nothing is mocked."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidclass.batch.parquet_folder import MARKER, PART_GLOB

from .conftest import VIDEOS, dev_clips, labelled_clips, link_videos, run_cli, video

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ray = pytest.importorskip("ray", reason="no ray extra here (pip install vidclass[ray])")

# Ray 2.60 starts clusters with token authentication; its clients then ask for it too.
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
RAY_BIN = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `ray start --block` in a session of its own: its raylet and the workers the
    raylet starts die with it."""

    def __init__(self, *args: str, log: Path):
        self.log = open(log, "wb")  # noqa: SIM115 (closed in kill)
        self.proc = subprocess.Popen(
            [RAY_BIN, "start", "--block", "--num-cpus", "2", "--disable-usage-stats", *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **RAY_ENV},
        )

    def raylet(self) -> int | None:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid), "-f", "raylet/raylet"],
            capture_output=True,
            text=True,
        ).stdout.split()
        return int(out[0]) if out else None

    def workers(self) -> list[tuple[int, str]]:
        """(pid, title) of the Ray workers this node's raylet started."""
        raylet = self.raylet()
        if raylet is None:
            return []
        out = subprocess.run(["pgrep", "-a", "-P", str(raylet)], capture_output=True, text=True)
        found = []
        for line in out.stdout.splitlines():
            pid, _, title = line.partition(" ")
            found.append((int(pid), title))
        return found

    def kill(self) -> None:
        """As if the machine went away: the node and its workers, SIGKILL."""
        workers = self.workers()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid, _ in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()


def _alive_nodes(address: str) -> int:
    code = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR');"
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **RAY_ENV},
    )
    return int(out.stdout.strip() or 0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The address of a two-node Ray cluster on this machine."""
    logs = tmp_path_factory.mktemp("ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = Node("--head", "--port", str(port), "--include-dashboard=false", log=logs / "head")
    nodes = [head]
    try:
        for _ in range(60):  # the head takes a few seconds
            if head.raylet() is not None:
                break
            time.sleep(1)
        nodes.append(Node("--address", address, log=logs / "node2"))
        for _ in range(30):
            if _alive_nodes(address) >= 2:
                break
            time.sleep(2)
        else:
            pytest.fail(f"the two-node cluster did not come up; see {logs}")
        yield address, nodes, logs
    finally:
        for node in reversed(nodes):
            node.kill()


def ray_cli(*args, timeout=600):
    return run_cli(*args, timeout=timeout, env=RAY_ENV)


def _labelled() -> list[Path]:
    clips = [video(name) for name, _ in labelled_clips()[:4]]
    return clips + [VIDEOS / "odd" / "not_a_video.mp4"]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cluster_gives_the_local_engine_top_k(cluster, tmp_path):
    address, _, _ = cluster
    args = ["classify", *_labelled(), "--format", "json", "-k", "3", "--precision", "fp32"]
    local = ray_cli(*args)
    remote = ray_cli(*args, "--engine", "ray", "--ray-address", address)
    assert local.returncode == remote.returncode == 1, remote.stderr  # the bad file
    by_video = {r["video"]: r for r in json.loads(remote.stdout)}
    for expected in json.loads(local.stdout):
        got = by_video.pop(expected["video"])
        if "error" in expected:
            assert got["error"] == expected["error"]
            continue
        assert [p["label"] for p in got["predictions"]] == [
            p["label"] for p in expected["predictions"]
        ]
        for a, b in zip(got["predictions"], expected["predictions"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    assert not by_video
    assert "error: " in remote.stderr and "not_a_video.mp4" in remote.stderr
    # --labels reaches the model actors: only those labels, renormalised over them
    chosen = ["arm wrestling", "eating spaghetti", "tai chi"]
    engine = ["--engine", "ray", "--ray-address", address]
    remote = ray_cli(*args, *engine, "--labels", ", ".join(chosen))
    for got in json.loads(remote.stdout):
        if "error" not in got:
            assert {p["label"] for p in got["predictions"]} == set(chosen)
            assert sum(p["score"] for p in got["predictions"]) == pytest.approx(1, abs=1e-5)


def _start_batch(address: str, videos: list[Path], output: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vidclass", "classify", *map(str, videos), "--output", str(output)]
    cmd += ["--engine", "ray", "--ray-address", address]
    env = {**os.environ, "VIDCLASS_OFFLINE": "1", **RAY_ENV}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _many_videos(tmp_path: Path) -> list[Path]:
    """Every dev clip, twice over under other names: enough work to interrupt."""
    names = [f"dev/{n}" for n in dev_clips()]
    if len(names) < 4:
        pytest.skip(f"too few clips under {VIDEOS / 'dev'}")
    first = link_videos(tmp_path / "a", names)
    second = link_videos(tmp_path / "b", names)
    return sorted(first.iterdir()) + sorted(second.iterdir())


def test_a_worker_node_killed_mid_run_loses_and_repeats_nothing(cluster, tmp_path):
    address, nodes, logs = cluster
    third = Node("--address", address, log=logs / "node3")
    nodes.append(third)
    videos = _many_videos(tmp_path)
    output = tmp_path / "out.jsonl"
    run = _start_batch(address, videos, output)
    try:
        # Kill the node once it is decoding or scoring part of this run.
        for _ in range(240):
            if any(t.startswith(("ray::Map", "ray::ReadItems")) for _, t in third.workers()):
                break
            if run.poll() is not None:
                break
            time.sleep(0.5)
        busy = [t for _, t in third.workers() if t.startswith(("ray::Map", "ray::ReadItems"))]
        third.kill()
        nodes.remove(third)
        _, stderr = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
    assert busy, "the third node never got work from the run; nothing was tested"
    assert run.returncode == 0, stderr.decode()
    rows = _jsonl(output)
    assert sorted(r["video"] for r in rows) == sorted(map(str, videos))
    assert all("predictions" in r for r in rows)


STUCK_RUN = """
import json, sys, time
import vidclass
from vidclass.engine import Work
from vidclass.engine.cluster import ClusterRun

def decode(path, spec, sampling, timeout):  # shipped to the workers by value
    from vidclass.engine.prepare import Prepared, prepare

    if path.endswith("stuck.mp4"):
        time.sleep(120)  # as a C call that never returns; bounded for the test
        return Prepared(error="the stuck task was never stopped")
    return prepare(path, spec, sampling, timeout)

if __name__ == "__main__":
    model = vidclass.load_model(precision="fp32")
    work = Work(top_k=1, video_timeout=1.0)
    run = ClusterRun(model, model.recipe, work, address=sys.argv[1], decode_task=decode)
    results = [r.as_dict() for r in run.run(sys.argv[2:])]
    print(json.dumps({"results": results, "failed": run.stats.failed}))
"""


def test_a_decoder_stuck_past_its_hard_limit_fails_its_video_not_the_run(cluster, tmp_path):
    """A decoding task stuck inside a call that never checks the time limit is ended by
    the kernel alarm, retried, then given up: its video is a failed result."""
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "stuck.mp4").symlink_to(video("arm_wrestling.mp4"))
    (folder / "fine.mp4").symlink_to(video("eating_spaghetti.mp4"))
    script = tmp_path / "stuck_run.py"
    script.write_text(STUCK_RUN)
    done = subprocess.run(
        [sys.executable, str(script), cluster[0], *map(str, sorted(folder.iterdir()))],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **RAY_ENV},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # stdout holds the report alone: Ray's note of the worker it lost is not printed there
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout[-3000:]
    report = json.loads(lines[0])
    results = {Path(r["video"]).name: r for r in report["results"]}
    assert sorted(results) == ["fine.mp4", "stuck.mp4"]
    assert results["fine.mp4"]["predictions"][0]["label"] == "eating spaghetti"
    assert "lost on the cluster" in results["stuck.mp4"]["error"]
    assert report["failed"] == 1


def test_a_killed_driver_is_finished_by_the_same_command(cluster, tmp_path):
    address, _, _ = cluster
    videos = _many_videos(tmp_path)
    output = tmp_path / "out.jsonl"
    run = _start_batch(address, videos, output)
    try:
        for _ in range(600):  # until the first results are written
            if output.exists() and output.read_text().count("\n") >= 2:
                break
            if run.poll() is not None:
                break
            time.sleep(0.25)
        assert run.poll() is None, "the run ended before it could be killed"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    before = len(_jsonl(output))
    assert 0 < before < len(videos)
    again = _start_batch(address, videos, output)
    _, stderr = again.communicate(timeout=900)
    assert again.returncode == 0, stderr.decode()
    assert f"{before} skipped" in stderr.decode()
    rows = _jsonl(output)
    assert sorted(r["video"] for r in rows) == sorted(map(str, videos))


def test_workers_write_a_resumable_parquet_folder(cluster, tmp_path):
    from vidclass.batch.parquet_folder import read_folder

    address, _, _ = cluster
    videos = _labelled()
    out = tmp_path / "results"
    to_folder = ["--output", f"{out}/", "--engine", "ray", "--ray-address", address, "-k", "2"]
    first = ray_cli("classify", *videos[:3], *to_folder)
    assert first.returncode == 0, first.stderr
    second = ray_cli("classify", *videos, *to_folder)
    assert second.returncode == 1, second.stderr  # not_a_video.mp4
    assert "3 skipped" in second.stderr
    table = read_folder(out).to_pylist()
    assert sorted(r["video"] for r in table) == sorted(map(str, videos))
    assert list(table[0]) == [
        "video",
        "model",
        "error",
        "ood_score",
        "unknown",
        "label_1",
        "score_1",
        "label_2",
        "score_2",
    ]
    bad = next(r for r in table if r["video"].endswith("not_a_video.mp4"))
    assert bad["error"] and bad["label_1"] is None
    good = [r for r in table if r["error"] is None]
    assert all(r["label_1"] and 0 < r["score_1"] <= 1 for r in good)
    assert sorted(p.name for p in out.iterdir() if not p.match(PART_GLOB)) == [MARKER]


def test_index_and_train_run_on_the_cluster(cluster, tmp_path):
    address, _, _ = cluster
    names = [f"dev/{n}" for n in dev_clips()][:4]
    if len(names) < 4:
        pytest.skip(f"too few clips under {VIDEOS / 'dev'}")
    folder = link_videos(tmp_path / "videos", names)
    local_db, ray_db = tmp_path / "local.sqlite", tmp_path / "ray.sqlite"
    common = ["--precision", "fp32"]
    assert ray_cli("index", folder, "--db", local_db, *common).returncode == 0
    remote = ray_cli(
        "index", folder, "--db", ray_db, *common, "--engine", "ray", "--ray-address", address
    )
    assert remote.returncode == 0, remote.stderr

    def best_tags(db):
        proc = ray_cli("export", "--db", db)
        assert proc.returncode == 0, proc.stderr
        return {r["video"]: r["tags"][0]["label"] for r in json.loads(proc.stdout)}

    assert best_tags(ray_db) == best_tags(local_db) and len(best_tags(ray_db)) == len(names)

    def neighbours(db):  # from the features each gallery stored
        proc = ray_cli("similar", sorted(folder.iterdir())[0], "--db", db, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        return [(r["video"], round(r["similarity"], 3)) for r in json.loads(proc.stdout)]

    assert neighbours(ray_db) == neighbours(local_db) and len(neighbours(ray_db)) >= 2

    by_label: dict[str, list[str]] = {}
    for name, label in dev_clips().items():
        by_label.setdefault(label, []).append(name)
    pairs = [sorted(v)[:2] for v in by_label.values() if len(v) >= 2][:2]
    if len(pairs) < 2:
        pytest.skip(f"too few labels with two clips under {VIDEOS / 'dev'}")
    data = tmp_path / "data"
    for pair in pairs:
        label = dev_clips()[pair[0]]
        link_videos(data / label, [f"dev/{n}" for n in pair])
    model = tmp_path / "model"
    env = {**RAY_ENV, "VIDCLASS_FEATURE_CACHE": str(tmp_path / "features")}
    trained = run_cli(
        "train",
        data,
        "--out",
        model,
        "--engine",
        "ray",
        "--ray-address",
        address,
        "--epochs",
        "5",
        "--val-fraction",
        "0.5",
        timeout=900,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr
    assert (model / "head.safetensors").is_file()
    config = json.loads((model / "vidclass.json").read_text())
    assert config["training"]["videos"] == 4  # every video's features came back


def test_without_ray_data_the_engine_is_one_line_with_the_pip_command(tmp_path):
    blocker = tmp_path / "blocker"
    (blocker / "ray").mkdir(parents=True)
    (blocker / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = {"PYTHONPATH": str(blocker)}
    proc = run_cli("classify", video("arm_wrestling.mp4"), "--engine", "ray", env=env)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "vidclass: error: --engine ray needs Ray Data, which is not installed: "
        "pip install 'vidclass[ray]'"
    )


def test_a_parquet_folder_needs_the_ray_engine_and_a_folder_of_ours(tmp_path):
    clip = video("arm_wrestling.mp4")
    proc = run_cli("classify", clip, "--output", f"{tmp_path / 'out'}/")
    assert proc.returncode != 0 and "add --engine ray" in proc.stderr
    assert not (tmp_path / "out").exists()

    from vidclass.batch.parquet_folder import ParquetFolder
    from vidclass.errors import VidclassError

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine\n")
    (theirs / ".part-x.partial-1-2.parquet").write_text("not ours either\n")
    with pytest.raises(VidclassError, match="a folder vidclass did not write"):
        ParquetFolder(theirs, "i3d.kinetics400", 5)
    assert sorted(p.name for p in theirs.iterdir()) == [".part-x.partial-1-2.parquet", "notes.txt"]

    ours = ParquetFolder(tmp_path / "ours", "i3d.kinetics400", 5)
    assert ours.done == set()
    ours.close()  # one writer at a time: the next ones open it again
    stale = tmp_path / "ours" / ".part-x.partial-1-2.parquet"  # a killed writer's
    stale.write_bytes(b"PAR1 half")
    assert ParquetFolder(tmp_path / "ours", "i3d.kinetics400", 5).done == set()
    assert not stale.exists()
    with pytest.raises(VidclassError, match="--model i3d.kinetics400"):
        ParquetFolder(tmp_path / "ours", "other", 5)
    (tmp_path / "ours" / "part-0.parquet").write_bytes(b"PAR1 torn")
    with pytest.raises(VidclassError, match="damaged results part"):
        ParquetFolder(tmp_path / "ours", "i3d.kinetics400", 5)
