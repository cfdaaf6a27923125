"""A searchable video gallery: index folders, search by tag or text, find similar videos.
The work is in indexing, search and similar; this is the gallery's models and its verbs."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import VidclassError
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..options import check
from .indexing import (
    DEFAULT_MOMENT,
    IndexRun,
    IndexSummary,
    classifier_side,
    each_message_once,
    embedding_side,
    index_lock,
    run_index,
)
from .records import GalleryStore, Hit, VideoRecord
from .search import run_search
from .similar import Vectors, find_similar, moment_seconds, query_for, query_model
from .store import SqliteGalleryStore
from .thumbnails import Thumbnail, frame_at
from .vector_index import MomentIndex

log = logging.getLogger("vidclass")

DEFAULT_DB = "gallery.sqlite"
TEXT_MODEL = "text_model"  # meta: the vision-language model of the moments


def _is_vision_language(name: str) -> bool:
    from ..models.resolve import describe

    return describe(name).zero_shot


class Gallery:
    """A gallery database; `index` fills it, `search`, `similar`, `tags` read it."""

    def __init__(self, path: str | os.PathLike = DEFAULT_DB, store: GalleryStore | None = None):
        self.path = str(path)
        # The files beside the database (its index lock, its moment index) are named from
        # the file itself, not the name used: two names of one gallery share them.
        self.real_path = os.path.realpath(self.path)
        self.store = store or SqliteGalleryStore(path)
        self.vectors = Vectors()  # for similar: read once while the database is unchanged
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

    def model_for(self, name: str | None) -> str:
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
            self.model_for(model)  # a gallery of another classifier says so first
            raise

    @property
    def text_model_name(self) -> str | None:
        """The vision-language model of the gallery's moments, if it has one."""
        return self.store.get_meta(TEXT_MODEL)

    def text_model_for(self, name: str | None) -> str:
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

    def load_text_model(self, name: str | None, precision: str = "auto", device: str = "auto"):
        from ..loading import load_model

        name = self.text_model_for(name)
        if self._text_model is None or self._text_model.name != name:
            self._text_model = load_model(name, precision=precision, device=device)
        if self.text_model_name is None:
            self.store.set_meta(TEXT_MODEL, name)
        return self._text_model

    def moments(self) -> MomentIndex:
        if self._moment_index is None:
            self._moment_index = MomentIndex(self.store, self.real_path)
        return self._moment_index

    def load_model(
        self, name: str | None, precision: str = "auto", device: str = "auto", runtime="auto"
    ):
        from ..loading import load_model

        name = self.model_for(name)
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
        check("index", locals())
        embed = self._wants_embeddings(model)
        if embed:
            self.text_model_for(model)
        else:
            self.model_for(model)  # a mismatched model fails before any work
        run = IndexRun(
            model=model,
            recursive=recursive,
            timeline=timeline,
            prune=prune,
            top_k=top_k,
            workers=workers,
            batch_size=batch_size,
            precision=precision,
            progress=progress,
            video_timeout=video_timeout,
            device=device,
            engine=engine,
            ray_address=ray_address,
            moment=moment,
            runtime=runtime,
        )
        side = embedding_side(self) if embed else classifier_side(self)
        with index_lock(self.real_path), each_message_once():
            return run_index(self, inputs, run, side)

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
        known_only: bool = False,
    ) -> list[Hit]:
        """Videos matching `text`, best first. by "tags": tags matching the words
        (prefixes, stems, synonyms), best tag first. by "text": the videos whose moments
        are nearest to the text in the vision-language model's space, each with its best
        moments (`model`: that model, loaded). "auto": text where the gallery has
        moments and no `label` is asked for, else tags. `min_score`: the least tag score,
        or cosine similarity of a moment (None: any). `known_only`: by tags, leave out
        the videos answered unknown (outside what the gallery's model knows)."""
        check("search", locals())
        return run_search(
            self, text, min_score, label, min_duration, max_duration, limit, by, model, known_only
        )

    def similar(
        self,
        video: str | os.PathLike,
        limit: int = 10,
        precision: str = "auto",
        model=None,
        device: str = "auto",
        using: str = "auto",
        query: np.ndarray | None = None,
    ) -> list[dict]:
        """The `limit` indexed videos nearest to `video` by cosine similarity; `video` may be
        outside the gallery (it is then run through the gallery's model, or `model`, a
        loaded VideoClassifier that must be that model). using "features": the
        classifier's features; "embeddings": the vision-language model's video
        embeddings; "auto": embeddings where the gallery has them. `query`: what
        `similar_query` gave for `video`, where it was made apart."""
        check("similar", locals())
        return find_similar(self, video, limit, precision, model, device, using, query)

    def similar_query(
        self,
        video: str | os.PathLike,
        precision: str = "auto",
        model=None,
        device: str = "auto",
        using: str = "auto",
    ) -> np.ndarray:
        """The vector `similar` compares `video` by: stored, or made by decoding it (the
        slow part, which a server does on a connection of its own, `using` and `model`
        fixed beforehand by `similar_model`)."""
        check("similar", locals())
        return query_for(self, video, precision, model, device, using)

    def similar_model(
        self, model=None, using: str = "auto", precision: str = "auto", device: str = "auto"
    ):
        """("features" or "embeddings", the model `similar` runs a video outside the
        gallery through): `model` where it is the gallery's, else the gallery's own,
        loaded once and kept."""
        check("similar", locals())
        return query_model(self, using, model, precision, device)

    # -- browsing ---------------------------------------------------------------------------
    def about(self) -> dict:
        """What the gallery holds and how it can be searched: {"videos", "model" (its
        classifier, for tags), "text_model" (its vision-language model, for moments),
        "moment_seconds", "searches" (the `by` values that find something)}."""
        total, _ = self.store.listing(None, False, 0, 0)
        text_model = self.text_model_name
        return {
            "videos": total,
            "model": self.model_name,
            "text_model": text_model,
            "moment_seconds": moment_seconds(self) if text_model else None,
            "searches": (["text"] if text_model else [])
            + (["tags"] if self.store.has_tags() else []),
        }

    def browse(
        self,
        *,
        tag: str | None = None,
        known_only: bool = False,
        offset: int = 0,
        limit: int = 24,
    ) -> dict:
        """A page of the gallery's videos: {"total", "offset", "limit", "tag", "videos"},
        each video with its best tags, its answer (`unknown`) and whether it has a
        thumbnail. With `tag`: the videos with that tag, best score first (its score as
        `tag_score`); else every video by path. `known_only`: not videos answered
        unknown."""
        check("browse", locals())
        total, videos = self.store.listing(tag, known_only, offset, limit)
        return {"total": total, "offset": offset, "limit": limit, "tag": tag, "videos": videos}

    def video(self, path: str | os.PathLike) -> dict | None:
        """One indexed video as `export` gives it, with `thumbnail` (whether it has one);
        a video only embedded by a vision-language model has its duration and no tags.
        None where the gallery does not hold `path`."""
        path = os.fspath(path)
        record = self.store.by_path(path)
        if record is not None:
            found = _exported(record)
        else:
            embedded = self.store.embedded_by_path(path)
            if embedded is None:
                return None
            found = {"video": path, "hash": embedded.hash, "size": embedded.size}
            found.update(duration=embedded.duration, model=embedded.model, tags=[])
            found.update(segments=[], error=embedded.error, unknown=None)
        found["thumbnail"] = self.store.thumbnail(path) is not None
        return found

    def thumbnail(self, path: str | os.PathLike) -> Thumbnail | None:
        """The picture kept for an indexed video (made when it was indexed)."""
        return self.store.thumbnail(os.fspath(path))

    def held(self, path: str | os.PathLike) -> tuple[int | None, int | None] | None:
        """(width, height) as stored (None where not known) where the gallery holds a
        video at `path`; else None."""
        return self.store.held(os.fspath(path))

    def frame(self, path: str | os.PathLike, t: float) -> Thumbnail:
        """A small picture of an indexed video at `t` seconds, decoded now (a moment's
        picture). Only for videos the gallery holds: any other path is refused."""
        path = os.fspath(path)
        size = self.held(path)
        if size is None:
            raise VidclassError(f"{path}: not in the gallery {self.path}")
        if not (isinstance(t, (int, float)) and 0 <= t < 1e7):
            raise VidclassError(f"t must be a number of seconds from 0, not {t!r}")
        return frame_at(path, float(t), *size)

    def tags(self) -> list[dict]:
        return [
            {"label": label, "videos": n, "best_score": best}
            for label, n, best in self.store.tag_counts()
        ]

    def export(self) -> list[dict]:
        """Every indexed video as a dict (no feature vectors), sorted by path."""
        return [_exported(r) for r in self.store.records()]


def _exported(r: VideoRecord) -> dict:
    return {
        "video": r.path,
        "hash": r.hash,
        "size": r.size,
        "duration": r.duration,
        "width": r.width,
        "height": r.height,
        "model": r.model,
        "tags": r.tags,
        "tags_from": r.tags_from,
        "ood_score": r.ood_score,
        "unknown": r.unknown,
        "segments": r.segments,
        "error": r.error,
    }
