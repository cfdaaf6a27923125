"""The Ray engine: the same work over a Ray cluster, built on Ray Data.

    paths not yet done -> decoding tasks (one CPU each, any node)
                       -> model actors (a pool; a GPU each where the cluster has them),
                          each running the driver's own loop over clips already decoded
                       -> results, streamed back here (or written by the actors: `sink`)

Decoded clips travel as uint8 bytes with their shape, results as float32 bytes: plain
Arrow columns, nothing pickled. A video whose decoding fails is a row with its error; a
task that dies for good (its block given up after retries) loses only its videos, which
come back as failed results. Results are yielded once per video even where Ray reruns
a task, so stores stay exactly-once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..cpu import allocator_env
from ..devices import DEFAULT_BATCH
from ..errors import VidclassError
from ..results import VideoResult
from .driver import Driver, RunStats
from .executors import Event, run_in_worker
from .prepare import Prepared, prepare
from .work import ClipModel, Clips, ModelRecipe, Work

log = logging.getLogger("vidclass")

INSTALL_HINT = "pip install 'vidclass[ray]'"
DECODE_RETRIES = 2  # a decoding task lost with its node is run again elsewhere
MODEL_RETRIES = 3  # a batch whose actor died is scored again by another


def import_ray():
    """Ray with Ray Data, or the one-line error that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise VidclassError(
            f"--engine ray needs Ray Data, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


def _ray_notes_to_stderr() -> None:
    """Ray's driver prints its notes of workers that died ("(raylet) A worker died...")
    on stdout whatever log_to_driver says (its error listener marks them as output, not
    errors), where they land among a run's results (after a JSON report, say): they go
    to stderr instead. The function is Ray's internal one: where it is missing, Ray's
    own behaviour stays."""
    try:
        from ray._private import worker
    except ImportError:
        return
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "vidclass_stderr", False):
        return

    def to_stderr(data, *args, **kwargs):
        return original({**data, "is_err": True}, *args, **kwargs)

    to_stderr.vidclass_stderr = True
    worker.print_to_stdstream = to_stderr


def connect(address: str | None = None):
    """Join the cluster at `address` (else $RAY_ADDRESS); with neither, start a local Ray
    for this process. Returns the ray module."""
    # Ray's own notes (progress, token auth) would bury vidclass's lines; failures
    # still reach here as exceptions. Workers' output is not streamed here
    # (log_to_driver): Ray would print it on this process's stdout, among the results;
    # vidclass's warnings travel back in the rows.
    ray = import_ray()
    _ray_notes_to_stderr()
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            # "local": a Ray of this run's own, never a stale cluster left on the machine
            ray.init(
                address="local",
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        text = f"cannot start or join {where}: {exc}".splitlines()[0]
        if "AuthToken" in repr(exc.__cause__) or "AuthToken" in str(exc):
            text += " (the cluster wants its token: set RAY_AUTH_MODE=token)"
        raise VidclassError(text) from None
    return ray


# -- arrays as plain columns ----------------------------------------------------------------
def to_bytes(array: np.ndarray | None, dtype) -> tuple[bytes | None, list[int] | None]:
    if array is None:
        return None, None
    array = np.ascontiguousarray(array, dtype=dtype)
    return array.tobytes(), list(array.shape)


def from_bytes(data: bytes | None, shape: list[int] | None, dtype) -> np.ndarray | None:
    if data is None:
        return None
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()  # writable, as torch wants


def _decode_one(path: str, spec, work: Work, task: Callable) -> Prepared:
    """One video's clips within its time limit. In the task's main thread the decoding
    processes' kernel alarm also ends a decoder stuck in C past the hard limit: the task
    dies, Ray retries it, and once it is given up the video comes back as failed."""
    if threading.current_thread() is not threading.main_thread():
        return task(path, spec, work.sampling, work.video_timeout)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the alarm ends the process
    return run_in_worker(task, work.video_timeout, path, spec, work.sampling)


def decode_block(table, spec, work: Work, task: Callable = prepare):
    """Decoding tasks: (index, video) rows -> rows with the video's clips or its error.
    `task(path, spec, sampling, timeout)` decodes one video, as in DecoderPool."""
    import pyarrow as pa

    rows = []
    for index, video in zip(table["index"].to_pylist(), table["video"].to_pylist(), strict=True):
        prepared = _decode_one(video, spec, work, task)
        clips = np.stack([c for _, c in prepared.clips]) if prepared.error is None else None
        data, shape = to_bytes(clips, np.uint8)
        rows.append(
            {
                "index": index,
                "video": video,
                "clips": data,
                "shape": shape,
                "warnings": prepared.warnings,
                "error": prepared.error,
            }
        )
    return pa.Table.from_pylist(rows, schema=_decoded_schema())


def _decoded_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("video", pa.string()),
            ("clips", pa.large_binary()),
            ("shape", pa.list_(pa.int64())),
            ("warnings", pa.list_(pa.string())),
            ("error", pa.string()),
        ]
    )


