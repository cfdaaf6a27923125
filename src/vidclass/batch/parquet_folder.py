"""`--output DIR/`: results as Parquet files written by the cluster's workers.

For runs too big for one writer. Each model actor writes the results of a batch as one
part file (the columns of the one CSV shape), under a temporary name that is renamed
once complete, so a kill leaves whole parts only. A part is named from the videos it
holds: a task that Ray runs again rewrites the same part. A rerun reads the videos
already in the parts and does the rest. The folder holds a marker file saying it is
vidclass's; a folder without one that holds anything is refused, never written into.
The run holds the folder's writer lock (writer_lock) while its workers write: a second
run into the same folder is refused, so none writes a video twice or removes the other's
parts being written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import VidclassError
from ..files import is_partial, open_regular, written_whole
from ..formats import check_same_model, csv_header, result_columns
from ..results import VideoResult
from .writer_lock import hold

log = logging.getLogger("vidclass")

# Named with a leading "_" so that pyarrow and pandas, which skip such files, read the
# folder as a dataset; folders written before kept it without (read, never renamed).
MARKER = "_vidclass-results.json"
OLD_MARKER = "vidclass-results.json"
PART_GLOB = "part-*.parquet"
MAX_MARKER_BYTES = 4096


def is_folder_output(path: str | os.PathLike) -> bool:
    """`--output` names a results folder: it ends with a slash or is a folder already."""
    text = os.fspath(path)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def _import_parquet():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise VidclassError(
            "a Parquet results folder needs pyarrow: pip install 'vidclass[ray]'"
        ) from None
    return pa, pq


def part_name(videos: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(videos)).encode("utf-8", "surrogatepass"))
    return f"part-{digest.hexdigest()[:32]}.parquet"


def _schema(top_k: int, unknown: bool):
    pa, _ = _import_parquet()
    kinds = {"ood_score": pa.float64(), "unknown": pa.bool_()}
    fields = []
    for name in csv_header(top_k, unknown=unknown):
        kind = pa.float64() if name.startswith("score_") else kinds.get(name, pa.string())
        fields.append((name, kind))
    return pa.schema(fields)


@dataclass(frozen=True)
class PartWriter:
    """Runs on a worker: writes one batch's results as one part file."""

    folder: str
    model: str
    top_k: int
    unknown: bool = True  # the ood_score and unknown columns (a folder begun before: not)

    def __call__(self, results: list[VideoResult]) -> None:
        if not results:
            return
        pa, pq = _import_parquet()
        rows = [
            result_columns({"model": self.model, **r.as_dict()}, self.top_k, (), self.unknown)
            for r in results
        ]
        table = pa.Table.from_pylist(rows, schema=_schema(self.top_k, self.unknown))
        final = Path(self.folder) / part_name([r.video for r in results])
        with written_whole(final, durable=True) as partial:
            pq.write_table(table, partial)


class ParquetFolder:
    """The store for a results folder: `done` from the parts already there; `write`
    only counts, since the workers wrote the rows (`sink`)."""

    _lock = None

    def __init__(self, path: str | os.PathLike, model: str, top_k: int):
        self.path = Path(path)
        self.model = model
        self.top_k = top_k
        self.unknown = True  # a folder begun without the unknown columns goes on without
        self.done: set[str] = set()
        _, pq = _import_parquet()
        try:
            self.path.mkdir(exist_ok=True)
            if not self.path.is_dir():
                raise VidclassError(f"{self.path}: not a folder")
        except OSError as exc:
            raise VidclassError(f"{self.path}: {exc.strerror or exc}") from None
        self._lock = hold(self.path, folder=True)  # before reading what is done
        try:
            self._read(pq)
        except BaseException:
            self.close()
            raise

    def _read(self, pq) -> None:
        try:
            marker = self.path / MARKER
            if not marker.exists() and (self.path / OLD_MARKER).exists():
                marker = self.path / OLD_MARKER
            if marker.exists():
                self._check_marker(marker)
            elif any(self.path.iterdir()):
                raise VidclassError(
                    f"{self.path}: a folder vidclass did not write (no {MARKER}); "
                    "name a new or empty folder for the results"
                )
            else:
                fd = open_regular(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "results marker")
                with os.fdopen(fd, "w") as f:
                    info = {
                        "vidclass": "results",
                        "model": self.model,
                        "top_k": self.top_k,
                        "unknown": True,
                    }
                    json.dump(info, f)
            for stale in self.path.glob(".part-*"):  # left by a killed worker
                if is_partial(stale):
                    stale.unlink()
            parts = sorted(self.path.glob(PART_GLOB))
        except OSError as exc:
            raise VidclassError(f"{self.path}: {exc.strerror or exc}") from None
        for part in parts:
            try:
                videos = pq.read_table(part, columns=["video"]).column("video").to_pylist()
            except Exception as exc:  # pyarrow raises several kinds for a damaged file
                raise VidclassError(
                    f"{part}: a damaged results part ({str(exc).splitlines()[0]}); "
                    "move it away to classify its videos again"
                ) from None
            self.done.update(v for v in videos if isinstance(v, str))

    def _check_marker(self, marker: Path) -> None:
        fd = open_regular(marker, os.O_RDONLY, "results marker")
        with os.fdopen(fd, "rb") as f:
            text = f.read(MAX_MARKER_BYTES + 1)
        try:
            info = json.loads(text) if len(text) <= MAX_MARKER_BYTES else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            info = None
        if not isinstance(info, dict) or info.get("vidclass") != "results":
            raise VidclassError(f"{marker}: not a vidclass results marker")
        check_same_model(self.path, info.get("model"), self.model)
        if info.get("top_k") != self.top_k:
            raise VidclassError(
                f"{self.path} holds the top {info.get('top_k')} labels; resume it with "
                f"--top-k {info.get('top_k')} or write to another folder"
            )
        self.unknown = info.get("unknown") is True

    def sink(self) -> PartWriter:
        return PartWriter(str(self.path.resolve()), self.model, self.top_k, self.unknown)

    def write(self, record: dict) -> None:
        self.done.add(record["video"])

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()


def read_folder(path: str | os.PathLike):
    """All the parts of a results folder as one pyarrow Table (for users and tests)."""
    pa, pq = _import_parquet()
    parts = sorted(Path(path).glob(PART_GLOB))
    if not parts:
        raise VidclassError(f"{path}: no results parts")
    return pa.concat_tables([pq.read_table(p) for p in parts])
