"""What a request hands the server: a video (upload, raw body or media path) and its
parameters, each checked and bounded before any work starts.

Bodies are read in pieces and counted, whatever Content-Length says (chunked bodies
have none): an upload stops at --max-upload-mb, a JSON body at MAX_JSON_BYTES.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import HTTPException, Request

MAX_JSON_BYTES = 64 << 10
MAX_PATH_CHARS = 4096  # PATH_MAX: a longer name cannot be a file anyway
MAX_NAME_BYTES = 255  # one path component
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")
RAW_TYPES = ("video/", "application/octet-stream")

# The request bodies of the POST endpoints, for the OpenAPI schema.
PATH_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_PATH_CHARS,
    "description": "a video file under the server's --media folder",
}
BINARY = {"type": "string", "format": "binary"}
VIDEO_BODY = {
    "required": True,
    "description": "the video: a multipart upload (`file`) or media path (`path`), the "
    "raw bytes as video/* or application/octet-stream, or JSON with a `path`; uploads up "
    f"to --max-upload-mb, JSON up to {MAX_JSON_BYTES >> 10} KiB",
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": BINARY, "path": PATH_SCHEMA}}
        },
        "video/*": {"schema": BINARY},
        "application/octet-stream": {"schema": BINARY},
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"path": PATH_SCHEMA},
                "required": ["path"],
            }
        },
    },
}


@dataclass
class VideoInput:
    local: str  # the file to read
    name: str  # what to call it in answers
    tmp: str | None = None  # a temporary copy to remove afterwards

    def remove(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


def safe_suffix(name: str | None) -> str:
    """A file name's extension if it is a plain one (it helps FFmpeg guess the format);
    anything else (a NUL, 300 characters, a slash) gives none."""
    suffix = os.path.splitext(name or "")[1]
    return suffix if _SUFFIX.fullmatch(suffix) else ""


def check_path_text(path) -> str:
    """A `path` as given by a client: a string a file system could hold, or 422."""
    if not isinstance(path, str) or not path:
        raise HTTPException(422, "'path' must be a file name under the media folder")
    if len(path) > MAX_PATH_CHARS:
        raise HTTPException(422, f"'path' is over {MAX_PATH_CHARS} characters")
    if "\0" in path:
        raise HTTPException(422, "'path' must not contain a NUL character")
    try:
        parts = path.encode("utf-8").split(b"/")
    except UnicodeEncodeError:
        raise HTTPException(422, "'path' is not valid Unicode") from None
    if any(len(p) > MAX_NAME_BYTES for p in parts):
        raise HTTPException(422, f"'path' has a name over {MAX_NAME_BYTES} bytes")
    return path


def _inside(root: str, path: str) -> str:
    """The real path of `path` under `root`, or 403: no way out, links included."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, path))
    if os.path.commonpath([real_root, real]) != real_root:
        raise HTTPException(403, f"{path}: outside the media folder")
    if not os.path.isfile(real):
        raise HTTPException(404, f"{path}: no such video in the media folder")
    return real


async def media_video(media: str | None, path) -> VideoInput:
    """A video named by its path under --media (resolved off the event loop)."""
    path = check_path_text(path)
    if not media:
        raise HTTPException(403, "paths are only allowed with --media DIR")
    return VideoInput(await asyncio.to_thread(_inside, media, path), path)


async def _save(chunks: AsyncIterator[bytes], limit: int, mb: float, suffix: str) -> str:
    """Copy a body into a temporary file, 413 past `limit` bytes; the path."""
    fd, tmp = tempfile.mkstemp(prefix="vidclass-upload-", suffix=suffix)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"upload over {mb:g} MB")
                out.write(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


async def _upload_chunks(upload, size: int = 1 << 20) -> AsyncIterator[bytes]:
    while chunk := await upload.read(size):
        yield chunk


async def read_json(request: Request):
    """The JSON body, at most MAX_JSON_BYTES; 413 beyond, 422 if it does not parse
    (nesting too deep included)."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_JSON_BYTES:
            raise HTTPException(413, f"JSON body over {MAX_JSON_BYTES >> 10} KiB")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise HTTPException(422, "the body is not valid JSON") from None


async def video_input(request: Request, media: str | None, limit: int, mb: float) -> VideoInput:
    """The video a POST names, by its content type."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=4)
        file, path = form.get("file"), form.get("path")
        if file is None:
            if path is not None:
                return await media_video(media, path)
            raise HTTPException(422, "send a video as the multipart field 'file'")
        if isinstance(file, str):
            raise HTTPException(422, "'file' must be a file upload")
        name = file.filename or "upload"
        tmp = await _save(_upload_chunks(file), limit, mb, safe_suffix(name))
        return VideoInput(tmp, name, tmp)
    if kind.startswith(RAW_TYPES):
        suffix = safe_suffix("x" + (mimetypes.guess_extension(kind) or ""))
        tmp = await _save(request.stream(), limit, mb, suffix)
        return VideoInput(tmp, "upload" + suffix, tmp)
    if kind == "application/json" or kind.endswith("+json"):
        body = await read_json(request)
        path = body.get("path") if isinstance(body, dict) else None
        if path is None:
            raise HTTPException(422, "send JSON with a 'path' under the media folder")
        return await media_video(media, path)
    raise HTTPException(
        415,
        "send the video as multipart/form-data ('file' or 'path'), as video/* or "
        "application/octet-stream bytes, or JSON with a 'path'",
    )
