"""The one loop that runs the stages: decode (an executor) -> transform -> model ->
postprocess, for any work and any number of videos.

Clips of the same shape from different videos share a forward pass (`batch_size`),
which on a CPU is faster per clip than one at a time for 3D CNNs. A video's result is
yielded as soon as its last clip is scored, so results come in the order videos finish,
unless `ordered` asks for the order given (results held back until their turn).

Every row the model gives passes here, whatever runs it (torch, OpenVINO, ONNX Runtime, a
cluster's actors, the server's batcher): a row with NaN or infinity fails its video (see
`non_finite`), so no such score reaches a result, a results file or a reply.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import VidclassError
from ..limits import check_time
from ..results import VideoResult, top_k
from .executors import DecoderPool, Event, InProcess, Job, LocalProcesses, default_workers
from .prepare import Prepared
from .stretch import STEP_FRAMES, Stretch
from .work import ClipModel, Clips, Work, forward, from_features, stack

log = logging.getLogger("vidclass")


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


class NonFiniteScores(VidclassError):
    """The model gave NaN or infinity: a fault of the model or its runtime (a damaged
    cached graph or weights), not of the video."""


def non_finite(name: str, what: str = "scores") -> NonFiniteScores:
    """The error for `name` (a video, a live source) whose `what` came out non-finite."""
    from ..models.weights import cache_dir

    cache = cache_dir()
    return NonFiniteScores(
        f"{name}: the model gave non-finite {what}; its cached graph may be damaged: "
        f"delete {cache / 'graphs'} and {cache / 'openvino'} (they are made again), "
        "or run it with --runtime torch"
    )


def finite_rows(x, n: int) -> list[bool]:
    """Whether each of the `n` rows of `x` (a torch tensor or numpy array; None: nothing
    to check) holds finite numbers only."""
    if x is None:
        return [True] * n
    ok = x.isfinite() if hasattr(x, "isfinite") else np.isfinite(np.asarray(x))
    return ok.reshape(n, -1).all(1).tolist()


@dataclass
class _Video:
    """A video whose clips are being scored."""

    scores: dict = field(default_factory=dict)  # clip index: its row
    features: dict = field(default_factory=dict)
    ood: dict = field(default_factory=dict)  # clip index: its ood_score
    end: Prepared | None = None  # set once every clip has been made
    made: int = 0
    error: str | None = None  # a clip's row was not finite: the video fails
    stretch: Stretch | None = None  # shared windows: the map its steps make
    pushed: int = 0  # shared windows: steps pushed into it
    reported: int = 0  # shared windows: windows counted to on_scored so far


def executor_for(workers: int | None, jobs: int, decoders: DecoderPool | None = None):
    """Decoding processes where they can run ahead of the model (`workers`, None: one per
    two cores), else this process. `decoders`: a pool already started, used (and closed)
    instead of a new one."""
    workers = default_workers() if workers is None else workers
    if decoders is not None and decoders.workers > 0:
        return LocalProcesses(decoders)
    if workers > 0 and jobs > 1:
        return LocalProcesses(DecoderPool(workers))
    if decoders is not None:
        decoders.close()
    return InProcess()


class Driver:
    """Runs `work` with a loaded model over videos; `run` yields a VideoResult each."""

    def __init__(
        self,
        model: ClipModel,
        work: Work,
        executor=None,
        batch_size: int | None = None,
        ordered: bool = False,
        on_scored: Callable[[int], None] | None = None,
    ):
        """`batch_size`: clips per forward pass (None: what suits the model's device);
        `ordered`: yield results in the order of the paths rather than as they finish;
        `on_scored`: called with the number of clips after each forward pass (progress
        within long videos)."""
        self.model = model
        self.on_scored = on_scored
        self.ordered = ordered
        self.work = work
        self.executor = executor if executor is not None else InProcess()
        self.batch_size = max(1, batch_size or model.batch_size_hint)
        self.stats = RunStats()
        # Each clip's unknown score comes with its scores (no pass of its own).
        self.detector = getattr(model, "detector", None) if work.unknown else None
        # Shared windows: clips are steps of frames, through one map per video.
        self.shared = work.shared_windows
        if self.shared and model.temporal_map is None:
            raise VidclassError(f"{getattr(model, 'name', 'this model')} has no map to share")

    def run(self, paths: Iterable[str]) -> Iterator[VideoResult]:
        start = time.perf_counter()
        jobs = [(i, str(p)) for i, p in enumerate(paths)]
        try:
            results = self._loop(jobs)
            if self.ordered:
                yield from self._in_order(results)
            else:
                yield from (result for _, result in results)
        finally:
            self.executor.close()
            self.stats.wall_seconds += time.perf_counter() - start

    @staticmethod
    def _in_order(results: Iterator[tuple[int, VideoResult]]) -> Iterator[VideoResult]:
        """Hold back each result until those given before it have been yielded."""
        held: dict[int, VideoResult] = {}
        turn = 0
        for index, result in results:
            held[index] = result
            while turn in held:
                yield held.pop(turn)
                turn += 1

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self, jobs: list[Job]) -> Iterator[tuple[int, VideoResult]]:
        """(index of the path, its result) as each video finishes."""
        executor = self.executor
        most_ready = executor.open(self.model.spec, self.work, jobs, self.batch_size)
        ready: deque[tuple[Job, int, np.ndarray]] = deque()  # clips waiting for the model
        videos: dict[Job, _Video] = {}
        while True:
            # Run the model once a batch of one shape is ready, or once no more can come
            # (the queue of ready clips is full, or nothing is left to decode).
            can_fill = max(self._shape_counts(ready).values(), default=0) >= self.batch_size
            if not can_fill and len(ready) < most_ready and executor.pending():
                for event in executor.pull():
                    yield from self._accept(event, videos, ready)
                continue
            if not ready:
                return
            rows = self._push(ready, videos) if self.shared else self._forward(ready)
            yield from self._take(rows, videos)

    def _take(self, rows, videos: dict):
        """Scored rows into their videos; the results of videos now finished."""
        for job, index, scores, features, ood, finite in rows:
            video = videos[job]
            if not finite and video.error is None:
                error = non_finite(job[1], "scores" if scores is not None else "features")
                if getattr(self.executor, "raise_errors", False):
                    raise error
                video.error = str(error)
            if scores is not None:
                video.scores[index] = scores
            if features is not None:
                video.features[index] = features
            if ood is not None:
                video.ood[index] = float(ood)
            if (result := self._finished(job, video)) is not None:
                del videos[job]
                yield job[0], result

    def _accept(self, event: Event, videos: dict, ready: deque):
        video = videos.setdefault(event.job, _Video())
        if event.clip is not None:
            video.made += 1
            ready.append((event.job, *event.clip))
            return
        video.end = event.end
        for message in event.end.warnings:
            log.warning(message)
        if event.end.error is not None:
            del videos[event.job]
            # Its clips made before the error (InProcess makes one at a time) are not scored.
            kept = [item for item in ready if item[0] != event.job]
            ready.clear()
            ready.extend(kept)
            self.stats.failed += 1
            yield event.job[0], VideoResult(event.job[1], error=event.end.error)
        elif self.shared:
            yield from self._take(self._windows(event.job, video), videos)
        elif (result := self._finished(event.job, video)) is not None:
            del videos[event.job]
            yield event.job[0], result

    # -- the model --------------------------------------------------------------------------
    @staticmethod
    def _shape_counts(ready: deque) -> dict[tuple, int]:
        """Ready clips per shape: clips of one shape can share a forward pass."""
        counts: dict[tuple, int] = {}
        for _, _, clip in ready:
            counts[clip.shape] = counts.get(clip.shape, 0) + 1
        return counts

    def _forward(self, ready: deque):
        """Score up to batch_size ready clips of one shape: the oldest shape that fills a
        batch, else the oldest clip's."""
        counts = self._shape_counts(ready)
        full = [c.shape for _, _, c in ready if counts[c.shape] >= self.batch_size]
        shape = full[0] if full else ready[0][2].shape
        group = [item for item in ready if item[2].shape == shape][: self.batch_size]
        for item in group:
            ready.remove(item)
        check_time()  # a request past its deadline stops here, before the model
        x = self.model.batch([clip for _, _, clip in group])
        start = time.perf_counter()
        scores, features, ood = forward(self.model, self.work.outputs, x, self.detector)
        self.stats.model_seconds += time.perf_counter() - start
        self.stats.forward_passes += 1
        self.stats.clips += len(group)
        n = len(group)
        if self.on_scored is not None:
            self.on_scored(n)
        finite = [
            a and b for a, b in zip(finite_rows(scores, n), finite_rows(features, n), strict=True)
        ]
        scores = scores if scores is not None else [None] * n
        features = features if features is not None else [None] * n
        ood = ood if ood is not None else [None] * n
        rows = zip(group, scores, features, ood, finite, strict=True)
        return [(job, index, s, f, o, ok) for (job, index, _), s, f, o, ok in rows]

    def _push(self, ready: deque, videos: dict):
        """Shared windows: the oldest step into its video's map; once a video's last
        step is in (and it has ended), its windows' rows."""
        job, _, frames = ready.popleft()
        video = videos[job]
        check_time()
        start = time.perf_counter()
        if video.stretch is None:
            video.stretch = Stretch(self.model)
        video.stretch.push(frames)
        video.pushed += 1
        self.stats.model_seconds += time.perf_counter() - start
        self.stats.forward_passes += 1
        # Progress: the windows whose frames are in, counted on full steps (all their
        # frames real; a last, short step is padded), the rest once all are scored.
        if self.on_scored is not None and len(frames) == STEP_FRAMES:
            sampling = self.work.sampling
            seconds = video.stretch.stream.frames / self.model.spec.fps
            covered = math.floor((seconds - sampling.window) / sampling.stride + 1e-9) + 1
            if covered > video.reported:
                self.on_scored(covered - video.reported)
                video.reported = covered
        return self._windows(job, video)

    def _windows(self, job: Job, video: _Video):
        """The rows of a video's windows from its map, once all its steps are in."""
        if video.end is None or video.pushed < video.made or video.stretch is None:
            return []
        spans = video.end.spans
        order = sorted(spans)
        start = time.perf_counter()
        features = video.stretch.features([spans[i] for i in order], self.work.sampling.window)
        # the steps past the video's end that bring its map's last positions out
        self.stats.forward_passes += video.stretch.stream.steps - video.pushed
        video.stretch = None
        rows = []
        for at in range(0, len(order), 256):
            part = features[at : at + 256]
            scores, kept, ood = from_features(self.model, self.work.outputs, part, self.detector)
            n = len(part)
            finite = [
                a and b for a, b in zip(finite_rows(scores, n), finite_rows(kept, n), strict=True)
            ]
            columns = zip(
                order[at : at + n],
                scores if scores is not None else [None] * n,
                kept if kept is not None else [None] * n,
                ood if ood is not None else [None] * n,
                finite,
                strict=True,
            )
            rows += [(job, *row) for row in columns]
            self.stats.clips += n
        if self.on_scored is not None and len(order) > video.reported:
            self.on_scored(len(order) - video.reported)
        self.stats.model_seconds += time.perf_counter() - start
        return rows

    # -- postprocess ------------------------------------------------------------------------
    def _finished(self, job: Job, video: _Video) -> VideoResult | None:
        """The video's result once it is decoded and all its clips are scored."""
        if video.end is None or (self.shared and video.stretch is not None):
            return None
        # Shared windows: steps were made, and the windows are scored at once.
        wanted = len(video.end.spans) if self.shared else video.made
        if max(len(video.scores), len(video.features)) < wanted:
            return None
        if video.error is not None:
            self.stats.failed += 1
            return VideoResult(job[1], error=video.error)
        self.stats.succeeded += 1
        order = sorted(video.scores or video.features)
        features = stack([video.features[i] for i in sorted(video.features)])
        clip_scores = stack([video.scores[i] for i in sorted(video.scores)])
        result = VideoResult(job[1], features=features, clip_scores=clip_scores)
        if video.ood:
            result.clip_ood = np.array([video.ood[i] for i in sorted(video.ood)], np.float32)
            result.ood_score = float(result.clip_ood.mean())
            result.unknown = self.detector.is_unknown(result.ood_score)
        if isinstance(self.work.sampling, Clips):
            if clip_scores is not None:
                result.scores = clip_scores.mean(axis=0)
                result.predictions = top_k(
                    self.model.labels, result.scores, self.work.top_k, self.model.min_score
                )
        else:
            result.spans = [video.end.spans[i] for i in order]
        return result