def _result_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("video", pa.string()),
            ("error", pa.string()),
            ("warnings", pa.list_(pa.string())),
            ("labels", pa.list_(pa.string())),
            ("label_scores", pa.list_(pa.float64())),
            ("scores", pa.large_binary()),
            ("scores_shape", pa.list_(pa.int64())),
            ("features", pa.large_binary()),
            ("features_shape", pa.list_(pa.int64())),
            ("model_seconds", pa.float64()),
        ]
    )


class _Decoded:
    """An executor over clips decoded elsewhere: what a model actor hands its driver."""

    workers = 0

    def __init__(self, prepared: list[Prepared]):
        self._prepared = prepared
        self._todo: list = []

    def open(self, spec, work, jobs, batch_size: int) -> int:
        self._todo = list(jobs)
        return batch_size

    def pending(self) -> bool:
        return bool(self._todo)

    def pull(self) -> list[Event]:
        job = self._todo.pop(0)
        prepared = self._prepared[job[0]]
        return [Event(job, clip=c) for c in prepared.clips] + [Event(job, end=prepared)]

    def close(self) -> None:
        self._todo = []


@dataclass(frozen=True)
class _ActorPlan:
    recipe: ModelRecipe
    work: Work
    batch_size: int | None
    sink: Callable | None


class ModelActor:
    """Holds a model on its node (a GPU where Ray gave it one) and scores decoded rows
    with the driver's loop; `sink`, where given, writes the results on the worker.
    `bound` makes the class that Ray Data starts: its plan travels with the class."""

    plan: _ActorPlan

    @classmethod
    def bound(cls, plan: _ActorPlan) -> type:
        return type("ModelActor", (cls,), {"plan": plan})

    def __init__(self):
        import ray

        self.model = self.plan.recipe.load("cuda" if ray.get_gpu_ids() else "cpu")
        self.work = self.plan.work
        self.batch_size = self.plan.batch_size
        self.sink = self.plan.sink

    def __call__(self, table):
        import pyarrow as pa

        rows = table.to_pylist()
        prepared = []
        for row in rows:
            if row["error"] is not None:
                prepared.append(Prepared(error=row["error"]))
                continue
            clips = from_bytes(row["clips"], row["shape"], np.uint8)
            # its warnings travel back in the row, to be logged by the caller
            prepared.append(Prepared(clips=list(enumerate(clips))))
        executor = _Decoded(prepared)
        driver = Driver(self.model, self.work, executor, self.batch_size, ordered=True)
        results = list(driver.run([row["video"] for row in rows]))
        if self.sink is not None:
            self.sink(results)
        share = driver.stats.model_seconds / max(1, len(rows))
        slim = self.sink is not None
        out = [_result_row(r, result, share, slim) for r, result in zip(rows, results, strict=True)]
        return pa.Table.from_pylist(out, schema=_result_schema())


def _result_row(row: dict, result: VideoResult, model_seconds: float, slim: bool) -> dict:
    predictions = result.predictions or []
    scores, scores_shape = (None, None) if slim else to_bytes(result.scores, np.float32)
    features, features_shape = (None, None) if slim else to_bytes(result.features, np.float32)
    return {
        "index": row["index"],
        "video": row["video"],
        "error": result.error,
        "warnings": row["warnings"],
        "labels": [p["label"] for p in predictions],
        "label_scores": [p["score"] for p in predictions],
        "scores": scores,
        "scores_shape": scores_shape,
        "features": features,
        "features_shape": features_shape,
        "model_seconds": model_seconds,
    }


def _video_result(row: dict) -> VideoResult:
    if row["error"] is not None:
        return VideoResult(row["video"], error=row["error"])
    predictions = [
        {"label": label, "score": score}
        for label, score in zip(row["labels"], row["label_scores"], strict=True)
    ]
    return VideoResult(
        row["video"],
        predictions=predictions or None,
        scores=from_bytes(row["scores"], row["scores_shape"], np.float32),
        features=from_bytes(row["features"], row["features_shape"], np.float32),
    )


