"""Where a gallery lives: SQLite (FTS5 for labels, WAL), behind the `GalleryStore`
interface (records.py) that everything else goes through, so that a server database
could replace SQLite without touching indexing or search.

Here: opening the file, its meta values, and the classified videos (tags, timeline
segments, features) with the tag search over them; the embedded videos and moments of
vision-language models are embedded_store.py's, pages and thumbnails browse_store.py's.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from pathlib import Path

import numpy as np

from ..errors import StorageError, VidclassError
from ..sqlite_files import open_own_sqlite
from .browse_store import BrowseTables
from .embedded_store import EmbeddedTables, stored_vector
from .records import Hit, VideoRecord
from .schema import REQUIRED, create_or_upgrade


def _database_errors_as_user_errors(cls):
    """Every public method of `cls`, its bases' too, turns SQLite's errors (a damaged or
    locked file, a page that no longer parses) into a StorageError naming the database."""

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

    public = {}
    for klass in reversed(cls.__mro__[:-1]):  # a subclass's own methods win
        public.update(
            (name, member)
            for name, member in vars(klass).items()
            if callable(member) and not name.startswith("_")
        )
    for name, member in public.items():
        setattr(cls, name, guard(member))
    return cls


@_database_errors_as_user_errors
class SqliteGalleryStore(EmbeddedTables, BrowseTables):
    """A gallery in one SQLite file: WAL, one transaction per video."""

    def __init__(self, path: str | Path, any_thread: bool = False):
        """`any_thread`: the connection may be used from any thread, one at a time (a
        server's shared gallery)."""
        self.path = Path(path)
        try:
            parent_ok = self.path.parent.is_dir()
        except OSError:
            parent_ok = False
        if not parent_ok:
            raise VidclassError(f"{self.path.parent}: no such folder for the gallery")
        self.conn = open_own_sqlite(self.path, REQUIRED, "vidclass gallery", any_thread)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            create_or_upgrade(self.conn)
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
        vid, path, digest, size, mtime, model, duration, width, height = row[:9]
        feature, error, tags_from, ood_score, unknown = row[9:]
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
        vector = stored_vector(feature)
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
            tags_from,
            ood_score,
            None if unknown is None else bool(unknown),
        )

    # Read with the types vidclass wrote: a crafted file's text in a number column
    # becomes a number, never a crash further on.
    _COLUMNS = (
        "id, CAST(path AS TEXT), CAST(hash AS TEXT), CAST(size AS INTEGER), "
        "CAST(mtime AS REAL), CAST(model AS TEXT), CAST(duration AS REAL), "
        "CAST(width AS INTEGER), CAST(height AS INTEGER), feature, CAST(error AS TEXT), "
        "CAST(tags_from AS TEXT), CAST(ood_score AS REAL), CAST(unknown AS INTEGER)"
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
        rows = self.conn.execute(
            "SELECT CAST(path AS TEXT) FROM videos UNION SELECT CAST(path AS TEXT) FROM embedded "
            "ORDER BY 1"
        )
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
                "feature, error, indexed_at, tags_from, ood_score, unknown) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    record.tags_from,
                    record.ood_score,
                    record.unknown,
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
            self.conn.execute("DELETE FROM embedded WHERE path = ?", (path,))

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

    def tagged(
        self,
        labels,
        min_score=0.0,
        min_duration=None,
        max_duration=None,
        limit=20,
        known_only=False,
    ):
        """Videos with any of `labels` as a tag of the whole video or as the label of a
        stretch of its timeline (a stored segment), best score first; `known_only`:
        not videos answered unknown."""
        if not labels:
            return []
        marks = ",".join("?" * len(labels))
        # The best `limit` rows of each label, read in index order, hold the `limit`
        # videos with the best scores overall (a video outranked within its best label
        # is outranked overall), so no query sorts every match.
        best: dict[int, float] = {}
        for table, index in (("tags", "tags_label"), ("segments", "segments_label")):
            where, args = ["t.label = ?", "t.score >= ?"], [min_score]
            join = ""
            if min_duration is not None or max_duration is not None or known_only:
                join = "JOIN videos v ON v.id = t.video_id"
                if known_only:
                    where.append("v.unknown IS NOT 1")
                if min_duration is not None:
                    where.append("v.duration >= ?")
                    args.append(min_duration)
                if max_duration is not None:
                    where.append("v.duration <= ?")
                    args.append(max_duration)
            for label in labels:
                for vid, score in self.conn.execute(
                    "SELECT t.video_id, CAST(t.score AS REAL) "
                    f"FROM {table} t INDEXED BY {index} {join} "
                    f"WHERE {' AND '.join(where)} ORDER BY t.score DESC LIMIT ?",
                    (label, *args, limit),
                ):
                    best[vid] = max(best.get(vid, 0.0), score)
        top = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:limit]
        hits = []
        for vid, best in top:
            path, duration, tags_from, unknown = self.conn.execute(
                "SELECT CAST(path AS TEXT), CAST(duration AS REAL), CAST(tags_from AS TEXT), "
                "CAST(unknown AS INTEGER) FROM videos WHERE id = ?",
                (vid,),
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
                {"start": a, "end": b, "label": label, "score": score, "source": "timeline"}
                for a, b, label, score in self.conn.execute(
                    "SELECT CAST(start AS REAL), CAST(end AS REAL), CAST(label AS TEXT), "
                    "CAST(score AS REAL) FROM segments INDEXED BY segments_video "
                    f"WHERE video_id = ? AND label IN ({marks}) AND score >= ? ORDER BY start",
                    (vid, *labels, min_score),
                )
            ]
            unknown = None if unknown is None else bool(unknown)
            hits.append(Hit(path, best, duration, tags, moments, tags_from, unknown))
        return hits

    def features(self) -> tuple[list[str], np.ndarray]:
        paths, vectors = [], []
        for path, blob in self.conn.execute(
            "SELECT CAST(path AS TEXT), feature FROM videos WHERE feature IS NOT NULL ORDER BY id"
        ):
            vector = stored_vector(blob)
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
        """Changes when any connection, this one too, commits: cached reads are then
        stale (data_version counts the others' commits, total_changes this one's)."""
        others = self.conn.execute("PRAGMA data_version").fetchone()[0]
        return (others << 32) | (self.conn.total_changes & 0xFFFFFFFF)

    def close(self) -> None:
        self.conn.close()
