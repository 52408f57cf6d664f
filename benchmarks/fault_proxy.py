"""A TCP relay that puts network faults between a client and a server (Redis, PostgreSQL, a
replica): latency per direction, every connection cut, new connections refused, and back.

    async with FaultProxy("127.0.0.1", 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        proxy.delay(to_server_s=0.04, to_client_s=0.0)  # 40 ms more per round trip
        proxy.stall()          # bytes stop moving (connections stay open) ...
        await proxy.stalled()  # ... until some are held back; then
        proxy.resume()         # they go on, in order
        await proxy.cut()      # every open connection is dropped; new ones are still accepted
        await proxy.refuse()   # the port is closed (connect: refused) and open ones dropped
        await proxy.restore()  # the same port accepts again

Synchronous code (a test driving a gateway in a thread, a benchmark's main) uses
`FaultProxyThread`, which runs the same proxy on its own event loop, with the same methods,
blocking until each has taken effect.

Bytes are delayed, not throttled: each chunk is held until `delay` seconds after it was read,
and later chunks queue behind it, so a pipelined client sees the latency once per round trip
as it would on a long link. A change of delay applies to the bytes read after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self

CHUNK_BYTES = 64 * 1024


class _Link:
    """One client connection and its connection to the server, pumped both ways."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self._proxy = proxy
        self._writers: list[asyncio.StreamWriter] = [client]
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, client_reader: asyncio.StreamReader) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._proxy.upstream)
        except OSError:
            self.abort()
            return
        self._writers.append(server_writer)
        client_writer = self._writers[0]
        self._tasks = [
            asyncio.create_task(self._pump(client_reader, server_writer, to_server=True)),
            asyncio.create_task(self._pump(server_reader, client_writer, to_server=False)),
        ]
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_server: bool
    ) -> None:
        """Read chunks as they come; a second task writes each one once its delay is over."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer))
        try:
            while chunk := await reader.read(CHUNK_BYTES):
                delay_s = self._proxy.to_server_s if to_server else self._proxy.to_client_s
                queue.put_nowait((loop.time() + delay_s, chunk))
            queue.put_nowait((loop.time(), b""))  # end of stream, after what is queued
            await sender
        finally:
            sender.cancel()

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, chunk = await queue.get()
            wait_s = due - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            await self._proxy.flowing()
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    def abort(self) -> None:
        """Drop both sockets at once (a reset, as a cut cable or a killed peer looks)."""
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.transport.abort()


class FaultProxy:
    """Listens on `listen_host:listen_port` (0: a free port, fixed from then on) and relays each
    connection to `upstream_host:upstream_port`."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = listen_host
        self.port = listen_port
        self.to_server_s = 0.0
        self.to_client_s = 0.0
        self.accepted = 0  # connections accepted since start
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._held = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._links: dict[_Link, asyncio.Task[None]] = {}

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def start(self) -> None:
        await self.restore()

    async def close(self) -> None:
        await self.refuse()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def delay(self, *, to_server_s: float = 0.0, to_client_s: float = 0.0) -> None:
        """Hold the bytes going each way this long (0: none)."""
        self.to_server_s = to_server_s
        self.to_client_s = to_client_s

    def stall(self) -> None:
        """Hold every byte from now on (each way), connections open, until `resume()`."""
        self._held.clear()
        self._flowing.clear()

    async def stalled(self) -> None:
        """Return once bytes are being held by a stall."""
        await self._held.wait()

    def resume(self) -> None:
        self._flowing.set()

    async def flowing(self) -> None:
        """Wait, holding a link's next bytes, while stalled."""
        if not self._flowing.is_set():
            self._held.set()
            await self._flowing.wait()

    async def cut(self) -> None:
        """Drop every open connection; new ones are still accepted."""
        links = list(self._links.items())
        for link, _ in links:
            link.abort()
        await asyncio.gather(*(task for _, task in links), return_exceptions=True)

    async def refuse(self) -> None:
        """Stop listening, so that connecting is refused, and drop every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.cut()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        """Listen again (on the same port once it is known); a no-op while listening."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(self, writer)
        task = asyncio.current_task()
        assert task is not None
        self._links[link] = task
        try:
            await link.run(reader)
        finally:
            del self._links[link]


class FaultProxyThread:
    """A `FaultProxy` on an event loop of its own thread, for synchronous callers."""

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_port: int = 0) -> None:
        self.proxy = FaultProxy(upstream_host, upstream_port, listen_port=listen_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.proxy.port

    def _run(self, step: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(step, self._loop).result()

    def start(self) -> Self:
        self._thread.start()
        self._run(self.proxy.start())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):
            self._run(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def delay(self, *, to_server_s: float = 0.0, to_client_s: float = 0.0) -> None:
        async def change() -> None:
            self.proxy.delay(to_server_s=to_server_s, to_client_s=to_client_s)

        self._run(change())

    def stall(self) -> None:
        async def change() -> None:
            self.proxy.stall()

        self._run(change())

    def stalled(self) -> None:
        self._run(self.proxy.stalled())

    def resume(self) -> None:
        async def change() -> None:
            self.proxy.resume()

        self._run(change())

    def cut(self) -> None:
        self._run(self.proxy.cut())

    def refuse(self) -> None:
        self._run(self.proxy.refuse())

    def restore(self) -> None:
        self._run(self.proxy.restore())
