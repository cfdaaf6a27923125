"""The nearest moments to a query vector: exact below EXACT_BELOW moments, else a
usearch HNSW index in a file beside the database (chosen by benchmarks/search.py: at
1M moments 0.46 ms a query, recall@10 1.000, 1.2 GB).

SQLite stays the truth. The index file is derived from it: an index run brings it up
to date and replaces it atomically; a search adds, by exact search, the moments stored
since (ids above the one the file was saved at) and drops ids no longer stored. A
missing or unreadable file only makes search exact, never wrong.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import VidclassError
from ..files import written_whole

log = logging.getLogger("vidclass")

EXACT_BELOW = 100_000  # exact search here: 8.8 ms at 100k moments, 195 MB (benchmark)
SAVED_AT = "moments_index_saved_at"  # meta: the highest moment id in the file
INSTALL_HINT = "pip install 'vidclass[search]'"


def _normalised(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _usearch():
    try:
        from usearch.index import Index
    except ImportError:
        return None
    return Index


class MomentIndex:
    """Search over a gallery store's moment vectors."""

    def __init__(self, store, db_path: str, exact_below: int = EXACT_BELOW):
        self.store = store
        self.path = Path(str(db_path) + ".moments.usearch")
        self.exact_below = exact_below
        self._exact: tuple[int, np.ndarray, np.ndarray] | None = None  # version, ids, vectors
        self._ann = None
        self._ann_stamp: tuple | None = None
        self._warned = False
        self._counted: tuple[int, int] | None = None  # version, moments

    # -- reading ------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` stored moments most similar to `query` (cosine): [(id, similarity)],
        best first, every id one that is stored now."""
        query = np.asarray(query, dtype=np.float32)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        index = self._open() if self._count() >= self.exact_below else None
        if index is None:
            ids, vectors = self._all()
            return _top(ids, vectors, query, k)
        if index.ndim != len(query):
            raise VidclassError("the query does not match the gallery's moment vectors")
        saved_at = int(self.store.get_meta(SAVED_AT) or 0)
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

    def _open(self):
        """The index file, memory-mapped, or None (search is then exact)."""
        Index = _usearch()
        try:
            stat = self.path.stat()
        except OSError:
            stat = None
        if Index is None or stat is None:
            if not self._warned:
                why = INSTALL_HINT if Index is None else "run `vidclass index` to build it"
                log.warning(f"{self.path.name}: no moment index, so search is exact ({why})")
                self._warned = True
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._ann_stamp != stamp:
            try:
                self._ann = Index.restore(str(self.path), view=True)
            except Exception as exc:  # damaged or foreign: exact search still answers
                log.warning(f"{self.path}: unreadable moment index ({exc}); searching exactly")
                self._ann = None
            self._ann_stamp = stamp
        return self._ann

    # -- writing (an index run, holding the gallery's lock) ----------------------------
    def refresh(self) -> str:
        """Bring the index file up to date with the stored moments; says what it did."""
        count = self.store.moment_count()
        if count < self.exact_below:
            if self.path.exists():
                self.path.unlink()
            return f"{count} moments: exact search"
        Index = _usearch()
        if Index is None:
            raise VidclassError(
                f"{count} moments: searching them needs an approximate index ({INSTALL_HINT})"
            )
        index = None
        if self.path.exists():
            try:
                index = Index.restore(str(self.path))
            except Exception as exc:
                log.warning(f"{self.path}: unreadable ({exc}); building it again")
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
                raise VidclassError(f"{self.path}: moments of another model; remove the file")
            new = ~np.asarray(index.contains(ids), dtype=bool)
            if new.any():
                index.add(ids[new], vectors[new])
                added += int(new.sum())
            stored.append(ids)
        ids = np.concatenate(stored)
        gone = np.setdiff1d(np.asarray(index.keys, dtype=np.int64), ids)
        if len(gone):
            index.remove(gone)
        with written_whole(self.path) as partial:
            index.save(str(partial))
        self.store.set_meta(SAVED_AT, str(int(ids.max())))
        return f"{count} moments: index {self.path.name} (+{added}, -{len(gone)})"


def _top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int):
    if not len(ids) or vectors.shape[1] != len(query):
        return []
    sims = vectors @ query
    take = min(k, len(sims))
    best = np.argpartition(-sims, take - 1)[:take]
    order = best[np.argsort(-sims[best], kind="stable")]
    return [(int(ids[i]), float(sims[i])) for i in order]
