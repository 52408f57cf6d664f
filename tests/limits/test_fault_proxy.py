"""The fault proxy relays bytes both ways and injects what it is told: latency, cuts, refusals."""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator

import pytest

from benchmarks.fault_proxy import FaultProxy, FaultProxyThread

TIMER_RESOLUTION_S = 0.002


class Echo:
    """An echo server that keeps every byte it received."""

    def __init__(self) -> None:
        self.received = bytearray()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            self.received += data
            writer.write(data)
            await writer.drain()
        writer.close()


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
async def proxy(echo: Echo) -> AsyncIterator[FaultProxy]:
    """A proxy in front of an echo server."""
    server = await asyncio.start_server(echo.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with FaultProxy("127.0.0.1", port) as running:
        yield running
    server.close()
    await server.wait_closed()


async def _round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


@pytest.mark.anyio
async def test_bytes_pass_both_ways_unchanged(proxy: FaultProxy) -> None:
    payload = bytes(range(256)) * 1000  # several chunks
    assert await _round_trip(proxy.port, payload) == payload


@pytest.mark.anyio
async def test_each_direction_is_delayed_by_its_own_latency(proxy: FaultProxy) -> None:
    for to_server_s, to_client_s in ((0.05, 0.0), (0.0, 0.05), (0.03, 0.03)):
        proxy.delay(to_server_s=to_server_s, to_client_s=to_client_s)
        started = time.monotonic()
        assert await _round_trip(proxy.port, b"ping") == b"ping"
        # A lower bound only: the bytes cannot come back before both delays have passed, less
        # the event loop's timer resolution (libuv's is a millisecond).
        assert time.monotonic() - started >= to_server_s + to_client_s - TIMER_RESOLUTION_S


@pytest.mark.anyio
async def test_a_stall_holds_the_bytes_until_resumed(proxy: FaultProxy, echo: Echo) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.stall()
    writer.write(b"held")
    await proxy.stalled()  # the proxy holds the bytes it read
    assert echo.received == b""
    proxy.resume()
    assert await reader.readexactly(4) == b"held"
    assert echo.received == b"held"
    writer.close()


@pytest.mark.anyio
async def test_a_cut_drops_open_connections_and_new_ones_still_work(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"
    assert proxy.open_connections == 1
    await proxy.cut()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await reader.readexactly(1)  # the end of the stream (or a reset), not a hang
    writer.close()
    assert proxy.open_connections == 0
    assert await _round_trip(proxy.port, b"again") == b"again"


@pytest.mark.anyio
async def test_refused_connections_come_back_on_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    await proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await proxy.restore()
    assert proxy.port == port
    assert await _round_trip(port, b"back") == b"back"


class _EchoHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def _sync_round_trip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            received += sock.recv(65536)
        return received


def test_the_threaded_proxy_serves_synchronous_callers() -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler) as echo:
        echo.daemon_threads = True
        serving = threading.Thread(target=echo.serve_forever, daemon=True)
        serving.start()
        try:
            with FaultProxyThread("127.0.0.1", echo.server_address[1]) as proxy:
                assert _sync_round_trip(proxy.port, b"sync") == b"sync"
                proxy.refuse()
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", proxy.port))
                proxy.restore()
                assert _sync_round_trip(proxy.port, b"back") == b"back"
        finally:
            echo.shutdown()
