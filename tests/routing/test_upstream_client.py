"""The forwarding client against a scripted backend on loopback (`proxy.upstream`): framing,
kept-alive connections, limits, and each way an answer can fail, as the connect stage sees it.

The backend is a real TCP server that reads each request whole and then does what the test
scripted for it: bytes to send, a close, or nothing (a wedge)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

from warmgate.proxy.errors import (
    AnswerTooLarge,
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    StreamInterrupted,
)
from warmgate.proxy.settings import UpstreamSettings
from warmgate.proxy.upstream.client import ConnectionDropped, Upstream, UpstreamResponse
from warmgate.proxy.upstream.connection import HIGH_WATER_BYTES

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[{}, {"use_uvloop": True}], ids=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both loops: the gateway serves on uvloop where it is installed, on asyncio elsewhere."""
    return "asyncio", request.param


# What the backend does with one request: given the request's bytes and the connection, it
# answers (or not); it returns False to close the connection afterwards.
Script = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


def answer(status: int, body: bytes, *, headers: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


def chunked(*parts: bytes) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return head + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def sends(data: bytes, *, keep: bool = True) -> Script:
    async def script(
        _request: bytes, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return script


async def never_answers(
    _request: bytes, reader: asyncio.StreamReader, _writer: asyncio.StreamWriter
) -> bool:
    """A wedged backend: it never answers, and reads on only to see its client go."""
    with suppress(ConnectionError):
        await reader.read()
    return False


class Backend:
    """A loopback backend answering each request with the next script."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed_by_client = asyncio.Event()
        self.request_arrived = asyncio.Event()
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                self.request_arrived.set()
                if not await self.scripts.pop(0)(request, reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client.set()
        finally:
            if reader.at_eof():
                self.closed_by_client.set()
            writer.close()

    async def __aenter__(self) -> Backend:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()


@asynccontextmanager
async def client(
    *, read_timeout_s: float = 900.0, max_connections: int = 1024, keepalive_expiry_s: float = 4.0
) -> AsyncIterator[Upstream]:
    settings = UpstreamSettings(
        read_timeout_s=read_timeout_s,
        max_connections=max_connections,
        keepalive_expiry_s=keepalive_expiry_s,
    )
    upstream = Upstream(settings, max_answer_bytes=1000)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


async def post(upstream: Upstream, backend: Backend, body: bytes = b'{"a":1}') -> UpstreamResponse:
    return await upstream.post(
        backend.url + "/v1/chat/completions", body, api_key=None, request_id="req-1"
    )


async def test_the_request_goes_out_as_one_http11_post_with_the_body_as_given() -> None:
    async with Backend([sends(answer(200, b'{"ok":true}'))]) as backend, client() as upstream:
        response = await upstream.post(
            backend.url + "/v1/chat/completions?x=1",
            b'{"model":"m"}',
            api_key="sk-backend",
            request_id="req-7",
            trace_headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
        )
        assert response.status == 200
        assert await response.read() == b'{"ok":true}'
    head, _, body = backend.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions?x=1 HTTP/1.1"
    fields = dict(line.split(b": ", 1) for line in lines[1:])
    assert fields[b"Host"] == backend.url.removeprefix("http://").encode()
    assert fields[b"Content-Length"] == b"13"
    assert fields[b"Content-Type"] == b"application/json"
    assert fields[b"Authorization"] == b"Bearer sk-backend"
    assert fields[b"X-Request-Id"] == b"req-7"
    assert fields[b"Accept-Encoding"] == b"identity"
    assert fields[b"traceparent"].startswith(b"00-111")
    assert body == b'{"model":"m"}'


async def test_a_large_body_is_sent_whole() -> None:
    body = b"x" * (300 * 1024)
    async with Backend([sends(answer(200, b"{}"))]) as backend, client() as upstream:
        response = await post(upstream, backend, body)
        assert await response.read() == b"{}"
    assert backend.requests[0].endswith(b"\r\n\r\n" + body)


async def test_a_get_sends_no_body_and_no_length() -> None:
    async with Backend([sends(answer(200, b"{}"))]) as backend, client() as upstream:
        response = await upstream.post(
            backend.url + "/v1/responses/r1",
            b"",
            api_key=None,
            request_id="r",
            method="GET",
            content_type=None,
        )
        assert await response.read() == b"{}"
    assert backend.requests[0].startswith(b"GET /v1/responses/r1 HTTP/1.1\r\n")
    assert b"Content-Length" not in backend.requests[0]
    assert b"Content-Type" not in backend.requests[0]


async def test_requests_one_after_another_share_one_kept_alive_connection() -> None:
    scripts = [sends(answer(200, b'{"n":%d}' % n)) for n in range(3)]
    async with Backend(scripts) as backend, client() as upstream:
        for n in range(3):
            response = await post(upstream, backend)
            assert await response.read() == b'{"n":%d}' % n
    assert backend.connections == 1


async def test_an_idle_connection_is_closed_when_it_expires() -> None:
    scripts = [sends(answer(200, b"{}")), sends(answer(200, b'{"second":1}'))]
    async with Backend(scripts) as backend, client(keepalive_expiry_s=0.01) as upstream:
        first = await post(upstream, backend)
        assert await first.read() == b"{}"
        await asyncio.wait_for(backend.closed_by_client.wait(), 10)  # closed by the sweep
        second = await post(upstream, backend)
        assert await second.read() == b'{"second":1}'
    assert backend.connections == 2


async def test_a_connection_the_backend_ends_is_not_used_again() -> None:
    scripts = [
        sends(answer(200, b"{}", headers="Connection: close\r\n"), keep=False),
        sends(answer(200, b'{"second":1}')),
    ]
    async with Backend(scripts) as backend, client() as upstream:
        first = await post(upstream, backend)
        assert await first.read() == b"{}"
        second = await post(upstream, backend)
        assert await second.read() == b'{"second":1}'
    assert backend.connections == 2


async def test_a_stream_comes_chunk_by_chunk_and_its_connection_is_kept() -> None:
    events = [b"data: {}\n\n", b"data: [DONE]\n\n"]
    scripts = [sends(chunked(*events)), sends(answer(200, b"{}"))]
    async with Backend(scripts) as backend, client() as upstream:
        response = await post(upstream, backend)
        await response.peek()
        received = [chunk async for chunk in response.chunks()]
        response.release()
        assert b"".join(received) == b"".join(events)
        again = await post(upstream, backend)
        assert await again.read() == b"{}"
    assert backend.connections == 1


async def test_an_answer_framed_by_the_connections_end_ends_with_it() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"until":"close"}'
    async with Backend([sends(data, keep=False)]) as backend, client() as upstream:
        response = await post(upstream, backend)
        assert await response.read() == b'{"until":"close"}'


async def test_an_interim_100_continue_is_skipped() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\n" + answer(201, b'{"real":1}')
    async with Backend([sends(data)]) as backend, client() as upstream:
        response = await post(upstream, backend)
        assert response.status == 201
        assert await response.read() == b'{"real":1}'


async def test_a_stream_the_relay_reads_slowly_arrives_whole() -> None:
    """Past the high-water mark the socket is not read; the bytes still all arrive, in order."""
    parts = [bytes([65 + n % 26]) * 64 * 1024 for n in range(3 * HIGH_WATER_BYTES // (64 * 1024))]
    async with Backend([sends(chunked(*parts))]) as backend, client() as upstream:
        response = await post(upstream, backend)
        received = bytearray()
        async for chunk in response.chunks():
            received += chunk
        response.release()
    assert bytes(received) == b"".join(parts)


async def test_a_connection_dropped_before_the_status_line_is_connection_dropped() -> None:
    async with Backend([sends(b"", keep=False)]) as backend, client() as upstream:
        with pytest.raises(ConnectionDropped):
            await post(upstream, backend)


async def test_a_connection_dropped_mid_body_is_an_interrupted_answer() -> None:
    cut = answer(200, b'{"long":"' + b"x" * 100 + b'"}')[:-40]
    async with Backend([sends(cut, keep=False)]) as backend, client() as upstream:
        response = await post(upstream, backend)
        with pytest.raises(StreamInterrupted):
            await response.read()


async def test_a_stream_cut_mid_chunk_is_an_interrupted_answer() -> None:
    cut = chunked(b"data: {}\n\n", b"data: [DONE]\n\n")[:-12]
    async with Backend([sends(cut, keep=False)]) as backend, client() as upstream:
        response = await post(upstream, backend)
        with pytest.raises(StreamInterrupted):
            [chunk async for chunk in response.chunks()]
        response.abort()


async def test_an_answer_that_is_not_http_is_a_backend_error() -> None:
    not_http = sends(b"SSH-2.0-OpenSSH\r\n\r\n", keep=False)
    async with Backend([not_http]) as backend, client() as upstream:
        with pytest.raises(BackendError) as caught:
            await post(upstream, backend)
    assert not isinstance(caught.value, ConnectionDropped)


async def test_an_answer_larger_than_the_cap_closes_the_connection() -> None:
    big = answer(200, b"x" * 5000)
    async with Backend([sends(big)]) as backend, client() as upstream:
        response = await post(upstream, backend)
        with pytest.raises(AnswerTooLarge):
            await response.read()
        await asyncio.wait_for(backend.closed_by_client.wait(), 10)


async def test_silence_past_the_read_timeout_is_a_backend_timeout() -> None:
    async with Backend([never_answers]) as backend, client(read_timeout_s=0.05) as upstream:
        with pytest.raises(BackendTimeout):
            await post(upstream, backend)


async def test_a_cancelled_wait_closes_the_connection_for_the_backend_to_see() -> None:
    async with Backend([never_answers]) as backend, client() as upstream:
        attempt = asyncio.create_task(post(upstream, backend))
        await backend.request_arrived.wait()
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        await asyncio.wait_for(backend.closed_by_client.wait(), 10)


async def test_a_refused_connection_is_unreachable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with client() as upstream:
        with pytest.raises(BackendUnreachable) as caught:
            await upstream.post(
                f"http://127.0.0.1:{port}/v1/x", b"{}", api_key=None, request_id="r"
            )
    assert not isinstance(caught.value, ConnectionDropped)


@pytest.mark.parametrize(
    "bad", [{"request_id": "r\r\nX-Evil: 1"}, {"api_key": "k\nHost: elsewhere"}]
)
async def test_a_value_that_would_add_a_header_line_is_refused_before_sending(
    bad: dict[str, str],
) -> None:
    async with Backend([]) as backend, client() as upstream:
        with pytest.raises(BackendError):
            await upstream.post(
                backend.url + "/v1/x",
                b"{}",
                api_key=bad.get("api_key"),
                request_id=bad.get("request_id", "r"),
            )
    assert backend.connections == 0


async def test_the_connection_limit_makes_the_second_request_wait_for_the_first() -> None:
    release_first = asyncio.Event()

    async def held(
        _request: bytes, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        await release_first.wait()
        writer.write(answer(200, b'{"first":1}'))
        return True

    async with (
        Backend([held, sends(answer(200, b'{"second":1}'))]) as backend,
        client(max_connections=1) as upstream,
    ):
        first = asyncio.create_task(post(upstream, backend))
        await backend.request_arrived.wait()
        second = asyncio.create_task(post(upstream, backend))
        release_first.set()
        assert await (await first).read() == b'{"first":1}'
        assert await (await second).read() == b'{"second":1}'
    assert backend.connections == 1


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
async def test_closing_the_client_closes_its_connections_before_it_returns() -> None:
    """A stopping gateway closes its loop soon after the client: a socket still open then is
    closed by the collector, with a ResourceWarning, or never."""

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    async with Backend([sends(answer(200, b"{}"))]) as backend:
        upstream = Upstream(UpstreamSettings())
        await upstream.start()
        response = await post(upstream, backend)
        assert await response.read() == b"{}"
        before = open_descriptors()
        await upstream.close()
        assert open_descriptors() == before - 1  # its kept-alive connection's socket
