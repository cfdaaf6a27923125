"""Where a gallery lives: a small interface, and SQLite (FTS5 for labels, WAL) behind it.

Everything the gallery needs from storage goes through `GalleryStore`, so a server
database can replace SQLite without touching indexing or search.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import StorageError, VidclassError
from ..sqlite_files import open_own_sqlite


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


@dataclass
class Hit:
    """A search result: a video, the tags that matched and where they occur."""

    path: str
    score: float
    duration: float | None
    tags: list[dict]
    moments: list[dict]

    def as_dict(self) -> dict:
        return {
            "video": self.path,
            "score": self.score,
            "duration": self.duration,
            "tags": self.tags,
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
    ) -> list[Hit]: ...
    def features(self) -> tuple[list[str], np.ndarray]: ...
    def version(self) -> int: ...
    def tag_counts(self) -> list[tuple[str, int, float]]: ...
    def records(self) -> list[VideoRecord]: ...
    def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    model TEXT NOT NULL,
    duration REAL,
    width INTEGER,
    height INTEGER,
    feature BLOB,
    error TEXT,
    indexed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS videos_hash ON videos(hash);
CREATE TABLE IF NOT EXISTS tags (
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    rank INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_label ON tags(label, score DESC);
CREATE INDEX IF NOT EXISTS tags_video ON tags(video_id);
CREATE TABLE IF NOT EXISTS segments (
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_video ON segments(video_id, label);
CREATE TABLE IF NOT EXISTS labels (label TEXT PRIMARY KEY);
CREATE VIRTUAL TABLE IF NOT EXISTS labels_fts
    USING fts5(label, tokenize='porter unicode61', prefix='2 3 4');
"""


