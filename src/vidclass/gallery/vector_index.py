"""The nearest moments to a query vector: exact below EXACT_BELOW moments, else a
usearch HNSW index in a file beside the database (chosen by benchmarks/search.py: at
1M moments 0.46 ms a query, recall@10 1.000, 1.2 GB).

SQLite stays the truth. The index file is derived from it: an index run brings it up
to date and replaces it atomically; a search adds, by exact search, the moments stored
since (ids above the one the file was saved at) and drops ids no longer stored. A
missing or unreadable file only makes search exact, never wrong.

usearch trusts the file it maps: 4 KB of random bytes in one of 100,000 moments made
search die of SIGSEGV, and bytes flipped near its start made every score NaN. So the
file is checked before usearch ever opens it: a regular file (a FIFO would hang the
load) whose size and sha256 are those the gallery's meta table recorded when it was
saved (INDEX_FILE), and it is mapped from the very descriptor that was checked. One
that is not is a one-line warning and exact search, and the next index run builds it
again. sha256 reads at about 1.5 GB/s here: 0.8 s for the 1.2 GB of 1M moments, once
per file in a server (a CLI search pays it each run).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import VidclassError
from ..files import Damaged, file_sha256, open_regular, path_error, written_whole

log = logging.getLogger("vidclass")

EXACT_BELOW = 100_000  # exact search here: 8.8 ms at 100k moments, 195 MB (benchmark)
SAVED_AT = "moments_index_saved_at"  # meta: the highest moment id in the file (older readers)
# meta: [{"sha256", "size", "saved_at"}] of the index file as saved, newest first; while
# a save replaces the file the one before is listed too, so neither reads as damaged.
INDEX_FILE = "moments_index_file"
INSTALL_HINT = "pip install 'vidclass[search]'"


def _normalised(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _usearch():
    try:
        from usearch.index import Index
    except ImportError:
        return None
    return Index


def _recorded(value: str | None) -> list[dict]:
    """The saved files the meta value lists (none where it is missing or not as written)."""
    try:
        entries = json.loads(value) if value else []
        return [
            {"sha256": str(e["sha256"]), "size": int(e["size"]), "saved_at": int(e["saved_at"])}
            for e in entries
        ]
    except (ValueError, TypeError, KeyError, RecursionError):
        return []


class MomentIndex:
    """Search over a gallery store's moment vectors."""

    def __init__(self, store, db_path: str, exact_below: int | None = None):
        self.store = store
        self.path = Path(str(db_path) + ".moments.usearch")
        self.exact_below = EXACT_BELOW if exact_below is None else exact_below
        self._exact: tuple[int, np.ndarray, np.ndarray] | None = None  # version, ids, vectors
        self._ann = None
        self._ann_saved_at = 0
        self._ann_stamp: tuple | None = None
        self._warned = False
        self._counted: tuple[int, int] | None = None  # version, moments

    # -- reading ------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` stored moments most similar to `query` (cosine): [(id, similarity)],
        best first, every id one that is stored now."""
        query = np.asarray(query, dtype=np.float32)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        index = self._open(len(query)) if self._count() >= self.exact_below else None
        if index is None:
            ids, vectors = self._all()
            return _top(ids, vectors, query, k)
        saved_at = self._ann_saved_at
        want = min(len(index), k * 2 + 16)  # room for ids deleted since the file was saved
        index.expansion_search = max(64, want)
        found = index.search(query, want)
        hits = dict(zip(found.keys.tolist(), (1.0 - found.distances).tolist(), strict=True))
        for ids, vectors in self.store.moment_vectors(after=saved_at):  # stored since
            for key, sim in _top(ids, _normalised(vectors), query, k):
                hits[key] = sim
        alive = self.store.moments_by_id(list(hits))
        ranked = sorted(((s, key) for key, s in hits.items() if key in alive), reverse=True)
        return [(key, s) for s, key in ranked[:k]]

    def _count(self) -> int:
        """Stored moments, counted again only after the database changed (a count walks
        a whole index: not for every query of a server)."""
        version = self.store.version()
        if self._counted is None or self._counted[0] != version:
            self._counted = (version, self.store.moment_count())
        return self._counted[1]

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every moment (ids, normalised vectors), read again after the database changed."""
        version = self.store.version()
        if self._exact is None or self._exact[0] != version:
            parts = list(self.store.moment_vectors())
            if parts:
                ids = np.concatenate([p[0] for p in parts])
                vectors = _normalised(np.concatenate([p[1] for p in parts]))
            else:
                ids, vectors = np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
            self._exact = (version, ids, vectors)
        return self._exact[1], self._exact[2]

    def _open(self, ndim: int):
        """The index file, checked and memory-mapped, or None (search is then exact).
        Checked again whenever the file or what the gallery recorded of it changes."""
        Index = _usearch()
        missing = Index is None or not os.path.lexists(self.path)
        if missing:
            if not self._warned:
                why = INSTALL_HINT if Index is None else "run `vidclass index` to build it"
                log.warning(f"{self.path.name}: no moment index, so search is exact ({why})")
                self._warned = True
            return None
        try:
            st = os.stat(self.path)
            file = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
        except (OSError, ValueError):  # a dangling link, a loop: _load says which
            file = None
        recorded = self.store.get_meta(INDEX_FILE)
        stamp = (file, recorded, ndim)
        if self._ann_stamp != stamp:
            self._ann, self._ann_stamp = None, stamp
            try:
                index, saved_at = self._load(Index, recorded, view=True)
                if index.ndim != ndim:
                    raise Damaged(self.path, f"holds vectors of {index.ndim}, not {ndim}")
                self._ann, self._ann_saved_at = index, saved_at
            except Exception as exc:  # not as saved: exact search still answers
                log.warning(
                    f"{self.path}: unreadable moment index ({_why(exc)}); searching exactly "
                    "(`vidclass index` builds it again)"
                )
        return self._ann

    def _load(self, Index, recorded: str | None, view: bool):
        """(index, id it was saved at) from the file, where it is a regular file whose
        size and sha256 are as `recorded` (INDEX_FILE): Damaged otherwise. usearch maps
        or reads the very file that was checked (through /proc/self/fd), so a file
        swapped in since cannot slip past."""
        saved = _recorded(recorded)
        if not saved:
            raise Damaged(self.path, "the gallery has no record of it (saved by an older vidclass)")
        try:
            fd = open_regular(self.path, os.O_RDONLY, "moment index")
        except VidclassError as exc:
            raise Damaged(self.path, str(exc).removeprefix(f"{self.path}: ")) from None
        try:
            size = os.fstat(fd).st_size
            if all(e["size"] != size for e in saved):
                raise Damaged(self.path, f"{size} bytes, not the size it was saved with")
            digest, _ = file_sha256(fd)
            match = next((e for e in saved if (e["sha256"], e["size"]) == (digest, size)), None)
            if match is None:
                raise Damaged(self.path, "its sha256 differs from the one saved")
            same = f"/proc/self/fd/{fd}"
            index = Index.restore(same if os.path.exists(same) else str(self.path), view=view)
        finally:
            os.close(fd)
        if index is None:
            raise Damaged(self.path, "not a usearch index")
        return index, match["saved_at"]

    # -- writing (an index run, holding the gallery's lock) ----------------------------
    def needs_refresh(self) -> bool:
        """Whether an index run should build the file even with nothing new to add: search
        needs one (enough moments) and there is none as saved. Reads the whole file."""
        if self.store.moment_count() < self.exact_below:
            return os.path.lexists(self.path)
        Index = _usearch()
        if Index is None:
            return False
        try:
            self._load(Index, self.store.get_meta(INDEX_FILE), view=True)
        except Exception:
            return True
        return False

    def refresh(self) -> str:
        """Bring the index file up to date with the stored moments; says what it did.
        A file not as saved is built again from the moments."""
        count = self.store.moment_count()
        if count < max(self.exact_below, 1):
            if os.path.lexists(self.path):
                try:
                    self.path.unlink()
                except OSError as exc:  # a folder under its name: not used, left alone
                    log.debug(f"{self.path}: not removed ({exc})")
            self.store.set_meta(INDEX_FILE, "[]")
            return f"{count} moments: exact search"
        Index = _usearch()
        if Index is None:
            raise VidclassError(
                f"{count} moments: searching them needs an approximate index ({INSTALL_HINT})"
            )
        recorded = self.store.get_meta(INDEX_FILE)
        index = None
        ndim = next((v.shape[1] for _, v in self.store.moment_vectors(chunk=1)), None)
        if os.path.lexists(self.path):
            try:
                index, _ = self._load(Index, recorded, view=False)
                if index.ndim != ndim:
                    raise Damaged(self.path, f"holds vectors of {index.ndim}, not {ndim}")
            except Exception as exc:
                log.warning(
                    f"{self.path}: unreadable moment index ({_why(exc)}); building it again"
                )
                index = None
        stored: list[np.ndarray] = []
        added = 0
        for ids, vectors in self.store.moment_vectors():
            if index is None:
                index = Index(
                    ndim=vectors.shape[1],
                    metric="cos",
                    dtype="f16",
                    connectivity=16,
                    expansion_add=128,
                )
            if vectors.shape[1] != index.ndim:
                raise VidclassError(f"{self.path}: the gallery holds moments of two sizes")
            new = ~np.asarray(index.contains(ids), dtype=bool)
            if new.any():
                index.add(ids[new], vectors[new])
                added += int(new.sum())
            stored.append(ids)
        ids = np.concatenate(stored)
        gone = np.setdiff1d(np.asarray(index.keys, dtype=np.int64), ids)
        if len(gone):
            index.remove(gone)
        self._save(index, int(ids.max()), _recorded(recorded))
        return f"{count} moments: index {self.path.name} (+{added}, -{len(gone)})"

    def _save(self, index, saved_at: int, before: list[dict]) -> None:
        """Write the file whole and record its size and sha256 (and the id it was saved
        at): listed beside the file it replaces until it is in place."""
        try:
            with written_whole(self.path) as partial:
                index.save(str(partial))
                fd = os.open(partial, os.O_RDONLY)
                try:
                    digest, size = file_sha256(fd)
                finally:
                    os.close(fd)
                entry = {"sha256": digest, "size": size, "saved_at": saved_at}
                self.store.set_meta(INDEX_FILE, json.dumps([entry, *before[:1]]))
        except OSError as exc:
            raise VidclassError(
                f"cannot write the moment index: {path_error(self.path, exc)}"
            ) from None
        self.store.set_meta(INDEX_FILE, json.dumps([entry]))
        self.store.set_meta(SAVED_AT, str(saved_at))


def _why(exc: BaseException) -> str:
    if isinstance(exc, Damaged):
        return exc.why
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int):
    if not len(ids) or vectors.shape[1] != len(query):
        return []
    sims = vectors @ query
    take = min(k, len(sims))
    best = np.argpartition(-sims, take - 1)[:take]
    order = best[np.argsort(-sims[best], kind="stable")]
    return [(int(ids[i]), float(sims[i])) for i in order]
