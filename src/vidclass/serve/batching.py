"""Concurrent requests share forward passes.

Each request decodes its own clips in a request thread, through the engine's driver as
`Classifier.run` does; only its forward passes (logits, features, a text's embedding)
go to the one model thread, here.
The model thread takes every waiting forward of one clip shape (up to `max_clips`
clips), waits at most BATCH_WAIT_S for more while other requests are still decoding,
runs the model once, and hands each request its rows. Labels a request chose are
applied to its own rows afterwards, so requests with different labels share a pass; a
vision-language model's label set changes the model itself, so those batch only with
the same set.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from ..engine import Driver, InProcess, Work
from ..errors import VidclassError
from ..label_choice import LabelChoice
from ..limits import TimeLimitExceeded, remaining_time
from ..results import VideoResult

BATCH_WAIT_S = 0.005  # longest the model thread waits for more requests to join a batch
BATCH_CLIPS = 4  # clips per forward pass at most (the device's own hint where larger)


@dataclass
class BatchStats:
    """What /healthz reports: forward passes run by the batcher and what they held."""

    batches: int = 0
    batched_requests: int = 0  # forwards of requests scored (one per request and clip batch)
    clips: int = 0
    model_seconds: float = 0.0  # time inside those forward passes
    largest: int = 0  # most requests in one forward pass
    expired: int = 0  # dropped while waiting: their deadline had passed
    waiting: int = 0  # waiting for the model now
    max_clips: int = 0  # clips one forward pass takes at most

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "wait_ms": BATCH_WAIT_S * 1000}


# What a forward pass gives: a model's method of that name (joined: logits and features).
PARTS = ("logits", "embed", "joined")


@dataclass
class _Forward:
    """One request's clips waiting for the model (`source`, a loaded model), for its
    `part` (one of PARTS)."""

    source: object
    clips: np.ndarray
    deadline: float  # monotonic
    part: str = "logits"
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple:
        return (id(self.source), self.part, tuple(self.clips.shape[1:]), self.clips.dtype)


class Batcher:
    """Runs the forward passes of concurrent requests in `model_thread`, several at once.

    `busy()` says how many requests the server holds: while some of them are not
    waiting here yet (still decoding), the model thread waits a little for them."""

    def __init__(self, model_thread: ThreadPoolExecutor, max_clips: int, busy: Callable[[], int]):
        self.model_thread = model_thread
        self.max_clips = max(1, max_clips)
        self.busy = busy
        self.stats = BatchStats(max_clips=self.max_clips)
        self._waiting: list[_Forward] = []
        self._changed = threading.Condition()
        self._labels = threading.Lock()
        self._closed = False

    # -- request threads --------------------------------------------------------------------
    def with_labels(self, served, chosen: LabelChoice | None):
        """`served.with_labels(chosen)`, one thread at a time: it keeps a cache of label
        views that is not thread-safe, and request threads and the model thread ask."""
        with self._labels:
            return served.with_labels(chosen)

    def view(self, served, chosen: LabelChoice | None) -> BatchedModel:
        """`served` with the labels a request chose, its forward passes batched."""
        return BatchedModel(self.with_labels(served, chosen), served, self)

    def plain(self, served) -> BatchedModel:
        """`served` itself, its forward passes batched: for its features and text
        embeddings, which no label choice changes (a vision-language model has none)."""
        return BatchedModel(served, served, self)

    def call(self, fn: Callable):
        """`fn()` in the model thread (a forward pass that does not batch: a text's
        embedding); blocks this request thread, within the time limit in effect."""
        try:
            future = self.model_thread.submit(fn)
        except RuntimeError:  # shutting down: the pool takes no more work
            raise VidclassError("the server is stopping") from None
        try:
            return future.result(timeout=remaining_time())
        except FutureTimeout:
            future.cancel()
            raise TimeLimitExceeded("past the deadline waiting for the model") from None
        except CancelledError:
            raise VidclassError("the server is stopping") from None

    def run(self, model: BatchedModel, path: str, work: Work) -> VideoResult:
        """One video through the engine's driver in this (request) thread, as
        `VideoClassifier.run` does; its VidclassError raised."""
        return next(Driver(model, work, InProcess(raise_errors=True)).run([path]))

    def logits(self, source, clips: np.ndarray, part: str = "logits") -> np.ndarray:
        """`source.logits(clips)` (or another of PARTS), computed in the model thread with
        whatever clips of the same shape other requests are waiting with. Blocks this
        request thread; past the time limit in effect here the clips are dropped rather
        than scored."""
        left = remaining_time()
        deadline = time.monotonic() + left if left is not None else float("inf")
        forward = _Forward(source, clips, deadline, part)
        with self._changed:
            if self._closed:
                raise VidclassError("the server is stopping")
            self._waiting.append(forward)
            self.stats.waiting = len(self._waiting)
            self._changed.notify_all()
        try:
            self.model_thread.submit(self._drain)
        except RuntimeError:  # shutting down: the pool takes no more work
            self._forget([forward])
            raise VidclassError("the server is stopping") from None
        return forward.future.result()

    def close(self) -> None:
        """After the model thread stopped: what still waits fails, so no request thread
        waits for ever (they are joined when the interpreter exits)."""
        with self._changed:
            self._closed = True
            left, self._waiting = self._waiting, []
            self.stats.waiting = 0
        for forward in left:
            forward.future.set_exception(VidclassError("the server is stopping"))

    # -- the model thread -------------------------------------------------------------------
    def _drain(self) -> None:
        """Score one batch of waiting forwards, if any are left (an earlier drain may
        have taken this one's)."""
        batch = self._take()
        if batch:
            self._score(batch)

    def _take(self) -> list[_Forward]:
        """The oldest waiting forward and those of its shape and model, up to max_clips
        clips; expired ones are failed, not scored."""
        give_up = time.monotonic() + BATCH_WAIT_S
        with self._changed:
            while True:
                self._expire()
                if not self._waiting:
                    return []
                batch = self._group(self._waiting[0].key)
                clips = sum(len(f.clips) for f in batch)
                left = give_up - time.monotonic()
                if clips >= self.max_clips or left <= 0 or not self._more_may_come():
                    break
                self._changed.wait(left)
            self._forget(batch)
        return batch

    def _group(self, key: tuple) -> list[_Forward]:
        """Waiting forwards of `key`, oldest first, up to max_clips clips (at least one)."""
        batch, clips = [], 0
        for forward in self._waiting:
            if forward.key != key:
                continue
            if batch and clips + len(forward.clips) > self.max_clips:
                break
            batch.append(forward)
            clips += len(forward.clips)
        return batch

    def _more_may_come(self) -> bool:
        """Whether a request the server holds is not waiting here yet (decoding)."""
        return self.busy() > len(self._waiting)

    def _expire(self) -> None:
        now = time.monotonic()
        late = [f for f in self._waiting if f.deadline < now]
        for forward in late:
            forward.future.set_exception(TimeLimitExceeded("past the deadline before the model"))
        self.stats.expired += len(late)
        self._forget(late)

    def _forget(self, done: list[_Forward]) -> None:
        with self._changed:
            taken = {id(f) for f in done}
            self._waiting = [f for f in self._waiting if id(f) not in taken]
            self.stats.waiting = len(self._waiting)

    def _score(self, batch: list[_Forward]) -> None:
        """One forward pass for the batch; each request gets its rows, or the error."""
        try:
            x = batch[0].clips if len(batch) == 1 else np.concatenate([f.clips for f in batch])
            start = time.perf_counter()
            logits = getattr(batch[0].source, batch[0].part)(x)
        except Exception as exc:
            for forward in batch:
                forward.future.set_exception(exc)
            return
        rows = np.split(logits, np.cumsum([len(f.clips) for f in batch])[:-1])
        for forward, part in zip(batch, rows, strict=True):
            forward.future.set_result(part)
        stats = self.stats
        stats.batches += 1
        stats.batched_requests += len(batch)
        stats.clips += len(x)
        stats.model_seconds += time.perf_counter() - start
        stats.largest = max(stats.largest, len(batch))


class BatchedModel:
    """A served model with a request's labels (a ClipModel for the driver), whose
    forward passes go through the batcher. A closed-set model's views share the served
    model's weights: the served model runs and the view's labels are picked from its
    logits after, as `VideoClassifier._keep` does; any other view (a vision-language
    model's label set) runs itself."""

    def __init__(self, view, served, batcher: Batcher):
        self.view = view
        self.batcher = batcher
        module = getattr(served, "module", None)  # an exported model's views share its graphs
        shares = view is not served and getattr(view, "module", None) is module
        shares = shares and served.chosen is None
        self.source = served if shares else view
        self.keep = list(view.chosen) if shares and view.chosen is not None else None

    @property
    def spec(self):
        return self.view.spec

    @property
    def labels(self) -> tuple[str, ...]:
        return self.view.labels

    @property
    def min_score(self) -> float | None:
        return self.view.min_score

    @property
    def batch_size_hint(self) -> int:
        return self.batcher.max_clips

    def batch(self, clips: list[np.ndarray]) -> np.ndarray:
        return self.view.batch(clips)

    def logits(self, clips: np.ndarray) -> np.ndarray:
        rows = self.batcher.logits(self.source, clips)
        return rows if self.keep is None else rows[:, self.keep]

    def activate(self, logits: np.ndarray) -> np.ndarray:
        return self.view.activate(logits)

    @property
    def detector(self):
        return self.view.detector

    def scores_and_features(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.batcher.logits(self.source, clips, part="joined")
        width = len(self.source.labels)
        logits = rows[:, :width] if self.keep is None else rows[:, self.keep]
        return self.activate(logits), rows[:, width:]

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        return self.batcher.call(lambda: self.view.logits_from_features(features))

    @property
    def temporal_map(self):
        return self.view.temporal_map

    def map_stream(self, step_frames: int):
        """The view's map stream, its steps run in the model thread."""
        stream = self.view.map_stream(step_frames)
        step = stream.step
        stream.step = lambda *args: self.batcher.call(lambda: step(*args))
        return stream

    # What the gallery asks of a model: its name, features of a video, a text's embedding.
    @property
    def name(self) -> str:
        return self.view.name

    def embed(self, clips: np.ndarray) -> np.ndarray:
        return self.batcher.logits(self.source, clips, part="embed")

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.batcher.call(lambda: self.view.embed_text(texts))

    def run(self, path: str, work: Work) -> VideoResult:
        return self.batcher.run(self, path, work)
