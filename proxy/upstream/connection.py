"""One HTTP/1.1 connection to a backend: a request written whole, its answer parsed as it comes.

One request at a time per connection (no pipelining). The answer is framed by llhttp (httptools,
the parser uvicorn already runs at the front door): Content-Length, chunked encoding, or, for an
answer that gives neither, the connection's end. Every wait has one bound here, the silence
between two reads (`read_timeout_s`); what bounds the first byte is the connect stage's deadline,
which cancels the wait, and the caller then closes the connection.

Failures are the gateway's own errors, made when raised (an exception raised twice would carry
both tracebacks): before the status line a dropped connection is `ConnectionDropped` (another
backend may take the request), after it `StreamInterrupted`; silence is `BackendTimeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

import httptools

from warmgate.proxy.errors import (
    AnswerTooLarge,
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    GatewayError,
    StreamInterrupted,
)

# A stream's bytes the client has not taken yet: past this, the backend's socket is not read
# (TCP flow control slows the backend) until the relay catches up.
HIGH_WATER_BYTES: Final = 512 * 1024
# A whole answer's body collected without a cap (`UpstreamConnection.body` sets one).
_NO_LIMIT: Final = -1
_CONTENT_LENGTH: Final = b"content-length"
_TRANSFER_ENCODING: Final = b"transfer-encoding"


class ConnectionDropped(BackendUnreachable):
    """The connection died after the request was sent and before a status line came back:
    a stale keep-alive connection, a backend that went away, or a request that killed it.
    Another backend may take it (SGLang's work dies with the connection), but not every one:
    the request itself may be the cause."""


_Failure = tuple[type[GatewayError], str]
_DROPPED: Final[_Failure] = (ConnectionDropped, "The model backend closed the connection.")
_CUT: Final[_Failure] = (StreamInterrupted, "The model backend's answer broke off.")
_INVALID: Final[_Failure] = (BackendError, "The model backend sent an invalid HTTP answer.")
_NO_HEAD: Final[_Failure] = (BackendTimeout, "The model backend did not answer in time.")
_SILENT: Final[_Failure] = (BackendTimeout, "The model backend stopped answering.")


class UpstreamConnection(asyncio.Protocol):
    """The protocol of one pooled connection; `send`, then `head`, then `read_chunk` until
    it returns b"" (or `body` once). `reusable` says whether the next request may use it."""

    __slots__ = (
        "_body_limit",
        "_buffered",
        "_chunks",
        "_complete",
        "_failure",
        "_framed",
        "_in_exchange",
        "_keep_alive",
        "_last_read",
        "_loop",
        "_on_closed",
        "_parser",
        "_paused",
        "_read_timeout",
        "_timer",
        "_transport",
        "_waiter",
        "closed",
        "idle_since",
        "origin",
        "status",
    )
    # set by `_new_answer`, for each exchange
    status: int
    _complete: bool
    _framed: bool
    _failure: _Failure | None
    _body_limit: int

    def __init__(
        self,
        origin: str,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float,
        on_closed: Callable[[UpstreamConnection], None],
    ) -> None:
        self.origin = origin
        self._loop = loop
        self._read_timeout = read_timeout
        self._on_closed = on_closed
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._in_exchange = False
        self._keep_alive = False
        self._paused = False
        self._last_read = 0.0
        self.closed = False
        self.idle_since = 0.0
        self._new_answer()

    # -- what the client calls ---------------------------------------------------------------

    def send(self, data: bytes | bytearray, body: bytes | bytearray | None = None) -> None:
        """Start an exchange: the request's head (and `body`, written after it) go out."""
        transport = self._transport
        if transport is None or self.closed:
            raise ConnectionDropped(_DROPPED[1])
        self._in_exchange = True
        self._new_answer()
        if body is None:
            transport.write(data)
        else:
            transport.writelines((data, body))
        self._last_read = now = self._loop.time()
        self._timer = self._loop.call_at(now + self._read_timeout, self._check_silence)

    async def head(self) -> int:
        """The answer's status, once its head has arrived."""
        while not self.status:
            if self._failure is not None:
                raise self._raised(self._failure)
            await self._wait()
        return self.status

    async def read_chunk(self) -> bytes:
        """What of the body has arrived since the last call (waiting for some); b"" at its end."""
        while True:
            if self._chunks:
                data = self._taken()
                if self._paused:
                    self._resume()
                return data
            if self._complete:
                return b""
            if self._failure is not None:
                raise self._raised(self._failure)
            await self._wait()

    async def body(self, max_bytes: int) -> bytes:
        """The whole body; AnswerTooLarge (and the connection closed) past `max_bytes`."""
        self._body_limit = max_bytes
        if self._buffered > max_bytes:
            self._too_large()
        if self._paused:
            self._resume()
        while self._failure is None:
            if self._complete:
                return self._taken()
            await self._wait()
        raise self._raised(self._failure)

    @property
    def reusable(self) -> bool:
        """The answer was read to its end and both sides keep the connection."""
        return self._complete and self._keep_alive and not self.closed and not self._chunks

    def finish_exchange(self) -> None:
        """The exchange is over (the connection goes idle or is closed next)."""
        self._in_exchange = False
        self._cancel_timer()

    def close(self) -> None:
        """Close at once (the backend sees its client go): pending bytes are dropped."""
        if self._transport is not None and not self.closed:
            self._transport.abort()
        self.closed = True
        self._cancel_timer()

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._in_exchange or self._complete:
            # Bytes nobody asked for: the framing is lost; the connection is not used again.
            self.close()
            return
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            # A malformed answer, or a protocol switch nobody asked for.
            self._fail(_INVALID if not self.status else _CUT)
            self.close()

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self._in_exchange and not self._complete:
            if not self.status:
                self._fail(_DROPPED)
            elif not self._framed:
                # An answer with neither Content-Length nor chunked encoding ends with its
                # connection (RFC 9112, 6.3).
                self._complete = True
                self._keep_alive = False
                self._wake()
            else:
                self._fail(_CUT)
        self._on_closed(self)

    def pause_writing(self) -> None:
        """Large uploads: the transport buffers them (the body is in memory already)."""

    def resume_writing(self) -> None:
        """See `pause_writing`."""

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in (14, 17) and name.lower() in (_CONTENT_LENGTH, _TRANSFER_ENCODING):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._framed = False
            return
        self.status = status
        self._keep_alive = self._parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._failure is not None:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        limit = self._body_limit
        if limit == _NO_LIMIT:
            if self._buffered > HIGH_WATER_BYTES and not self._paused:
                self._paused = True
                assert self._transport is not None
                self._transport.pause_reading()
        elif self._buffered > limit:
            self._too_large()
            return
        self._wake()

    def on_message_complete(self) -> None:
        if not self.status:  # the end of an interim answer
            return
        self._complete = True
        self._cancel_timer()
        self._wake()

    # -- inside --------------------------------------------------------------------------------

    def _taken(self) -> bytes:
        """The body's bytes that have arrived and not been taken, as one buffer."""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        return data

    def _new_answer(self) -> None:
        """What is known of the next answer: nothing yet."""
        self.status = 0
        self._complete = False
        self._framed = False
        self._failure = None
        self._body_limit = _NO_LIMIT

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, failure: _Failure) -> None:
        if self._failure is None:
            self._failure = failure
        self._wake()

    def _too_large(self) -> None:
        message = (
            f"The model backend's answer is larger than the gateway accepts "
            f"({self._body_limit} bytes)."
        )
        self._fail((AnswerTooLarge, message))
        self._chunks.clear()
        self._buffered = 0
        self.close()

    def _resume(self) -> None:
        self._paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def _check_silence(self) -> None:
        self._timer = None
        if self._complete or self.closed:
            return
        now = self._loop.time()
        if self._paused:
            self._last_read = now  # the relay is the slow side, not the backend
        due = self._last_read + self._read_timeout
        if now < due:  # bytes came since the timer was set: look again then
            self._timer = self._loop.call_at(due, self._check_silence)
            return
        self._fail(_SILENT if self.status else _NO_HEAD)
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @staticmethod
    def _raised(failure: _Failure) -> GatewayError:
        kind, message = failure
        return kind(message)

    def __repr__(self) -> str:
        return f"UpstreamConnection({self.origin}, status={self.status}, closed={self.closed})"
