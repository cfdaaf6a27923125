"""Classify many videos: decoding processes feed the model, clips batched across videos.

The model runs in the main process; `workers` processes decode ahead of it, so on a
machine where decoding is a fraction of the model's time the model never waits. Clips of
the same shape from different videos share one forward pass (`batch_size`), which on a
CPU is faster per clip than one at a time for 3D CNNs.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import VidclassError
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..runtime import available_cores
from ..video.transforms import clip_to_tensor
from .worker import init_worker, prepare_clips, run_in_worker

log = logging.getLogger("vidclass")


def default_workers() -> int:
    """One decoding process per two cores: decoding is a small share of a video's time."""
    return max(1, available_cores() // 2)


@dataclass
class RunStats:
    """What a run did, for its summary and for benchmarks."""

    succeeded: int = 0
    failed: int = 0
    wall_seconds: float = 0.0
    model_seconds: float = 0.0  # time inside the model's forward passes
    forward_passes: int = 0
    clips: int = 0

    @property
    def utilisation(self) -> float:
        return self.model_seconds / self.wall_seconds if self.wall_seconds else 0.0


class DecoderPool:
    """Processes that decode videos for the model.

    Start it before loading the model: the processes take a second or two to start
    (each imports torch), which then overlaps the model's loading.
    """

    def __init__(self, workers: int, task: Callable = prepare_clips):
        """`task(path, spec, clips, timeout)` is what a process runs for one video."""
        self.workers = workers
        self.task = task
        self._pool = None

    def start(self) -> DecoderPool:
        if self._pool is None and self.workers > 0:
            # spawn, not fork: the main process may hold torch's thread pools, which a
            # forked child must not inherit.
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
            )
            self._pool.submit(int)  # makes the processes start now, not at the first video
        return self

    def submit(self, path: str, spec, clips: int, timeout: float | None) -> Future:
        """Decode one video; past its hard limit the process is killed (the future then
        raises BrokenProcessPool)."""
        return self.start()._pool.submit(run_in_worker, self.task, timeout, path, spec, clips)

    def restart(self) -> None:
        """After a decoder crashed: the old pool is broken for good."""
        self.close()
        self.start()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


@dataclass
class _Pending:
    """A video whose clips are being scored."""

    expected: int
    scores: list[torch.Tensor] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)


