"""The statuses each endpoint answers with, as its OpenAPI schema (and so the HTTP
reference) lists them: only those it can give."""

from __future__ import annotations

MEANING = {
    401: "missing or wrong API key (with --api-key)",
    403: "a path outside --media, or paths without --media",
    404: "no such video under --media",
    413: "body over --max-upload-mb (JSON: over 64 KiB)",
    415: "not a readable video, or a body of another type",
    422: "a parameter out of bounds, or a video that decodes to nothing",
    503: "busy (every slot taken; see Retry-After)",
    504: "over --timeout; the work was stopped",
}
NO_GALLERY = "no gallery (the server was started without --gallery)"
GALLERY_BUSY = f"{MEANING[503]}, or the gallery cannot be read"
# A video sent or named: what each of the ways to send it can fail with.
VIDEO = (403, 404, 413, 415, 422, 503, 504)


def errors(*codes: int, **meanings: str) -> dict:
    """FastAPI `responses` for these statuses; `s404="..."` words one for this endpoint."""
    return {code: {"description": meanings.get(f"s{code}", MEANING[code])} for code in codes}


def answers(shape: str, *codes: int, **meanings: str) -> dict:
    """`responses` with what a 200 holds, then the errors."""
    return {200: {"description": shape}, **errors(*codes, **meanings)}
