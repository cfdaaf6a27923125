"""Indexing a gallery: which videos under the inputs are new, changed, moved or copied,
and running the new ones through the engine (a classifier's tags and features, or a
vision-language model's moment embeddings); one index run at a time."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import VidclassError
from ..files import open_regular
from ..limits import DEFAULT_VIDEO_TIMEOUT, time_limit
from ..options import DEFAULT_MOMENT
from ..progress import counted, tracked
from .records import EmbeddedVideo, VideoRecord

log = logging.getLogger("vidclass")

MOMENT_SECONDS = "moment_seconds"  # meta: the length of its moments
MIN_TAG_SCORE = 0.01  # weaker labels are not kept as tags (the best one always is)
# A video's tags are the mean of one clip per TAG_CLIP_EVERY seconds, at most TAG_CLIPS
# (a short video costs one clip; a long one is summarised by all of it, not its middle).
TAG_CLIP_EVERY = 20.0
TAG_CLIPS = 8


@dataclass
class IndexSummary:
    found: int = 0
    classified: int = 0
    failed: int = 0
    unchanged: int = 0
    moved: int = 0
    copied: int = 0
    pruned: int = 0
    gone: int = 0  # indexed files that no longer exist (kept without --prune)
    moments: str = ""  # vision-language galleries: how their moments are searched
    thumbnails: int = 0  # pictures made, for this run's videos and any that had none
    thumbnails_added: int = 0  # of which for videos indexed before (older galleries)

    def describe(self) -> str:
        parts = [
            f"{self.found} videos found",
            f"{self.classified} classified",
            f"{self.failed} failed",
            f"{self.unchanged} unchanged",
        ]
        if self.moved:
            parts.append(f"{self.moved} moved")
        if self.copied:
            copies = "copy" if self.copied == 1 else "copies"
            parts.append(f"{self.copied} {copies} of indexed videos")
        if self.pruned:
            parts.append(f"{self.pruned} removed")
        if self.gone:
            parts.append(f"{self.gone} gone from disk (remove them with --prune)")
        if self.moments:
            parts.append(self.moments)
        if self.thumbnails_added:
            parts.append(f"{self.thumbnails_added} thumbnails added to videos indexed before")
        return ", ".join(parts)


@dataclass
class IndexRun:
    """The options of one `Gallery.index` call (made by keyword)."""

    model: str | None
    recursive: bool
    timeline: bool
    prune: bool
    top_k: int
    workers: int | None
    batch_size: int | None
    precision: str
    progress: bool
    video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT
    device: str = "auto"
    engine: str = "local"
    ray_address: str | None = None
    moment: float = DEFAULT_MOMENT
    runtime: str = "auto"


@dataclass
class Side:
    """One of a gallery's two kinds of index (a classifier's tags and features, or a
    vision-language model's embeddings): how its records are found, moved, copied, and
    how new videos are processed."""

    by_path: Callable
    by_hash: Callable
    move: Callable
    copy: Callable
    process: Callable
    embeds: bool = False


@contextmanager
def index_lock(db: str) -> Iterator[None]:
    """Hold the gallery's index lock (an flock on DB.index-lock, released by the kernel
    if the process dies): two index runs would both classify everything. The lock file
    is removed when the run ends; a run that locked a file removed meanwhile by the run
    before it locks the new one instead, so two runs never hold different files."""
    name = db + ".index-lock"
    for _ in range(100):
        f = os.fdopen(open_regular(name, os.O_RDWR | os.O_CREAT, "lock file"), "r+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = f.read(20).strip() or "?"
            f.close()
            raise VidclassError(
                f"{db} is being indexed by another run (pid {holder}); wait for it to "
                "finish, or use another --db"
            ) from None
        try:
            now = os.stat(name)
        except FileNotFoundError:
            now = None
        held = os.fstat(f.fileno())
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        f.close()  # removed (or replaced) between our open and our lock: try the new one
    else:
        raise VidclassError(f"{name}: cannot hold the index lock (it keeps being replaced)")
    try:
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)  # still held: no other run can have it now
        f.close()


class _Once(logging.Filter):
    """Lets each message through once: a file's decoder warnings are met again when its
    timeline decodes it after its tags did."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