def _database_errors_as_user_errors(cls):
    """Every public method of `cls` turns SQLite's errors (a damaged or locked file, a
    page that no longer parses) into a StorageError naming the database."""

    def guard(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise StorageError(
                    f"{self.path}: cannot use the gallery database ({exc})"
                ) from None

        return guarded

    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_"):
            setattr(cls, name, guard(member))
    return cls


def _vector(blob) -> np.ndarray | None:
    """A stored feature vector; anything but finite float32 bytes counts as none."""
    if not isinstance(blob, bytes) or not blob or len(blob) % 4:
        return None
    vector = np.frombuffer(blob, dtype=np.float32).copy()
    return vector if np.isfinite(vector).all() else None


@_database_errors_as_user_errors
class SqliteGalleryStore:
    """A gallery in one SQLite file: WAL, one transaction per video."""

    # What an existing file must hold to be taken as a gallery (and then written to).
    REQUIRED = {
        "meta": {"key", "value"},
        "videos": {"id", "path", "hash", "size", "mtime", "model", "feature", "error"},
        "tags": {"video_id", "label", "score", "rank"},
    }

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            parent_ok = self.path.parent.is_dir()
        except OSError:
            parent_ok = False
        if not parent_ok:
            raise VidclassError(f"{self.path.parent}: no such folder for the gallery")
        self.conn = open_own_sqlite(self.path, self.REQUIRED, "vidclass gallery")
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            with self.conn:
                self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise VidclassError(f"{self.path}: not a usable gallery database ({exc})") from None

    # -- meta -------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- videos -----------------------------------------------------------------------
    def _record(self, row) -> VideoRecord:
        (vid, path, digest, size, mtime, model, duration, width, height, feature, error) = row
        tags = [
            {"label": label, "score": score}
            for label, score in self.conn.execute(
                "SELECT CAST(label AS TEXT), CAST(score AS REAL) FROM tags "
                "WHERE video_id = ? ORDER BY rank",
                (vid,),
            )
        ]
        segments = [
            {"start": a, "end": b, "label": label, "score": score}
            for a, b, label, score in self.conn.execute(
                "SELECT CAST(start AS REAL), CAST(end AS REAL), CAST(label AS TEXT), "
                "CAST(score AS REAL) FROM segments WHERE video_id = ? ORDER BY start",
                (vid,),
            )
        ]
        vector = _vector(feature)
        return VideoRecord(
            path,
            digest,
            size,
            mtime,
            model,
            duration,
            width,
            height,
            tags,
            segments,
            vector,
            error,
            vid,
        )

    # Read with the types vidclass wrote: a crafted file's text in a number column
    # becomes a number, never a crash further on.
    _COLUMNS = (
        "id, CAST(path AS TEXT), CAST(hash AS TEXT), CAST(size AS INTEGER), "
        "CAST(mtime AS REAL), CAST(model AS TEXT), CAST(duration AS REAL), "
        "CAST(width AS INTEGER), CAST(height AS INTEGER), feature, CAST(error AS TEXT)"
    )

    def by_path(self, path: str) -> VideoRecord | None:
        row = self.conn.execute(
            f"SELECT {self._COLUMNS} FROM videos WHERE path = ?", (path,)
        ).fetchone()
        return self._record(row) if row else None

    def by_hash(self, digest: str) -> list[VideoRecord]:
        rows = self.conn.execute(f"SELECT {self._COLUMNS} FROM videos WHERE hash = ?", (digest,))
        return [self._record(r) for r in rows.fetchall()]

    def paths(self) -> list[str]:
        rows = self.conn.execute("SELECT CAST(path AS TEXT) FROM videos ORDER BY path")
        return [r[0] for r in rows]

    def put(self, record: VideoRecord) -> None:
        """Insert or replace one video with its tags and segments, in one transaction."""
        feature = (
            np.asarray(record.feature, dtype=np.float32).tobytes()
            if record.feature is not None
            else None
        )
        with self.conn:
            self.conn.execute("DELETE FROM videos WHERE path = ?", (record.path,))
            cur = self.conn.execute(
                "INSERT INTO videos (path, hash, size, mtime, model, duration, width, height, "
                "feature, error, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.path,
                    record.hash,
                    record.size,
                    record.mtime,
                    record.model,
                    record.duration,
                    record.width,
                    record.height,
                    feature,
                    record.error,
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                ),
            )
            vid = cur.lastrowid
            self.conn.executemany(
                "INSERT INTO tags VALUES (?, ?, ?, ?)",
                [(vid, t["label"], t["score"], i) for i, t in enumerate(record.tags)],
            )
            self.conn.executemany(
                "INSERT INTO segments VALUES (?, ?, ?, ?, ?)",
                [(vid, s["start"], s["end"], s["label"], s["score"]) for s in record.segments],
            )
            for label in {t["label"] for t in record.tags} | {s["label"] for s in record.segments}:
                new = self.conn.execute("INSERT OR IGNORE INTO labels VALUES (?)", (label,))
                if new.rowcount:
                    self.conn.execute("INSERT INTO labels_fts (label) VALUES (?)", (label,))

    def move(self, old: str, new: str, mtime: float) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE videos SET path = ?, mtime = ? WHERE path = ?", (new, mtime, old)
            )

    def delete(self, path: str) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM videos WHERE path = ?", (path,))

    # -- search -----------------------------------------------------------------------
    def match_labels(self, query: str) -> list[str]:
        """Labels matching an FTS5 query, best match first."""
        try:
            rows = self.conn.execute(
                "SELECT label FROM labels_fts WHERE labels_fts MATCH ? ORDER BY rank", (query,)
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise VidclassError(f"cannot search for {query!r} ({exc})") from None
        return [r[0] for r in rows]

    def tagged(self, labels, min_score=0.0, min_duration=None, max_duration=None, limit=20):
        """Videos with any of `labels` as a tag, best tag score first."""
        if not labels:
            return []
        marks = ",".join("?" * len(labels))
        # The best `limit` rows of each label, read in index order, hold the `limit`
        # videos with the best scores overall (a video outranked within its best label
        # is outranked overall), so no query sorts every match.
        where, args = ["t.label = ?", "t.score >= ?"], [min_score]
        join = ""
        if min_duration is not None or max_duration is not None:
            join = "JOIN videos v ON v.id = t.video_id"
            if min_duration is not None:
                where.append("v.duration >= ?")
                args.append(min_duration)
            if max_duration is not None:
                where.append("v.duration <= ?")
                args.append(max_duration)
        best: dict[int, float] = {}
        for label in labels:
            for vid, score in self.conn.execute(
                "SELECT t.video_id, CAST(t.score AS REAL) "
                f"FROM tags t INDEXED BY tags_label {join} "
                f"WHERE {' AND '.join(where)} ORDER BY t.score DESC LIMIT ?",
                (label, *args, limit),
            ):
                best[vid] = max(best.get(vid, 0.0), score)
        top = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:limit]
        hits = []
        for vid, best in top:
            path, duration = self.conn.execute(
                "SELECT CAST(path AS TEXT), CAST(duration AS REAL) FROM videos WHERE id = ?", (vid,)
            ).fetchone()
            tags = [
                {"label": label, "score": score}
                for label, score in self.conn.execute(
                    # By video: with one label SQLite would otherwise walk that label's
                    # rows for every hit.
                    "SELECT CAST(label AS TEXT), CAST(score AS REAL) "
                    "FROM tags INDEXED BY tags_video WHERE video_id = ? "
                    f"AND label IN ({marks}) AND score >= ? ORDER BY score DESC",
                    (vid, *labels, min_score),
                )
            ]
            moments = [
                {"start": a, "end": b, "label": label, "score": score}
                for a, b, label, score in self.conn.execute(
                    "SELECT CAST(start AS REAL), CAST(end AS REAL), CAST(label AS TEXT), "
                    "CAST(score AS REAL) FROM segments WHERE video_id = ? "
                    f"AND label IN ({marks}) ORDER BY start",
                    (vid, *labels),
                )
            ]
            hits.append(Hit(path, best, duration, tags, moments))
        return hits

    def features(self) -> tuple[list[str], np.ndarray]:
        paths, vectors = [], []
        for path, blob in self.conn.execute(
            "SELECT CAST(path AS TEXT), feature FROM videos WHERE feature IS NOT NULL ORDER BY id"
        ):
            vector = _vector(blob)
            if vector is not None and (not vectors or len(vector) == len(vectors[0])):
                paths.append(path)
                vectors.append(vector)
        if not vectors:
            return [], np.zeros((0, 0), dtype=np.float32)
        return paths, np.stack(vectors)

    def tag_counts(self) -> list[tuple[str, int, float]]:
        """(label, videos, best score) for every tag, most common first."""
        return self.conn.execute(
            "SELECT CAST(label AS TEXT), COUNT(*), CAST(MAX(score) AS REAL) FROM tags "
            "GROUP BY label ORDER BY COUNT(*) DESC, label"
        ).fetchall()

    def records(self) -> list[VideoRecord]:
        rows = self.conn.execute(f"SELECT {self._COLUMNS} FROM videos ORDER BY path").fetchall()
        return [self._record(r) for r in rows]

    def version(self) -> int:
        """Changes when another connection commits: cached reads are then stale."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self.conn.close()
