"""Kept-alive connections to the backends, per origin, within the configured limits.

A request takes the connection that went idle last (its backend is least likely to have
closed it) unless it has been idle for `keepalive_expiry_s`, which is kept below SGLang's own
idle close (uvicorn's 5 s): a connection the backend closes while idle is dropped from the pool
when its close arrives, and one it closes just as a request is written is `ConnectionDropped`.
Opening a connection waits while `max_connections` (or the origin's share) are open.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from contextlib import suppress
from typing import Final, NamedTuple

from warmgate.proxy.errors import BackendUnreachable
from warmgate.proxy.upstream.connection import UpstreamConnection

_UNREACHABLE: Final = "The model backend could not be reached."
# The longest `close` waits for the closed connections' sockets to be let go.
_CLOSE_WAIT_S: Final = 1.0


class Origin(NamedTuple):
    """Where connections for a URL go: `key` ("http://host:port") names them in the pool."""

    key: str
    host: str
    port: int
    tls: bool


class ConnectionPool:
    """Owned by `Upstream`; made inside the serving event loop."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_per_origin: int,
        keepalive_expiry: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._max = max_connections
        self._max_per_origin = max_per_origin
        self._expiry = keepalive_expiry
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: dict[str, deque[UpstreamConnection]] = {}
        self._open: set[UpstreamConnection] = set()
        self._per_origin: dict[str, int] = {}
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tls: ssl.SSLContext | None = None
        self._closed = False
        self._all_gone: asyncio.Future[None] | None = None
        # Idle connections to an origin that gets no more requests are closed by this, at most
        # one expiry late (half a second at least); those in use are checked when taken.
        self._sweep_every = max(keepalive_expiry, 0.5)
        self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)

    def take_idle(self, origin: str) -> UpstreamConnection | None:
        """An idle connection to `origin` that has not expired, or None."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = self._loop.time()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self._expiry:
                return connection
            connection.close()
        return None

    async def open(self, origin: Origin) -> UpstreamConnection:
        """A new connection to `origin`, once the limits allow one."""
        while self._full() or self._per_origin.get(origin.key, 0) >= self._max_per_origin:
            if (reused := self.take_idle(origin.key)) is not None:
                return reused
            if self._full():
                self._evict_idle()  # its close frees a place (`_gone` wakes a waiter)
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken and cancelled at once: the place goes to another
                else:
                    waiter.cancel()
                raise
        if self._closed:
            raise BackendUnreachable("The gateway is stopping.")
        connection = UpstreamConnection(origin.key, self._loop, self._read_timeout, self._gone)
        self._per_origin[origin.key] = self._per_origin.get(origin.key, 0) + 1
        self._connecting += 1
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._loop.create_connection(
                    lambda: connection,
                    origin.host,
                    origin.port,
                    ssl=self._tls_context() if origin.tls else None,
                )
        except BaseException as exc:
            self._per_origin[origin.key] -= 1
            self._wake_one()
            if isinstance(exc, OSError | TimeoutError):
                raise BackendUnreachable(_UNREACHABLE) from exc
            raise
        finally:
            self._connecting -= 1
        self._open.add(connection)
        if connection.closed:  # closed as soon as it was made
            self._gone(connection)
            raise BackendUnreachable(_UNREACHABLE)
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        """The exchange is over: keep the connection for the next request if it can serve one."""
        connection.finish_exchange()
        if not connection.reusable or self._closed:
            connection.close()
            return
        connection.idle_since = self._loop.time()
        idle = self._idle.get(connection.origin)
        if idle is None:
            idle = self._idle[connection.origin] = deque()
        idle.append(connection)  # the sweep lets those at the cold end go once expired
        if self._waiters:
            self._wake_one()

    def discard(self, connection: UpstreamConnection) -> None:
        """The exchange failed or was abandoned: the connection is closed, never reused."""
        connection.finish_exchange()
        connection.close()

    async def close(self) -> None:
        """Close every connection (at exit), and return once their sockets are closed."""
        self._closed = True
        self._sweeper.cancel()
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        while self._waiters:
            self._wake_one()
        if self._open:
            # A closed transport lets its socket go on a later turn of the loop (with
            # connection_lost), and the loop may be about to stop: a socket left open then
            # is only closed by the collector, with a ResourceWarning.
            self._all_gone = self._loop.create_future()
            with suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_WAIT_S):
                    await self._all_gone

    def _gone(self, connection: UpstreamConnection) -> None:
        """A connection's close arrived (`connection_lost`)."""
        if connection in self._open:
            self._open.discard(connection)
            self._per_origin[connection.origin] -= 1
            self._wake_one()
            if not self._open and self._all_gone is not None and not self._all_gone.done():
                self._all_gone.set_result(None)
        # else: it closed before `open` counted it in, and `open` sees that.

    def _full(self) -> bool:
        return len(self._open) + self._connecting >= self._max

    def _evict_idle(self) -> None:
        """Close the longest-idle connection to any origin, if there is one."""
        oldest: deque[UpstreamConnection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest is not None:
            oldest.popleft().close()

    def _sweep(self) -> None:
        now = self._loop.time()
        for origin, idle in list(self._idle.items()):
            # oldest first: each deque is in the order its connections went idle
            while idle and (idle[0].closed or now - idle[0].idle_since >= self._expiry):
                idle.popleft().close()
            if not idle:
                del self._idle[origin]
        self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def __repr__(self) -> str:
        return f"ConnectionPool(open={len(self._open)}, connecting={self._connecting})"
