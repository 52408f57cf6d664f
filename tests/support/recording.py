"""The SDK's traffic recorded: `RecordingTransport` keeps every response the official client
received (streams included, chunk by chunk as they arrived) so that a fixture can check each one
against the official OpenAI spec (`tests.support.conformance`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx2 as httpx  # the transport layer the openai SDK is built on
from openai import OpenAI


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


def strict_sdk(base_url: str, api_key: str, transport: RecordingTransport) -> OpenAI:
    """The official SDK, strict (it raises on any response that breaks its types), without
    retries, its traffic recorded by `transport`."""
    return OpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        http_client=httpx.Client(transport=transport),
        _strict_response_validation=True,
    )
