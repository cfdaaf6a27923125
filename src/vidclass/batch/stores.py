"""Result files that survive a killed run: each finished video is on disk before the next.

A rerun reads back which videos are done and appends only the rest, so nothing is lost
or written twice. JSONL and CSV are append-only (a line torn by a kill is cut off on
reopening); SQLite commits one transaction per video.
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
    """The results format `path` names (jsonl, csv, sqlite); an error if it cannot be one."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise VidclassError(f"{path}: unknown results format; name the file with one of {known}")
    if path.is_dir():
        raise VidclassError(f"{path} is a folder; --output needs a file")
    if not path.parent.is_dir():
        raise VidclassError(f"{path.parent}: no such folder for the results")
    return kind


def open_store(path: str | os.PathLike, model: str, top_k: int) -> ResultStore:
    """The store for `path` by its extension, resumed if it exists."""
    path = Path(path)
    kind = output_format(path)
    store = {"jsonl": JsonlStore, "csv": CsvStore, "sqlite": SqliteStore}[kind]
    return store(path, model, top_k)


def _check_model(path: Path, found: str, model: str) -> None:
    if found != model:
        raise VidclassError(
            f"{path} holds results of model {found!r}; resume it with --model {found} "
            "or write to another file"
        )


def _cut_torn_tail(path: Path) -> bytes:
    """The file's complete lines; a last line without its newline (the run was killed
    while writing it) is cut off the file."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
        log.warning(f"{path}: dropped an unfinished last line left by an interrupted run")
    return data[:end]


class _AppendFile:
    def _open_append(self) -> None:
        self._file = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 (held open)

    def _append(self, text: str) -> None:
        self._file.write(text)  # one line, one write: a kill leaves whole lines or a torn last
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class JsonlStore(_AppendFile):
    """One JSON object per line: {"video", "model", "predictions"} or {..., "error"}."""

    def __init__(self, path: Path, model: str, top_k: int):
        self.path, self.model, self.done = path, model, set()
        if path.exists():
            for n, line in enumerate(_cut_torn_tail(path).splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    video, found = record["video"], record["model"]
                except (ValueError, KeyError, TypeError):
                    raise VidclassError(
                        f"{path}:{n}: not a vidclass result line; write to another file"
                    ) from None
                _check_model(path, found, model)
                self.done.add(video)
        self._open_append()

    def write(self, record: dict) -> None:
        self._append(json.dumps(record, ensure_ascii=False) + "\n")
        self.done.add(record["video"])


class CsvStore(_AppendFile):
    """One row per video: video, model, error, then label_i/score_i for the top k."""

    def __init__(self, path: Path, model: str, top_k: int):
        self.path, self.model, self.done = path, model, set()
        self.header = ["video", "model", "error"]
        for i in range(1, top_k + 1):
            self.header += [f"label_{i}", f"score_{i}"]
        fresh = not path.exists() or path.stat().st_size == 0
        if not fresh:
            rows = list(csv.reader(io.StringIO(_cut_torn_tail(path).decode("utf-8"))))
            if rows and rows[0] != self.header:
                raise VidclassError(
                    f"{path} has other columns (another --top-k, or not vidclass results); "
                    "write to another file"
                )
            for row in rows[1:]:
                _check_model(path, row[1], model)
                self.done.add(row[0])
            fresh = not rows
        self._open_append()
        if fresh:
            self._append(self._line(self.header))

    @staticmethod
    def _line(row: list) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        return buf.getvalue()

    def write(self, record: dict) -> None:
        row = [record["video"], record["model"], record.get("error", "")]
        for p in record.get("predictions") or []:
            row += [p["label"], f"{p['score']:.6f}"]
        row += [""] * (len(self.header) - len(row))
        self._append(self._line(row))
        self.done.add(record["video"])


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
            finished_at TEXT NOT NULL
        )"""

    def __init__(self, path: Path, model: str, top_k: int):
        self.path, self.model = path, model
        try:
            self.conn = sqlite3.connect(path)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            with self.conn:
                self.conn.execute(self.SCHEMA)
            models = [r[0] for r in self.conn.execute("SELECT DISTINCT model FROM results")]
            self.done = {r[0] for r in self.conn.execute("SELECT video FROM results")}
        except sqlite3.DatabaseError as exc:
            raise VidclassError(f"{path}: not a usable SQLite results file ({exc})") from None
        for found in models:
            _check_model(path, found, model)

    def write(self, record: dict) -> None:
        preds = record.get("predictions")
        top = preds[0] if preds else {"label": None, "score": None}
        with self.conn:  # one transaction per video
            self.conn.execute(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record["video"],
                    record["model"],
                    top["label"],
                    top["score"],
                    json.dumps(preds) if preds is not None else None,
                    record.get("error"),
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                ),
            )
        self.done.add(record["video"])

    def close(self) -> None:
        self.conn.close()
