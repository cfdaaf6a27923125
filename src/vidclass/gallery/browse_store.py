"""The gallery's tables as a person browses them: pages of videos (all, or those with a
tag), and the thumbnails kept for them."""

from __future__ import annotations

import sqlite3

from .thumbnails import Thumbnail

MAX_THUMBNAIL_BYTES = 512 << 10  # a stored picture larger than this is not ours
JPEG_MAGIC = b"\xff\xd8\xff"
TAGS_SHOWN = 3  # a listed video's best tags
# What `thumbnail` serves, in SQL: a page says "thumbnail" only where one would be served.
_SERVABLE = "typeof(jpeg) = 'blob' AND length(jpeg) <= ?1 AND substr(jpeg, 1, 3) = x'ffd8ff'"

# A listed video's columns as vidclass wrote them (a crafted file's text in a number
# column becomes a number); the raw path first, to match the page's paths.
_VIDEO_COLUMNS = (
    "path, CAST(path AS TEXT), CAST(hash AS TEXT), CAST(duration AS REAL), "
    "CAST(width AS INTEGER), CAST(height AS INTEGER), CAST(unknown AS INTEGER), "
    "CAST(error AS TEXT), id"
)
_EMBEDDED_COLUMNS = (
    "path, CAST(path AS TEXT), CAST(hash AS TEXT), CAST(duration AS REAL), NULL, NULL, NULL, "
    "CAST(error AS TEXT), NULL"
)
# Every video of the gallery once (the classified ones, and those only embedded): what
# lacks a thumbnail is looked for here.
_LISTED = """
    SELECT CAST(path AS TEXT) AS path, CAST(hash AS TEXT) AS hash,
        CAST(duration AS REAL) AS duration, CAST(width AS INTEGER) AS width,
        CAST(height AS INTEGER) AS height, CAST(error AS TEXT) AS error
    FROM videos
    UNION ALL
    SELECT CAST(path AS TEXT), CAST(hash AS TEXT), CAST(duration AS REAL), NULL, NULL,
        CAST(error AS TEXT)
    FROM embedded e WHERE NOT EXISTS (SELECT 1 FROM videos v WHERE v.path = e.path)
"""


