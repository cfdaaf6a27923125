"""A searchable video gallery: index folders, search by tag text, find similar videos."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import VidclassError
from ..files import open_regular
from ..limits import DEFAULT_VIDEO_TIMEOUT, time_limit
from ..progress import counted, tracked
from .store import EmbeddedVideo, GalleryStore, Hit, SqliteGalleryStore, VideoRecord
from .vector_index import MomentIndex

log = logging.getLogger("vidclass")

DEFAULT_DB = "gallery.sqlite"
DEFAULT_MOMENT = 2.0  # seconds a stored moment of a vision-language model spans
TEXT_MODEL = "text_model"  # meta: the vision-language model of the moments
MOMENT_SECONDS = "moment_seconds"  # meta: the length of its moments
SEARCH_BY = ("auto", "tags", "text")
SIMILAR_USING = ("auto", "features", "embeddings")
MOMENTS_PER_HIT = 3  # a text search shows a video's best moments, at most these
MAX_MOMENTS = 20_000  # moments read for one text search, at most
MIN_TAG_SCORE = 0.01  # weaker labels are not kept as tags (the best one always is)
# A video's tags are the mean of one clip per TAG_CLIP_EVERY seconds, at most TAG_CLIPS
# (a short video costs one clip; a long one is summarised by all of it, not its middle).
TAG_CLIP_EVERY = 20.0
TAG_CLIPS = 8

# Words people search for that labels spell otherwise. Stems (dance/dancing, swim/
# swimming) need no entry: the label index stems words (FTS5's porter tokenizer).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "football": ("soccer",),
    "soccer": ("football",),
    "bike": ("bicycle", "bicycling", "biking", "cycling"),
    "bicycle": ("bike", "biking", "cycling"),
    "cycling": ("bike", "bicycle", "biking"),
    "kid": ("child", "children", "baby", "kids"),
    "child": ("kid", "children", "baby", "kids"),
    "car": ("driving", "auto"),
    "music": ("playing", "singing", "drumming"),
    "workout": ("exercising", "push up", "squat", "situp", "lunge"),
    "exercise": ("exercising", "push up", "squat", "situp", "lunge"),
    "food": ("eating", "cooking", "baking", "frying"),
    "cook": ("cooking", "baking", "frying", "grilling"),
    "ball": ("soccer", "basketball", "volleyball", "football", "tennis"),
    "phone": ("telephone", "texting", "smartphone"),
    "sea": ("surfing", "sailing", "ocean"),
}


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
            parts.append(f"{self.copied} copies of indexed videos")
        if self.pruned:
            parts.append(f"{self.pruned} removed")
        if self.gone:
            parts.append(f"{self.gone} gone from disk (remove them with --prune)")
        if self.moments:
            parts.append(self.moments)
        return ", ".join(parts)


def fts_query(text: str) -> str:
    """An FTS5 query: every word (or a synonym) must match, as a word prefix."""
    words = re.findall(r"\w+", text.lower())
    if not words:
        raise VidclassError("give some words to search for")
    groups = []
    for word in words:
        options = (word, *SYNONYMS.get(word, ()))
        groups.append("(" + " OR ".join(f'"{o}"*' for o in options) + ")")
    return " AND ".join(groups)


@dataclass
class _IndexRun:
    """The options of one `Gallery.index` call."""

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
class _Side:
    """One of a gallery's two kinds of index (a classifier's tags and features, or a
    vision-language model's embeddings): how its records are found, moved, copied, and
    how new videos are processed."""

    by_path: Callable
    by_hash: Callable
    move: Callable
    copy: Callable
    process: Callable
    embeds: bool = False


def _is_vision_language(name: str) -> bool:
    from ..models.resolve import describe

    return describe(name).zero_shot


@contextmanager
def _index_lock(db: str) -> Iterator[None]:
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
def _each_message_once() -> Iterator[None]:
    once = _Once()
    log.addFilter(once)
    try:
        yield
    finally:
        log.removeFilter(once)


class Gallery:
    """A gallery database; `index` fills it, `search`, `similar`, `tags` read it."""

    def __init__(self, path: str | os.PathLike = DEFAULT_DB, store: GalleryStore | None = None):
        self.path = str(path)
        # The files beside the database (its index lock, its moment index) are named from
        # the file itself, not the name used: two names of one gallery share them.
        self.real_path = os.path.realpath(self.path)
        self.store = store or SqliteGalleryStore(path)
        self._vectors: tuple[list[str], np.ndarray] | None = None
        self._vectors_version: tuple[int, bool] | None = None
        self._model = None
        self._text_model = None
        self._moment_index: MomentIndex | None = None

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def model_name(self) -> str | None:
        return self.store.get_meta("model")

    def _model_for(self, name: str | None) -> str:
        """The model this gallery uses; another one named is an error (features and
        tags of different models must not mix)."""
        from ..models import DEFAULT_MODEL

        stored = self.model_name
        if name and stored and name != stored:
            raise VidclassError(
                f"{self.path} is indexed with {stored!r}; index with --model {stored} or "
                "use another --db"
            )
        return name or stored or DEFAULT_MODEL

    def _wants_embeddings(self, model: str | None) -> bool:
        """Whether `model` is a vision-language model (its index run stores moments)."""
        if not model or model == self.model_name:
            return False
        if model == self.text_model_name:
            return True
        try:
            return _is_vision_language(model)
        except VidclassError:
            self._model_for(model)  # a gallery of another classifier says so first
            raise

    @property
    def text_model_name(self) -> str | None:
        """The vision-language model of the gallery's moments, if it has one."""
        return self.store.get_meta(TEXT_MODEL)

    def _text_model_for(self, name: str | None) -> str:
        stored = self.text_model_name
        if name and stored and name != stored:
            raise VidclassError(
                f"{self.path} holds moments of {stored!r}; index with --model {stored} or "
                "use another --db"
            )
        if not (name or stored):
            raise VidclassError(
                f"{self.path} has no moments to search by text: index it with a "
                "vision-language model (--model, e.g. microsoft/xclip-base-patch32)"
            )
        return name or stored

    def _load_text_model(self, name: str | None, precision: str = "auto", device: str = "auto"):
        from ..loading import load_model

        name = self._text_model_for(name)
        if self._text_model is None or self._text_model.name != name:
            self._text_model = load_model(name, precision=precision, device=device)
        if self.text_model_name is None:
            self.store.set_meta(TEXT_MODEL, name)
        return self._text_model

    def _moments(self) -> MomentIndex:
        if self._moment_index is None:
            self._moment_index = MomentIndex(self.store, self.real_path)
        return self._moment_index

    def _load_model(
        self, name: str | None, precision: str = "auto", device: str = "auto", runtime="auto"
    ):
        from ..loading import load_model

        name = self._model_for(name)
        if self._model is None or self._model.name != name:
            self._model = load_model(name, precision=precision, device=device, runtime=runtime)
        if self.model_name is None:
            self.store.set_meta("model", name)
        return self._model

    # -- indexing ---------------------------------------------------------------------------
    def index(
        self,
        inputs: list[str | os.PathLike],
        *,
        model: str | None = None,
        recursive: bool = True,
        timeline: bool = False,
        prune: bool = False,
        top_k: int = 5,
        workers: int | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
        progress: bool = False,
        video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
        device: str = "auto",
        engine: str = "local",
        ray_address: str | None = None,
        moment: float = DEFAULT_MOMENT,
        runtime: str = "auto",
    ) -> IndexSummary:
        """Classify new and changed videos under `inputs` and store them, one transaction
        each (an interrupted run loses nothing; run it again to go on). Unchanged files
        are skipped by size and mtime, moved ones recognised by content hash. A video
        whose decoding (or, with `timeline`, whose timeline) takes over `video_timeout`
        seconds is stopped: recorded as failed (or kept without its timeline). One index
        run at a time: another one on the same gallery is refused while this one runs.
        `engine` "ray" classifies on a Ray cluster (`ray_address`); timelines, where
        asked for, are still made here.

        A vision-language `model` (X-CLIP, CLIP, SigLIP) stores instead an embedding
        of each video and of each `moment` seconds of it, for `search(by="text")`; a
        gallery holds one classifier and one such model side by side."""
        embed = self._wants_embeddings(model)
        if embed:
            self._text_model_for(model)
        else:
            self._model_for(model)  # a mismatched model fails before any work
        if not (moment > 0 and np.isfinite(moment)):
            raise VidclassError(f"moment must be a positive number of seconds, got {moment}")
        run = _IndexRun(
            model,
            recursive,
            timeline,
            prune,
            top_k,
            workers,
            batch_size,
            precision,
            progress,
            video_timeout,
            device,
            engine,
            ray_address,
            moment,
            runtime,
        )
        side = self._embedding_side() if embed else self._classifier_side()
        with _index_lock(self.real_path), _each_message_once():
            return self._index(inputs, run, side)

    def _classifier_side(self) -> _Side:
        def copy(same, path, mtime):
            same.path, same.mtime, same.id = path, mtime, None
            self.store.put(same)

        def process(todo, run, summary):
            clf = self._load_model(run.model, run.precision, run.device, run.runtime)
            self._classify(clf, todo, run, summary)

        return _Side(self.store.by_path, self.store.by_hash, self.store.move, copy, process)

    def _embedding_side(self) -> _Side:
        def copy(same, path, mtime):
            self.store.copy_embedded(same.path, path, mtime)

        def process(todo, run, summary):
            clf = self._load_text_model(run.model, run.precision, run.device)
            self._embed(clf, todo, run, summary)

        store = self.store
        return _Side(
            store.embedded_by_path,
            store.embedded_by_hash,
            store.move_embedded,
            copy,
            process,
            embeds=True,
        )

    def _index(self, inputs: list[str | os.PathLike], run: _IndexRun, side: _Side) -> IndexSummary:
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

        def under_roots(path: str) -> bool:
            return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)

        for path in self.store.paths():
            if under_roots(path) and not os.path.exists(path):
                if run.prune:
                    self.store.delete(path)
                    summary.pruned += 1
                else:
                    summary.gone += 1
        if self.text_model_name is not None and (
            side.embeds or summary.pruned or self._moments().needs_refresh()
        ):  # a moment index found damaged (or missing where search needs one) is built again
            summary.moments = self._moments().refresh()
        return summary

    @staticmethod
    def _run(clf, work, todo, run: _IndexRun):
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

    def _embed(self, clf, todo, run: _IndexRun, summary: IndexSummary) -> None:
        """Each video's moment embeddings (windows of `run.moment` seconds) and their
        mean, the video's own."""
        from ..engine import Windows, Work

        self.store.set_meta(MOMENT_SECONDS, f"{run.moment:g}")
        work = Work(
            Windows(run.moment, run.moment), outputs="features", video_timeout=run.video_timeout
        )
        for result, digest, st in self._run(clf, work, todo, run):
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
            self.store.put_embedded(video)

    def _classify(self, clf, todo, run: _IndexRun, summary: IndexSummary) -> None:
        from ..engine import Clips, Work
        from ..video import probe

        sampling = Clips(TAG_CLIPS, every=TAG_CLIP_EVERY)
        work = Work(sampling, outputs="both", top_k=run.top_k, video_timeout=run.video_timeout)
        for result, digest, st in self._run(clf, work, todo, run):
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
                tl = self._timeline(clf, result.video, run) if run.timeline else None
                if tl is not None:
                    record.segments = [
                        {"start": s.start, "end": s.end, "label": s.label, "score": s.score}
                        for s in tl.segments
                    ]
                    top = tl.predictions
                    record.tags_from = f"mean of its timeline's {len(tl.windows)} windows"
                record.tags = top[:1] + [t for t in top[1:] if t["score"] >= MIN_TAG_SCORE]
                summary.classified += 1
            self.store.put(record)

    @staticmethod
    def _timeline(clf, path: str, run: _IndexRun):
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

    # -- reading ----------------------------------------------------------------------------
    def search(
        self,
        text: str,
        *,
        min_score: float | None = None,
        label: str | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
        limit: int = 20,
        by: str = "auto",
        model=None,
    ) -> list[Hit]:
        """Videos matching `text`, best first. by "tags": tags matching the words
        (prefixes, stems, synonyms), best tag first. by "text": the videos whose moments
        are nearest to the text in the vision-language model's space, each with its best
        moments (`model`: that model, loaded). "auto": text where the gallery has
        moments and no `label` is asked for, else tags. `min_score`: the least tag score,
        or cosine similarity of a moment (None: any)."""
        if limit < 1:
            raise VidclassError(f"limit must be at least 1, got {limit}")
        try:  # a terminal's undecodable bytes arrive as lone surrogates
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise VidclassError("the search text is not valid UTF-8") from None
        if by not in SEARCH_BY:
            raise VidclassError(f"search by one of {', '.join(SEARCH_BY)}, not {by!r}")
        if by == "auto":
            by = "text" if self.text_model_name and label is None else "tags"
        if by == "text":
            if label is not None:
                raise VidclassError("label is a tag filter: search by tags to use it")
            return self._search_text(text, min_score, min_duration, max_duration, limit, model)
        labels = self.store.match_labels(fts_query(text)) if text.strip() else []
        if label is not None:
            labels = [x for x in labels if x == label] if text.strip() else [label]
        return self.store.tagged(labels, min_score or 0.0, min_duration, max_duration, limit)

    def _search_text(self, text, min_score, min_duration, max_duration, limit, model) -> list[Hit]:
        words = " ".join(text.split())
        if not words:
            raise VidclassError("give some words to search for")
        clf = model if model is not None else self._load_text_model(None)
        if clf.name != self._text_model_for(None):
            raise VidclassError(
                f"{self.path} holds moments of {self._text_model_for(None)!r}, not {clf.name!r}"
            )
        query = clf.embed_text([words])[0]
        found: dict[str, list[dict]] = {}
        want = limit * MOMENTS_PER_HIT
        while True:  # moments grouped into videos; fetch more until `limit` videos
            ranked = self._moments().search(query, want)
            spans = self.store.moments_by_id([key for key, _ in ranked])
            found = {}
            for key, sim in ranked:
                if (min_score is not None and sim < min_score) or key not in spans:
                    continue
                path, start, end = spans[key]
                found.setdefault(path, []).append(
                    {"start": start, "end": end, "label": words, "score": sim, "source": "text"}
                )
            kept = self._within(found, min_duration, max_duration)
            if len(kept) >= limit or len(ranked) < want or want >= MAX_MOMENTS:
                break
            want = min(want * 4, MAX_MOMENTS)
        hits = []
        for path, (duration, moments) in list(kept.items())[:limit]:
            record = self.store.by_path(path)
            tags = record.tags[:3] if record is not None else []
            best = moments[:MOMENTS_PER_HIT]
            tags_from = record.tags_from if record is not None else None
            hits.append(Hit(path, best[0]["score"], duration, tags, best, tags_from))
        return hits

    def _within(self, found, min_duration, max_duration) -> dict:
        """{path: (duration, moments)} of the videos within the durations, best first."""
        kept = {}
        for path, moments in found.items():
            video = self.store.embedded_by_path(path)
            duration = video.duration if video is not None else None
            if min_duration is not None and (duration is None or duration < min_duration):
                continue
            if max_duration is not None and (duration is None or duration > max_duration):
                continue
            kept[path] = (duration, moments)
        return kept

    def _matrix(self, embeddings: bool = False) -> tuple[list[str], np.ndarray]:
        """The normalised vectors (the classifier's features, or with `embeddings` the
        vision-language video embeddings), read once and again after another process
        (an index run beside a server) changed the database."""
        version = (self.store.version(), embeddings)
        if self._vectors is None or self._vectors_version != version:
            read = self.store.embedded_vectors if embeddings else self.store.features
            paths, vectors = read()
            norms = np.linalg.norm(vectors, axis=1, keepdims=True) if len(paths) else 1.0
            self._vectors = (paths, vectors / np.maximum(norms, 1e-12))
            self._vectors_version = version
        return self._vectors

    def similar(
        self,
        video: str | os.PathLike,
        k: int = 10,
        precision: str = "auto",
        model=None,
        device: str = "auto",
        using: str = "auto",
    ) -> list[dict]:
        """The `k` indexed videos nearest to `video` by cosine similarity; `video` may be
        outside the gallery (it is then run through the gallery's model, or `model`, a
        loaded VideoClassifier that must be that model). using "features": the
        classifier's features; "embeddings": the vision-language model's video
        embeddings; "auto": embeddings where the gallery has them."""
        if k < 1:
            raise VidclassError(f"limit must be at least 1, got {k}")
        if using not in SIMILAR_USING:
            raise VidclassError(f"similar using one of {', '.join(SIMILAR_USING)}, not {using!r}")
        embeddings = using == "embeddings" or (using == "auto" and bool(self.text_model_name))
        paths, matrix = self._matrix(embeddings)
        if not paths:
            raise VidclassError(f"{self.path} has no indexed videos")
        path = os.path.abspath(video)
        if embeddings:
            stored = self.store.embedded_by_path(path)
            query = stored.vector if stored is not None else None
        else:
            record = self.store.by_path(path)
            query = record.feature if record is not None else None
        if query is None:
            query = self._query_vector(video, embeddings, model, precision, device)
        if query.shape[0] != matrix.shape[1]:
            raise VidclassError("the query's features do not match the gallery's model")
        sims = matrix @ (query / max(np.linalg.norm(query), 1e-12))
        take = min(k + 1, len(sims))  # one more: the query itself may be among them
        best = np.argpartition(-sims, take - 1)[:take]
        order = best[np.argsort(-sims[best], kind="stable")]
        out = []
        for i in order:
            if paths[i] == path:
                continue
            out.append({"video": paths[i], "similarity": float(sims[i])})
            if len(out) == k:
                break
        return out

    def _moment_seconds(self) -> float:
        try:
            seconds = float(self.store.get_meta(MOMENT_SECONDS) or DEFAULT_MOMENT)
        except ValueError:
            return DEFAULT_MOMENT
        return seconds if 0 < seconds < 3600 else DEFAULT_MOMENT

    def _query_vector(self, video, embeddings: bool, model, precision: str, device: str):
        """A video outside the gallery as the gallery stores videos."""
        from ..engine import Windows, Work

        if embeddings:
            name = self._text_model_for(None)
            if model is None or model.name != name:
                model = self._load_text_model(None, precision, device)
            moment = self._moment_seconds()
            return model.run(
                video, Work(Windows(moment, moment), outputs="features")
            ).features.mean(axis=0)
        clf = self._load_model(None, precision, device) if model is None else model
        if clf.name != self._model_for(None):
            raise VidclassError(
                f"{self.path} is indexed with {self._model_for(None)!r}, not {clf.name!r}: "
                "its features cannot be compared"
            )
        return clf.run(video, Work(outputs="features")).features.mean(axis=0)

    def tags(self) -> list[dict]:
        return [
            {"label": label, "videos": n, "best_score": best}
            for label, n, best in self.store.tag_counts()
        ]

    def export(self) -> list[dict]:
        """Every indexed video as a dict (no feature vectors), sorted by path."""
        return [
            {
                "video": r.path,
                "hash": r.hash,
                "size": r.size,
                "duration": r.duration,
                "width": r.width,
                "height": r.height,
                "model": r.model,
                "tags": r.tags,
                "tags_from": r.tags_from,
                "segments": r.segments,
                "error": r.error,
            }
            for r in self.store.records()
        ]