class BatchRunner:
    """Runs a VideoClassifier over many videos; `run` yields a VideoResult per video as
    soon as it is finished (not necessarily in the order given)."""

    def __init__(
        self,
        model,
        top_k: int = 5,
        clips: int = 1,
        workers: int | None = None,
        batch_size: int = 2,
        decoders: DecoderPool | None = None,
        features: bool = False,
        flip: bool = False,
        feature_fn=None,
        keep_features: bool = False,
        video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
    ):
        """`decoders`: a started DecoderPool to use (and close) instead of a new one.
        `features`: results carry each clip's backbone features (views, D) instead of
        predictions (`feature_fn(clips)`, else the model's embed); `flip` adds a mirrored
        copy of every clip (training augmentation). `keep_features`: predictions and
        features from the same forward pass (what a gallery stores). `video_timeout`:
        seconds a video's decoding may take before it is stopped and recorded as failed
        (None: no limit)."""
        if top_k < 1 or clips < 1:
            raise VidclassError(f"top_k and clips must be at least 1, got {top_k} and {clips}")
        if workers is not None and workers < 0:
            raise VidclassError(f"workers must be 0 or more, got {workers}")
        if video_timeout is not None and not video_timeout > 0:
            raise VidclassError(f"video_timeout must be more than 0, got {video_timeout}")
        self.model = model
        self.top_k = top_k
        self.clips = clips
        self.workers = default_workers() if workers is None else workers
        if decoders is not None:
            self.workers = decoders.workers
        self.decoders = decoders
        self.batch_size = max(1, batch_size)
        self.features = features
        self.feature_fn = feature_fn or model.embed
        self.keep_features = keep_features
        self.flip = flip
        self.video_timeout = video_timeout
        self.stats = RunStats()

    # -- the model --------------------------------------------------------------------------
    @staticmethod
    def _shape_counts(ready: deque) -> dict[tuple, int]:
        """Ready clips per shape: clips of one shape can share a forward pass."""
        counts: dict[tuple, int] = {}
        for _, clip in ready:
            counts[clip.shape] = counts.get(clip.shape, 0) + 1
        return counts

    def _forward(
        self, ready: deque
    ) -> list[tuple[tuple[int, str], torch.Tensor | None, torch.Tensor | None]]:
        """Score up to batch_size ready clips of one shape: the oldest shape that fills a
        batch, else the oldest clip's."""
        counts = self._shape_counts(ready)
        full = [c.shape for _, c in ready if counts[c.shape] >= self.batch_size]
        shape = full[0] if full else ready[0][1].shape
        group = [item for item in ready if item[1].shape == shape][: self.batch_size]
        for item in group:
            ready.remove(item)
        spec = self.model.spec
        x = torch.stack([clip_to_tensor(clip, spec) for _, clip in group])
        start = time.perf_counter()
        model = self.model
        scores = features = None
        if self.features:
            features = self.feature_fn(x)
        elif self.keep_features:
            scores, features = model.scores_and_features(x)
        else:
            scores = model.activate(model.logits(x))
        self.stats.model_seconds += time.perf_counter() - start
        self.stats.forward_passes += 1
        self.stats.clips += len(group)
        n = len(group)
        scores = scores if scores is not None else [None] * n
        features = features if features is not None else [None] * n
        return [(job, s, f) for (job, _), s, f in zip(group, scores, features, strict=True)]

    def _result(self, path: str, pending: _Pending):
        from ..pipeline import VideoResult

        self.stats.succeeded += 1
        features = torch.stack(pending.features).numpy() if pending.features else None
        if self.features:
            return VideoResult(path, features=features)
        scores = torch.stack(pending.scores).mean(dim=0).numpy()
        top = self.model.top_k(scores, self.top_k)
        return VideoResult(path, predictions=top, scores=scores, features=features)

    def _failure(self, path: str, error: str):
        from ..pipeline import VideoResult

        self.stats.failed += 1
        return VideoResult(path, error=error)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, paths: Iterable[str]) -> Iterator:
        start = time.perf_counter()
        try:
            yield from self._loop([str(p) for p in paths])
        finally:
            self.stats.wall_seconds += time.perf_counter() - start

    def _loop(self, paths: list[str]) -> Iterator:
        # A job is (position, path): the same path named twice is two jobs.
        spec = self.model.spec
        todo = deque(enumerate(paths))
        suspects: deque[tuple[int, str]] = deque()  # in flight when a decoder crashed
        inflight: dict[Future, tuple[int, str]] = {}
        submitted: dict[Future, float] = {}  # when each future was handed to the pool
        ready: deque[tuple[tuple[int, str], np.ndarray]] = deque()
        pending: dict[tuple[int, str], _Pending] = {}
        # Enough decoded ahead to fill a batch while the next decodes; memory stays bounded.
        ahead = self.workers + self.batch_size
        most_ready = 2 * ahead  # clips waiting for the model
        pool = self.decoders
        if pool is None and self.workers > 0 and len(paths) > 1:
            pool = DecoderPool(self.workers)
        if pool is not None and pool.workers == 0:
            pool = None

        def accept(job: tuple[int, str], outcome) -> Iterator:
            clips, warnings, error = outcome
            for message in warnings:
                log.warning(message)
            if error is not None:
                yield self._failure(job[1], error)
                return
            if self.flip:  # mirrored left-right: (T, H, W, 3)
                clips = clips + [np.ascontiguousarray(c[:, :, ::-1]) for c in clips]
            pending[job] = _Pending(len(clips))
            ready.extend((job, c) for c in clips)

        def decode_here() -> Iterator:
            job = todo.popleft()
            yield from accept(job, prepare_clips(job[1], spec, self.clips, self.video_timeout))

        def crashed(job: tuple[int, str], future: Future) -> str:
            """Why the process decoding `job` alone died: its hard time limit, or a crash."""
            took = time.monotonic() - submitted[future]
            if self.video_timeout is not None and took >= self.video_timeout:
                return f"{job[1]}: decoding took over {self.video_timeout:g} s; stopped"
            return f"{job[1]}: the decoder crashed"

        try:
            while todo or suspects or inflight or ready:
                # Run the model once a batch of one shape is ready, or once no more can
                # come (the queue is full, or nothing is left to decode).
                can_fill = max(self._shape_counts(ready).values(), default=0) >= self.batch_size
                room = len(ready) < most_ready
                if pool is None:
                    if not can_fill and room and todo:
                        yield from decode_here()
                        continue
                else:
                    cap = 1 if suspects else ahead  # a suspect is decoded on its own
                    source = suspects if suspects else todo
                    while source and len(inflight) < cap and room:
                        job = source.popleft()
                        future = pool.submit(job[1], spec, self.clips, self.video_timeout)
                        inflight[future] = job
                        submitted[future] = time.monotonic()
                    finished = [f for f in inflight if f.done()]
                    if not finished and not can_fill and room:
                        if todo and not suspects:
                            # The model would wait (the processes are starting, or behind):
                            # decode one here instead.
                            yield from decode_here()
                            continue
                        if inflight:
                            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                            finished = list(done)
                    broken = False
                    for f in finished:
                        job = inflight.pop(f)
                        try:
                            outcome = f.result()
                        except BrokenProcessPool:
                            broken = True
                            if cap == 1:  # crashed on its own: this file is the cause
                                yield self._failure(job[1], crashed(job, f))
                            else:
                                suspects.append(job)
                            continue
                        finally:
                            submitted.pop(f, None)
                        yield from accept(job, outcome)
                    if broken:
                        suspects.extend(inflight.values())  # the rest of the dead pool's work
                        inflight.clear()
                        submitted.clear()
                        pool.restart()
                        log.warning("a decoding process crashed; retrying its videos one by one")
                        continue
                    if finished:
                        continue  # look again with what came in
                    if not ready or (not can_fill and room and (inflight or todo or suspects)):
                        continue
                for job, scores, features in self._forward(ready):
                    item = pending[job]
                    if scores is not None:
                        item.scores.append(scores)
                    if features is not None:
                        item.features.append(features)
                    if max(len(item.scores), len(item.features)) == item.expected:
                        del pending[job]
                        yield self._result(job[1], item)
        finally:
            if pool is not None:
                pool.close()