@contextmanager
def each_message_once() -> Iterator[None]:
    once = _Once()
    log.addFilter(once)
    try:
        yield
    finally:
        log.removeFilter(once)


def classifier_side(gallery) -> Side:
    def copy(same, path, mtime):
        same.path, same.mtime, same.id = path, mtime, None
        gallery.store.put(same)

    def process(todo, run, summary):
        clf = gallery.load_model(run.model, run.precision, run.device, run.runtime)
        _classify(gallery, clf, todo, run, summary)

    return Side(gallery.store.by_path, gallery.store.by_hash, gallery.store.move, copy, process)


def embedding_side(gallery) -> Side:
    def copy(same, path, mtime):
        gallery.store.copy_embedded(same.path, path, mtime)

    def process(todo, run, summary):
        clf = gallery.load_text_model(run.model, run.precision, run.device)
        _embed(gallery, clf, todo, run, summary)

    store = gallery.store
    return Side(
        store.embedded_by_path,
        store.embedded_by_hash,
        store.move_embedded,
        copy,
        process,
        embeds=True,
    )


def run_index(gallery, inputs: list[str | os.PathLike], run: IndexRun, side: Side) -> IndexSummary:
    from ..batch import expand_inputs
    from ..digest import file_digest

    summary = IndexSummary()
    roots = []
    for item in map(str, inputs):
        if not os.path.exists(item):  # a typo must not look like an emptied folder
            raise VidclassError(f"{item}: no such folder or file")
        roots.append(os.path.abspath(item))
    try:
        found = expand_inputs(
            [str(i) for i in inputs], run.recursive, deeper="leave out --no-recursive"
        )
        paths = [os.path.abspath(p) for p in found]
    except VidclassError:  # folders without videos: nothing to add, maybe some to prune
        paths = []
    summary.found = len(paths)
    todo: list[tuple[str, str, os.stat_result]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            log.warning(f"{path}: cannot read ({exc.strerror})")
            continue
        old = side.by_path(path)
        if old and old.size == st.st_size and old.mtime == st.st_mtime:
            summary.unchanged += 1
            continue
        try:
            digest = file_digest(path)
        except (OSError, VidclassError) as exc:
            log.error(str(exc) if isinstance(exc, VidclassError) else f"{path}: {exc}")
            summary.failed += 1
            continue
        if old and old.hash == digest:
            side.move(path, path, st.st_mtime)  # touched, not changed
            summary.unchanged += 1
            continue
        same = [r for r in side.by_hash(digest) if r.path != path]
        gone = [r for r in same if not os.path.exists(r.path)]
        if gone and old is None:
            side.move(gone[0].path, path, st.st_mtime)
            summary.moved += 1
        elif same and same[0].error is None:
            side.copy(same[0], path, st.st_mtime)
            summary.copied += 1
        else:
            todo.append((path, digest, st))
    if todo:
        side.process(todo, run, summary)
    add_thumbnails(gallery, {t[0] for t in todo}, run, summary)

    def under_roots(path: str) -> bool:
        return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)

    for path in gallery.store.paths():
        if under_roots(path) and not os.path.exists(path):
            if run.prune:
                gallery.store.delete(path)
                summary.pruned += 1
            else:
                summary.gone += 1
    if gallery.text_model_name is not None and (
        side.embeds or summary.pruned or gallery.moments().needs_refresh()
    ):  # a moment index found damaged (or missing where search needs one) is built again
        summary.moments = gallery.moments().refresh()
    return summary


def add_thumbnails(gallery, new: set[str], run: IndexRun, summary: IndexSummary) -> None:
    """A picture for each video that has none: those just indexed, and those of a
    gallery made before thumbnails (or a run stopped between a video and its picture).
    One transaction each; a video whose picture cannot be made keeps its tags."""
    from .thumbnails import FRAME_TIMEOUT, video_thumbnail

    missing = [m for m in gallery.store.without_thumbnails() if os.path.exists(m[0])]
    timeout = min(FRAME_TIMEOUT, run.video_timeout or FRAME_TIMEOUT)
    for path, digest, duration, width, height in tracked(
        missing, len(missing), "thumbnails", enabled=run.progress and len(missing) > 1
    ):
        try:
            picture = video_thumbnail(path, duration, width, height, timeout)
        except (VidclassError, OSError) as exc:
            log.warning(f"{path}: no thumbnail ({exc})")
            continue
        gallery.store.put_thumbnail(digest, picture)
        summary.thumbnails += 1
        summary.thumbnails_added += path not in new


