"""Where live video comes from, and opening it with PyAV.

A source is a camera (FFmpeg's v4l2 input, or any device format named with
`input_format`), a network stream, a file still being written (followed as it grows),
standard input, a named pipe, or bytes a caller feeds in (the server's WebSocket).
Every failure to open is a one-line VidclassError; network reads are bounded by a
timeout, so a silent stream is noticed rather than waited on forever.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import av

from ..errors import VidclassError
from ..files import open_regular, path_error
from ..limits import check_frame_size
from ..options import option
from ..video.container import error_reason

NETWORK = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp", "http", "https")
# Per protocol, what suits live reading; a user's --input-option wins.
PROTOCOL_OPTIONS = {
    "rtsp": {"rtsp_transport": "tcp"},  # no lost packets behind a NAT or on Wi-Fi
    "rtsps": {"rtsp_transport": "tcp"},
    "udp": {"overrun_nonfatal": "1"},  # a burst the reader misses is a glitch, not an end
}
# A live stream needs no 5 s of probing (FFmpeg's default) before its first frame.
LIVE_OPTIONS = {"analyzeduration": "1000000"}
# Seconds of silence after which a source counts as dropped (the watch verb's --timeout).
DEFAULT_TIMEOUT = option("watch", "timeout").default
CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    """A live source as named by the user, and how to open it."""

    name: str  # what messages and results call it (credentials hidden)
    kind: str  # camera, device, network, file, pipe, stdin, feed
    target: str | None = field(default=None, repr=False)  # what FFmpeg opens: may hold secrets
    format: str | None = None  # FFmpeg's input format, where it cannot be guessed
    options: dict[str, str] = field(default_factory=dict)
    feed: ChunkFeed | None = None  # kind "feed": the bytes come from here

    @property
    def network(self) -> bool:
        return self.kind == "network"


SECRET_PARAMS = ("token", "key", "secret", "password", "passwd", "pass", "auth", "sig")


def redact(url: str) -> str:
    """`url` as messages and results may show it: the user part's password (a lone
    user name may be a token: all of it) and the values of query parameters that look
    like secrets (token=, signature=...) replaced by ***. The user part is taken up to
    the last "@" before the query, so a password holding "@" or "/" is masked whole."""
    scheme, sep, rest = url.partition("://")
    head, mark, query = rest.partition("?")
    if "@" in head:
        user, _, host = head.rpartition("@")
        name, colon, _ = user.partition(":")
        head = f"{name}:***@{host}" if colon else f"***@{host}"
    if query:
        query = "&".join(
            f"{k}=***" if eq and any(w in k.lower() for w in SECRET_PARAMS) else f"{k}{eq}{v}"
            for k, eq, v in (item.partition("=") for item in query.split("&"))
        )
    return f"{scheme}{sep}{head}{mark}{query}"


def parse_source(
    text: str | ChunkFeed,
    input_format: str | None = None,
    options: dict[str, str] | None = None,
) -> Source:
    """What `text` names: "-" (standard input), a URL, a camera or device, a named pipe
    or a file (followed while it grows). Checked here, before any model loads."""
    options = dict(options or {})
    if isinstance(text, ChunkFeed):
        return Source("live feed", "feed", format=input_format, options=options, feed=text)
    if not isinstance(text, str) or not text or "\0" in text:
        raise VidclassError(f"{text!r}: not a source (a URL, a camera, a file or -)")
    if text == "-":
        return Source("stdin", "stdin", "pipe:0", input_format, options)
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme:
        if scheme not in NETWORK:
            known = ", ".join(f"{s}://" for s in NETWORK)
            raise VidclassError(f"{redact(text)}: unknown kind of stream; vidclass reads {known}")
        merged = {**PROTOCOL_OPTIONS.get(scheme, {}), **options}
        return Source(redact(text), "network", text, input_format, merged)
    try:
        mode = os.stat(text).st_mode
    except (OSError, ValueError) as exc:
        if input_format is not None:  # a device of another platform: avfoundation's "0"
            return Source(text, "device", text, input_format, options)
        if text.startswith("/dev/video"):
            raise VidclassError(f"{text}: no such camera") from None
        raise path_error(text, exc) from None
    if stat.S_ISCHR(mode):
        if input_format is not None:
            return Source(text, "device", text, input_format, options)
        if not os.path.basename(text).startswith("video"):
            raise VidclassError(f"{text}: is a character device, not a camera (/dev/videoN)")
        return Source(text, "camera", text, "video4linux2,v4l2", options)
    if stat.S_ISFIFO(mode):
        return Source(text, "pipe", text, input_format, options)
    if stat.S_ISREG(mode):
        return Source(text, "file", text, input_format, options)
    raise VidclassError(f"{text}: not a file, a pipe or a camera")


def open_source(source: Source, timeout: float = DEFAULT_TIMEOUT, stop=None):
    """(container, its first video stream) of `source`; a one-line error where it
    cannot be opened. `stop` (a threading.Event) ends a file's or feed's waiting."""
    reader = None
    try:
        if source.kind == "file":
            reader = FollowFile(source.target, idle=timeout, stop=stop)
            container = _open(reader, source, None)
        elif source.kind == "feed":
            container = _open(source.feed, source, None)
        elif source.kind in ("network", "camera", "device"):
            container = _open(source.target, source, (timeout, timeout))
        else:  # stdin, a named pipe: FFmpeg blocks on them until the writer ends
            container = _open(source.target, source, None)
    except VidclassError:
        if reader is not None:
            reader.close()
        raise
    try:
        if not container.streams.video:
            raise VidclassError(f"{source.name}: has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise VidclassError(f"{source.name}: no decoder for its video codec")
        check_frame_size(stream.codec_context.width, stream.codec_context.height, source.name)
    except BaseException:
        container.close()
        raise
    return container, stream


def _open(what, source: Source, timeout):
    options = {**LIVE_OPTIONS, **source.options}
    try:
        return av.open(
            what,
            format=source.format,
            options=options,
            timeout=timeout,
            metadata_errors="ignore",
        )
    except av.error.ProtocolNotFoundError:
        scheme = source.name.split("://")[0]
        raise VidclassError(
            f"{source.name}: this FFmpeg (PyAV {av.__version__}) cannot read {scheme}:// "
            f"streams; relay it: ffmpeg -i URL -c copy -f mpegts - | vidclass watch -"
        ) from None
    except av.error.ExitError:  # the timeout's interrupt
        raise VidclassError(f"{source.name}: no data within {timeout[0]:g} s") from None
    except (OSError, av.error.FFmpegError) as exc:
        raise VidclassError(f"{source.name}: cannot open ({error_reason(exc)})") from None
    except ValueError as exc:
        raise VidclassError(f"{source.name}: cannot open ({exc})") from None


class FollowFile:
    """A file read as it grows (`tail -f` for FFmpeg): at its end, reads wait for more,
    and the file counts as finished once it has not grown for `idle` seconds."""

    POLL = 0.05

    def __init__(self, path: str, idle: float, stop: threading.Event | None = None):
        self.name = path
        self.idle = idle
        self.stop = stop
        self._file = os.fdopen(open_regular(path, os.O_RDONLY, "video file"), "rb")

    def read(self, size: int = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        quiet_since = time.monotonic()
        while True:
            data = self._file.read(size)
            if data:
                return data
            if self.stop is not None and self.stop.is_set():
                return b""
            if time.monotonic() - quiet_since > self.idle:
                return b""  # the writer has stopped: the end of the file
            if os.fstat(self._file.fileno()).st_size < self._file.tell():
                return b""  # cut short under us: it is being rewritten, not grown
            time.sleep(self.POLL)

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._file.close()


class ChunkFeed:
    """Bytes handed over in chunks by one thread (a WebSocket's) and read as a stream by
    the decoder in another. Bounded: a writer that runs `limit` bytes ahead of the
    reader is refused, so a client cannot grow the server's memory."""

    def __init__(self, limit: int = 32 << 20, idle: float = DEFAULT_TIMEOUT):
        self.limit = limit
        self.idle = idle
        self.name = "live feed"
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # read so far of the first chunk
        self._held = 0
        self._closed = False
        self._cond = threading.Condition()

    def write(self, data: bytes) -> None:
        """`data` for the reader; an empty piece is nothing, not the end (FFmpeg reads an
        empty read as the end of the stream: only `close` ends it)."""
        if not data:
            return
        with self._cond:
            if self._closed:
                raise VidclassError("the live feed is closed")
            if self._held + len(data) > self.limit:
                raise VidclassError(
                    f"the live feed is {self.limit >> 20} MB ahead of the decoder; "
                    "send less or more slowly"
                )
            self._chunks.append(bytes(data))
            self._held += len(data)
            self._cond.notify_all()

    def close(self) -> None:
        """No more bytes: the reader gets what is held, then the end."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        with self._cond:
            if not self._cond.wait_for(lambda: self._chunks or self._closed, self.idle):
                return b""  # silent too long: the end
            if not self._chunks:
                return b""
            chunk = self._chunks[0]
            piece = chunk[self._offset : self._offset + size]
            self._offset += len(piece)
            if self._offset == len(chunk):  # a big chunk is read in place, not re-copied
                self._chunks.popleft()
                self._offset = 0
            self._held -= len(piece)
            return piece

    def seekable(self) -> bool:
        return False
