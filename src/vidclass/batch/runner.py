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


@dataclass
class _Pending:
    """A video whose clips are being scored."""

    expected: int
    probs: list[torch.Tensor] = field(default_factory=list)


class BatchRunner:
    """Runs a VideoClassifier over many videos; `run` yields a VideoResult per video as
    soon as it is finished (not necessarily in the order given)."""

    def __init__(
        self, model, top_k: int = 5, clips: int = 1, workers: int | None = None, batch_size: int = 2
    ):
        if top_k < 1 or clips < 1:
            raise VidclassError(f"top_k and clips must be at least 1, got {top_k} and {clips}")
        if workers is not None and workers < 0:
            raise VidclassError(f"workers must be 0 or more, got {workers}")
        self.model = model
        self.top_k = top_k
        self.clips = clips
        self.workers = default_workers() if workers is None else workers
        self.batch_size = max(1, batch_size)
        self.stats = RunStats()

    # -- decoding ---------------------------------------------------------------------------
    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the main process holds torch's thread pools, which a forked
        # child must not inherit.
        return ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker
        )

    # -- the model --------------------------------------------------------------------------
    def _forward(self, ready: deque) -> list[tuple[str, torch.Tensor]]:
        """Score the first ready clip with up to batch_size - 1 others of its shape."""
        first_path, first = ready.popleft()
        group = [(first_path, first)]
        for item in list(ready):
            if len(group) == self.batch_size:
                break
            if item[1].shape == first.shape:
                group.append(item)
                ready.remove(item)
        spec = self.model.spec
        x = torch.stack([clip_to_tensor(clip, spec) for _, clip in group])
        start = time.perf_counter()
        probs = self.model.activate(self.model.logits(x))
        self.stats.model_seconds += time.perf_counter() - start
        self.stats.forward_passes += 1
        self.stats.clips += len(group)
        return [(path, p) for (path, _), p in zip(group, probs, strict=True)]

    def _result(self, path: str, pending: _Pending):
        from ..pipeline import VideoResult

        scores = torch.stack(pending.probs).mean(dim=0).numpy()
        self.stats.succeeded += 1
        return VideoResult(path, predictions=self.model.top_k(np.asarray(scores), self.top_k))

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
        pool = self._new_pool() if self.workers > 0 and len(paths) > 1 else None

        def accept(path: str, outcome) -> Iterator:
            clips, warnings, error = outcome
            for message in warnings:
                log.warning(message)
            if error is not None:
                yield self._failure(path, error)
                return
            pending[path] = _Pending(len(clips))
            ready.extend((path, c) for c in clips)

        try:
            while todo or suspects or inflight or ready:
                if pool is None:
                    if len(ready) < self.batch_size and todo:
                        path = todo.popleft()
                        yield from accept(path, prepare_clips(path, spec, self.clips))
                        continue
                else:
                    cap = 1 if suspects else ahead
                    source = suspects if suspects else todo
                    while source and len(inflight) < cap and len(ready) < ahead * 2:
                        path = source.popleft()
                        inflight[pool.submit(prepare_clips, path, spec, self.clips)] = path
                    finished = [f for f in inflight if f.done()]
                    if not finished and len(ready) < self.batch_size and inflight:
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
                        pool.shutdown(wait=False, cancel_futures=True)
                        pool = self._new_pool()
                        log.warning("a decoding process crashed; retrying its videos one by one")
                        continue
                    if not ready:
                        continue
                    if len(ready) < self.batch_size and (inflight or todo or suspects):
                        continue
                for path, probs in self._forward(ready):
                    item = pending[path]
                    item.probs.append(probs)
                    if len(item.probs) == item.expected:
                        del pending[path]
                        yield self._result(path, item)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
