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
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import VidclassError
from ..runtime import available_cores
from ..video.transforms import clip_to_tensor
from .worker import init_worker, prepare_clips

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

    def __init__(self, workers: int):
        self.workers = workers
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

    def submit(self, *args) -> Future:
        return self.start()._pool.submit(prepare_clips, *args)

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
    probs: list[torch.Tensor] = field(default_factory=list)


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
    ):
        """`decoders`: a started DecoderPool to use (and close) instead of a new one.
        `features`: results carry each clip's backbone features (views, D) instead of
        predictions (`feature_fn(clips)`, else the model's embed); `flip` adds a mirrored
        copy of every clip (training augmentation)."""
        if top_k < 1 or clips < 1:
            raise VidclassError(f"top_k and clips must be at least 1, got {top_k} and {clips}")
        if workers is not None and workers < 0:
            raise VidclassError(f"workers must be 0 or more, got {workers}")
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
        self.flip = flip
        self.stats = RunStats()

    # -- the model --------------------------------------------------------------------------
    def _fullest(self, ready: deque) -> int:
        """Clips in the largest group of one shape (they can share a forward pass)."""
        counts: dict[tuple, int] = {}
        for _, clip in ready:
            counts[clip.shape] = counts.get(clip.shape, 0) + 1
        return max(counts.values(), default=0)

    def _forward(self, ready: deque) -> list[tuple[str, torch.Tensor]]:
        """Score up to batch_size ready clips of one shape: the oldest shape that fills a
        batch, else the oldest clip's."""
        counts: dict[tuple, int] = {}
        for _, clip in ready:
            counts[clip.shape] = counts.get(clip.shape, 0) + 1
        full = [c.shape for _, c in ready if counts[c.shape] >= self.batch_size]
        shape = full[0] if full else ready[0][1].shape
        group = [item for item in ready if item[1].shape == shape][: self.batch_size]
        for item in group:
            ready.remove(item)
        spec = self.model.spec
        x = torch.stack([clip_to_tensor(clip, spec) for _, clip in group])
        start = time.perf_counter()
        model = self.model
        out = self.feature_fn(x) if self.features else model.activate(model.logits(x))
        self.stats.model_seconds += time.perf_counter() - start
        self.stats.forward_passes += 1
        self.stats.clips += len(group)
        return [(path, row) for (path, _), row in zip(group, out, strict=True)]

    def _result(self, path: str, pending: _Pending):
        from ..pipeline import VideoResult

        self.stats.succeeded += 1
        stacked = torch.stack(pending.probs)
        if self.features:
            return VideoResult(path, features=stacked.numpy())
        scores = stacked.mean(dim=0).numpy()
        return VideoResult(path, predictions=self.model.top_k(scores, self.top_k), scores=scores)

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
        spec = self.model.spec
        todo = deque(paths)
        suspects: deque[str] = deque()  # in flight when a decoder crashed; retried alone
        inflight: dict[Future, str] = {}
        ready: deque[tuple[str, np.ndarray]] = deque()
        pending: dict[str, _Pending] = {}
        # Enough decoded ahead to fill a batch while the next decodes; memory stays bounded.
        ahead = self.workers + self.batch_size
        most_ready = 2 * ahead  # clips waiting for the model
        pool = self.decoders
        if pool is None and self.workers > 0 and len(paths) > 1:
            pool = DecoderPool(self.workers)
        if pool is not None and pool.workers == 0:
            pool = None

        def accept(path: str, outcome) -> Iterator:
            clips, warnings, error = outcome
            for message in warnings:
                log.warning(message)
            if error is not None:
                yield self._failure(path, error)
                return
            if self.flip:  # mirrored left-right: (T, H, W, 3)
                clips = clips + [np.ascontiguousarray(c[:, :, ::-1]) for c in clips]
            pending[path] = _Pending(len(clips))
            ready.extend((path, c) for c in clips)

        try:
            while todo or suspects or inflight or ready:
                # Run the model once a batch of one shape is ready, or once no more can
                # come (the queue is full, or nothing is left to decode).
                can_fill = self._fullest(ready) >= self.batch_size
                room = len(ready) < most_ready
                if pool is None:
                    if not can_fill and room and todo:
                        path = todo.popleft()
                        yield from accept(path, prepare_clips(path, spec, self.clips))
                        continue
                else:
                    cap = 1 if suspects else ahead
                    source = suspects if suspects else todo
                    while source and len(inflight) < cap and room:
                        path = source.popleft()
                        inflight[pool.submit(path, spec, self.clips)] = path
                    finished = [f for f in inflight if f.done()]
                    if not finished and not can_fill and room:
                        if todo and not suspects:
                            # The model would wait (the processes are starting, or behind):
                            # decode one here instead.
                            path = todo.popleft()
                            yield from accept(path, prepare_clips(path, spec, self.clips))
                            continue
                        if inflight:
                            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                            finished = list(done)
                    broken = False
                    for f in finished:
                        path = inflight.pop(f)
                        try:
                            outcome = f.result()
                        except BrokenProcessPool:
                            broken = True
                            if cap == 1:  # crashed on its own: this file is the cause
                                yield self._failure(path, f"{path}: the decoder crashed")
                            else:
                                suspects.append(path)
                            continue
                        yield from accept(path, outcome)
                    if broken:
                        for f in list(inflight):  # the rest of the dead pool's work
                            suspects.append(inflight.pop(f))
                        pool.restart()
                        log.warning("a decoding process crashed; retrying its videos one by one")
                        continue
                    if finished:
                        continue  # look again with what came in
                    if not ready or (not can_fill and room and (inflight or todo or suspects)):
                        continue
                for path, probs in self._forward(ready):
                    item = pending[path]
                    item.probs.append(probs)
                    if len(item.probs) == item.expected:
                        del pending[path]
                        yield self._result(path, item)
        finally:
            if pool is not None:
                pool.close()