class BrowseTables:
    """The methods of GalleryStore that list videos and keep thumbnails, on the open
    connection `self.conn` of the SqliteGalleryStore they are part of."""

    conn: sqlite3.Connection

    # -- thumbnails -----------------------------------------------------------------------
    def put_thumbnail(self, digest: str, thumbnail: Thumbnail) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO thumbnails VALUES (?, ?, ?, ?)",
                (digest, thumbnail.jpeg, thumbnail.width, thumbnail.height),
            )

    def thumbnail(self, path: str) -> Thumbnail | None:
        """The stored picture of the video at `path`; None where it has none, or where
        what is stored is not a JPEG of a sane size (a damaged or crafted file)."""
        row = self.conn.execute(  # checked before it is read: a huge blob stays on disk
            f"SELECT CASE WHEN {_SERVABLE} THEN jpeg END, CAST(width AS INTEGER), "
            "CAST(height AS INTEGER) FROM thumbnails "
            "WHERE hash = (SELECT hash FROM videos WHERE path = ?2 "
            "UNION ALL SELECT hash FROM embedded WHERE path = ?2 LIMIT 1)",
            (MAX_THUMBNAIL_BYTES, path),
        ).fetchone()
        if row is None or not isinstance(row[0], bytes):
            return None
        jpeg, width, height = row
        return Thumbnail(jpeg, width or 0, height or 0)

    def without_thumbnails(self) -> list[tuple[str, str, float | None, int | None, int | None]]:
        """(path, hash, duration, width, height) of a video of each content indexed
        without an error that has no thumbnail (indexed before thumbnails were made, or their
        run stopped between the two)."""
        return self.conn.execute(  # one video of each content: copies share a picture
            "SELECT MIN(path), hash, duration, width, height "
            f"FROM ({_LISTED}) WHERE error IS NULL "
            "AND hash NOT IN (SELECT hash FROM thumbnails) GROUP BY hash ORDER BY 1"
        ).fetchall()

    # -- pages ----------------------------------------------------------------------------
    def has_tags(self) -> bool:
        return self.conn.execute("SELECT EXISTS (SELECT 1 FROM tags)").fetchone()[0] == 1

    def held(self, path: str) -> tuple[int | None, int | None] | None:
        """(width, height) where the gallery holds a video at `path` (sizes as stored,
        None where not known), else None."""
        return self.conn.execute(
            "SELECT CAST(width AS INTEGER), CAST(height AS INTEGER) FROM videos WHERE path = ?1 "
            "UNION ALL SELECT NULL, NULL FROM embedded WHERE path = ?1 LIMIT 1",
            (path,),
        ).fetchone()

    def listing(
        self, tag: str | None, known_only: bool, offset: int, limit: int
    ) -> tuple[int, list[dict]]:
        """(how many videos there are, the page of them from `offset`): with a `tag`,
        the videos with it, best score first; else every video, by path."""
        # The page's paths first, from the indexes alone (a video's row holds its feature
        # vector: reading every row would read them all), then their rows.
        if tag is None:
            keys = (
                "SELECT path FROM videos WHERE unknown IS NOT 1 UNION SELECT path FROM "
                "embedded WHERE path NOT IN (SELECT path FROM videos)"
                if known_only
                else "SELECT path FROM videos UNION SELECT path FROM embedded"
            )
            total = self.conn.execute(f"SELECT COUNT(*) FROM ({keys})").fetchone()[0]
            page = self.conn.execute(
                f"SELECT path, NULL FROM ({keys}) ORDER BY path LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        else:
            tagged = "FROM tags t JOIN videos v ON v.id = t.video_id WHERE t.label = ? " + (
                "AND v.unknown IS NOT 1" if known_only else ""
            )
            total = self.conn.execute(f"SELECT COUNT(*) {tagged}", (tag,)).fetchone()[0]
            page = self.conn.execute(
                f"SELECT v.path, CAST(t.score AS REAL) {tagged} "
                "ORDER BY t.score DESC, v.path LIMIT ? OFFSET ?",
                (tag, limit, offset),
            ).fetchall()
        rows = self._rows([p for p, _ in page])
        listed = [(*rows[p], score) for p, score in page if p in rows]
        tags = self._best_tags([r[7] for r in listed if r[7] is not None])
        pictured = self._pictured([r[1] for r in listed])
        return total, [
            {
                "video": path,
                "duration": duration,
                "width": width,
                "height": height,
                "tags": tags.get(vid, []),
                "tag_score": score,
                "unknown": None if unknown is None else bool(unknown),
                "error": error,
                "thumbnail": digest in pictured,
            }
            for path, digest, duration, width, height, unknown, error, vid, score in listed
        ]

    def _rows(self, paths: list) -> dict:
        """{path: (path, hash, duration, width, height, unknown, error, id)} of these
        paths: a classified video's row, else its embedded one."""
        if not paths:
            return {}
        marks = ",".join("?" * len(paths))
        found = {}
        for query in (
            f"SELECT {_EMBEDDED_COLUMNS} FROM embedded WHERE path IN ({marks})",
            f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE path IN ({marks})",
        ):
            for raw, *row in self.conn.execute(query, paths):
                found[raw] = tuple(row)  # the videos' rows, read last, win
        return found

    def _best_tags(self, ids: list[int]) -> dict[int, list[dict]]:
        best: dict[int, list[dict]] = {}
        if not ids:
            return best
        marks = ",".join("?" * len(ids))
        for vid, label, score in self.conn.execute(
            "SELECT video_id, CAST(label AS TEXT), CAST(score AS REAL) FROM tags "
            f"WHERE video_id IN ({marks}) AND rank < ? ORDER BY video_id, rank",
            (*ids, TAGS_SHOWN),
        ):
            best.setdefault(vid, []).append({"label": label, "score": score})
        return best

    def _pictured(self, digests: list[str]) -> set[str]:
        if not digests:
            return set()
        marks = ",".join("?" * len(digests))
        rows = self.conn.execute(
            f"SELECT hash FROM thumbnails WHERE {_SERVABLE} AND hash IN ({marks})",
            (MAX_THUMBNAIL_BYTES, *digests),
        )
        return {r[0] for r in rows}
