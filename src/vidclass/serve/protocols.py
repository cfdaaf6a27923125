"""uvicorn's HTTP and WebSocket protocols with the limits a server on a network needs.

uvicorn reads a request's head with h11 and, for a WebSocket, hands it to the
websockets library's handshake parser. Neither is bounded the way a public server must
be: h11 limits only a head that is still incomplete (a big head that comes in one read
passes) and waits for the rest of a head for ever, and when websockets refuses a
handshake (a header line over its 8 KiB, more than 128 headers, a request line over
8 KiB) it queues its 431 or 414 answer where uvicorn never sends it (uvicorn acts on
the parser's events, and a refused handshake makes none): the socket hangs, counted
among uvicorn's limit_concurrency connections, so that 64 such sockets make every
request a 503. Here:

- a head must arrive within HEAD_TIMEOUT seconds of its first byte (of the connection,
  for the first request): otherwise 408 and the close, so slow or incomplete requests
  cannot hold slots;
- a head over the limits below is answered at once, 431 (414 for a long request line),
  and the connection closed;
- a handshake websockets refuses is answered with its refusal, then closed.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT = 10.0  # seconds from a head's first byte to its end
MAX_HEAD = 96 << 10  # bytes of a whole head, request line included
MAX_TARGET = 64 << 10  # the request line: `labels` may hold 20,000 characters, encoded
MAX_FIELDS = 32 << 10  # all header lines together
MAX_HEADERS = 100
# A WebSocket handshake, as the websockets library takes it (its MAX_LINE_LENGTH and
# MAX_NUM_HEADERS): refused here first, with a reason, rather than there.
WS_MAX_LINE = 8 << 10
WS_MAX_HEADERS = 128


def plain_response(status: int, text: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection."""
    body = (text.rstrip("\n") + "\n").encode()
    phrase = http.HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def head_problem(request: h11.Request) -> tuple[int, str] | None:
    """(status, why) where a parsed head is over the limits; None where it is not."""
    upgrade = any(
        name == b"upgrade" and value.lower() == b"websocket" for name, value in request.headers
    )
    target = len(request.method) + len(request.target) + 11  # "GET /x HTTP/1.1\r\n"
    if target > (WS_MAX_LINE if upgrade else MAX_TARGET):
        limit = WS_MAX_LINE if upgrade else MAX_TARGET
        return 414, f"request line of {target} bytes; at most {limit}"
    if len(request.headers) > (WS_MAX_HEADERS if upgrade else MAX_HEADERS):
        limit = WS_MAX_HEADERS if upgrade else MAX_HEADERS
        return 431, f"{len(request.headers)} header fields; at most {limit}"
    total = 0
    for name, value in request.headers:
        line = len(name) + len(value) + 4  # "name: value\r\n"
        if upgrade and line > WS_MAX_LINE:
            return 431, f"a header line ({name.decode()}) of {line} bytes; at most {WS_MAX_LINE}"
        total += line
    if total > MAX_FIELDS:
        return 431, f"header fields of {total} bytes; at most {MAX_FIELDS}"
    return None


class _LimitedConnection(h11.Connection):
    """h11's connection, refusing heads over the limits; `refused` says why."""

    refused: tuple[int, str] | None = None

    def next_event(self):
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            if self.refused is None:
                # "Receive buffer too long" is a head over MAX_HEAD still coming in.
                status = exc.error_status_hint if exc.error_status_hint == 431 else 400
                why = f"a head over {MAX_HEAD} bytes" if status == 431 else "invalid request"
                self.refused = (status, why)
            raise
        if isinstance(event, h11.Request):
            problem = head_problem(event)
            if problem is not None:
                self.refused = problem
                raise h11.RemoteProtocolError(problem[1], error_status_hint=problem[0])
        return event


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit on reading a head and limits on its size."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _LimitedConnection(h11.SERVER, MAX_HEAD)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False  # bytes of the head being waited for have come

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # refused or timed out: nothing more is read
            return
        if self._waiting_for_head():
            self._head_begun = self._head_begun or bool(data)
            self._arm_head_timer()  # a kept-alive connection's next request: timed from here
        super().data_received(data)
        if not self._waiting_for_head():
            self._cancel_head_timer()
            self._head_begun = False

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel_head_timer()  # the transport is the WebSocket protocol's from here
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        status, why = self.conn.refused or (400, "invalid request")
        self.logger.warning(f"refused a request: {why}")
        self._cancel_head_timer()
        self.transport.write(plain_response(status, why))
        self.transport.close()

    # -- the head's time limit --------------------------------------------------------------
    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.get_protocol() is not self or not self._waiting_for_head():
            return
        if self._head_begun:
            why = f"the request's head did not come within {HEAD_TIMEOUT:g} s"
            self.transport.write(plain_response(408, why))
        self.transport.close()  # a connection that sent nothing is simply closed


def _guarded_websockets():
    """uvicorn's sans-I/O websockets protocol, answering the handshakes it refuses; None
    where this uvicorn has no such protocol (its default then stands)."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )
    except ImportError:
        return None

    class GuardedWebSocketsProtocol(WebSocketsSansIOProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            refused = getattr(self.conn, "handshake_exc", None)
            if self.handshake_initiated or refused is None or self.transport.is_closing():
                return
            answer = b"".join(self.conn.data_to_send())
            self.transport.write(answer or plain_response(400, f"{refused}"))
            self.transport.close()

    return GuardedWebSocketsProtocol


def uvicorn_protocols() -> dict[str, Any]:
    """uvicorn.run's keywords for the guarded protocols."""
    ws = _guarded_websockets()  # None without the websockets library: uvicorn's own choice
    return {"http": GuardedH11Protocol, **({"ws": ws} if ws is not None else {})}
