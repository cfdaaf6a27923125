"""vidclass: label whole videos and moments in them, offline on a CPU."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

from .classifier import Classifier
from .errors import VidclassError
from .explanations import Explanation, explain
from .label_choice import LabelChoice, as_choice
from .limits import DEFAULT_VIDEO_TIMEOUT
from .loading import export_into_cache, load_model, plan
from .models import DEFAULT_MODEL, list_entries
from .options import check
from .results import Segment, Timeline, VideoResult, Window
from .version import __version__

if TYPE_CHECKING:
    from .batch import BatchSummary
    from .gallery import Gallery
    from .torch_classifier import VideoClassifier

# Imported when first used: torch (torch_classifier) takes a second to import, and a run
# from an exported model never needs it (vidclass.loading). Name: (module, its name).
_LAZY = {
    "BatchSummary": (".batch", "BatchSummary"),
    "Gallery": (".gallery", "Gallery"),
    "VideoClassifier": (".torch_classifier", "VideoClassifier"),
    "export_model": (".runtimes.export", "export"),
    "model_catalog": (".models.catalog", "catalog"),
    "pull_model": (".models.catalog", "fetch"),
    "describe_model": (".models.resolve", "describe"),
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        module, attribute = _LAZY[name]
        value = getattr(import_module(module, __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatchSummary",
    "Classifier",
    "DEFAULT_MODEL",
    "Explanation",
    "Gallery",
    "LabelChoice",
    "Segment",
    "Timeline",
    "VidclassError",
    "VideoClassifier",
    "VideoResult",
    "Window",
    "__version__",
    "classify",
    "classify_batch",
    "describe_model",
    "explain",
    "export_into_cache",
    "export_model",
    "list_models",
    "load_model",
    "model_catalog",
    "plan",
    "pull_model",
    "timeline",
    "watch",
]


# Each model loaded once, whichever verb asks.
_cached_model = lru_cache(maxsize=2)(load_model)


def classify(
    path: str | os.PathLike,
    top_k: int = 5,
    model: str = DEFAULT_MODEL,
    clips: int = 1,
    precision: str = "auto",
    device: str = "auto",
    labels: list[str] | LabelChoice | None = None,
    runtime: str = "auto",
) -> list[dict]:
    """Top-k labels of a video: `[{"label": str, "score": float}, ...]`, best first;
    `labels`: only these of the model's labels, scores renormalised over them; for a
    vision-language model the labels to score (a LabelChoice sets prompt, multi-label).

    The model is loaded once and kept for later calls; use `load_model` to hold it
    yourself.
    """
    check("classify", locals())
    classifier = _cached_model(model, precision=precision, device=device, runtime=runtime)
    return classifier.classify(path, top_k=top_k, clips=clips, labels=labels)


def timeline(
    path: str | os.PathLike,
    window: float | None = None,
    stride: float = 1.0,
    top_k: int = 3,
    model: str = DEFAULT_MODEL,
    precision: str = "auto",
    device: str = "auto",
    runtime: str = "auto",
    *,
    smooth: int = 3,
    min_segment: float | None = None,
    labels: list[str] | LabelChoice | None = None,
    threads: int | None = None,
    progress=None,
    unknown: str = "auto",
    per_window: bool = False,
):
    """Labels over time: a `Timeline` of sliding windows (start, end, top-k) and segments
    (start, end, label, score). See `Classifier.timeline` for the options."""
    check("timeline", locals())
    classifier = _cached_model(
        model, precision=precision, threads=threads, device=device, runtime=runtime
    )
    return classifier.timeline(
        path,
        window=window,
        stride=stride,
        top_k=top_k,
        smooth=smooth,
        min_segment=min_segment,
        labels=labels,
        progress=progress,
        unknown=unknown,
        per_window=per_window,
    )


def watch(
    source,
    model: str | Classifier = DEFAULT_MODEL,
    *,
    window: float | None = None,
    stride: float = 1.0,
    top_k: int = 3,
    labels: list[str] | LabelChoice | None = None,
    smooth: int = 3,
    segments: bool = True,
    duration: float | None = None,
    reconnect: bool | None = None,
    timeout: float = 10.0,
    give_up: float | None = None,
    input_format: str | None = None,
    input_options: dict[str, str] | None = None,
    precision: str = "auto",
    device: str = "auto",
    runtime: str = "auto",
    threads: int | None = None,
    unknown: str = "auto",
    per_window: bool = False,
):
    """Labels of a live source as it plays: a `LiveSession` to iterate for timestamped
    events, each with `.kind` and `.as_dict()`:

    - "window": `start`, `end` (seconds from the first frame), `predictions` (top-k),
      `ood_score` and `unknown` (with `unknown` "auto"), `latency` (seconds from the
      arrival of its last frame), `captured` (unix time);
    - "segment" (with `segments`): a stretch of one leading label ("unknown" for a run
      of unknown windows), when it ends;
    - "gap": the source was lost and came back (`reconnect`, on for network streams).

    `source`: rtsp/rtmp/udp/tcp/http(s) URL, a camera (/dev/video0), a file being
    written, a named pipe, "-" (standard input). Windows the model cannot keep up with
    are skipped; `session.summary` counts them and gives latency median and p95.
    `timeout`: seconds of silence after which a stream counts as dropped (a file as
    finished); `give_up`: stop reconnecting after this many seconds (None: never).
    Where the model has a map over time (I3D and heads on it), windows are read off one
    map of the stream, each frame through the model once whatever the stride; a
    window is then labelled once the stream has run about 2 s past its end (what the
    network sees), unless `per_window`.
    """
    from .classifier import Classifier
    from .live import LiveSession, parse_source

    loaded = isinstance(model, Classifier)
    check("watch", {k: v for k, v in locals().items() if not (k == "model" and loaded)})
    labels = as_choice(labels)
    source = parse_source(source, input_format, input_options)  # before the model loads
    if not loaded:
        model = _cached_model(
            model, precision=precision, threads=threads, device=device, runtime=runtime
        )
    return LiveSession(
        model.with_labels(labels),
        source,
        window=window,
        stride=stride,
        top_k=top_k,
        smooth=smooth,
        segments=segments,
        duration=duration,
        reconnect=reconnect,
        timeout=timeout,
        give_up=give_up,
        unknown=unknown,
        per_window=per_window,
    )


def classify_batch(
    inputs: list[str | os.PathLike],
    output: str | os.PathLike | None = None,
    *,
    model: str = DEFAULT_MODEL,
    top_k: int = 5,
    clips: int = 1,
    recursive: bool = False,
    workers: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    threads: int | None = None,
    progress: bool = False,
    on_result=None,
    device: str = "auto",
    video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
    engine: str = "local",
    ray_address: str | None = None,
    labels: list[str] | LabelChoice | None = None,
    runtime: str = "auto",
    unknown: str = "auto",
):
    """Classify videos, folders, globs and list files, as `vidclass classify` does;
    results go to `output` (.jsonl/.csv/.sqlite, resumed if it exists; with the ray
    engine also a folder, "DIR/", of Parquet parts) and to `on_result(VideoResult)` as
    each video finishes. Returns a `BatchSummary`.

    `engine`: "local" (decoding processes on this machine) or "ray" (the cluster at
    `ray_address`, else $RAY_ADDRESS, else a local Ray; needs the `ray` extra).
    `labels`: only these of the model's labels (see `VideoClassifier.with_labels`).

    Decoding runs in `workers` processes (started with spawn), so a script calling this
    needs the usual `if __name__ == "__main__":` guard. A video whose decoding takes over
    `video_timeout` seconds is stopped and recorded as failed.
    """
    from .batch import check_output, classify_videos, expand_inputs
    from .cpu import configure_threads
    from .engine import DecoderPool, default_workers

    check("classify", locals())
    videos = expand_inputs([str(i) for i in inputs], recursive=recursive)
    check_output(output, engine)  # a bad name fails before the model loads
    labels = as_choice(labels)
    if engine == "ray":
        from .engine.cluster import import_ray

        import_ray()  # not installed: one line now, not after loading the model
    workers = default_workers() if workers is None else workers
    # The decoding processes start while the model loads.
    local = engine != "ray" and len(videos) > 1
    decoders = DecoderPool(workers).start() if local else None
    try:
        classifier = _cached_model(
            model, precision=precision, threads=threads, device=device, runtime=runtime
        )
        classifier = classifier.with_labels(labels)
        if threads is not None and classifier.runtime_threads is None:
            configure_threads(threads)  # after loading, which sets all cores
    except BaseException:
        if decoders is not None:
            decoders.close()
        raise
    return classify_videos(
        classifier,
        videos,
        output,
        top_k=top_k,
        clips=clips,
        workers=workers,
        batch_size=batch_size,
        progress=progress,
        on_result=on_result,
        decoders=decoders,
        video_timeout=video_timeout,
        engine=engine,
        ray_address=ray_address,
        unknown=unknown,
    )


def list_models():
    """The registered pretrained models (name, labels, input spec, weights source)."""
    return list_entries()