def cluster_gpus(ray) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def cluster_nodes(ray) -> int:
    return max(1, sum(1 for n in ray.nodes() if n.get("Alive")))


class ClusterRun:
    """Runs `work` over a Ray cluster; the same face as Driver (`run(paths)`, `stats`).

    `model` is the model loaded here (its labels and input spec); `recipe` says how each
    actor loads its own copy. `actors`: model actors (None: one per GPU, else one per
    node). `sink(results)`: called on the actor with each batch's results (the workers
    write them); then only the videos and errors come back here. `decode_task`: what a
    decoding task runs for one video, as DecoderPool's `task`.
    """

    def __init__(
        self,
        model: ClipModel,
        recipe: ModelRecipe,
        work: Work,
        batch_size: int | None = None,
        address: str | None = None,
        actors: int | None = None,
        sink: Callable[[list[VideoResult]], None] | None = None,
        decode_task: Callable = prepare,
    ):
        if not isinstance(work.sampling, Clips):
            raise VidclassError("the ray engine runs clips, not sliding windows")
        self.model = model
        self.recipe = recipe
        self.work = work
        self.batch_size = batch_size
        self.address = address
        self.actors = actors
        self.sink = sink
        self.decode_task = decode_task
        self.stats = RunStats()

    def _dataset(self, ray, paths: list[str]):
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.max_errored_blocks = -1  # a block given up loses its videos, not the run
        gpus = cluster_gpus(ray)
        actors = self.actors or (gpus or cluster_nodes(ray))
        hint = DEFAULT_BATCH["cuda"] if gpus else self.model.batch_size_hint
        clips_per_pass = self.batch_size or hint
        clips_per_video = self.work.sampling.count * (2 if self.work.sampling.flip else 1)
        items = [{"index": i, "video": p} for i, p in enumerate(paths)]
        ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        # batch_size None: what suits the actor's device
        plan = _ActorPlan(self.recipe, self.work, self.batch_size, self.sink)
        with warnings.catch_warnings():
            # Retry limits have no named parameter yet (the extra pins Ray below 2.64).
            warnings.simplefilter("ignore", category=DeprecationWarning)
            ds = ds.map_batches(
                decode_block,
                fn_kwargs={"spec": self.model.spec, "work": self.work, "task": self.decode_task},
                batch_format="pyarrow",
                batch_size=None,
                num_cpus=1,
                max_retries=DECODE_RETRIES,  # Ray Data's default, -1, retries a crash forever
            )
            return ds.map_batches(
                ModelActor.bound(plan),
                batch_format="pyarrow",
                batch_size=max(1, clips_per_pass // clips_per_video),
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                num_cpus=1,
                num_gpus=1 if gpus else 0,
                max_restarts=-1,  # an actor lost with its node starts again elsewhere
                max_task_retries=MODEL_RETRIES,
                # Ray Data calls the actor in a thread of its own, started before the
                # model loads: its allocator is set up from the environment
                runtime_env={"env_vars": allocator_env()},
            )

    def run(self, paths: Iterable[str]) -> Iterator[VideoResult]:
        start = time.perf_counter()
        paths = [str(p) for p in paths]
        try:
            if paths:
                yield from self._run(paths)
        finally:
            self.stats.wall_seconds += time.perf_counter() - start

    def _run(self, paths: list[str]) -> Iterator[VideoResult]:
        ray = connect(self.address)
        seen: set[int] = set()
        dataset = self._dataset(ray, paths)
        # batch_size None: each block as it arrives, so results stream back
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                if row["index"] in seen:  # a task Ray ran again: recorded already
                    continue
                seen.add(row["index"])
                for message in row["warnings"] or []:
                    log.warning(message)
                self.stats.model_seconds += row["model_seconds"] or 0.0
                yield self._counted(_video_result(row))
        for index in sorted(set(range(len(paths))) - seen):
            error = f"{paths[index]}: lost on the cluster (its task failed and was given up)"
            lost = VideoResult(paths[index], error=error)
            if self.sink is not None:
                self.sink([lost])
            yield self._counted(lost)

    def _counted(self, result: VideoResult) -> VideoResult:
        if result.error is None:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
        return result
