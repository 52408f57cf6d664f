"""The network between a replica and its clients: a fixed one-way delay per replica.

With `network_delay_ms` (scaled by `time_scale`), every answer's first byte leaves that much
later and so does each streamed chunk: chunks are held in order, each released `delay_s`
after it was written, while the writer goes on (a delay line, as a long network path behaves:
it adds latency, not a gap per chunk). Without a delay, writes go straight to the response.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Sleep = Callable[[float], Awaitable[None]]


def first_byte_delay(delay_s: float, sleep: Sleep = asyncio.sleep) -> Middleware:
    """Hold every whole (non-streamed) answer `delay_s` before it is sent."""

    @web.middleware
    async def delay(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not response.prepared:  # a stream has gone out through its Outlet already
            await sleep(delay_s)
        return response

    return delay


class Outlet:
    """A streamed answer's way out: prepare, write, cut, then drain (or close to abandon)."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        delay_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.request = request
        self.response = response
        self.delay_s = delay_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._queue: deque[tuple[float, bytes | None]] = deque()  # None: prepare
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def prepare(self) -> None:
        if self.delay_s <= 0:
            await self.response.prepare(self.request)
        else:
            self._enqueue(None)

    async def write(self, data: bytes) -> None:
        if self.delay_s <= 0:
            await self.response.write(data)
        elif data:
            self._enqueue(data)

    async def cut(self) -> None:
        """End the connection mid-body, after what was written (the cut_stream fault)."""
        await self.drain()
        transport = self.request.transport
        if transport is not None:
            transport.close()  # flushes the written bytes first, unlike abort()

    async def drain(self) -> None:
        """Return once every held chunk has been sent."""
        if self._task is not None:
            await self._task
        if self._failure is not None:
            raise self._failure

    async def close(self) -> None:
        """Abandon what is still held (the client left, or the handler failed)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if not self._task.cancelled():
                    raise

    def _enqueue(self, data: bytes | None) -> None:
        if self._failure is not None:
            raise self._failure
        self._queue.append((self._monotonic() + self.delay_s, data))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._release())

    async def _release(self) -> None:
        try:
            while self._queue:
                due, data = self._queue[0]
                wait_s = due - self._monotonic()
                if wait_s > 0:
                    await self._sleep(wait_s)
                self._queue.popleft()
                if data is None:
                    await self.response.prepare(self.request)
                else:
                    await self.response.write(data)
        except (ConnectionError, RuntimeError) as failure:  # the client went away
            self._failure = failure
            self._queue.clear()
