"""The vision-language side of a SQLite gallery: embedded videos and their moments
(the `embedded` and `moments` tables), and how a vector is kept as bytes. A mixin of
store.SqliteGalleryStore, which opens the file and guards every method."""

from __future__ import annotations

import sqlite3
import time

import numpy as np

from .records import EmbeddedVideo


def stored_vector(blob, dtype=np.float32) -> np.ndarray | None:
    """A stored vector as float32; anything but finite `dtype` bytes counts as none."""
    size = np.dtype(dtype).itemsize
    if not isinstance(blob, bytes) or not blob or len(blob) % size or len(blob) > 1 << 16:
        return None
    vector = np.frombuffer(blob, dtype=dtype).astype(np.float32)
    return vector if np.isfinite(vector).all() else None


def half_bytes(vector: np.ndarray) -> bytes:
    """Embeddings are stored as float16: half the space, and search recall is the same
    (benchmarks/search.py)."""
    return np.asarray(vector, dtype=np.float16).tobytes()


class EmbeddedTables:
    """The methods of GalleryStore that read and write embedded videos and moments, on
    the open connection `self.conn` of the SqliteGalleryStore they are part of."""

    conn: sqlite3.Connection

    _EMBEDDED = (
        "CAST(path AS TEXT), CAST(hash AS TEXT), CAST(size AS INTEGER), CAST(mtime AS REAL), "
        "CAST(model AS TEXT), CAST(duration AS REAL), vector, CAST(error AS TEXT)"
    )

    def _embedded(self, row) -> EmbeddedVideo:
        path, digest, size, mtime, model, duration, vector, error = row
        vector = stored_vector(vector, np.float16)
        return EmbeddedVideo(path, digest, size, mtime, model, duration, vector, error=error)

    def embedded_by_path(self, path: str) -> EmbeddedVideo | None:
        row = self.conn.execute(
            f"SELECT {self._EMBEDDED} FROM embedded WHERE path = ?", (path,)
        ).fetchone()
        return self._embedded(row) if row else None

    def embedded_by_hash(self, digest: str) -> list[EmbeddedVideo]:
        rows = self.conn.execute(f"SELECT {self._EMBEDDED} FROM embedded WHERE hash = ?", (digest,))
        return [self._embedded(r) for r in rows.fetchall()]

    def put_embedded(self, video: EmbeddedVideo) -> None:
        """Insert or replace one embedded video with its moments, in one transaction."""
        vector = half_bytes(video.vector) if video.vector is not None else None
        with self.conn:
            self.conn.execute("DELETE FROM embedded WHERE path = ?", (video.path,))
            self.conn.execute(
                "INSERT INTO embedded VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    video.path,
                    video.hash,
                    video.size,
                    video.mtime,
                    video.model,
                    video.duration,
                    vector,
                    video.error,
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                ),
            )
            self.conn.executemany(
                "INSERT INTO moments (path, start, end, vector) VALUES (?, ?, ?, ?)",
                [(video.path, a, b, half_bytes(v)) for a, b, v in video.moments],
            )

    def copy_embedded(self, source: str, path: str, mtime: float) -> None:
        """`path` is a copy of the embedded `source`: the same vectors under its name."""
        with self.conn:
            self.conn.execute("DELETE FROM embedded WHERE path = ?", (path,))
            self.conn.execute(
                "INSERT INTO embedded SELECT ?, hash, size, ?, model, duration, vector, error, "
                "indexed_at FROM embedded WHERE path = ?",
                (path, mtime, source),
            )
            self.conn.execute(
                "INSERT INTO moments (path, start, end, vector) "
                "SELECT ?, start, end, vector FROM moments WHERE path = ? ORDER BY id",
                (path, source),
            )

    def move_embedded(self, old: str, new: str, mtime: float) -> None:
        with self.conn:  # its moments follow (ON UPDATE CASCADE)
            self.conn.execute(
                "UPDATE embedded SET path = ?, mtime = ? WHERE path = ?", (new, mtime, old)
            )

    def moment_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM moments").fetchone()[0]

    def moment_vectors(self, after: int = 0, chunk: int = 50_000):
        """(ids, float32 vectors) of the moments with an id above `after`, in chunks of
        `chunk`, in id order; vectors of another length or not finite are left out."""
        last, dim = after, None
        while True:
            rows = self.conn.execute(
                "SELECT id, vector FROM moments WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            ids, vectors = [], []
            for key, blob in rows:
                vector = stored_vector(blob, np.float16)
                dim = dim or (len(vector) if vector is not None else None)
                if vector is not None and len(vector) == dim:
                    ids.append(key)
                    vectors.append(vector)
            if ids:
                yield np.array(ids, dtype=np.int64), np.stack(vectors)

    def moments_by_id(self, ids: list[int]) -> dict[int, tuple[str, float, float]]:
        """{id: (path, start, end)} of those of `ids` that exist."""
        found = {}
        for start in range(0, len(ids), 500):
            part = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(part))
            for key, path, a, b in self.conn.execute(
                "SELECT id, CAST(path AS TEXT), CAST(start AS REAL), CAST(end AS REAL) "
                f"FROM moments WHERE id IN ({marks})",
                part,
            ):
                found[key] = (path, a, b)
        return found

    def embedded_vectors(self) -> tuple[list[str], np.ndarray]:
        """(paths, float32 vectors) of the embedded videos, for `similar`."""
        paths, vectors = [], []
        for path, blob in self.conn.execute(
            "SELECT CAST(path AS TEXT), vector FROM embedded WHERE vector IS NOT NULL ORDER BY path"
        ):
            vector = stored_vector(blob, np.float16)
            if vector is not None and (not vectors or len(vector) == len(vectors[0])):
                paths.append(path)
                vectors.append(vector)
        if not vectors:
            return [], np.zeros((0, 0), dtype=np.float32)
        return paths, np.stack(vectors)
