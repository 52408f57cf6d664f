"""A recording hop in front of a simulated replica: it keeps the headers of every request it
receives and relays the request, and the answer chunk by chunk, unchanged.

The simulator, like SGLang, does not report the headers it got; this hop shows what reached the
backend's door (trace context, request id) while the simulator still does the answering.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
from aiohttp import web

# Hop-by-hop and framing headers are the hop's own to set.
_NOT_RELAYED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class RecordingUpstream:
    def __init__(self, target: str) -> None:
        self._target = target.rstrip("/")
        # per request: its path and its headers, names lowercased
        self.received: list[tuple[str, dict[str, str]]] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._thread: threading.Thread | None = None

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.received if seen == path]

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.received.append((request.path, headers))
        assert self._session is not None
        outgoing = {k: v for k, v in headers.items() if k not in _NOT_RELAYED}
        async with self._session.request(
            request.method,
            self._target + request.path_qs,
            data=await request.read(),
            headers=outgoing,
        ) as answer:
            response = web.StreamResponse(status=answer.status)
            response.content_type = answer.content_type
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self._runner, sock).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def start_in_thread(self) -> RecordingUpstream:
        started = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        started.wait(timeout=30)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