def _run(clf, work, todo, run: IndexRun):
    """(result, digest, stat) of each video of `todo` run through `work`, as the
    engine finishes them, with a progress bar."""
    from ..engine import runner_for

    info = {path: (digest, st) for path, digest, st in todo}
    runner = runner_for(
        clf,
        work,
        len(todo),
        engine=run.engine,
        workers=run.workers,
        batch_size=run.batch_size,
        address=run.ray_address,
    )
    results = runner.run([t[0] for t in todo])
    for result in tracked(results, len(todo), "index", enabled=run.progress):
        yield (result, *info[result.video])


def _embed(gallery, clf, todo, run: IndexRun, summary: IndexSummary) -> None:
    """Each video's moment embeddings (windows of `run.moment` seconds) and their
    mean, the video's own."""
    from ..engine import Windows, Work

    gallery.store.set_meta(MOMENT_SECONDS, f"{run.moment:g}")
    work = Work(
        Windows(run.moment, run.moment), outputs="features", video_timeout=run.video_timeout
    )
    for result, digest, st in _run(clf, work, todo, run):
        video = EmbeddedVideo(result.video, digest, st.st_size, st.st_mtime, clf.name)
        if result.error is not None:
            video.error = result.error
            log.error(result.error)
            summary.failed += 1
        else:
            vectors = result.features
            video.moments = [(a, b, v) for (a, b), v in zip(result.spans, vectors, strict=True)]
            video.vector = vectors.mean(axis=0)
            video.duration = result.spans[-1][1]
            summary.classified += 1
        gallery.store.put_embedded(video)


def _classify(gallery, clf, todo, run: IndexRun, summary: IndexSummary) -> None:
    from ..engine import Clips, Work
    from ..video import probe

    sampling = Clips(TAG_CLIPS, every=TAG_CLIP_EVERY)
    work = Work(sampling, outputs="both", top_k=run.top_k, video_timeout=run.video_timeout)
    for result, digest, st in _run(clf, work, todo, run):
        record = VideoRecord(result.video, digest, st.st_size, st.st_mtime, clf.name)
        if result.error is not None:
            record.error = result.error
            log.error(result.error)
            summary.failed += 1
        else:
            try:
                meta = probe(result.video)
                record.duration = meta.duration
                record.width, record.height = meta.width, meta.height
            except VidclassError:
                pass
            top = result.predictions
            clips = len(result.features)
            record.tags_from = (
                f"mean of {clips} clips across the video" if clips > 1 else "its middle clip"
            )
            record.feature = result.features.mean(axis=0)
            record.ood_score, record.unknown = result.ood_score, result.unknown
            tl = _timeline(clf, result.video, run) if run.timeline else None
            if tl is not None:
                record.segments = [
                    {"start": s.start, "end": s.end, "label": s.label, "score": s.score}
                    for s in tl.segments
                ]
                top = tl.predictions
                record.tags_from = f"mean of its timeline's {len(tl.windows)} windows"
                record.ood_score, record.unknown = tl.ood_score, tl.unknown
            record.tags = top[:1] + [t for t in top[1:] if t["score"] >= MIN_TAG_SCORE]
            summary.classified += 1
        gallery.store.put(record)


def _timeline(clf, path: str, run: IndexRun):
    """The video's timeline, with a bar of its windows on a terminal; None where it
    cannot be made in `run.video_timeout` (the video keeps its tags)."""
    try:
        with (
            time_limit(run.video_timeout, f"{path}: its timeline"),
            counted(os.path.basename(path), enabled=run.progress) as progress,
        ):
            return clf.timeline(path, top_k=run.top_k, progress=progress)
    except VidclassError as exc:
        log.warning(f"{path}: no timeline ({exc})")
        return None
