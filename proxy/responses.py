"""The request path's answers as bare ASGI apps: headers encoded once, nothing else done.

Litestar's `Response` resolves cookies, background tasks and media types on every answer; the
relay knows all of its headers up front, so it hands Litestar these instead (a handler
annotated `-> ASGIApp` passes them through untouched). `EventStream` is the streaming answer:
it sends each chunk as the relay yields it and, should the client disconnect, cancels the
relay at once, which closes the upstream request in the relay's `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable

from litestar.types import Receive, Scope, Send

JSON = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"

Headers = list[tuple[bytes, bytes]]


def encode_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class JsonResponse:
    """A complete JSON answer."""

    __slots__ = ("_body", "_headers", "_status")

    def __init__(self, body: bytes, *, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self._body = body
        self._status = status
        self._headers = encode_headers(headers)
        self._headers.append((b"content-type", JSON))
        self._headers.append((b"content-length", str(len(body)).encode()))

    @property
    def status(self) -> int:
        return self._status

    @property
    def body(self) -> bytes:
        return self._body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self._status, "headers": self._headers}
        )
        await send({"type": "http.response.body", "body": self._body, "more_body": False})


async def _until_disconnect(receive: Receive, target: asyncio.Task[None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    target.cancel()


class EventStream:
    """A server-sent event stream; the chunks come from the relay's async generator."""

    __slots__ = ("_chunks", "_headers")

    def __init__(
        self, chunks: AsyncGenerator[bytes, None], *, headers: Iterable[tuple[str, str]]
    ) -> None:
        self._chunks = chunks
        self._headers = encode_headers(headers)
        self._headers.append((b"content-type", EVENT_STREAM))
        self._headers.append((b"cache-control", b"no-cache"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None  # an ASGI app runs in a task
        watch = asyncio.get_running_loop().create_task(_until_disconnect(receive, task))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.done() or watch.cancelled():
                raise  # cancelled from outside, not by the client leaving
            task.uncancel()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._chunks.aclose()
