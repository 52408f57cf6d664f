"""The gateway's answers as bare ASGI apps: headers encoded once, nothing else done.

Litestar's `Response` resolves cookies, background tasks and media types on every answer; the
relay knows all of its headers up front, so it hands Litestar these instead (a handler
annotated `-> ASGIApp` passes them through untouched). `EventStream` is the streaming answer:
it sends each chunk as the relay yields it and, should the client disconnect, cancels the
relay at once, which closes the upstream request in the relay's `finally`. Before the answer
starts, `DisconnectWatch` does the same for a request still waiting on its backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable

from litestar.types import Receive, Scope, Send

from warmgate.proxy.errors import GatewayError
from warmgate.proxy.ids import new_request_id
from warmgate.proxy.media import EVENT_STREAM, JSON

# A client that leaves before the backend answers is noticed within this (plus a loop step).
DISCONNECT_WATCH_DELAY_S = 0.05
_JSON = JSON.encode()
_EVENT_STREAM = EVENT_STREAM.encode()

Headers = list[tuple[bytes, bytes]]


def encode_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class JsonResponse:
    """A complete answer: JSON unless `content_type` says otherwise (transcripts as text)."""

    __slots__ = ("_body", "_headers", "_status")

    def __init__(
        self,
        body: bytes,
        *,
        status: int,
        headers: Iterable[tuple[str, str]],
        content_type: str = JSON,
    ) -> None:
        self._body = body
        self._status = status
        self._headers = encode_headers(headers)
        self._headers.append(
            (b"content-type", _JSON if content_type is JSON else content_type.encode("latin-1"))
        )
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
        self._headers.append((b"content-type", _EVENT_STREAM))
        self._headers.append((b"cache-control", b"no-cache"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None  # an ASGI app runs in a task
        watch = task.get_loop().create_task(_until_disconnect(receive, task))
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


Answer = JsonResponse | EventStream


def error_parts(
    error: GatewayError, request_id: str | None = None, headers: Iterable[tuple[str, str]] = ()
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the answer to `error`: every error the gateway answers, its
    own or the framework's, takes this shape, whichever way it is sent."""
    merged = {"x-request-id": request_id or new_request_id(), **dict(headers), **error.headers}
    return error.status, list(merged.items()), error.to_json()


def error_response(
    error: GatewayError, request_id: str | None = None, headers: Iterable[tuple[str, str]] = ()
) -> JsonResponse:
    """`error` in OpenAI's shape, as an ASGI answer."""
    status, all_headers, body = error_parts(error, request_id, headers)
    return JsonResponse(body, status=status, headers=all_headers)


class DisconnectWatch:
    """Cancels the task that made it when the client disconnects; `stop()` when done.

    The watch begins `delay_s` after it is made: most answers come sooner and then cost only
    a timer, while a client that leaves during a long prefill or generation is still noticed
    within `delay_s` plus a scheduling step."""

    __slots__ = ("_target", "_task", "_timer", "fired")

    def __init__(self, receive: Receive, *, delay_s: float = DISCONNECT_WATCH_DELAY_S) -> None:
        self.fired = False
        target = asyncio.current_task()
        assert target is not None  # made inside a request handler
        self._target = target
        self._task: asyncio.Task[None] | None = None
        # The task's loop, not get_running_loop(): on Python 3.11 each of those is a getpid().
        self._timer = target.get_loop().call_later(delay_s, self._begin, receive)

    def _begin(self, receive: Receive) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.fired = True
        self._target.cancel()

    def stop(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()

    def absorb(self) -> bool:
        """True (and the cancellation taken back) when the client's leaving caused it."""
        if not self.fired:
            return False
        self._target.uncancel()
        return True
