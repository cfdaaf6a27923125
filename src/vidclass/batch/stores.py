"""Result files that survive a killed run: each finished video is on disk before the next.

A rerun reads back which videos are done and appends only the rest, so nothing is lost
or written twice. JSONL and CSV are append-only (a line torn by a kill is cut off on
reopening); SQLite commits one transaction per video. A store holds the file's writer
lock (writer_lock) while it is open: a second run on the same file is refused.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Protocol

from ..errors import VidclassError
from ..files import open_regular, path_error
from ..formats import check_same_model, csv_header, csv_line, csv_row
from ..sqlite_files import open_own_sqlite
from .parquet_folder import ParquetFolder, is_folder_output
from .writer_lock import hold

log = logging.getLogger("vidclass")

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".sqlite": "sqlite",
    ".db": "sqlite",
}


class ResultStore(Protocol):
    """Where results go: `done` holds the videos already recorded, `write` adds one."""

    path: Path
    done: set[str]

    def write(self, record: dict) -> None: ...

    def close(self) -> None: ...


def output_format(path: str | os.PathLike) -> str:
    """The results format `path` names (jsonl, csv, sqlite; parquet for a folder: a
    name ending with a slash, or a folder already); an error if it cannot be one."""
    if is_folder_output(path):
        path = Path(path)
        if not path.parent.is_dir():
            raise VidclassError(f"{path.parent}: no such folder for the results folder")
        return "parquet"
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise VidclassError(
            f"{path}: unknown results format; name the file with one of {known}, "
            "or a folder (ending with /) for Parquet parts"
        )
    try:
        if not path.parent.is_dir():
            raise VidclassError(f"{path.parent}: no such folder for the results")
    except (OSError, ValueError) as exc:
        raise path_error(path, exc) from None
    return kind


def open_store(path: str | os.PathLike, model: str, top_k: int) -> ResultStore:
    """The store for `path` by its extension, resumed if it exists."""
    kind = output_format(path)  # before Path() drops a folder's trailing slash
    path = Path(path)
    stores = {"jsonl": JsonlStore, "csv": CsvStore, "sqlite": SqliteStore}
    store = stores.get(kind, ParquetFolder)
    return store(path, model, top_k)


def log_format(path: str | os.PathLike) -> str:
    """jsonl or csv: the formats results that come as a stream (live windows) go to."""
    kind = output_format(path)
    if kind not in ("jsonl", "csv"):
        raise VidclassError(f"{path}: live results go to a .jsonl or .csv file")
    return kind


def open_log(path: str | os.PathLike, model: str, top_k: int, extra: tuple[str, ...]):
    """An append-only JSONL or CSV file for results that come as a stream (live
    windows): rows carry the `extra` columns, and a row per window, not per video."""
    if log_format(path) == "jsonl":
        return JsonlStore(Path(path), model, top_k)
    return CsvStore(Path(path), model, top_k, extra)


def _read(path: Path) -> bytes:
    """The bytes of a results file (a regular file only)."""
    with os.fdopen(open_regular(path, os.O_RDONLY, "results file"), "rb") as f:
        return f.read()


def _read_back(path: Path, looks_ours) -> tuple[list[bytes], bytes]:
    """(complete lines, torn tail) of a results file; reads a regular file only, and
    changes nothing: the caller cuts the tail once the lines are known to be ours."""
    lines = _read(path).split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail and not looks_ours(tail, lines):
        raise VidclassError(f"{path}: not a vidclass results file; write to another file")
    return lines, tail


def csv_records_end(data: bytes) -> int:
    """Where the last complete CSV record of `data` ends (after its newline; 0: none).

    A newline ends a record only outside quotes: a video's name may hold one, quoted. A
    row is written in one write and ends with its newline, so what follows the last
    record's end is a row torn by a kill, even one torn just after a newline in a name.
    A newline is outside quotes where an even number of quotes come before it (quotes
    inside a quoted field are doubled)."""
    end, quotes = len(data), data.count(b'"')
    while (newline := data.rfind(b"\n", 0, end)) >= 0:
        quotes -= data.count(b'"', newline, end)
        if quotes % 2 == 0:
            return newline + 1
        end = newline
    return 0


def _utf8(text: str) -> bool:
    """Whether `text` can be written as UTF-8: a file name that is not (its bytes on
    disk are not UTF-8) holds lone surrogates (\\udcXX), as Python decodes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cut_tail(path: Path, tail: bytes) -> None:
    """Drop a last line without its newline (the run was killed while writing it)."""
    if tail:
        with os.fdopen(open_regular(path, os.O_WRONLY, "results file"), "wb") as f:
            f.truncate(path.stat().st_size - len(tail))
        log.warning(f"{path}: dropped an unfinished last line left by an interrupted run")


