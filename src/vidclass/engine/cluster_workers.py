"""The Ray engine's worker side (cluster.py drives it): decoding tasks, the model actors
that score what they decoded with the driver's own loop, and the rows passed between
them and back, as plain Arrow columns: decoded clips as uint8 bytes with their shape,
results as float32 bytes, nothing pickled.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..results import VideoResult
from .driver import Driver
from .executors import Event, run_in_worker
from .prepare import Prepared, prepare
from .work import ModelRecipe, Work


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
            ("ood_score", pa.float64()),
            ("unknown", pa.bool_()),
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
class ActorPlan:
    """What each model actor needs; it travels with the actor's class (ModelActor.bound)."""

    recipe: ModelRecipe
    work: Work
    batch_size: int | None
    sink: Callable | None


class ModelActor:
    """Holds a model on its node (a GPU where Ray gave it one) and scores decoded rows
    with the driver's loop; `sink`, where given, writes the results on the worker.
    `bound` makes the class that Ray Data starts: its plan travels with the class."""

    plan: ActorPlan

    @classmethod
    def bound(cls, plan: ActorPlan) -> type:
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
        "ood_score": result.ood_score,
        "unknown": result.unknown,
        "scores": scores,
        "scores_shape": scores_shape,
        "features": features,
        "features_shape": features_shape,
        "model_seconds": model_seconds,
    }


def result_from_row(row: dict) -> VideoResult:
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
        ood_score=row["ood_score"],
        unknown=row["unknown"],
    )
