"""Opening SQLite files vidclass writes (results, galleries) only once they are known
to be vidclass's own, so a user's database named by mistake is never changed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import StorageError, VidclassError
from .files import regular_file_size


def _layout(path: Path) -> dict[str, set[str]]:
    """{table: columns} of an existing database, read without writing anything."""
    uri = path.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')} for t in tables}
    finally:
        conn.close()


def open_own_sqlite(
    path: str | os.PathLike, required: dict[str, set[str]], what: str, any_thread: bool = False
) -> sqlite3.Connection:
    """A connection to `path`: a new file, or one whose tables include `required`
    ({table: columns}); anything else is refused before a byte of it changes.
    `any_thread`: usable from any thread (the caller lets one use it at a time)."""
    path = Path(path)
    try:
        exists = path.exists() or path.is_symlink()
    except OSError as exc:
        raise VidclassError(f"{path}: cannot use it ({exc.strerror})") from None
    try:
        if exists and regular_file_size(path, what) > 0:
            found = _layout(path)
            missing = [t for t, cols in required.items() if not cols <= found.get(t, set())]
            if found and missing:
                raise VidclassError(
                    f"{path} is a database but not a {what} (no vidclass {missing[0]!r} "
                    "table); name another file"
                )
        return sqlite3.connect(path, check_same_thread=not any_thread)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not a usable {what} ({exc})") from None