class _AppendFile:
    """A file written by appending whole lines; `_lock` is held from `__init__`'s start
    (before anything is read) to `close`."""

    _file = None
    _lock = None

    def __init__(self, path: Path):
        self._lock = hold(path)
        try:
            self._read()
            self._open_append()
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        """Read back what is done (the lock is held), and cut a torn last line."""

    def _open_append(self) -> None:
        fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "results file")
        # A name that is not UTF-8 goes as its own bytes (CSV) and is read back the same
        self._file = os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape", newline="")

    def _append(self, text: str) -> None:
        self._file.write(text)  # one line, one write: a kill leaves whole lines or a torn last
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
        finally:
            if self._lock is not None:
                self._lock.close()  # after the last write is on disk


class JsonlStore(_AppendFile):
    """One JSON object per line: {"video", "model", "predictions"} or {..., "error"}."""

    START = b'{"video": '  # how every line this store writes begins

    def __init__(self, path: Path, model: str, top_k: int):
        self.path, self.model, self.done = path, model, set()
        super().__init__(path)

    def _read(self) -> None:
        path, model = self.path, self.model
        if path.exists():
            lines, tail = _read_back(path, lambda tail, _: tail.startswith(self.START[: len(tail)]))
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    video, found = record["video"], record["model"]
                    if not isinstance(video, str) or not isinstance(found, str):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    raise VidclassError(
                        f"{path}:{n}: not a vidclass result line; write to another file"
                    ) from None
                check_same_model(path, found, model)
                self.done.add(video)
            _cut_tail(path, tail)

    def write(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, allow_nan=False)
        if not _utf8(line):  # a name that is not UTF-8: \udcXX escapes, read back the same
            line = json.dumps(record, allow_nan=False)
        self._append(line + "\n")
        self.done.add(record["video"])


class CsvStore(_AppendFile):
    """One row per video: video, model, error, the `extra` columns, ood_score and
    unknown, then label_i/score_i for the top k. A file begun by a vidclass without the
    unknown columns goes on in its own columns."""

    def __init__(self, path: Path, model: str, top_k: int, extra: tuple[str, ...] = ()):
        self.path, self.model, self.done = path, model, set()
        self.top_k, self.extra = top_k, extra
        self.unknown = True
        self.header = csv_header(top_k, extra)
        self.fresh = True
        super().__init__(path)

    def _read(self) -> None:
        path = self.path
        header = csv_line(self.header).encode()
        data = _read(path) if path.exists() else b""
        if not data:
            return
        first = data.find(b"\n") + 1  # the end of the first line (0: none)
        if not first and header.startswith(data):  # torn in the header itself
            _cut_tail(path, data)
            return
        earlier = csv_header(self.top_k, self.extra, unknown=False)
        if data[:first] == csv_line(earlier).encode():
            self.header, self.unknown, header = earlier, False, data[:first]
        if data[:first] != header:
            if first and data.endswith(b"\n"):
                raise VidclassError(
                    f"{path} has other columns (another --top-k, or not vidclass results); "
                    "write to another file"
                )
            raise VidclassError(f"{path}: not a vidclass results file; write to another file")
        end = max(len(header), csv_records_end(data))
        records, tail = data[len(header) : end], data[end:]
        try:
            text = records.decode("utf-8", "surrogateescape")  # as written
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise VidclassError(f"{path}: not a vidclass results file ({exc})") from None
        for row in rows:
            if len(row) != len(self.header):
                raise VidclassError(f"{path}: a row of other columns; write to another file")
            check_same_model(path, row[1], self.model)
            self.done.add(row[0])
        _cut_tail(path, tail)
        self.fresh = False

    def _open_append(self) -> None:
        super()._open_append()
        if self.fresh:
            self._append(csv_line(self.header))

    def write(self, record: dict) -> None:
        self._append(csv_line(csv_row(record, self.top_k, self.extra, self.unknown)))
        self.done.add(record["video"])


