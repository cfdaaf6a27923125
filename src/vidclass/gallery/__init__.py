"""A searchable gallery of classified videos (SQLite with FTS5, vectors in NumPy)."""

from .gallery import DEFAULT_DB, SYNONYMS, Gallery, IndexSummary, fts_query
from .store import GalleryStore, Hit, SqliteGalleryStore, VideoRecord

__all__ = [
    "DEFAULT_DB",
    "SYNONYMS",
    "Gallery",
    "GalleryStore",
    "Hit",
    "IndexSummary",
    "SqliteGalleryStore",
    "VideoRecord",
    "fts_query",
]
