"""The forwarding client: request bytes posted to a backend over a pooled connection.

The HTTP/1.1 client side is the gateway's own (`connection`, `pool`): a request is one write of
a head built in a single format and the body's bytes as they are, and the answer is framed by
llhttp. A general client does far more per request (URL objects, header multidicts, cookies,
trace hooks, a timer per read): aiohttp's, the fastest measured (shared reference
upstream-clients.md, `benchmarks/`), was a third of the gateway's Python work per whole answer
and half of a stream's (`python -m benchmarks.instructions`).

Timeouts: connecting is bounded short; the silence between two reads is bounded long, since a
stream's first byte arrives only at time-to-first-token; nothing bounds the whole request. The
first byte's own budget ([upstream] first_byte_timeout_s) is the connect stage's
(`proxy.pipeline.connect`): it cancels `post` or `peek`, which closes the connection.
A whole answer is held in memory only up to `max_answer_bytes` ([server] max_answer_bytes):
past it the connection is closed and the answer is the backend's failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Final, NamedTuple
from urllib.parse import urlsplit

from warmgate.proxy.errors import BackendError
from warmgate.proxy.media import JSON
from warmgate.proxy.settings import UpstreamSettings
from warmgate.proxy.upstream.connection import ConnectionDropped, UpstreamConnection
from warmgate.proxy.upstream.pool import ConnectionPool, Origin

__all__ = ["ConnectionDropped", "Upstream", "UpstreamResponse"]

# The largest answer held whole when the settings do not say.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024
# Parsed backend URLs kept (a few per backend: one per path); past it the cache starts over.
_TARGETS_KEPT: Final = 4096
# Bodies up to this size go out in one buffer with the head; larger ones are written after
# it without being copied.
_JOIN_BELOW: Final = 16 * 1024


class _Target(NamedTuple):
    origin: Origin
    # "POST /v1/chat/completions HTTP/1.1\r\nHost: h:p\r\n" without the method
    line_and_host: str


class UpstreamResponse:
    """A backend's answer whose head has arrived; the body is read or streamed once."""

    __slots__ = ("_connection", "_first", "_max_bytes", "_pool", "status")

    def __init__(
        self,
        connection: UpstreamConnection,
        pool: ConnectionPool,
        *,
        max_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self._connection = connection
        self._pool = pool
        self._max_bytes = max_bytes
        self._first = b""
        self.status = connection.status

    async def peek(self) -> None:
        """Wait for the body's first chunk and keep it for `chunks()`: a stream's head may
        come before its first token, and only the first chunk shows the backend is working."""
        self._first = await self._connection.read_chunk()

    async def read(self) -> bytes:
        """The whole body, at most `max_bytes` of it (AnswerTooLarge past it, the connection
        closed); otherwise the connection goes back to the pool."""
        try:
            body = await self._connection.body(self._max_bytes)
        except BaseException:
            self._pool.discard(self._connection)
            raise
        self._pool.release(self._connection)
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the backend sends it, chunk by chunk, without buffering."""
        if self._first:
            first, self._first = self._first, b""
            yield first
        read_chunk = self._connection.read_chunk
        while chunk := await read_chunk():
            yield chunk

    def abort(self) -> None:
        """Close the connection at once: the backend sees the client go and frees the slot."""
        self._pool.discard(self._connection)

    def release(self) -> None:
        """The body was read to its end: the connection may be reused."""
        self._pool.release(self._connection)

    def __repr__(self) -> str:
        return f"UpstreamResponse(status={self.status})"


class Upstream:
    """Owns the connection pool; `start()` inside the serving event loop, `close()` on exit."""

    def __init__(
        self, settings: UpstreamSettings, *, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    ) -> None:
        self._settings = settings
        self._max_answer_bytes = max_answer_bytes
        self._pool: ConnectionPool | None = None
        self._targets: dict[tuple[str, str], _Target] = {}

    async def start(self) -> None:
        settings = self._settings
        self._pool = ConnectionPool(
            max_connections=settings.max_connections,
            max_per_origin=settings.max_connections_per_backend,
            keepalive_expiry=settings.keepalive_expiry_s,
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.read_timeout_s,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def post(
        self,
        url: str,
        body: bytes | bytearray,
        *,
        api_key: str | None,
        request_id: str,
        method: str = "POST",
        content_type: str | None = JSON,
        trace_headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send `body` (JSON unless `content_type` says otherwise; GET sends none) to `url`;
        returns once the status line and headers arrived. `trace_headers` (W3C
        `traceparent`, `tracestate`) carry the request's trace to the backend."""
        pool = self._pool
        if pool is None:
            raise BackendError("The gateway is not started.")
        target = self._targets.get((method, url)) or self._target(method, url)
        # identity: answers are relayed byte for byte, so they must not arrive compressed
        head = target.line_and_host + "Accept-Encoding: identity\r\nX-Request-Id: " + request_id
        lines = 3  # the request line, Host and Accept-Encoding so far
        if content_type is not None:
            head += "\r\nContent-Type: " + content_type
            lines += 1
        if api_key:
            head += "\r\nAuthorization: Bearer " + api_key
            lines += 1
        if trace_headers:
            for name, value in trace_headers.items():
                head += "\r\n" + name + ": " + value
                lines += 1
        payload: bytes | bytearray | None
        if method == "GET":
            head += "\r\n\r\n"
            lines += 2
            payload = None
        else:
            head += f"\r\nContent-Length: {len(body)}\r\n\r\n"
            lines += 3
            payload = body
        request = _encoded(head, lines)
        if payload is not None and len(payload) < _JOIN_BELOW:
            request, payload = request + payload, None

        connection = pool.take_idle(target.origin.key) or await pool.open(target.origin)
        try:
            connection.send(request, payload)
            await connection.head()
        except BaseException:
            # Cancelled (the first-byte deadline, the client gone) or failed: the connection's
            # state is unknown, and the backend must see the request abandoned.
            pool.discard(connection)
            raise
        return UpstreamResponse(connection, pool, max_bytes=self._max_answer_bytes)

    def _target(self, method: str, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError("The model backend's URL is not an http(s) URL.")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host_header = parts.netloc.rpartition("@")[2]  # never user:password from the URL
        origin = Origin(f"{parts.scheme}://{host_header}", parts.hostname, port, tls)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = _Target(origin, f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\n")
        if len(self._targets) >= _TARGETS_KEPT:
            self._targets.clear()
        self._targets[(method, url)] = target
        return target

    def __repr__(self) -> str:
        return f"Upstream(started={self._pool is not None})"


_UNCARRIABLE: Final = "The request to the model backend has a header it cannot carry."


def _encoded(head: str, lines: int) -> bytes:
    """The head's bytes, refused if a value would have added a line (CR or LF in it): the
    values come from configuration and from headers the front door parsed, never trusted."""
    try:
        data = head.encode("latin-1")
    except UnicodeEncodeError:
        raise BackendError(_UNCARRIABLE) from None
    if data.count(b"\n") != lines or data.count(b"\r") != lines:
        raise BackendError(_UNCARRIABLE)
    return data