def _stored_name(name: str) -> str | bytes:
    """A video's (or model folder's) name as SQLite keeps it: text, or where the name is
    not UTF-8 its bytes (a BLOB), so that it reads back as the same name."""
    return name if _utf8(name) else os.fsencode(name)


def _name(stored: str | bytes) -> str:
    return os.fsdecode(stored) if isinstance(stored, bytes) else stored


def _readable(text: str | None) -> str | None:
    """Text for people (an error naming a video): bytes that are not UTF-8 as \\xNN."""
    if text is None or _utf8(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class SqliteStore:
    """Table `results`: one row per video, committed on its own; WAL so readers can
    watch a run in progress."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS results (
            video TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            label TEXT,           -- top-1 label, for queries
            score REAL,
            predictions TEXT,     -- JSON list of {"label", "score"}, best first
            error TEXT,
            finished_at TEXT NOT NULL,
            ood_score REAL,       -- how far outside what the model knows
            unknown INTEGER       -- 1: past the model's threshold (NULL: it has none)
        )"""

    EARLIER = {"video", "model", "label", "score", "predictions", "error", "finished_at"}

    conn = None

    def __init__(self, path: Path, model: str, top_k: int):
        self.path, self.model = path, model
        # SQLite's own locks are per transaction: this one keeps a second run out for good
        self._lock = hold(path)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        path = self.path
        # a file begun by an earlier vidclass has the EARLIER columns; the rest are added
        self.conn = open_own_sqlite(path, {"results": self.EARLIER}, "vidclass results file")
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            with self.conn:
                self.conn.execute(self.SCHEMA)
                have = {row[1] for row in self.conn.execute("PRAGMA table_info(results)")}
                if "ood_score" not in have:  # begun by an earlier vidclass: known ours now
                    self.conn.execute("ALTER TABLE results ADD COLUMN ood_score REAL")
                    self.conn.execute("ALTER TABLE results ADD COLUMN unknown INTEGER")
            models = [_name(m) for (m,) in self.conn.execute("SELECT DISTINCT model FROM results")]
            self.done = {_name(v) for (v,) in self.conn.execute("SELECT video FROM results")}
        except sqlite3.DatabaseError as exc:
            raise VidclassError(f"{path}: not a usable SQLite results file ({exc})") from None
        for found in models:
            check_same_model(path, found, self.model)

    def write(self, record: dict) -> None:
        preds = record.get("predictions")
        top = preds[0] if preds else {"label": None, "score": None}
        with self.conn:  # one transaction per video
            self.conn.execute(
                "INSERT INTO results (video, model, label, score, predictions, error, "
                "finished_at, ood_score, unknown) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _stored_name(record["video"]),
                    _stored_name(record["model"]),
                    top["label"],
                    top["score"],
                    json.dumps(preds) if preds is not None else None,
                    _readable(record.get("error")),
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    record.get("ood_score"),
                    record.get("unknown"),
                ),
            )
        self.done.add(record["video"])

    def close(self) -> None:
        try:
            if self.conn is not None:
                self.conn.close()
        finally:
            self._lock.close()
