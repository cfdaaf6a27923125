"""Searching a gallery: by tags (the label index's words, stems and synonyms) or by
text (the moments nearest to it in a vision-language model's space)."""

from __future__ import annotations

import re

from ..errors import VidclassError
from .records import Hit

MOMENTS_PER_HIT = 3  # a text search shows a video's best moments, at most these
MAX_MOMENTS = 20_000  # moments read for one text search, at most

# Words people search for that labels spell otherwise. Stems (dance/dancing, swim/
# swimming) need no entry: the label index stems words (FTS5's porter tokenizer).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "football": ("soccer",),
    "soccer": ("football",),
    "bike": ("bicycle", "bicycling", "biking", "cycling"),
    "bicycle": ("bike", "biking", "cycling"),
    "cycling": ("bike", "bicycle", "biking"),
    "kid": ("child", "children", "baby", "kids"),
    "child": ("kid", "children", "baby", "kids"),
    "car": ("driving", "auto"),
    "music": ("playing", "singing", "drumming"),
    "workout": ("exercising", "push up", "squat", "situp", "lunge"),
    "exercise": ("exercising", "push up", "squat", "situp", "lunge"),
    "food": ("eating", "cooking", "baking", "frying"),
    "cook": ("cooking", "baking", "frying", "grilling"),
    "ball": ("soccer", "basketball", "volleyball", "football", "tennis"),
    "phone": ("telephone", "texting", "smartphone"),
    "sea": ("surfing", "sailing", "ocean"),
}


def fts_query(text: str) -> str:
    """An FTS5 query: every word (or a synonym) must match, as a word prefix."""
    words = re.findall(r"\w+", text.lower())
    if not words:
        raise VidclassError("give some words to search for")
    groups = []
    for word in words:
        options = (word, *SYNONYMS.get(word, ()))
        groups.append("(" + " OR ".join(f'"{o}"*' for o in options) + ")")
    return " AND ".join(groups)


def run_search(
    gallery,
    text: str,
    min_score,
    label,
    min_duration,
    max_duration,
    limit: int,
    by: str,
    model,
    known_only: bool = False,
) -> list[Hit]:
    """Gallery.search, which says what each argument means and checks them."""
    try:  # a terminal's undecodable bytes arrive as lone surrogates
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise VidclassError("the search text is not valid UTF-8") from None
    if by == "auto":
        by = "text" if gallery.text_model_name and label is None else "tags"
    if by == "text":
        if label is not None:
            raise VidclassError("label is a tag filter: search by tags to use it")
        hits = _search_text(gallery, text, min_score, min_duration, max_duration, limit, model)
        return [h for h in hits if not (known_only and h.unknown)]
    labels = gallery.store.match_labels(fts_query(text)) if text.strip() else []
    if label is not None:
        labels = [x for x in labels if x == label] if text.strip() else [label]
    return gallery.store.tagged(
        labels, min_score or 0.0, min_duration, max_duration, limit, known_only
    )


def _search_text(gallery, text, min_score, min_duration, max_duration, limit, model) -> list[Hit]:
    words = " ".join(text.split())
    if not words:
        raise VidclassError("give some words to search for")
    clf = model if model is not None else gallery.load_text_model(None)
    if clf.name != gallery.text_model_for(None):
        raise VidclassError(
            f"{gallery.path} holds moments of {gallery.text_model_for(None)!r}, not {clf.name!r}"
        )
    query = clf.embed_text([words])[0]
    found: dict[str, list[dict]] = {}
    want = limit * MOMENTS_PER_HIT
    while True:  # moments grouped into videos; fetch more until `limit` videos
        ranked = gallery.moments().search(query, want)
        spans = gallery.store.moments_by_id([key for key, _ in ranked])
        found = {}
        for key, sim in ranked:
            if (min_score is not None and sim < min_score) or key not in spans:
                continue
            path, start, end = spans[key]
            found.setdefault(path, []).append(
                {"start": start, "end": end, "label": words, "score": sim, "source": "text"}
            )
        kept = _within(gallery, found, min_duration, max_duration)
        if len(kept) >= limit or len(ranked) < want or want >= MAX_MOMENTS:
            break
        want = min(want * 4, MAX_MOMENTS)
    hits = []
    for path, (duration, moments) in list(kept.items())[:limit]:
        record = gallery.store.by_path(path)
        tags = record.tags[:3] if record is not None else []
        best = moments[:MOMENTS_PER_HIT]
        tags_from = record.tags_from if record is not None else None
        unknown = record.unknown if record is not None else None  # its classifier's answer
        hits.append(Hit(path, best[0]["score"], duration, tags, best, tags_from, unknown))
    return hits


def _within(gallery, found, min_duration, max_duration) -> dict:
    """{path: (duration, moments)} of the videos within the durations, best first."""
    kept = {}
    for path, moments in found.items():
        video = gallery.store.embedded_by_path(path)
        duration = video.duration if video is not None else None
        if min_duration is not None and (duration is None or duration < min_duration):
            continue
        if max_duration is not None and (duration is None or duration > max_duration):
            continue
        kept[path] = (duration, moments)
    return kept
