"""uvicorn's httptools protocol with a bounded request head: size, field count, arrival time.

uvicorn's httptools protocol (0.35 to 0.55) takes request heads of any size and waits for them
forever, and llhttp has no limit of its own; uvicorn's `h11_max_incomplete_event_size` applies
only to its slower h11 protocol, and `timeout_keep_alive` only to idle connections between
requests. No ASGI app can help: it is called once the whole head has arrived. So the limits
are enforced here, in a subclass uvicorn takes through its public `Config(http=...)`, in the
parser callbacks and connection events that the class has kept from 0.35 to 0.55
(`connection_made`, `data_received`, `on_message_begin`, `on_headers_complete`,
`connection_lost`, `send_400_response`):

- a request line longer than `max_header_bytes` gets 414, more header bytes or more than
  `max_header_count` fields 431;
- a head not complete `header_timeout_s` after the connection opened (or, on a kept-alive
  connection, after its next request's first byte) gets 408, or is just closed when no byte
  of a request arrived;
- a head the parser rejects gets 400;

each in OpenAI's error shape, and the connection is closed at once: nothing more is read.
Every override costs a Python call per request, so there are no more of them than that: the
head is measured by the chunk in `data_received`, the request line with the rest of the head.

And an answer sent before its request's body has arrived whole (401 for an upload without a
valid key, 413, a bad content type) says `connection: close` (`proxy.http.framing`) and ends
the connection once sent: uvicorn would otherwise read and drop the rest of the body to keep
the connection, however large it is. The end is a lingering close, as web servers do it: the
answer is followed by a FIN, what the client still sends is dropped for at most LINGER_S and
LINGER_BYTES, then the socket closes. Closing at once would reset a connection whose last body
bytes were still in flight, and a client reading its answer would get the reset instead. uvicorn
closes the connection after an answer that says `connection: close` through the transport it
was given in `connection_made` (0.35 to 0.55 alike), so that transport is the real one with
`close` redirected (`_EndingTransport`). Whether the body is still arriving is the request
cycle's `more_body`, which uvicorn clears when the body has arrived whole (0.35 to 0.55 alike).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from warmgate.proxy.errors import (
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    RequestTimeout,
    UriTooLong,
)
from warmgate.proxy.ids import new_request_id
from warmgate.proxy.settings import ServerSettings

# After an answer given before the body arrived: how long, and how much of the rest of the
# body, is read and dropped before the connection closes.
LINGER_S = 2.0
LINGER_BYTES = 256 * 1024
# Each header field costs its name, its value and its framing (": " and CRLF).
_FIELD_FRAMING_BYTES = 4
_STATUS_LINES = {
    400: b"HTTP/1.1 400 Bad Request\r\n",
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    414: b"HTTP/1.1 414 URI Too Long\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
}


class _HeadRefusedError(Exception):
    """Raised from a parser callback to stop parsing a head over its limits."""


def refusal_bytes(error: GatewayError) -> bytes:
    """A whole HTTP/1.1 answer to `error` that closes the connection."""
    body = error.to_json()
    return b"".join(
        (
            _STATUS_LINES[error.status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-request-id: " + new_request_id().encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        )
    )


class _EndingTransport:
    """The connection's transport as uvicorn's request cycles see it: the same methods, but
    `close` ends a connection whose request body has not arrived whole (an answer with
    `connection: close` sent before it was read) with the protocol's lingering close. There is
    no `__getattr__` forwarding the rest: a class with one is slow for every attribute read,
    and uvicorn reads the transport's several times per request. What uvicorn calls per request
    is bound straight to the real transport (once per connection); the rest of
    `asyncio.Transport` is passed on by plain methods."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpProtocol) -> None:
        self._transport = transport
        self._protocol: GuardedHttpProtocol | None = protocol
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self._transport.writelines(data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def abort(self) -> None:
        self._transport.abort()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def close(self) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.body_pending:
            protocol.linger()
        else:
            self._transport.close()

    def detach(self) -> None:
        """Let go of the protocol once the connection is lost: the protocol holds this object,
        and a cycle between them would leave each connection's objects to the cyclic garbage
        collector (a collection every few connections) instead of freeing them at once."""
        self._protocol = None


class GuardedHttpProtocol(HttpToolsProtocol):
    """One client connection. The limits are class attributes: uvicorn builds the protocol
    itself, so `guarded_protocol(settings)` makes the subclass that carries them."""

    max_header_bytes: ClassVar[int] = ServerSettings().max_header_bytes
    max_header_count: ClassVar[int] = ServerSettings().max_header_count
    header_timeout_s: ClassVar[float] = ServerSettings().header_timeout_s

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # of the head in progress, counted by the chunk
        self._chunk_bytes = 0  # of the chunk being parsed
        self._head_started_s = 0.0
        self._in_head = False  # between a request's first byte and the end of its head
        self._began = False  # a request's first byte has arrived on this connection
        self._linger_bytes_left: int | None = None  # set once the connection is ending
        self._linger_timer: asyncio.TimerHandle | None = None
        self._real_transport: asyncio.Transport = None  # type: ignore[assignment]  # as uvicorn
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: GatewayError | None = None
        self._ending: _EndingTransport = None  # type: ignore[assignment]  # set on connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._ending = _EndingTransport(transport, self)
        super().connection_made(self._ending)  # type: ignore[arg-type]
        self._real_transport = transport
        self._arm_head_timer()

    @property
    def body_pending(self) -> bool:
        """A request's body has been announced and not arrived whole."""
        cycle = self.cycle
        return cycle is not None and cycle.more_body

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)
        self._ending.detach()

    def data_received(self, data: bytes) -> None:
        if self._linger_bytes_left is None:
            self._chunk_bytes = len(data)
            super().data_received(data)
            if self._in_head and not self._real_transport.is_closing():
                # The head is still incomplete, so all of this chunk went into it: counted by
                # the chunk, not by the field, to cost nothing per field.
                self._head_bytes += len(data)
                if self._head_bytes > self.max_header_bytes:
                    self._close_with(self._head_too_large())
            return
        self._linger_bytes_left -= len(data)  # the rest of a refused body: dropped
        if self._linger_bytes_left < 0:
            self._real_transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_started_s = self.loop.time()
        self._in_head = True
        self._began = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        if len(self.headers) > self.max_header_count:
            self._refuse(self._too_many_fields())
        # The head ended inside the last chunk: measured field by field only when that chunk
        # and the earlier ones could hold a head over the limit (a large body's first bytes).
        if self._head_bytes + self._chunk_bytes > self.max_header_bytes and (
            self._head_size() > self.max_header_bytes
        ):
            self._refuse(self._head_too_large())
        super().on_headers_complete()

    def _head_size(self) -> int:
        fields = sum(len(name) + len(value) for name, value in self.headers)
        return len(self.url) + fields + _FIELD_FRAMING_BYTES * len(self.headers)

    def _too_many_fields(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"The request has too many header fields (at most {self.max_header_count})."
        )

    def _head_too_large(self) -> GatewayError:
        """414 when the request line alone is over the limit, else 431."""
        if len(self.url) > self.max_header_bytes:
            return UriTooLong("The request URL is too long.")
        return HeadersTooLarge(
            f"The request's header fields are too large (at most {self.max_header_bytes} bytes)."
        )

    def linger(self) -> None:
        """End the connection after the answer sent: FIN, drop what still comes for a while,
        then close."""
        if self._linger_bytes_left is not None or self._real_transport.is_closing():
            return
        self._disarm_head_timer()
        self._linger_bytes_left = LINGER_BYTES
        transport = self._real_transport
        if transport.can_write_eof():
            transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER_S, transport.close)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a head the parser refused (also when a callback above stopped
        it): OpenAI's error instead of uvicorn's plain text."""
        refusal = self._refusal or InvalidRequest("The request is not valid HTTP/1.1.")
        self._close_with(refusal)

    def _refuse(self, error: GatewayError) -> None:
        self._refusal = error
        raise _HeadRefusedError(error.message)

    def _arm_head_timer(self, delay_s: float | None = None) -> None:
        """One timer per connection, not per request: it wakes every `header_timeout_s` (or
        when the head in progress would run out of time) and looks at the head's age."""
        self._head_timer = self.loop.call_later(
            self.header_timeout_s if delay_s is None else delay_s, self._head_timed_out
        )

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._real_transport.is_closing() or self._linger_bytes_left is not None:
            return
        if not self._began:  # connected, and not one byte sent
            self._real_transport.close()
            return
        left_s = self.header_timeout_s
        if self._in_head:
            left_s -= self.loop.time() - self._head_started_s
            if left_s <= 0:
                self._close_with(RequestTimeout("The request's headers did not arrive in time."))
                return
        self._arm_head_timer(left_s)

    def _close_with(self, error: GatewayError) -> None:
        self._disarm_head_timer()
        if not self.transport.is_closing():
            self.transport.write(refusal_bytes(error))
            self._real_transport.close()


def guarded_protocol(settings: ServerSettings) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's `Config(http=...)`, carrying `settings`' limits."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "max_header_count": settings.max_header_count,
            "header_timeout_s": settings.header_timeout_s,
        },
    )
