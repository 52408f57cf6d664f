"""The gateway on a real port for tests: uvicorn in a thread, the SDK's traffic recorded.

`GatewayServer` binds its socket before the server starts, so a request made at once waits in
the listen backlog until the app is up: no polling, no sleeping. `RecordingTransport` keeps every
response body the SDK received (streams included, chunk by chunk as they arrived) so the
fixtures can validate each one against the official OpenAI spec.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx  # the transport layer the openai SDK is built on
import uvicorn

from proxy.app import create_app
from proxy.server import base_url, bind
from proxy.settings import Settings


class GatewayServer:
    def __init__(self, settings: Settings, *, environ: Mapping[str, str]) -> None:
        self.log = io.BytesIO()
        self.app = create_app(settings, environ=environ, log_sink=self.log)
        self.sock = bind("127.0.0.1", 0)
        self.base_url = base_url(self.sock)
        self.root = self.base_url.removesuffix("/v1")
        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http="httptools",
            ws="none",
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def start(self) -> GatewayServer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Graceful shutdown: in-flight requests drain, the ledger is flushed."""
        self._server.should_exit = True
        self._thread.join(timeout=60)
        self.sock.close()
        assert not self._thread.is_alive(), "the gateway did not shut down"

    def log_lines(self) -> list[bytes]:
        return [line for line in self.log.getvalue().splitlines() if line]


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    content_type: str
    headers: httpx.Headers
    body: bytearray = field(default_factory=bytearray)
    closed: bool = False


class _RecordingStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, record: Exchange) -> None:
        self._inner = inner
        self._record = record

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._record.body.extend(chunk)
            yield chunk

    def close(self) -> None:
        self._record.closed = True
        self._inner.close()


class RecordingTransport(httpx.BaseTransport):
    """An httpx transport that keeps what every response carried."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        record = Exchange(
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            headers=response.headers,
        )
        self.exchanges.append(record)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_RecordingStream(response.stream, record),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()
