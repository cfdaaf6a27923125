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

Here: joining the cluster and the Ray Data pipeline that drives the workers; what runs
on them (decoding tasks, model actors, their rows) is cluster_workers.py.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator

from ..cpu import allocator_env
from ..devices import DEFAULT_BATCH
from ..errors import VidclassError
from ..results import VideoResult
from .cluster_workers import ActorPlan, ModelActor, decode_block, result_from_row
from .driver import RunStats
from .prepare import prepare
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
        plan = ActorPlan(self.recipe, self.work, self.batch_size, self.sink)
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
                yield self._counted(result_from_row(row))
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
