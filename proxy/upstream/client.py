"""The forwarding client: one pooled aiohttp session that posts request bytes to a backend.

aiohttp was chosen by measurement (`benchmarks/`, shared reference upstream-clients.md): about a
tenth of a millisecond of CPU per request against 0.35 ms and more for httpx. This module is the
only place where aiohttp's exceptions are translated into the gateway's errors.

Timeouts: connecting is bounded short; the silence between two reads is bounded long, since a
stream's first byte arrives only at time-to-first-token; nothing bounds the whole request. The
first byte's own budget ([upstream] first_byte_timeout_s) is the connect stage's
(`proxy.pipeline.connect`): it cancels `post` or `peek`, which closes the connection.
A whole answer is held in memory only up to `max_answer_bytes` ([server] max_answer_bytes):
past it the connection is closed and the answer is the backend's failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp

from warmgate.proxy.errors import (
    AnswerTooLarge,
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    StreamInterrupted,
)
from warmgate.proxy.media import JSON
from warmgate.proxy.settings import UpstreamSettings

# The largest answer held whole when the settings do not say.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024


class ConnectionDropped(BackendUnreachable):
    """The connection died after the request was sent and before a status line came back:
    a stale keep-alive connection, a backend that went away, or a request that killed it.
    Another backend may take it (SGLang's work dies with the connection), but not every one:
    the request itself may be the cause."""


class UpstreamResponse:
    """A backend's answer whose head has arrived; the body is read or streamed once."""

    __slots__ = ("_first", "_max_bytes", "_response", "content_type", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, *, max_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    ) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self._first = b""
        self.status = response.status
        self.content_type = response.content_type

    async def peek(self) -> None:
        """Wait for the body's first chunk and keep it for `chunks()`: a stream's head may
        come before its first token, and only the first chunk shows the backend is working."""
        try:
            self._first = await self._response.content.readany()
        except aiohttp.SocketTimeoutError as exc:
            raise BackendTimeout("The model backend stopped answering.") from exc
        except aiohttp.ClientError as exc:
            raise StreamInterrupted("The model backend's answer broke off.") from exc

    async def read(self) -> bytes:
        """The whole body, at most `max_bytes` of it (AnswerTooLarge past it, the connection
        closed); otherwise the connection goes back to the pool."""
        response = self._response
        announced = response.content_length
        try:
            if announced is not None and announced <= self._max_bytes:
                return await response.read()  # the usual answer: its size known, and small
            return await self._read_capped()
        except aiohttp.SocketTimeoutError as exc:
            raise BackendTimeout("The model backend stopped answering.") from exc
        except aiohttp.ClientError as exc:
            raise StreamInterrupted("The model backend's answer broke off.") from exc
        finally:
            response.release()

    async def _read_capped(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        content = self._response.content
        while chunk := await content.readany():
            size += len(chunk)
            if size > self._max_bytes:
                self._response.close()
                raise AnswerTooLarge(
                    f"The model backend's answer is larger than the gateway accepts "
                    f"({self._max_bytes} bytes)."
                )
            parts.append(chunk)
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the backend sends it, chunk by chunk, without buffering."""
        content = self._response.content
        if self._first:
            first, self._first = self._first, b""
            yield first
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except aiohttp.SocketTimeoutError as exc:
            raise BackendTimeout("The model backend stopped answering.") from exc
        except aiohttp.ClientError as exc:
            raise StreamInterrupted("The model backend's answer broke off.") from exc

    def abort(self) -> None:
        """Close the connection at once: the backend sees the client go and frees the slot."""
        self._response.close()

    def release(self) -> None:
        """The body was read to its end: the connection may be reused."""
        self._response.release()


class Upstream:
    """Owns the connection pool; `start()` inside the serving event loop, `close()` on exit."""

    def __init__(
        self, settings: UpstreamSettings, *, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    ) -> None:
        self._settings = settings
        self._max_answer_bytes = max_answer_bytes
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._settings.max_connections,
            limit_per_host=self._settings.max_connections_per_backend,
            keepalive_timeout=self._settings.keepalive_expiry_s,
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self._settings.connect_timeout_s,
            sock_read=self._settings.read_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            skip_auto_headers=("User-Agent",),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
        session = self._session
        if session is None:
            raise BackendError("The gateway is not started.")
        # identity: answers are relayed byte for byte, so they must not arrive compressed
        headers = {"Accept-Encoding": "identity", "X-Request-Id": request_id}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if api_key:
            headers["Authorization"] = "Bearer " + api_key
        if trace_headers:
            headers.update(trace_headers)
        try:
            data = body if method != "GET" else None
            response = await session.request(method, url, data=data, headers=headers)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise BackendUnreachable("The model backend could not be reached.") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # The connection died before a status line came back: a stale keep-alive connection
            # the backend had closed, a backend process that went away, or one the request
            # itself brought down. Its work died with the connection (SGLang aborts a request
            # whose client is gone), so another backend may take it without duplicating
            # tokens; the connect stage caps how many (a query of death).
            raise ConnectionDropped("The model backend closed the connection.") from exc
        except aiohttp.SocketTimeoutError as exc:
            raise BackendTimeout("The model backend did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            raise BackendError("The model backend failed to answer.") from exc
        return UpstreamResponse(response, max_bytes=self._max_answer_bytes)

    def __repr__(self) -> str:
        return f"Upstream(started={self._session is not None})"
