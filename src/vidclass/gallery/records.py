"""What a gallery stores and gives back (videos, embedded videos, search hits), and the
interface every storage of it offers (store.SqliteGalleryStore is the one there is)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .thumbnails import Thumbnail


@dataclass
class VideoRecord:
    """One indexed video, as stored."""

    path: str
    hash: str
    size: int
    mtime: float
    model: str
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    tags: list[dict] = field(default_factory=list)  # [{"label", "score"}], best first
    segments: list[dict] = field(default_factory=list)  # [{"start", "end", "label", "score"}]
    feature: np.ndarray | None = None  # pooled backbone features, float32 (D,)
    error: str | None = None  # could not be classified
    id: int | None = None
    tags_from: str | None = None  # how the tags were made ("mean of 5 clips across ...")
    ood_score: float | None = None  # how far outside what the model knows
    unknown: bool | None = None  # past the model's threshold (None: it has none)


@dataclass
class EmbeddedVideo:
    """A video embedded with a vision-language model: its place in the text-video space
    and one vector per moment."""

    path: str
    hash: str
    size: int
    mtime: float
    model: str
    duration: float | None = None
    vector: np.ndarray | None = None  # the whole video, float32 (D,)
    moments: list[tuple[float, float, np.ndarray]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Hit:
    """A search result: a video, the tags that matched (the whole video's, made as
    `tags_from` says) and the moments where they occur, each with its `source`:
    "timeline" (a stored segment) or "text" (a vision-language moment)."""

    path: str
    score: float
    duration: float | None
    tags: list[dict]
    moments: list[dict]
    tags_from: str | None = None
    unknown: bool | None = None  # the video as a whole is outside what its model knows

    def as_dict(self) -> dict:
        return {
            "video": self.path,
            "score": self.score,
            "duration": self.duration,
            "tags": self.tags,
            "tags_from": self.tags_from,
            "unknown": self.unknown,
            "moments": self.moments,
        }


class GalleryStore(Protocol):
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def by_path(self, path: str) -> VideoRecord | None: ...
    def by_hash(self, digest: str) -> list[VideoRecord]: ...
    def paths(self) -> list[str]: ...
    def put(self, record: VideoRecord) -> None: ...
    def move(self, old: str, new: str, mtime: float) -> None: ...
    def delete(self, path: str) -> None: ...
    def match_labels(self, query: str) -> list[str]: ...
    def tagged(
        self,
        labels: list[str],
        min_score: float,
        min_duration: float | None,
        max_duration: float | None,
        limit: int,
        known_only: bool = False,
    ) -> list[Hit]: ...
    def features(self) -> tuple[list[str], np.ndarray]: ...
    def embedded_by_path(self, path: str) -> EmbeddedVideo | None: ...
    def embedded_by_hash(self, digest: str) -> list[EmbeddedVideo]: ...
    def put_embedded(self, video: EmbeddedVideo) -> None: ...
    def copy_embedded(self, source: str, path: str, mtime: float) -> None: ...
    def move_embedded(self, old: str, new: str, mtime: float) -> None: ...
    def moment_count(self) -> int: ...
    def moment_vectors(self, after: int = 0, chunk: int = 50_000): ...
    def moments_by_id(self, ids: list[int]) -> dict[int, tuple[str, float, float]]: ...
    def embedded_vectors(self) -> tuple[list[str], np.ndarray]: ...
    def version(self) -> int: ...
    def tag_counts(self) -> list[tuple[str, int, float]]: ...
    def records(self) -> list[VideoRecord]: ...
    def put_thumbnail(self, digest: str, thumbnail: Thumbnail) -> None: ...
    def thumbnail(self, path: str) -> Thumbnail | None: ...
    def without_thumbnails(self) -> list[tuple[str, str, float | None, int | None, int | None]]: ...
    def has_tags(self) -> bool: ...
    def held(self, path: str) -> tuple[int | None, int | None] | None: ...
    def listing(
        self, tag: str | None, known_only: bool, offset: int, limit: int
    ) -> tuple[int, list[dict]]: ...
    def close(self) -> None: ...
