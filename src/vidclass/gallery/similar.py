"""Videos like a given one: cosine similarity of the classifier's features, or of the
vision-language model's video embeddings."""

from __future__ import annotations

import os

import numpy as np

from ..errors import VidclassError
from .indexing import DEFAULT_MOMENT, MOMENT_SECONDS


class Vectors:
    """A gallery's normalised vectors (the classifier's features, or the vision-language
    video embeddings), read once and again after another process (an index run beside
    a server) changed the database."""

    def __init__(self):
        self._read: tuple[list[str], np.ndarray] | None = None
        self._version: tuple[int, bool] | None = None

    def matrix(self, store, embeddings: bool = False) -> tuple[list[str], np.ndarray]:
        version = (store.version(), embeddings)
        if self._read is None or self._version != version:
            paths, vectors = (store.embedded_vectors if embeddings else store.features)()
            norms = np.linalg.norm(vectors, axis=1, keepdims=True) if len(paths) else 1.0
            self._read = (paths, vectors / np.maximum(norms, 1e-12))
            self._version = version
        return self._read


def uses_embeddings(gallery, using: str) -> bool:
    return using == "embeddings" or (using == "auto" and bool(gallery.text_model_name))


def query_for(gallery, video, precision: str, model, device: str, using: str) -> np.ndarray:
    """What `video` is compared by: its stored vector where the gallery holds it, else
    its vector made as the gallery makes them (decoding it: Gallery.similar_query)."""
    embeddings = uses_embeddings(gallery, using)
    path = os.path.abspath(video)
    if embeddings:
        stored = gallery.store.embedded_by_path(path)
        query = stored.vector if stored is not None else None
    else:
        record = gallery.store.by_path(path)
        query = record.feature if record is not None else None
    if query is None:
        query = _query_vector(gallery, video, embeddings, model, precision, device)
    return query


def find_similar(
    gallery, video, limit: int, precision: str, model, device: str, using: str, query=None
) -> list[dict]:
    """Gallery.similar, which says what each argument means."""
    embeddings = uses_embeddings(gallery, using)
    paths, matrix = gallery.vectors.matrix(gallery.store, embeddings)
    if not paths:
        raise VidclassError(f"{gallery.path} has no indexed videos")
    path = os.path.abspath(video)
    if query is None:
        query = query_for(gallery, video, precision, model, device, using)
    if query.shape[0] != matrix.shape[1]:
        raise VidclassError("the query's features do not match the gallery's model")
    sims = matrix @ (query / max(np.linalg.norm(query), 1e-12))
    take = min(limit + 1, len(sims))  # one more: the query itself may be among them
    best = np.argpartition(-sims, take - 1)[:take]
    order = best[np.argsort(-sims[best], kind="stable")]
    out = []
    for i in order:
        if paths[i] == path:
            continue
        out.append({"video": paths[i], "similarity": float(sims[i])})
        if len(out) == limit:
            break
    return out


def moment_seconds(gallery) -> float:
    """The length of the gallery's moments, as stored (a damaged value: the default)."""
    try:
        seconds = float(gallery.store.get_meta(MOMENT_SECONDS) or DEFAULT_MOMENT)
    except ValueError:
        return DEFAULT_MOMENT
    return seconds if 0 < seconds < 3600 else DEFAULT_MOMENT


def query_model(gallery, using: str, model, precision: str, device: str):
    """("features" or "embeddings", the model a video outside the gallery is run
    through): `model` where it is the gallery's, else the gallery's own, loaded once."""
    if uses_embeddings(gallery, using):
        name = gallery.text_model_for(None)
        if model is None or model.name != name:
            model = gallery.load_text_model(None, precision, device)
        return "embeddings", model
    clf = gallery.load_model(None, precision, device) if model is None else model
    if clf.name != gallery.model_for(None):
        raise VidclassError(
            f"{gallery.path} is indexed with {gallery.model_for(None)!r}, not {clf.name!r}: "
            "its features cannot be compared"
        )
    return "features", clf


def _query_vector(gallery, video, embeddings: bool, model, precision: str, device: str):
    """A video outside the gallery as the gallery stores videos."""
    from ..engine import Windows, Work

    using, model = query_model(
        gallery, "embeddings" if embeddings else "features", model, precision, device
    )
    if using == "embeddings":
        moment = moment_seconds(gallery)
        work = Work(Windows(moment, moment), outputs="features")
        return model.run(video, work).features.mean(axis=0)
    return model.run(video, Work(outputs="features")).features.mean(axis=0)
