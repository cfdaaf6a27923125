"""Batch runs: many videos to a resumable results file, decoding in parallel (the
engine's driver over local decoding processes)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..engine import Clips, DecoderPool, Work, runner_for
from ..errors import VidclassError
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..progress import tracked
from .parquet_folder import ParquetFolder
from .sources import VIDEO_EXTENSIONS, expand_inputs
from .stores import FORMATS, open_store, output_format

__all__ = [
    "FORMATS",
    "VIDEO_EXTENSIONS",
    "BatchSummary",
    "classify_videos",
    "check_output",
    "expand_inputs",
    "open_store",
    "output_format",
]

log = logging.getLogger("vidclass")


@dataclass
class BatchSummary:
    """How a batch run ended."""

    total: int  # videos named
    succeeded: int
    failed: int
    skipped: int  # already in the output from an earlier run
    wall_seconds: float
    model_seconds: float
    output: str | None = None

    @property
    def rate(self) -> float:
        """Videos classified (or failed) per second of this run."""
        done = self.succeeded + self.failed
        return done / self.wall_seconds if self.wall_seconds else 0.0

    def describe(self) -> str:
        """The summary line; the rate only where this run classified (or failed) some
        video: a run that found them all done has none to give."""
        text = f"{self.succeeded} classified, {self.failed} failed"
        if self.skipped:
            text += f", {self.skipped} skipped (already in {self.output})"
        text += f" in {self.wall_seconds:.1f} s"
        if self.succeeded + self.failed:
            text += f" ({self.rate:.2f} videos/s)"
        return text


def check_output(output: str | os.PathLike | None, engine: str) -> None:
    """The results file or folder can be written by this engine (before any work)."""
    if output is not None and output_format(output) == "parquet" and engine != "ray":
        raise VidclassError(
            f"{output}: a Parquet results folder is written by the ray engine's workers; "
            "add --engine ray, or name a .jsonl, .csv or .sqlite file"
        )


def classify_videos(
    model,
    videos: list[str],
    output: str | os.PathLike | None = None,
    *,
    top_k: int = 5,
    clips: int = 1,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    on_result: Callable | None = None,
    decoders: DecoderPool | None = None,
    video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
    engine: str = "local",
    ray_address: str | None = None,
    unknown: str = "auto",
) -> BatchSummary:
    """Classify `videos` with a loaded model; each result goes to `output` (.jsonl, .csv
    or .sqlite, or a folder of Parquet parts written by the ray engine's workers) as it
    finishes, and to `on_result(VideoResult)`.

    Videos already in `output` are skipped, so rerunning an interrupted run finishes it.
    `decoders`: a DecoderPool started before the model was loaded (it is closed here).
    `engine`: local, or ray (the cluster at `ray_address`, else $RAY_ADDRESS, else a
    local Ray). `unknown`: "auto" (each result's ood_score and unknown) or "off".
    """
    try:
        check_output(output, engine)
        store = open_store(output, model.identity, top_k) if output is not None else None
    except BaseException:
        if decoders is not None:
            decoders.close()
        raise
    todo = [v for v in videos if store is None or v not in store.done]
    skipped = len(videos) - len(todo)
    if skipped:
        log.info(f"{skipped} of {len(videos)} videos already in {output}; skipping them")
    work = Work(Clips(clips), top_k=top_k, video_timeout=video_timeout, unknown=unknown != "off")
    try:
        runner = runner_for(
            model,
            work,
            len(todo),
            engine=engine,
            workers=workers,
            batch_size=batch_size,
            decoders=decoders,
            address=ray_address,
            sink=store.sink() if isinstance(store, ParquetFolder) else None,
        )
        for result in tracked(runner.run(todo), len(todo), enabled=progress):
            if store is not None:
                record = result.as_dict()
                store.write({"video": record.pop("video"), "model": model.identity, **record})
            if on_result is not None:
                on_result(result)
    finally:
        if store is not None:
            store.close()
    stats = runner.stats
    return BatchSummary(
        total=len(videos),
        succeeded=stats.succeeded,
        failed=stats.failed,
        skipped=skipped,
        wall_seconds=stats.wall_seconds,
        model_seconds=stats.model_seconds,
        output=str(output) if output is not None else None,
    )
