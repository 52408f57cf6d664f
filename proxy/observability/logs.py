"""Structured logs: one JSON line per request, and the gateway's own events.

A request's line carries its id, key id, model, backend, status, timings and token counts:
the ledger row's public fields. No secret ever enters one: it holds no key, only the key's
public id. Lifecycle events go through structlog (built per app, no global configuration,
rendered by msgspec); the per-request line is a `RequestLine` Struct encoded directly, since
structlog's processor chain costs more than the rest of the line. Lines are buffered and
written by a flusher task every `flush_interval_s` (and when the buffer fills, and on close),
so the request path never makes a write system call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import sys
from collections.abc import MutableMapping
from typing import Any, BinaryIO

import msgspec
import structlog

FLUSH_INTERVAL_S = 0.25
BUFFER_BYTES = 256 * 1024

_encoder = msgspec.json.Encoder()


def _render(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
    return _encoder.encode(event)


class RequestLine(msgspec.Struct, kw_only=True):
    """The canonical line of one request: the ledger row's public fields (never a secret)."""

    event: str = "request"
    level: str = "info"
    request_id: str
    key_id: str | None
    model: str | None
    backend: str | None
    endpoint: str
    stream: bool
    status: int
    error_code: str | None
    billed: bool
    ttft_ms: float | None
    total_ms: float
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    retries: int
    cancelled: bool
    ts: float  # unix seconds
    trace_id: str | None = None  # W3C trace id, when the request carried or began a trace
    worker: int | None = None  # the worker process that served it (`--workers` above 1)


_line_encoder = msgspec.json.Encoder()


class LineBuffer:
    """A structlog logger that keeps rendered lines until `flush()`. With `shared_sink` (the
    workers of an edge write to one stdout pipe), each write holds whole lines and at most
    PIPE_BUF bytes, which a pipe never interleaves with another process's writes."""

    def __init__(
        self, sink: BinaryIO, *, limit_bytes: int = BUFFER_BYTES, shared_sink: bool = False
    ) -> None:
        self._sink = sink
        self._limit = limit_bytes
        self._lines = bytearray()
        self._atomic_bytes = select.PIPE_BUF if shared_sink else 0

    def msg(self, message: bytes) -> None:
        self._lines += message
        self._lines += b"\n"
        if len(self._lines) >= self._limit:
            self.flush()

    info = warning = error = critical = debug = exception = msg

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, bytearray()
        if not self._atomic_bytes or len(lines) <= self._atomic_bytes:
            self._sink.write(lines)
            self._sink.flush()
            return
        view = memoryview(lines)
        start = 0
        while start < len(lines):
            # the last line end within PIPE_BUF bytes (a longer line goes whole, on its own)
            end = lines.rfind(b"\n", start, start + self._atomic_bytes) + 1
            if end <= start:
                end = lines.find(b"\n", start) + 1 or len(lines)
            self._sink.write(view[start:end])
            self._sink.flush()
            start = end


class RequestLog:
    """The gateway's logger; `request(row)` writes the canonical line of one request."""

    def __init__(
        self,
        sink: BinaryIO | None = None,
        *,
        enabled: bool = True,
        level: int = logging.INFO,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        shared_sink: bool = False,
        worker: int | None = None,
    ) -> None:
        # Request lines are info: a quieter level turns them off with the rest.
        self._enabled = enabled and level <= logging.INFO
        self._interval_s = flush_interval_s
        self._worker = worker
        self._buffer = LineBuffer(
            sink if sink is not None else sys.stdout.buffer, shared_sink=shared_sink
        )
        self._logger: Any = structlog.wrap_logger(
            self._buffer,
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt=None, key="ts"),  # unix seconds: cheap
                structlog.processors.format_exc_info,
                _render,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            cache_logger_on_first_use=True,
        )
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        self.flush()

    def flush(self) -> None:
        self._buffer.flush()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self._buffer.flush()

    def request(self, line: RequestLine) -> None:
        """The request's line. Rendered straight from a Struct with fixed keys into the same
        buffer: structlog's processor chain would cost more than the rest of the line."""
        if self._enabled:
            line.worker = self._worker
            self._buffer.msg(_line_encoder.encode(line))

    def event(self, name: str, **fields: object) -> None:
        """A lifecycle event (started, stopped): written at once, never per request."""
        self._logger.info(name, **fields)
        self.flush()

    def warning(self, name: str, **fields: object) -> None:
        self._logger.warning(name, **fields)
        self.flush()


def log_level(name: str) -> int:
    """`info` -> logging.INFO, and so on."""
    return logging.getLevelNamesMapping()[name.upper()]


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stdout for every structlog logger of the process (health verdicts, key
    refreshes, ...), like the per-request lines. Process-wide, so done here, by the command."""
    encoder = msgspec.json.Encoder()

    def render(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
        return encoder.encode(event)

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            render,
        ],
        logger_factory=structlog.BytesLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
