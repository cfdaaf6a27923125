"""The SQLite schema of a gallery database, and what an existing file must hold to be
taken as one."""

from __future__ import annotations

import sqlite3

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
    indexed_at TEXT NOT NULL,
    tags_from TEXT,
    ood_score REAL,
    unknown INTEGER
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
CREATE INDEX IF NOT EXISTS segments_label ON segments(label, score DESC);
CREATE TABLE IF NOT EXISTS labels (label TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS embedded (
    path TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    model TEXT NOT NULL,
    duration REAL,
    vector BLOB,
    error TEXT,
    indexed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS embedded_hash ON embedded(hash);
-- AUTOINCREMENT: a deleted moment's id is never reused, so a nearest-neighbour index
-- built earlier never names another moment by it.
CREATE TABLE IF NOT EXISTS moments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL REFERENCES embedded(path) ON DELETE CASCADE ON UPDATE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS moments_path ON moments(path);
-- A picture per content hash: copies share it, a moved file keeps it, and it goes when
-- the last video of that content does (the triggers).
CREATE TABLE IF NOT EXISTS thumbnails (
    hash TEXT PRIMARY KEY,
    jpeg BLOB NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS videos_thumbnail AFTER DELETE ON videos BEGIN
    DELETE FROM thumbnails WHERE hash = OLD.hash
        AND NOT EXISTS (SELECT 1 FROM videos WHERE hash = OLD.hash)
        AND NOT EXISTS (SELECT 1 FROM embedded WHERE hash = OLD.hash);
END;
CREATE TRIGGER IF NOT EXISTS embedded_thumbnail AFTER DELETE ON embedded BEGIN
    DELETE FROM thumbnails WHERE hash = OLD.hash
        AND NOT EXISTS (SELECT 1 FROM videos WHERE hash = OLD.hash)
        AND NOT EXISTS (SELECT 1 FROM embedded WHERE hash = OLD.hash);
END;
CREATE VIRTUAL TABLE IF NOT EXISTS labels_fts
    USING fts5(label, tokenize='porter unicode61', prefix='2 3 4');
"""

# What an existing file must hold to be taken as a gallery (and then written to).
REQUIRED = {
    "meta": {"key", "value"},
    "videos": {"id", "path", "hash", "size", "mtime", "model", "feature", "error"},
    "tags": {"video_id", "label", "score", "rank"},
}


def create_or_upgrade(conn: sqlite3.Connection) -> None:
    """The tables a gallery needs, made where missing, and columns added since (in one
    transaction)."""
    with conn:
        conn.executescript(SCHEMA)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(videos)")}
        if "tags_from" not in columns:  # a gallery made before tags said their source
            conn.execute("ALTER TABLE videos ADD COLUMN tags_from TEXT")
        if "ood_score" not in columns:  # made before videos had unknown answers
            conn.execute("ALTER TABLE videos ADD COLUMN ood_score REAL")
            conn.execute("ALTER TABLE videos ADD COLUMN unknown INTEGER")
