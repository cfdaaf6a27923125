"""Where the decoding stage runs: in this process, or in local decoding processes.

The driver asks an executor for what it has made (`pull`): clips of a video as they
come, then the video's end (its spans, warnings, or error). Each executor bounds its
own work: how many videos are decoded ahead, and how long one may take.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from ..cpu import available_cores
from ..errors import VidclassError
from ..limits import time_limit
from ..models.spec import InputSpec
from .ahead import Ahead
from .prepare import Preparation, Prepared, prepare
from .work import Work

log = logging.getLogger("vidclass")
# Shared windows: steps decoded ahead of the model in this process (measured on the 139 s
# video, AMX Xeon: 14.6 s to 13.1 s; windows scored alone gain nothing, so they do not).
STEPS_AHEAD = 2

Job = tuple[int, str]  # (position in the run, path): the same path named twice is two jobs


@dataclass
class Event:
    """A clip of a job (`clip` set), or the end of the job (`end` set)."""

    job: Job
    clip: tuple[int, np.ndarray] | None = None
    end: Prepared | None = None


@dataclass
class _Plan:
    spec: InputSpec
    work: Work
    todo: deque = field(default_factory=deque)


def default_workers() -> int:
    """One decoding process per two cores: decoding is a small share of a video's time."""
    return max(1, available_cores() // 2)


class InProcess:
    """Decodes here, one clip at a time as the driver asks for it, so a long video's
    windows stream through in bounded memory. The work's video_timeout counts the time
    spent decoding a video, not the model's time between its clips. `raise_errors`: a
    video's VidclassError is raised (one video asked for by the API) instead of
    becoming its failed result."""

    workers = 0

    def __init__(self, raise_errors: bool = False):
        self.raise_errors = raise_errors
        self._plan: _Plan | None = None
        self._current: list | None = None  # [job, preparation, its clips, seconds spent]

    def open(self, spec: InputSpec, work: Work, jobs: list[Job], batch_size: int) -> int:
        """Start on `jobs`; returns how many clips the driver may hold for the model."""
        self._plan = _Plan(spec, work, deque(jobs))
        return batch_size

    def pending(self) -> bool:
        return self._current is not None or bool(self._plan and self._plan.todo)

    def pull(self) -> list[Event]:
        plan = self._plan
        timeout = plan.work.video_timeout
        if self._current is None:
            job = plan.todo.popleft()
            preparation = Preparation(job[1], plan.spec, plan.work.sampling)
            clips = iter(preparation)
            if plan.work.shared_windows:
                # A step's model time is near its decoding's: decode the next meanwhile.
                # Ahead holds the video's timeout itself.
                clips = Ahead(clips, STEPS_AHEAD, timeout, f"{job[1]}: decoding")
            self._current = [job, preparation, clips, 0.0]
        job, preparation, clips, spent = self._current
        try:
            if isinstance(clips, Ahead):
                clip = next(clips)
            else:
                start = time.monotonic()
                left = None if timeout is None else timeout - spent
                with time_limit(left, f"{job[1]}: decoding", limit=timeout):
                    clip = next(clips)
                self._current[3] += time.monotonic() - start
            return [Event(job, clip=clip)]
        except StopIteration:
            finished = Prepared(spans=preparation.spans, warnings=preparation.warnings)
        except VidclassError as exc:
            if self.raise_errors:
                self._end_current()
                raise
            finished = Prepared(warnings=preparation.warnings, error=str(exc))
        except Exception as exc:
            if self.raise_errors:
                self._end_current()
                raise
            error = f"{job[1]}: unexpected {type(exc).__name__}: {exc}"
            finished = Prepared(warnings=preparation.warnings, error=error)
        self._end_current()
        return [Event(job, end=finished)]

    def _end_current(self) -> None:
        if self._current is not None and isinstance(self._current[2], Ahead):
            self._current[2].close()
        self._current = None

    def close(self) -> None:
        self._end_current()


class Handed:
    """Clips decoded elsewhere (a live source's windows, by its capture thread), handed
    over one job at a time: `hand` a clip, then run the driver on one job. A fault is
    raised, as for one video asked for by the API."""

    workers = 0
    raise_errors = True

    def __init__(self):
        self._given: deque[tuple[np.ndarray, tuple[float, float]]] = deque()
        self._jobs: deque = deque()

    def hand(self, clip: np.ndarray, span: tuple[float, float]) -> None:
        """The next job's one clip (uint8, video.transforms.stack_clip) and its span."""
        self._given.append((clip, span))

    def open(self, spec: InputSpec, work: Work, jobs: list[Job], batch_size: int) -> int:
        if len(jobs) != len(self._given):  # one clip for each job, never one left over
            problem = f"{len(jobs)} jobs were run with {len(self._given)} clips"
            self.close()
            raise VidclassError(problem)
        self._jobs = deque(jobs)
        return batch_size

    def pending(self) -> bool:
        return bool(self._jobs)

    def pull(self) -> list[Event]:
        job = self._jobs.popleft()
        clip, span = self._given.popleft()
        return [Event(job, clip=(0, clip)), Event(job, end=Prepared(spans={0: span}))]

    def close(self) -> None:
        self._jobs.clear()
        self._given.clear()


# -- decoding processes ----------------------------------------------------------------------
def init_worker() -> None:
    """Leave Ctrl-C to the main process (it stops the pool), and die with it if it is
    killed outright, so no orphaned decoders are left behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the hard limit below ends the process
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def hard_limit_seconds(timeout: float) -> float:
    """When a decoding process is killed: some slack past the cooperative time limit,
    which normally stops the work first."""
    return timeout + max(1.0, 0.1 * timeout)


def run_in_worker(task: Callable, timeout: float | None, *args):
    """Run `task(*args, timeout)` in a decoding process under a kernel alarm: if it is
    still running past the hard limit (stuck inside a C call, where the cooperative
    limit is never checked), SIGALRM ends the process and the pool reports it broken."""
    if timeout is not None:
        signal.setitimer(signal.ITIMER_REAL, hard_limit_seconds(timeout))
    try:
        return task(*args, timeout)
    finally:
        if timeout is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)


class DecoderPool:
    """Processes that decode videos for the model.

    Start it before loading the model: the processes take a second or two to start
    (each imports torch), which then overlaps the model's loading. `task(path, spec,
    sampling, timeout)` is what a process runs for one video.
    """

    def __init__(self, workers: int, task: Callable = prepare):
        self.workers = workers
        self.task = task
        self._pool = None
        self._unfinished: set[Future] = set()

    def start(self) -> DecoderPool:
        if self._pool is None and self.workers > 0:
            # spawn, not fork: the main process may hold torch's thread pools, which a
            # forked child must not inherit.
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
            )
            self._track(self._pool.submit(int))  # the processes start now, not at the first video
        return self

    def _track(self, future: Future) -> Future:
        self._unfinished.add(future)
        future.add_done_callback(self._unfinished.discard)
        return future

    def submit(self, path: str, spec, sampling, timeout: float | None) -> Future:
        """Decode one video; past its hard limit the process is killed (the future then
        raises BrokenProcessPool)."""
        pool = self.start()._pool
        return self._track(pool.submit(run_in_worker, self.task, timeout, path, spec, sampling))

    def restart(self) -> None:
        """After a decoder crashed: the old pool is broken for good."""
        self.close()
        self.start()

    def close(self) -> None:
        """Stop the processes now; a video still decoding is no longer wanted.

        All of the pool is waited for: a pool left to wind down by itself keeps a thread
        that races interpreter exit over a pipe it closes (CPython 3.11 loses now and
        then: "Bad file descriptor" at exit). Idle processes are told to stop, and do.
        Busy ones are killed; since one killed halfway through sending its result would
        leave the pool's thread reading that pipe for good, this process's end of it is
        closed too, which the thread then reads as a broken pool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            if any(not f.done() for f in list(self._unfinished)):
                processes = list((pool._processes or {}).values())
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.join()
                results = getattr(pool, "_result_queue", None)
                if results is not None:
                    results._writer.close()
        finally:
            self._unfinished.clear()
            pool.shutdown(wait=True, cancel_futures=True)


class LocalProcesses:
    """Decoding processes running ahead of the model, which runs here. When the model
    would wait for them, a video is decoded here instead. A process that dies takes
    its videos with it: they are tried again one at a time, so the one that killed it is
    found and recorded as failed (past its time limit, or crashed)."""

    def __init__(self, pool: DecoderPool):
        self.pool = pool
        self.workers = pool.workers
        self._plan: _Plan | None = None
        self._suspects: deque[Job] = deque()  # in flight when a process died
        self._inflight: dict[Future, Job] = {}
        self._submitted: dict[Future, float] = {}
        self._ahead = 1

    def open(self, spec: InputSpec, work: Work, jobs: list[Job], batch_size: int) -> int:
        if work.shared_windows:
            # A process hands back a video's clips all at once: every frame of it.
            raise VidclassError("shared windows are decoded in the model's process")
        self._plan = _Plan(spec, work, deque(jobs))
        # Enough decoded ahead to fill a batch while the next decodes.
        self._ahead = self.workers + batch_size
        return 2 * self._ahead

    def pending(self) -> bool:
        return bool(self._plan.todo or self._suspects or self._inflight)

    def _events(self, job: Job, prepared: Prepared) -> list[Event]:
        return [Event(job, clip=c) for c in prepared.clips] + [Event(job, end=prepared)]

    def _failed(self, job: Job, future: Future) -> Prepared:
        """Why the process decoding `job` alone died: its hard time limit, or a crash."""
        took = time.monotonic() - self._submitted[future]
        timeout = self._plan.work.video_timeout
        if timeout is not None and took >= timeout:
            return Prepared(error=f"{job[1]}: decoding took over {timeout:g} s; stopped")
        return Prepared(error=f"{job[1]}: the decoder crashed")

    def pull(self) -> list[Event]:
        plan = self._plan
        cap = 1 if self._suspects else self._ahead  # a suspect is decoded on its own
        source = self._suspects if self._suspects else plan.todo
        timeout = plan.work.video_timeout
        while source and len(self._inflight) < cap:
            job = source.popleft()
            future = self.pool.submit(job[1], plan.spec, plan.work.sampling, timeout)
            self._inflight[future] = job
            self._submitted[future] = time.monotonic()
        finished = [f for f in self._inflight if f.done()]
        if not finished:
            if plan.todo and not self._suspects:
                # The model would wait (the processes are starting, or behind): decode
                # one here instead.
                job = plan.todo.popleft()
                return self._events(job, prepare(job[1], plan.spec, plan.work.sampling, timeout))
            finished = list(wait(self._inflight, return_when=FIRST_COMPLETED)[0])
        events: list[Event] = []
        broken = False
        for f in finished:
            job = self._inflight.pop(f)
            try:
                prepared = f.result()
            except BrokenProcessPool:
                broken = True
                if cap == 1:  # died on its own: this file is the cause
                    events += self._events(job, self._failed(job, f))
                else:
                    self._suspects.append(job)
                continue
            finally:
                self._submitted.pop(f, None)
            events += self._events(job, prepared)
        if broken:
            self._suspects.extend(self._inflight.values())  # the rest of the dead pool's work
            self._inflight.clear()
            self._submitted.clear()
            self.pool.restart()
            log.warning("a decoding process crashed; retrying its videos one by one")
        return events

    def close(self) -> None:
        self.pool.close()
