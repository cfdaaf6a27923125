"""A searchable gallery of classified videos (SQLite with FTS5, vectors in NumPy)."""

from .gallery import DEFAULT_DB, Gallery
from .indexing import IndexSummary
from .records import GalleryStore, Hit, VideoRecord
from .search import SYNONYMS, fts_query
from .store import SqliteGalleryStore

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
