"""A TCP relay on a loopback port in front of one server (PostgreSQL, Redis), to cut it.

`partition()` stops moving bytes both ways and leaves every connection open, new ones
included, as a network partition does: the client's calls hang until its own timeouts fire.
`reset()` closes every connection and refuses new ones, as a server that went away does.
`restore()` forwards again (connections held through a partition resume where they stopped).
It runs its own event loop in a thread, so a synchronous test or benchmark drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

CHUNK_BYTES = 65_536


class CutRelay:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._refusing = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    def url_for(self, url: str) -> str:
        """`url` (postgresql://host:port/..., redis://host:port/...) pointed at the relay."""
        host, port = self._upstream
        return url.replace(f"{host}:{port}", f"127.0.0.1:{self.port}", 1)

    def start(self) -> CutRelay:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def partition(self) -> None:
        self._call(self._set(flowing=False, refusing=False, drop=False))

    def reset(self) -> None:
        self._call(self._set(flowing=False, refusing=True, drop=True))

    def restore(self) -> None:
        self._call(self._set(flowing=True, refusing=False, drop=False))

    def __enter__(self) -> CutRelay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.result(timeout=10)

    async def _start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, sock=self._sock)

    async def _stop(self) -> None:
        await self._set(flowing=False, refusing=True, drop=True)
        if self._server is not None:
            self._server.close()

    async def _set(self, *, flowing: bool, refusing: bool, drop: bool) -> None:
        self._refusing = refusing
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()
        if drop:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                data = await reader.read(CHUNK_BYTES)
                if not data:
                    break
                await self._flowing.wait()  # a partition holds the bytes here
                if writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
